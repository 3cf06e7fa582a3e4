//! Operations inside a transaction the caller opened: its rollback discards them, its commit
//! applies them, an operation's error leaves it usable, and a deadlock there is the caller's
//! `Conflict`.

use std::sync::Barrier;

use counter_core::{AtomicError, AtomicFieldOn, Limit};

use super::assert::{errors_of, insufficient, out_of_range};
use crate::assert_err;
use crate::client::{on_n_workers, Client};
use crate::db::{DbOf, TestDb};
use crate::models::Product;
use crate::schema::ct_products;

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! callers_transaction_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            caller_transaction_single_statement_ops,
            caller_transaction_row_locking_ops,
            a_deadlock_inside_the_callers_transaction_is_a_conflict,
        );
    };
}

/// Single-statement operations inside the caller's transaction: a rollback discards them, a
/// commit applies them.
pub async fn caller_transaction_single_statement_ops<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let mut conn = client.conn().await;
    let result: Result<(), _> = C::own_transaction(&mut conn, async |c| {
        assert_eq!(C::done(Product::increment_stock(c, id, 1)).await?, 11);
        assert_eq!(
            C::done(Product::decrement_stock_if_at_least(c, id, 5)).await?,
            6
        );
        assert_eq!(C::done(Product::decrement_stock(c, id, 6)).await?, 0);
        assert_eq!(C::done(Product::increment_sold(c, id, 10)).await?, 10);
        assert_eq!(
            insufficient(C::done(Product::decrement_stock_if_at_least(c, id, 1)).await),
            (0, 1)
        );
        Err(AtomicError::custom("roll back"))
    })
    .await;
    assert_err!(result, AtomicError::Custom(_));
    assert_eq!(db.product(id), (10, 0), "rolled back");

    C::own_transaction(&mut conn, async |c| {
        assert_eq!(C::done(Product::increment_stock(c, id, 1)).await?, 11);
        assert_eq!(
            C::done(Product::decrement_stock_if_at_least(c, id, 5)).await?,
            6
        );
        assert_eq!(C::done(Product::increment_sold(c, id, 10)).await?, 10);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(db.product(id), (6, 10), "committed");
}

/// Row-locking operations (`update_*_locked`, `transfer_*`, `take_*_up_to`) inside the caller's
/// transaction: a rollback discards them, a commit applies them, and an error of one of them
/// leaves the caller's transaction usable.
pub async fn caller_transaction_row_locking_ops<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(10, 0);
    let b = db.new_product(20, 0);
    let mut conn = client.conn().await;
    let result: Result<(), _> = C::own_transaction(&mut conn, async |c| {
        assert_eq!(
            C::done(Product::update_stock_locked(c, a, |v| Ok(v + 5))).await?,
            15
        );
        assert_eq!(
            C::done(Product::transfer_stock(c, a, b, 3)).await?,
            (12, 23)
        );
        assert_eq!(C::done(Product::take_stock_up_to(c, b, 4)).await?, 4);
        Err(AtomicError::custom("roll back"))
    })
    .await;
    assert_err!(result, AtomicError::Custom(_));
    assert_eq!((db.product(a).0, db.product(b).0), (10, 20), "rolled back");

    C::own_transaction(&mut conn, async |c| {
        assert_eq!(
            C::done(Product::update_stock_locked(c, a, |v| Ok(v + 5))).await?,
            15
        );
        // Errors inside: nothing of theirs is written, the transaction goes on.
        assert_err!(
            C::done(Product::update_stock_locked(c, a, |_| Err(
                AtomicError::custom("no")
            )))
            .await,
            AtomicError::Custom(_)
        );
        assert_eq!(
            out_of_range(C::done(Product::update_stock_locked(c, a, |_| Ok(1001))).await),
            (15, 1001, Limit::Max(1000))
        );
        assert_eq!(
            insufficient(C::done(Product::transfer_stock(c, a, b, 16)).await),
            (15, 16)
        );
        assert_eq!(
            C::done(Product::transfer_stock(c, a, b, 3)).await?,
            (12, 23)
        );
        assert_eq!(C::done(Product::take_stock_up_to(c, b, 4)).await?, 4);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!((db.product(a).0, db.product(b).0), (12, 19), "committed");
}

/// Two callers' transactions lock two rows in opposite orders with `update_*_locked` (each a
/// savepoint inside the caller's transaction): one of them is the deadlock's victim, and gets
/// `Conflict` (to roll back and re-run its transaction), whatever the server rolled back
/// (MySQL rolls back the victim's whole transaction, its savepoint with it). The other
/// commits both its changes (or, under SERIALIZABLE, may get a `Conflict` too); the rows hold
/// exactly what committed. SQLite, which locks the whole file, has no such deadlock.
pub async fn a_deadlock_inside_the_callers_transaction_is_a_conflict<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    if <C::Db as TestDb>::NAME == "SQLite" {
        return;
    }
    let db = client.db();
    let rows = [db.new_product(0, 10), db.new_product(0, 10)];
    let both_hold_one = Barrier::new(2);
    let results = on_n_workers(client, 2, async |worker, conn| {
        let (first, second) = (rows[worker], rows[1 - worker]);
        C::own_transaction(conn, async |c| {
            let held = C::done(Product::update_sold_locked(c, first, |v| Ok(v + 1))).await;
            both_hold_one.wait();
            held?;
            C::done(Product::update_sold_locked(c, second, |v| Ok(v + 1))).await
        })
        .await
    });
    let (done, errors) = errors_of(results);
    // Under SERIALIZABLE the other may fail too (PostgreSQL's read/write dependencies between
    // the two): then it is a `Conflict` as well.
    assert!(
        !errors.is_empty()
            && errors
                .iter()
                .all(|e| matches!(e, AtomicError::Conflict { attempts: 1, .. })),
        "{}: the victim got {errors:?}",
        client.name()
    );
    let committed = done.len() as i64;
    assert_eq!(committed + errors.len() as i64, 2);
    assert_eq!(
        (db.product(rows[0]).1, db.product(rows[1]).1),
        (10 + committed, 10 + committed)
    );
}
