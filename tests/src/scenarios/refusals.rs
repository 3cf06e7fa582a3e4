//! What every operation refuses the same way: a missing row (`NotFound`), a negative amount
//! (`NegativeAmount`), and a zero amount that changes nothing.

use counter_core::{AtomicError, AtomicFieldOn, LockMode};

use super::assert::negative;
use crate::assert_err;
use crate::client::Client;
use crate::db::{DbOf, TestDb};
use crate::models::Product;
use crate::schema::ct_products;

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! refusal_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            not_found_for_every_operation,
            negative_amounts_are_refused,
            zero_amounts_change_nothing,
        );
    };
}

/// Every operation on a missing row is `NotFound`, also with amount 0, and creates nothing.
pub async fn not_found_for_every_operation<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let existing = db.new_product(10, 0);
    let missing = crate::db::next_id();
    let mut conn = client.conn().await;
    assert_err!(
        C::done(Product::current_stock(&mut conn, missing)).await,
        AtomicError::NotFound
    );
    for by in [0, 1] {
        assert_err!(
            C::done(Product::increment_stock(&mut conn, missing, by)).await,
            AtomicError::NotFound
        );
        assert_err!(
            C::done(Product::decrement_stock(&mut conn, missing, by)).await,
            AtomicError::NotFound
        );
        assert_err!(
            C::done(Product::decrement_stock_if_at_least(&mut conn, missing, by)).await,
            AtomicError::NotFound
        );
        assert_err!(
            C::done(Product::take_stock_up_to(&mut conn, missing, by)).await,
            AtomicError::NotFound
        );
        assert_err!(
            C::done(Product::transfer_stock(&mut conn, existing, missing, by)).await,
            AtomicError::NotFound
        );
        assert_err!(
            C::done(Product::transfer_stock(&mut conn, missing, existing, by)).await,
            AtomicError::NotFound
        );
    }
    let mut calls = 0;
    assert_err!(
        C::done(Product::update_stock_locked(&mut conn, missing, |v| {
            calls += 1;
            Ok(v + 1)
        }))
        .await,
        AtomicError::NotFound
    );
    assert_eq!(calls, 0, "the closure never runs for a missing row");
    assert_err!(
        C::done(
            Product::atomic_stock()
                .lock(LockMode::NoWait)
                .update_locked(&mut conn, missing, |v| Ok(v + 1))
        )
        .await,
        AtomicError::NotFound
    );
    assert_eq!(db.product(existing), (10, 0));
    assert!(
        !db.product_exists(missing),
        "no operation created the missing row"
    );
}

/// A negative amount is `NegativeAmount` for every operation that takes one; nothing changes.
pub async fn negative_amounts_are_refused<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(10, 10);
    let b = db.new_product(10, 10);
    let mut conn = client.conn().await;
    assert_eq!(
        negative(C::done(Product::increment_stock(&mut conn, a, -1)).await),
        -1
    );
    assert_eq!(
        negative(C::done(Product::decrement_stock(&mut conn, a, -2)).await),
        -2
    );
    assert_eq!(
        negative(C::done(Product::decrement_stock_if_at_least(&mut conn, a, -3)).await),
        -3
    );
    assert_eq!(
        negative(C::done(Product::take_stock_up_to(&mut conn, a, -4)).await),
        -4
    );
    assert_eq!(
        negative(C::done(Product::transfer_stock(&mut conn, a, b, -5)).await),
        -5
    );
    assert_eq!(
        negative(C::done(Product::increment_sold(&mut conn, a, i64::MIN)).await),
        i64::MIN as i128
    );
    assert_eq!(
        negative(C::done(Product::decrement_stock(&mut conn, a, i32::MIN)).await),
        i32::MIN as i128
    );
    assert_eq!((db.product(a), db.product(b)), ((10, 10), (10, 10)));
}

/// Amount 0 returns the current value (0 for `take_*_up_to`) and changes nothing, even at the
/// bounds.
pub async fn zero_amounts_change_nothing<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let mut conn = client.conn().await;
    for stock in [0, 17, 1000] {
        let id = db.new_product(stock, 3);
        let other = db.new_product(500, 0);
        assert_eq!(
            C::done(Product::increment_stock(&mut conn, id, 0))
                .await
                .unwrap(),
            stock
        );
        assert_eq!(
            C::done(Product::decrement_stock(&mut conn, id, 0))
                .await
                .unwrap(),
            stock
        );
        assert_eq!(
            C::done(Product::decrement_stock_if_at_least(&mut conn, id, 0))
                .await
                .unwrap(),
            stock
        );
        assert_eq!(
            C::done(Product::take_stock_up_to(&mut conn, id, 0))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            C::done(Product::transfer_stock(&mut conn, id, other, 0))
                .await
                .unwrap(),
            (stock, 500)
        );
        assert_eq!(
            C::done(Product::transfer_stock(&mut conn, other, id, 0))
                .await
                .unwrap(),
            (500, stock)
        );
        assert_eq!((db.product(id), db.product(other)), ((stock, 3), (500, 0)));
    }
}
