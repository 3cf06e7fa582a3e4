//! The `checkout` workloads' carts: a few lines over a small catalogue, so that 16 clients
//! keep meeting on the same rows, as a shop's best sellers do.

use rand::seq::index::sample;
use rand::Rng;

/// Products the carts draw from (rows 1..=PRODUCTS of `counters`).
pub const PRODUCTS: i64 = 20;
/// Lines per cart, each a different product.
pub const LINES: usize = 5;
/// The most units of one line.
pub const MAX_QUANTITY: i64 = 3;

/// A random cart: `LINES` distinct products, 1..=`MAX_QUANTITY` units each, sorted by
/// product. Sorted for both workloads: `decrement_if_at_least_many` sorts its keys itself,
/// and the five-call transaction is given the same order so it measures round trips, not
/// deadlocks (five calls in cart order deadlock on PostgreSQL and MariaDB and are re-run).
pub fn cart(rng: &mut impl Rng) -> Vec<(i64, i64)> {
    let mut lines: Vec<(i64, i64)> = sample(rng, PRODUCTS as usize, LINES)
        .into_iter()
        .map(|i| (i as i64 + 1, rng.random_range(1..=MAX_QUANTITY)))
        .collect();
    lines.sort_unstable();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn carts_have_distinct_sorted_products_in_range() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..1000 {
            let c = cart(&mut rng);
            assert_eq!(c.len(), LINES);
            assert!(c.windows(2).all(|w| w[0].0 < w[1].0), "{c:?}");
            assert!(c
                .iter()
                .all(|&(p, q)| (1..=PRODUCTS).contains(&p) && (1..=MAX_QUANTITY).contains(&q)));
        }
    }
}
