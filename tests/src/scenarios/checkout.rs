//! The checkout under contention: 16 workers take random 5-line carts from 20 products with
//! little stock through `decrement_*_if_at_least_many`, while CPU-bound threads run beside
//! them. Every outcome is held against what the rows went through.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};

use counter_core::{AtomicError, AtomicFieldOn, RetryPolicy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::harness::{beside_busy_threads, serializable_postgres, BUSY_THREADS, KEYED_THREADS};
use crate::client::{on_n_workers, Client};
use crate::db::{DbOf, TestDb};
use crate::models::Product;
use crate::schema::ct_products;

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! checkout_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            concurrent_checkouts_never_oversell,
        );
    };
}

/// Products, and the stock each starts with: enough for some carts, not for all.
const PRODUCTS: usize = 20;
const STOCK: i32 = 80;
/// Carts per worker, lines per cart, and the largest quantity of a line.
const CARTS: usize = 20;
const LINES: usize = 5;
const MOST: i32 = 3;

/// A cart as given (lines in random order), and what the checkout returned.
type Checkout = (Vec<(i64, i32)>, Result<Vec<(i64, i32)>, AtomicError>);

/// 16 workers check out 20 random 5-line carts each (lines in random order, quantities 1 to
/// 3) from 20 products of stock 80 (about half of the carts fit). Even workers record the sale
/// in the same library transaction (`increment_sold_many` after the checkout), odd ones run
/// the checkout alone and the test counts their sales. Then, per product:
/// - stock + sold (in the row, and counted) is the initial stock, and no stock is below 0;
/// - the successful checkouts' values form one chain from the initial stock down to the
///   final one (no value handed out twice, no take lost);
/// - every refusal is `InRow { key, Insufficient { available, requested } }` naming a line
///   of the cart, `requested` that line's quantity, `available` below it and a value the
///   product's stock really held;
/// - nothing else fails: a deadlock between two carts (their rows locked in key order) would
///   surface as `Conflict` (allowed only under PostgreSQL SERIALIZABLE, counted).
pub async fn concurrent_checkouts_never_oversell<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let ids: Vec<i64> = (0..PRODUCTS).map(|_| db.new_product(STOCK, 0)).collect();
    let seed = RandomState::new().hash_one(std::time::SystemTime::now());
    let name = client.name();
    let logs: Vec<Vec<Checkout>> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, KEYED_THREADS, async |worker, conn| {
            let mut rng = StdRng::seed_from_u64(seed ^ worker as u64);
            let mut log = Vec::with_capacity(CARTS);
            for _ in 0..CARTS {
                let mut picked = rand::seq::index::sample(&mut rng, PRODUCTS, LINES).into_vec();
                picked.sort_unstable_by_key(|_| rng.random::<u32>());
                let cart: Vec<(i64, i32)> = picked
                    .into_iter()
                    .map(|i| (ids[i], rng.random_range(1..=MOST)))
                    .collect();
                let result = if worker % 2 == 0 {
                    C::transaction(conn, RetryPolicy::DEFAULT, async |c| {
                        let left =
                            C::done(Product::decrement_stock_if_at_least_many(c, cart.clone()))
                                .await?;
                        let sold = cart.iter().map(|&(id, n)| (id, i64::from(n)));
                        C::done(Product::increment_sold_many(c, sold)).await?;
                        Ok(left)
                    })
                    .await
                } else {
                    C::done(Product::decrement_stock_if_at_least_many(
                        conn,
                        cart.clone(),
                    ))
                    .await
                };
                log.push((cart, result));
            }
            log
        })
    });

    // The values each product's successful checkouts went from and to, and the sales.
    let mut steps: BTreeMap<i64, Vec<(i32, i32)>> = BTreeMap::new();
    let mut counted_sales: BTreeMap<i64, i64> = BTreeMap::new();
    let mut refusals = Vec::new();
    let (mut done, mut conflicts) = (0, 0);
    let serializable = serializable_postgres(client);
    for (worker, log) in logs.iter().enumerate() {
        for (cart, result) in log {
            let keys: BTreeSet<i64> = cart.iter().map(|&(id, _)| id).collect();
            match result {
                Ok(left) => {
                    done += 1;
                    let returned: Vec<i64> = left.iter().map(|&(id, _)| id).collect();
                    assert!(
                        returned.iter().eq(keys.iter()),
                        "{name}: {cart:?} returned {left:?}: not every key once in key order"
                    );
                    for (&(id, after), &(_, n)) in left.iter().zip(sorted(cart).iter()) {
                        assert!(after >= 0, "{name}: {cart:?} left {after} of {id}");
                        steps.entry(id).or_default().push((after + n, after));
                        if worker % 2 == 1 {
                            *counted_sales.entry(id).or_default() += i64::from(n);
                        }
                    }
                }
                Err(AtomicError::InRow { key, error }) => match **error {
                    AtomicError::Insufficient {
                        available,
                        requested,
                    } => {
                        let line = cart.iter().find(|(id, _)| format!("{id:?}") == *key);
                        let Some(&(id, n)) = line else {
                            panic!("{name}: {cart:?} refused with key {key}, not in the cart")
                        };
                        assert!(
                            requested == i128::from(n) && (0..requested).contains(&available),
                            "{name}: {cart:?}: {id} refused with {error:?}"
                        );
                        refusals.push((id, available));
                    }
                    ref other => panic!("{name}: {cart:?} refused with {key}: {other:?}"),
                },
                Err(AtomicError::Conflict { .. }) if serializable => conflicts += 1,
                Err(other) => panic!("{name}: {cart:?}: {other:?}"),
            }
        }
    }
    eprintln!(
        "{name}: {done} checkouts, {} refused, {conflicts} conflicts (seed {seed})",
        refusals.len()
    );
    assert!(
        done > 0 && !refusals.is_empty(),
        "{name}: both outcomes occur"
    );

    for &id in &ids {
        let (stock, sold) = db.product(id);
        let counted = counted_sales.get(&id).copied().unwrap_or(0);
        assert!(stock >= 0, "{name}: product {id} at {stock}");
        assert_eq!(
            i64::from(stock) + sold + counted,
            i64::from(STOCK),
            "{name}: product {id}: stock {stock}, sold {sold} in the row and {counted} counted"
        );
        // Each checkout took at least 1: its steps, highest first, must join up.
        let mut chain = steps.remove(&id).unwrap_or_default();
        chain.sort_unstable_by(|a, b| b.cmp(a));
        let mut at = STOCK;
        let mut held = BTreeSet::from([STOCK]);
        for &(before, after) in &chain {
            assert_eq!(
                before, at,
                "{name}: product {id}: a checkout went {before} -> {after} while the stock \
                 was {at} (chain {chain:?})"
            );
            at = after;
            held.insert(after);
        }
        assert_eq!(at, stock, "{name}: product {id}: chain {chain:?}");
        for &(_, available) in refusals.iter().filter(|(p, _)| *p == id) {
            assert!(
                held.contains(&(available as i32)),
                "{name}: product {id} refused with {available} available, a value its stock \
                 never held ({held:?})"
            );
        }
    }
}

/// A cart's lines in key order.
fn sorted(cart: &[(i64, i32)]) -> Vec<(i64, i32)> {
    let mut lines = cart.to_vec();
    lines.sort_unstable();
    lines
}
