//! `counter_core::transaction` (`transaction_async_local` on an async connection): several
//! operations, all or nothing, re-run on conflicts.

use std::sync::atomic::{AtomicUsize, Ordering};

use counter_core::{AtomicError, AtomicFieldOn, RawConnection, RetryPolicy};

use super::assert::{assert_no_errors, errors_of};
use super::harness::catch_panic;
use crate::assert_err;
use crate::client::{on_workers, Client};
use crate::db::{DbOf, TestDb};
use crate::models::Product;
use crate::schema::ct_products;

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! transaction_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            transaction_is_all_or_nothing,
            concurrent_transactions_move_stock_exactly,
        );
    };
}

/// A committed transaction applies every change; an error or a panic in the middle undoes the
/// changes before it and leaves the connection outside any transaction.
pub async fn transaction_is_all_or_nothing<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let mut conn = client.conn().await;
    let sale = C::transaction(&mut conn, RetryPolicy::DEFAULT, async |c| {
        let left = C::done(Product::decrement_stock_if_at_least(c, id, 4)).await?;
        let sold = C::done(Product::increment_sold(c, id, 4)).await?;
        Ok((left, sold))
    })
    .await;
    assert_eq!(sale.unwrap(), (6, 4));
    assert_eq!(db.product(id), (6, 4));

    let refused = C::transaction(&mut conn, RetryPolicy::DEFAULT, async |c| {
        C::done(Product::increment_sold(c, id, 7)).await?;
        C::done(Product::decrement_stock_if_at_least(c, id, 7)).await
    })
    .await;
    assert_err!(
        refused,
        AtomicError::Insufficient {
            available: 6,
            requested: 7
        }
    );
    assert_eq!(db.product(id), (6, 4));

    let panicked = catch_panic(C::transaction(
        &mut conn,
        RetryPolicy::DEFAULT,
        async |c| -> Result<(), _> {
            C::done(Product::increment_sold(c, id, 1)).await?;
            panic!("the caller's closure panicked")
        },
    ))
    .await;
    assert!(panicked.is_err());
    let depth = RawConnection::transaction_status(&mut *conn).transaction_depth();
    assert!(
        matches!(depth, Ok(None)),
        "left in a transaction: {depth:?}"
    );
    assert_eq!(db.product(id), (6, 4));
    // The same connection still commits.
    assert_eq!(
        C::done(Product::increment_sold(&mut conn, id, 1))
            .await
            .unwrap(),
        5
    );
    assert_eq!(db.product(id), (6, 5));
}

/// Every worker runs sales of one unit as `transaction { take 1 from stock; sold += 1 }`, 200
/// in all, more than the stock holds: every sale that returned `Ok` moved exactly one unit,
/// the rest were `Insufficient`, and `stock + sold` never changed. Conflicts (SERIALIZABLE,
/// deadlocks, busy SQLite) re-run the body: counted, not asserted.
pub async fn concurrent_transactions_move_stock_exactly<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let initial = 150;
    let id = db.new_product(initial, 0);
    let per_worker = 200 / C::WORKERS;
    let runs = AtomicUsize::new(0);
    let results = on_workers(client, async |_, conn| {
        let mut results = Vec::new();
        for _ in 0..per_worker {
            let sale = C::transaction(conn, RetryPolicy::DEFAULT, async |c| {
                runs.fetch_add(1, Ordering::Relaxed);
                C::done(Product::decrement_stock_if_at_least(c, id, 1)).await?;
                C::done(Product::increment_sold(c, id, 1)).await
            });
            results.push(sale.await);
        }
        results
    });
    let (sales, errors) = errors_of(results.into_iter().flatten().collect());
    let (insufficient, other): (Vec<_>, Vec<_>) = errors
        .into_iter()
        .partition(|e| matches!(e, AtomicError::Insufficient { available: 0, .. }));
    assert_no_errors(client, "transactions, besides Insufficient", &other);
    assert_eq!(
        (sales.len(), insufficient.len()),
        (initial as usize, C::WORKERS * per_worker - initial as usize)
    );
    let mut sold: Vec<i64> = sales;
    sold.sort_unstable();
    assert_eq!(sold, (1..=i64::from(initial)).collect::<Vec<_>>());
    assert_eq!(db.product(id), (0, i64::from(initial)));
    eprintln!(
        "{}: {} transactions ran their body {} times",
        client.name(),
        C::WORKERS * per_worker,
        runs.load(Ordering::Relaxed)
    );
}
