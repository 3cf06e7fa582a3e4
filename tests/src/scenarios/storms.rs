//! Concurrency storms: `C::WORKERS` workers (8 blocking threads, 16 async), each with its own
//! pooled connection, hit the same rows; outcomes are counted exactly, nothing is timed.

use counter_core::{AtomicError, AtomicFieldOn, ChangeColumn, Changes};

use super::assert::{assert_no_errors, errors_of};
use super::harness::{serializable_postgres, Sale};
use crate::client::{on_workers, Client};
use crate::db::{DbOf, TestDb};
use crate::models::{Account, Product};
use crate::schema::{ct_accounts, ct_products};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! storm_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            concurrent_increments_lose_nothing,
            oversell_storm,
            concurrent_take_up_to_takes_exactly_the_stock,
            concurrent_update_locked_loses_nothing,
            opposite_transfers_keep_the_sum,
            every_single_row_operation_adds_up,
            transfers_among_four_keep_the_total,
        );
    };
}

/// (a) Concurrent increments lose nothing: every new value from `initial + 1` to
/// `initial + total` is returned exactly once, and each worker sees its values strictly grow.
pub async fn concurrent_increments_lose_nothing<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let initial = 1_000_i64;
    let id = db.new_product(0, initial);
    let per_worker = C::ITERATIONS;
    let results = on_workers(client, async |_, conn| {
        let mut results = Vec::new();
        for _ in 0..per_worker {
            results.push(C::done(Product::increment_sold(conn, id, 1)).await);
        }
        results
    });
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for (worker, results) in results.into_iter().enumerate() {
        let (values, errs) = errors_of(results);
        errors.extend(errs);
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "worker {worker} saw its values go back: {values:?}"
        );
        all.extend(values);
    }
    assert_no_errors(client, "concurrent increments", &errors);
    let total = (C::WORKERS * per_worker) as i64;
    all.sort_unstable();
    assert_eq!(all, ((initial + 1)..=(initial + total)).collect::<Vec<_>>());
    assert_eq!(db.product(id), (0, initial + total));
}

/// (b) The oversell storm: stock 100, 160 attempts to sell 1 over the workers: exactly 100
/// sales (returning each stock level from 99 down to 0 once), 60 `Insufficient`, final stock 0.
pub async fn oversell_storm<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(100, 0);
    let attempts_per_worker = 160 / C::WORKERS;
    let results = on_workers(client, async |_, conn| {
        let mut results = Vec::new();
        for _ in 0..attempts_per_worker {
            results.push(C::done(Product::decrement_stock_if_at_least(conn, id, 1)).await);
        }
        results
    });
    let (mut sold, errors) = errors_of(results.into_iter().flatten().collect());
    let (insufficient, other): (Vec<_>, Vec<_>) = errors.into_iter().partition(|e| {
        matches!(
            e,
            AtomicError::Insufficient {
                available: 0,
                requested: 1
            }
        )
    });
    assert_no_errors(client, "oversell storm, besides Insufficient", &other);
    assert_eq!((sold.len(), insufficient.len()), (100, 60));
    sold.sort_unstable();
    assert_eq!(sold, (0..100).collect::<Vec<_>>());
    assert_eq!(db.product(id), (0, 0));
}

/// (c) Concurrent `take_*_up_to` with n from 1 to 7: the amounts taken add up to the initial
/// stock exactly, and the stock ends at 0.
pub async fn concurrent_take_up_to_takes_exactly_the_stock<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let initial = 997;
    let id = db.new_product(initial, 0);
    let results = on_workers(client, async |worker, conn| {
        let mut taken = Vec::new();
        let mut errors = Vec::new();
        for i in 0.. {
            let n = ((worker + i) % 7 + 1) as i32;
            match C::done(Product::take_stock_up_to(conn, id, n)).await {
                Ok(0) => break,
                Ok(t) => {
                    assert!((1..=n).contains(&t), "took {t} when asking for {n}");
                    taken.push(t);
                }
                Err(e) => errors.push(e),
            }
        }
        (taken, errors)
    });
    let mut total = 0;
    let mut errors = Vec::new();
    for (taken, errs) in results {
        total += taken.iter().sum::<i32>();
        errors.extend(errs);
    }
    assert_no_errors(client, "concurrent take_up_to", &errors);
    assert_eq!(total, initial);
    assert_eq!(db.product(id), (0, 0));
}

/// (d) `update_*_locked` with `v + 1` from every worker loses nothing.
pub async fn concurrent_update_locked_loses_nothing<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let initial = 50_i64;
    let id = db.new_product(0, initial);
    let per_worker = C::ITERATIONS / 2;
    let results = on_workers(client, async |_, conn| {
        let mut results = Vec::new();
        for _ in 0..per_worker {
            results.push(C::done(Product::update_sold_locked(conn, id, |v| Ok(v + 1))).await);
        }
        results
    });
    let (mut values, errors) = errors_of(results.into_iter().flatten().collect());
    assert_no_errors(client, "concurrent update_locked", &errors);
    let total = (C::WORKERS * per_worker) as i64;
    values.sort_unstable();
    assert_eq!(
        values,
        ((initial + 1)..=(initial + total)).collect::<Vec<_>>()
    );
    assert_eq!(db.product(id), (0, initial + total));
}

/// (e) Opposite transfers A→B and B→A from every worker: no deadlock or other error surfaces,
/// the sum never changes, neither row leaves its bounds, and both end where they began (each
/// worker moves every amount there and back).
pub async fn opposite_transfers_keep_the_sum<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    // Runs for a few seconds (the duration bounds the loop; nothing about time is asserted).
    const RUN_FOR: std::time::Duration = std::time::Duration::from_secs(3);
    let db = client.db();
    let a = db.new_product(500, 0);
    let b = db.new_product(500, 0);
    let until = std::time::Instant::now() + RUN_FOR;
    let results = on_workers(client, async |worker, conn| {
        let (from, to) = if worker % 2 == 0 { (a, b) } else { (b, a) };
        let mut out = Vec::new();
        let mut i = 0;
        while std::time::Instant::now() < until {
            let amount = i % 5 + 1;
            out.push(C::done(Product::transfer_stock(conn, from, to, amount)).await);
            out.push(C::done(Product::transfer_stock(conn, to, from, amount)).await);
            i += 1;
        }
        out
    });
    let transfers = results.iter().map(Vec::len).sum::<usize>();
    let (pairs, errors) = errors_of(results.into_iter().flatten().collect());
    assert_no_errors(client, "opposite transfers", &errors);
    assert_eq!(pairs.len(), transfers);
    assert!(
        transfers >= C::WORKERS * 2,
        "every worker transferred at least once"
    );
    eprintln!(
        "{}: {transfers} opposite transfers from {} workers, no error",
        client.name(),
        C::WORKERS
    );
    for (from, to) in pairs {
        assert!(
            (0..=1000).contains(&from) && (0..=1000).contains(&to),
            "a transfer returned values out of bounds: ({from}, {to})"
        );
    }
    assert_eq!((db.product(a).0, db.product(b).0), (500, 500));
}

/// (f) Increments, locked read-modify-writes, takes and two-column sales from every worker
/// on one row, 10 rounds each: the exact sum of what each returned.
pub async fn every_single_row_operation_adds_up<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
    Sale: Changes<Product, DbOf<C::Db>, Key = i64, Values = (i32, i64)>,
{
    let db = client.db();
    let id = db.new_product(1000, 0);
    let results = on_workers(client, async |worker, conn| {
        let (mut taken, mut sales) = (0_i64, 0_i64);
        for i in 0..10 {
            C::done(Product::increment_sold(conn, id, 1)).await.unwrap();
            C::done(Product::update_sold_locked(conn, id, |v| Ok(v + 2)))
                .await
                .unwrap();
            taken += i64::from(
                C::done(Product::take_stock_up_to(conn, id, 3))
                    .await
                    .unwrap(),
            );
            if (worker + i) % 2 == 0 {
                let sale = (
                    ct_products::stock.decrement_if_at_least(2),
                    ct_products::sold.increment(5),
                );
                match C::done(Product::update_atomic(conn, id, sale)).await {
                    Ok(_) => sales += 1,
                    Err(other) => panic!("{}: {other:?}", client.name()),
                }
            }
        }
        (taken, sales)
    });
    let (taken, sales) = results
        .into_iter()
        .fold((0, 0), |(t, s), (t1, s1)| (t + t1, s + s1));
    let workers = C::WORKERS as i64;
    // 10 takes of 3 and 5 sales of 2 per worker fit in 1000 (16 workers: 480 + 160): nothing
    // ran short.
    assert_eq!((taken, sales), (workers * 30, workers * 5));
    let sold = workers * 10 * 3 + 5 * sales;
    assert_eq!(db.product(id), ((1000 - taken - 2 * sales) as i32, sold));
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Product::current_sold(&mut conn, id)).await.unwrap(),
        sold
    );
}

/// (g) Transfers among four accounts from every worker, amounts up to 240 against balances
/// of 100 and a floor of -500: the total never changes, every refusal is `Insufficient`, and
/// no balance passes the floor. Under PostgreSQL SERIALIZABLE a transfer may also end in
/// `Conflict` once its retries are spent (16 workers on 4 rows, each reading and writing two:
/// seen in CI), which writes nothing: counted, and the total still exact.
pub async fn transfers_among_four_keep_the_total<C: Client>(client: &C)
where
    Account: AtomicFieldOn<ct_accounts::balance_cents, DbOf<C::Db>>,
{
    let db = client.db();
    let ids: Vec<i64> = (0..4).map(|_| db.new_account(100)).collect();
    let serializable = serializable_postgres(client);
    let results = on_workers(client, async |worker, conn| {
        let (mut moved, mut refused, mut conflicts) = (0, 0, 0);
        for i in 0..15 {
            let from = ids[(worker + i) % 4];
            let to = ids[(worker * 3 + i + 1) % 4];
            if from == to {
                continue;
            }
            let amount = ((worker + i) % 7 * 40) as i64;
            match C::done(Account::transfer_balance(conn, from, to, amount)).await {
                Ok((f, t)) => {
                    assert!(f >= -500 && t >= -500, "({f}, {t})");
                    moved += 1;
                }
                Err(AtomicError::Insufficient { .. }) => refused += 1,
                Err(AtomicError::Conflict { .. }) if serializable => conflicts += 1,
                Err(other) => panic!("{}: {other:?}", client.name()),
            }
        }
        (moved, refused, conflicts)
    });
    let (moved, refused, conflicts) = results
        .into_iter()
        .fold((0, 0, 0), |(m, r, c), (m1, r1, c1)| {
            (m + m1, r + r1, c + c1)
        });
    eprintln!(
        "{}: {moved} transfers, {refused} refused, {conflicts} conflicts",
        client.name()
    );
    assert!(moved > 0);
    let balances: Vec<i64> = ids.iter().map(|&id| db.account(id)).collect();
    assert_eq!(balances.iter().sum::<i64>(), 400, "{balances:?}");
    assert!(balances.iter().all(|&b| b >= -500), "{balances:?}");
}
