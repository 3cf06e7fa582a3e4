//! The operations that fill to a bound or set a value: `increment_*_up_to`, `set_*_max`,
//! `set_*_min` and `compare_and_set_*`, alone (each answer and refusal exact) and in storms of
//! `KEYED_THREADS` workers beside CPU-bound threads, where every total is exact.

use std::hash::{BuildHasher, RandomState};

use counter_core::{AtomicError, AtomicFieldOn, Limit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::assert::{assert_no_errors, errors_of};
use super::harness::{beside_busy_threads, BUSY_THREADS, KEYED_THREADS};
use crate::client::{on_n_workers, Client};
use crate::db::{next_id, DbOf, TestDb};
use crate::models::{CartLine, Product};
use crate::schema::{ct_cart_lines, ct_products};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! value_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            increment_up_to_fills_to_the_maximum,
            fill_storm_never_passes_the_maximum,
            water_marks_keep_the_highest_and_the_lowest,
            water_mark_storm_ends_at_the_extremes,
            compare_and_set_writes_only_over_the_expected_value,
            compare_and_set_loops_lose_no_update,
        );
    };
}

/// One fill: the line, the amount asked, what the call returned.
type Fill = (i64, i32, Result<i32, AtomicError>);

/// One bid: the value offered, what `set_max` and `set_min` returned.
type Bid = (i64, Result<i64, AtomicError>, Result<i64, AtomicError>);

/// A seed that differs per run, printed by a failing assertion through the values it drew.
fn seed() -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A cart line capped at 40 (`min = 0, max = 40`), 30 in it: adding 15 fills it to 40 and
/// says 10 went in (and 14 of 15 at 26, one short of fitting whole); a full line takes 0 and is unchanged; 0 adds nothing; a negative amount
/// and a missing line are refused.
pub async fn increment_up_to_fills_to_the_maximum<C: Client>(client: &C)
where
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let cart = next_id();
    db.new_cart_line(cart, 1, 30);
    db.new_cart_line(cart, 2, 0);
    db.new_cart_line(cart, 4, 26);
    let mut conn = client.conn().await;
    let c = &mut conn;
    let fill = async |c: &mut C::Conn, line: i64, n: i32| {
        C::done(CartLine::increment_quantity_up_to(c, (cart, line), n)).await
    };
    assert_eq!(fill(c, 1, 15).await.unwrap(), 10);
    assert_eq!(fill(c, 1, 15).await.unwrap(), 0);
    assert_eq!(fill(c, 1, 0).await.unwrap(), 0);
    assert_eq!(fill(c, 2, 0).await.unwrap(), 0);
    assert_eq!(fill(c, 2, 7).await.unwrap(), 7);
    assert_eq!(fill(c, 2, 33).await.unwrap(), 33);
    assert_eq!(fill(c, 2, i32::MAX).await.unwrap(), 0);
    assert!(matches!(
        fill(c, 2, -1).await,
        Err(AtomicError::NegativeAmount { amount: -1 })
    ));
    // One short of fitting whole, and exactly fitting.
    assert_eq!(fill(c, 4, 15).await.unwrap(), 14);
    assert!(matches!(fill(c, 3, 5).await, Err(AtomicError::NotFound)));
    assert!(matches!(fill(c, 3, 0).await, Err(AtomicError::NotFound)));
    let lines: Vec<i32> = db
        .cart_lines(&[cart])
        .into_iter()
        .map(|l| l.quantity)
        .collect();
    assert_eq!(lines, vec![40, 40, 40]);

    // An unbounded column fills up to its type's largest value.
    let id = db.new_product(0, i64::MAX - 5);
    let filled = C::done(Product::increment_sold_up_to(&mut conn, id, 9)).await;
    assert_eq!(filled.unwrap(), 5);
    assert_eq!(db.product(id), (0, i64::MAX));
}

/// `KEYED_THREADS` workers add random amounts (1 to 15) to four lines capped at 40, starting
/// at 0, 0, 25 and 40: no line passes 40, each line ends at `min(40, start + everything
/// asked)` (a fill is the sum of what fits, whatever the order), and the amounts the workers
/// were told add up, per line, to what the line gained.
pub async fn fill_storm_never_passes_the_maximum<C: Client>(client: &C)
where
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
{
    const CALLS: usize = 12;
    let db = client.db();
    let cart = next_id();
    let starts = [0, 0, 25, 40];
    for (line, start) in (1..).zip(starts) {
        db.new_cart_line(cart, line, start);
    }
    let seed = seed();
    let logs: Vec<Vec<Fill>> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, KEYED_THREADS, async |worker, conn| {
            let mut rng = StdRng::seed_from_u64(seed ^ worker as u64);
            let mut log = Vec::with_capacity(CALLS);
            for _ in 0..CALLS {
                let line = rng.random_range(1..=4_i64);
                let n = rng.random_range(1..=15);
                let added =
                    C::done(CartLine::increment_quantity_up_to(conn, (cart, line), n)).await;
                log.push((line, n, added));
            }
            log
        })
    });
    let mut asked = [0_i64; 4];
    let mut told = [0_i64; 4];
    let mut results = Vec::new();
    for (line, n, added) in logs.into_iter().flatten() {
        let i = (line - 1) as usize;
        asked[i] += i64::from(n);
        if let Ok(added) = &added {
            assert!(
                (0..=n).contains(added),
                "seed {seed}: {n} asked, {added} added"
            );
            told[i] += i64::from(*added);
        }
        results.push(added);
    }
    let (_, errors) = errors_of(results);
    assert_no_errors(client, "fill storm", &errors);
    let lines: Vec<i64> = db
        .cart_lines(&[cart])
        .into_iter()
        .map(|l| i64::from(l.quantity))
        .collect();
    for i in 0..4 {
        let start = i64::from(starts[i]);
        assert_eq!(
            lines[i],
            (start + asked[i]).min(40),
            "seed {seed}: line {i}"
        );
        assert_eq!(told[i], lines[i] - start, "seed {seed}: line {i}");
    }
}

/// `set_max` keeps the higher value and says what the row holds; `set_min` the lower. Past a
/// bound: a row that would move there is refused with `OutOfRange` and unchanged, a row
/// already beyond the value answers with its own. A missing row is `NotFound`.
pub async fn water_marks_keep_the_highest_and_the_lowest<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, -3);
    let mut conn = client.conn().await;
    let c = &mut conn;
    assert_eq!(
        C::done(Product::set_stock_max(c, id, 500)).await.unwrap(),
        500
    );
    assert_eq!(
        C::done(Product::set_stock_max(c, id, 200)).await.unwrap(),
        500
    );
    assert_eq!(
        C::done(Product::set_stock_min(c, id, 700)).await.unwrap(),
        500
    );
    assert_eq!(
        C::done(Product::set_stock_min(c, id, 20)).await.unwrap(),
        20
    );
    assert_eq!(
        C::done(Product::set_stock_max(c, id, 20)).await.unwrap(),
        20
    );
    // Past `max = 1000` and `min = 0`: refused, the row unchanged.
    assert!(matches!(
        C::done(Product::set_stock_max(c, id, 1001)).await,
        Err(AtomicError::OutOfRange {
            current: 20,
            attempted: 1001,
            limit: Limit::Max(1000)
        })
    ));
    assert!(matches!(
        C::done(Product::set_stock_min(c, id, -1)).await,
        Err(AtomicError::OutOfRange {
            current: 20,
            attempted: -1,
            limit: Limit::Min(0)
        })
    ));
    assert_eq!(db.product(id), (20, -3));
    // An unbounded column takes any value of its type.
    assert_eq!(
        C::done(Product::set_sold_min(c, id, i64::MIN))
            .await
            .unwrap(),
        i64::MIN
    );
    assert_eq!(
        C::done(Product::set_sold_max(c, id, i64::MAX))
            .await
            .unwrap(),
        i64::MAX
    );
    assert_eq!(db.product(id), (20, i64::MAX));
    let missing = next_id();
    assert!(matches!(
        C::done(Product::set_stock_max(c, missing, 5)).await,
        Err(AtomicError::NotFound)
    ));
    assert!(matches!(
        C::done(Product::set_stock_min(c, missing, 5000)).await,
        Err(AtomicError::NotFound)
    ));
}

/// `KEYED_THREADS` workers offer random bids to one row's high-water mark and another's
/// low-water mark: each row ends at the extreme offered, every answer is at least (at most)
/// the caller's own bid, and each worker's answers never go back.
pub async fn water_mark_storm_ends_at_the_extremes<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    const CALLS: usize = 20;
    let db = client.db();
    let (high, low) = (db.new_product(0, 0), db.new_product(0, 0));
    let seed = seed();
    let logs: Vec<Vec<Bid>> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, KEYED_THREADS, async |worker, conn| {
            let mut rng = StdRng::seed_from_u64(seed ^ worker as u64);
            let mut log = Vec::with_capacity(CALLS);
            for _ in 0..CALLS {
                let bid = rng.random_range(-1_000_000..=1_000_000_i64);
                let up = C::done(Product::set_sold_max(conn, high, bid)).await;
                let down = C::done(Product::set_sold_min(conn, low, bid)).await;
                log.push((bid, up, down));
            }
            log
        })
    });
    let (mut highest, mut lowest) = (0_i64, 0_i64);
    let mut errors = Vec::new();
    for log in logs {
        let (mut last_up, mut last_down) = (i64::MIN, i64::MAX);
        for (bid, up, down) in log {
            highest = highest.max(bid);
            lowest = lowest.min(bid);
            match up {
                Ok(v) => {
                    assert!(v >= bid.max(0) && v >= last_up, "seed {seed}: {bid} -> {v}");
                    last_up = v;
                }
                Err(e) => errors.push(e),
            }
            match down {
                Ok(v) => {
                    assert!(
                        v <= bid.min(0) && v <= last_down,
                        "seed {seed}: {bid} -> {v}"
                    );
                    last_down = v;
                }
                Err(e) => errors.push(e),
            }
        }
    }
    assert_no_errors(client, "water-mark storm", &errors);
    assert_eq!(db.product(high).1, highest, "seed {seed}");
    assert_eq!(db.product(low).1, lowest, "seed {seed}");
}

/// A swap over the value the row holds writes and returns the new one; over another value it
/// is `Mismatch` with the row's value and writes nothing; a swap across a bound is refused
/// before any statement, whatever the row holds; a missing row is `NotFound`.
pub async fn compare_and_set_writes_only_over_the_expected_value<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let mut conn = client.conn().await;
    let c = &mut conn;
    assert_eq!(
        C::done(Product::compare_and_set_stock(c, id, 10, 12))
            .await
            .unwrap(),
        12
    );
    assert!(matches!(
        C::done(Product::compare_and_set_stock(c, id, 10, 14)).await,
        Err(AtomicError::Mismatch {
            expected: 10,
            current: 12
        })
    ));
    assert_eq!(
        C::done(Product::compare_and_set_stock(c, id, 12, 12))
            .await
            .unwrap(),
        12
    );
    assert!(matches!(
        C::done(Product::compare_and_set_stock(c, id, 12, 1001)).await,
        Err(AtomicError::OutOfRange {
            current: 12,
            attempted: 1001,
            limit: Limit::Max(1000)
        })
    ));
    assert!(matches!(
        C::done(Product::compare_and_set_stock(c, id, 12, -1)).await,
        Err(AtomicError::OutOfRange {
            limit: Limit::Min(0),
            ..
        })
    ));
    assert!(matches!(
        C::done(Product::compare_and_set_stock(c, next_id(), 1, 2)).await,
        Err(AtomicError::NotFound)
    ));
    assert_eq!(db.product(id), (12, 0));
}

/// `KEYED_THREADS` workers each add 1 to one row `CALLS` times the optimistic way: read,
/// compare-and-set to the value plus one, and on `Mismatch` start again from the value it
/// reports. No update is lost: the row gains exactly one per worker and call, and each value
/// from `start + 1` on was written by exactly one successful swap.
pub async fn compare_and_set_loops_lose_no_update<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    const CALLS: usize = 15;
    let db = client.db();
    let start = 100_i64;
    let id = db.new_product(0, start);
    let logs: Vec<(Vec<i64>, Vec<AtomicError>, usize)> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, KEYED_THREADS, async |_, conn| {
            let (mut written, mut errors, mut mismatches) = (Vec::new(), Vec::new(), 0);
            for _ in 0..CALLS {
                let mut seen = match C::done(Product::current_sold(conn, id)).await {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                loop {
                    match C::done(Product::compare_and_set_sold(conn, id, seen, seen + 1)).await {
                        Ok(v) => {
                            written.push(v);
                            break;
                        }
                        Err(AtomicError::Mismatch { expected, current }) => {
                            assert_eq!(expected, i128::from(seen));
                            assert_ne!(current, expected);
                            mismatches += 1;
                            seen = i64::try_from(current).unwrap();
                        }
                        Err(e) => {
                            errors.push(e);
                            break;
                        }
                    }
                }
            }
            (written, errors, mismatches)
        })
    });
    let mut all = Vec::new();
    let mut errors = Vec::new();
    let mut mismatches = 0;
    for (written, errs, m) in logs {
        assert!(written.windows(2).all(|w| w[0] < w[1]), "{written:?}");
        all.extend(written);
        errors.extend(errs);
        mismatches += m;
    }
    assert_no_errors(client, "compare-and-set loops", &errors);
    let total = (KEYED_THREADS * CALLS) as i64;
    all.sort_unstable();
    assert_eq!(all, ((start + 1)..=(start + total)).collect::<Vec<_>>());
    assert_eq!(db.product(id), (0, start + total));
    // Sixteen workers on one row: some swap must have lost a race, or the test raced nothing.
    assert!(mismatches > 0, "no swap ever met another worker's write");
}
