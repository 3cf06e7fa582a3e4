//! `counter_core::transaction`: several operations, all or nothing, re-run on conflicts.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use counter_core::{transaction, AtomicError, AtomicFieldOn, RetryPolicy};
use diesel::connection::TransactionManager;
use diesel::Connection;

use super::{assert_no_errors, errors_of, on_threads, THREADS};
use crate::assert_err;
use crate::db::{DbOf, TestDb};
use crate::models::Product;
use crate::schema::ct_products;

/// A committed transaction applies every change; an error or a panic in the middle undoes the
/// changes before it and leaves the connection outside any transaction.
pub fn transaction_is_all_or_nothing<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>> + AtomicFieldOn<ct_products::sold, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(10, 0);
    let mut conn = db.conn();
    let sale = transaction(&mut conn, RetryPolicy::DEFAULT, |c| {
        let left = Product::decrement_stock_if_at_least(c, id, 4)?;
        let sold = Product::increment_sold(c, id, 4)?;
        Ok((left, sold))
    });
    assert_eq!(sale.unwrap(), (6, 4));
    assert_eq!(db.product(id), (6, 4));

    let refused = transaction(&mut conn, RetryPolicy::DEFAULT, |c| {
        Product::increment_sold(c, id, 7)?;
        Product::decrement_stock_if_at_least(c, id, 7)
    });
    assert_err!(
        refused,
        AtomicError::Insufficient {
            available: 6,
            requested: 7
        }
    );
    assert_eq!(db.product(id), (6, 4));

    let panicked = catch_unwind(AssertUnwindSafe(|| {
        transaction(&mut conn, RetryPolicy::DEFAULT, |c| -> Result<(), _> {
            Product::increment_sold(c, id, 1)?;
            panic!("the caller's closure panicked")
        })
    }));
    assert!(panicked.is_err());
    let depth =
        <B::Conn as Connection>::TransactionManager::transaction_manager_status_mut(&mut *conn)
            .transaction_depth();
    assert!(
        matches!(depth, Ok(None)),
        "left in a transaction: {depth:?}"
    );
    assert_eq!(db.product(id), (6, 4));
    // The same connection still commits.
    assert_eq!(Product::increment_sold(&mut conn, id, 1).unwrap(), 5);
    assert_eq!(db.product(id), (6, 5));
}

/// 8 threads each run sales of one unit as `transaction { take 1 from stock; sold += 1 }`,
/// more than the stock holds: every sale that returned `Ok` moved exactly one unit, the rest
/// were `Insufficient`, and `stock + sold` never changed. Conflicts (SERIALIZABLE, deadlocks,
/// busy SQLite) re-run the closure: counted, not asserted.
pub fn concurrent_transactions_move_stock_exactly<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>> + AtomicFieldOn<ct_products::sold, DbOf<B>>,
{
    let db = B::open();
    let initial = 150;
    let id = db.new_product(initial, 0);
    let per_thread = 200 / THREADS;
    let runs = AtomicUsize::new(0);
    let results = on_threads(&db, |_, conn| {
        (0..per_thread)
            .map(|_| {
                transaction(conn, RetryPolicy::DEFAULT, |c| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    Product::decrement_stock_if_at_least(c, id, 1)?;
                    Product::increment_sold(c, id, 1)
                })
            })
            .collect::<Vec<_>>()
    });
    let (sales, errors) = errors_of(results.into_iter().flatten().collect());
    let (insufficient, other): (Vec<_>, Vec<_>) = errors
        .into_iter()
        .partition(|e| matches!(e, AtomicError::Insufficient { available: 0, .. }));
    assert_no_errors::<B>("transactions, besides Insufficient", &other);
    assert_eq!(
        (sales.len(), insufficient.len()),
        (initial as usize, THREADS * per_thread - initial as usize)
    );
    let mut sold: Vec<i64> = sales;
    sold.sort_unstable();
    assert_eq!(sold, (1..=i64::from(initial)).collect::<Vec<_>>());
    assert_eq!(db.product(id), (0, i64::from(initial)));
    eprintln!(
        "{}: {} transactions ran their closure {} times",
        B::NAME,
        THREADS * per_thread,
        runs.load(Ordering::Relaxed)
    );
}
