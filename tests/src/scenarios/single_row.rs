//! One guarded `UPDATE` on one row: `increment_*`, `decrement_*`, `decrement_*_if_at_least`
//! and `take_*_up_to` return the new value, and refuse what would cross a declared bound.

use counter_core::{AtomicFieldOn, Limit};

use super::assert::{insufficient, out_of_range};
use crate::client::Client;
use crate::db::{DbOf, TestDb};
use crate::models::{Account, Edge, Product};
use crate::schema::{ct_accounts, ct_edges, ct_products};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! single_row_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            increment_and_decrement_return_the_new_value,
            increment_past_max_is_out_of_range,
            decrement_past_min_is_out_of_range,
            decrement_if_at_least_sells_exactly,
            decrement_if_at_least_insufficient,
            decrement_if_at_least_respects_declared_min,
            take_up_to_takes_what_is_left,
            take_up_to_stops_at_the_declared_floor,
        );
    };
}

/// `increment_*`/`decrement_*` return the new value; raw and pooled connections both work.
pub async fn increment_and_decrement_return_the_new_value<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Product::increment_stock(&mut conn, id, 5))
            .await
            .unwrap(),
        15
    );
    assert_eq!(
        C::done(Product::decrement_stock(&mut conn, id, 3))
            .await
            .unwrap(),
        12
    );
    // The raw connection underneath the pooled one.
    assert_eq!(
        C::done(Product::increment_stock(&mut *conn, id, 1))
            .await
            .unwrap(),
        13
    );
    assert_eq!(
        C::done(Product::increment_sold(&mut conn, id, 7))
            .await
            .unwrap(),
        7
    );
    assert_eq!(
        C::done(Product::increment_sold(&mut *conn, id, 1))
            .await
            .unwrap(),
        8
    );
    assert_eq!(
        C::done(Product::decrement_stock(&mut conn, id, 13))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Product::increment_stock(&mut conn, id, 1000))
            .await
            .unwrap(),
        1000
    );
    assert_eq!(db.product(id), (1000, 8));
    assert_eq!(
        C::done(Product::current_stock(&mut conn, id))
            .await
            .unwrap(),
        1000
    );
    assert_eq!(
        C::done(Product::current_sold(&mut conn, id)).await.unwrap(),
        8
    );
}

/// Incrementing past the declared `max` is `OutOfRange { Max(1000) }`; reaching it is fine.
pub async fn increment_past_max_is_out_of_range<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(998, 4);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Product::increment_stock(&mut conn, id, 3)).await),
        (998, 1001, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (998, 4));
    assert_eq!(
        out_of_range(C::done(Product::increment_stock(&mut conn, id, i32::MAX)).await),
        (998, 998 + i32::MAX as i128, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (998, 4));
    assert_eq!(
        C::done(Product::increment_stock(&mut conn, id, 2))
            .await
            .unwrap(),
        1000
    );
    assert_eq!(
        out_of_range(C::done(Product::increment_stock(&mut conn, id, 1)).await),
        (1000, 1001, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (1000, 4));
}

/// Decrementing below the declared `min` is `OutOfRange { Min(0) }`; reaching it is fine.
pub async fn decrement_past_min_is_out_of_range<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(3, 0);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Product::decrement_stock(&mut conn, id, 4)).await),
        (3, -1, Limit::Min(0))
    );
    assert_eq!(db.product(id), (3, 0));
    assert_eq!(
        out_of_range(C::done(Product::decrement_stock(&mut conn, id, i32::MAX)).await),
        (3, 3 - i32::MAX as i128, Limit::Min(0))
    );
    assert_eq!(db.product(id), (3, 0));
    assert_eq!(
        C::done(Product::decrement_stock(&mut conn, id, 3))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        out_of_range(C::done(Product::decrement_stock(&mut conn, id, 1)).await),
        (0, -1, Limit::Min(0))
    );
    assert_eq!(db.product(id), (0, 0));
}

/// `decrement_*_if_at_least` sells while enough is left, down to exactly zero.
pub async fn decrement_if_at_least_sells_exactly<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Product::decrement_stock_if_at_least(&mut conn, id, 4))
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        C::done(Product::decrement_stock_if_at_least(&mut conn, id, 6))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.product(id), (0, 0));
}

/// Asking for more than is left is `Insufficient { available, requested }`; nothing changes.
pub async fn decrement_if_at_least_insufficient<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(3, 9);
    let mut conn = client.conn().await;
    assert_eq!(
        insufficient(C::done(Product::decrement_stock_if_at_least(&mut conn, id, 5)).await),
        (3, 5)
    );
    assert_eq!(db.product(id), (3, 9));
    assert_eq!(
        insufficient(
            C::done(Product::decrement_stock_if_at_least(
                &mut conn,
                id,
                i32::MAX
            ))
            .await
        ),
        (3, i32::MAX as i128)
    );
    assert_eq!(db.product(id), (3, 9));
    assert_eq!(
        C::done(Product::decrement_stock_if_at_least(&mut conn, id, 3))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        insufficient(C::done(Product::decrement_stock_if_at_least(&mut conn, id, 1)).await),
        (0, 1)
    );
    assert_eq!(db.product(id), (0, 9));
}

/// With a declared minimum above zero (5): enough units but crossing the minimum is
/// `OutOfRange { Min(5) }`, too few units is `Insufficient`.
pub async fn decrement_if_at_least_respects_declared_min<C: Client>(client: &C)
where
    Edge: AtomicFieldOn<ct_edges::floored, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_edge(0, 0, 0, 8);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Edge::decrement_floored_if_at_least(&mut conn, id, 4)).await),
        (8, 4, Limit::Min(5))
    );
    assert_eq!(db.edge(id), (0, 0, 0, 8));
    assert_eq!(
        insufficient(C::done(Edge::decrement_floored_if_at_least(&mut conn, id, 9)).await),
        (8, 9)
    );
    assert_eq!(db.edge(id), (0, 0, 0, 8));
    assert_eq!(
        C::done(Edge::decrement_floored_if_at_least(&mut conn, id, 3))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_floored(&mut conn, id, 1)).await),
        (5, 4, Limit::Min(5))
    );
    assert_eq!(
        out_of_range(C::done(Edge::increment_floored(&mut conn, id, 46)).await),
        (5, 51, Limit::Max(50))
    );
    assert_eq!(
        C::done(Edge::increment_floored(&mut conn, id, 45))
            .await
            .unwrap(),
        50
    );
    assert_eq!(db.edge(id), (0, 0, 0, 50));
}

/// `take_*_up_to` takes `min(n, stock)`, then 0 from an empty row, which stays at 0.
pub async fn take_up_to_takes_what_is_left<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 2);
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Product::take_stock_up_to(&mut conn, id, 3))
            .await
            .unwrap(),
        3
    );
    assert_eq!(db.product(id), (7, 2));
    assert_eq!(
        C::done(Product::take_stock_up_to(&mut conn, id, 7))
            .await
            .unwrap(),
        7
    );
    assert_eq!(db.product(id), (0, 2));
    assert_eq!(
        C::done(Product::take_stock_up_to(&mut conn, id, 5))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.product(id), (0, 2));

    let id = db.new_product(10, 0);
    assert_eq!(
        C::done(Product::take_stock_up_to(&mut conn, id, 100))
            .await
            .unwrap(),
        10
    );
    assert_eq!(db.product(id), (0, 0));
    let id = db.new_product(1000, 0);
    assert_eq!(
        C::done(Product::take_stock_up_to(&mut conn, id, i32::MAX))
            .await
            .unwrap(),
        1000
    );
    assert_eq!(db.product(id), (0, 0));
}

/// The floor of `take_*_up_to` is the declared minimum: negative (-500) or positive (5). A row
/// already below its floor (written by someone else) gives 0 and is left alone.
pub async fn take_up_to_stops_at_the_declared_floor<C: Client>(client: &C)
where
    Account: AtomicFieldOn<ct_accounts::balance_cents, DbOf<C::Db>>,
    Edge: AtomicFieldOn<ct_edges::floored, DbOf<C::Db>>,
{
    let db = client.db();
    let mut conn = client.conn().await;
    let id = db.new_account(100);
    assert_eq!(
        C::done(Account::take_balance_up_to(&mut conn, id, 1000))
            .await
            .unwrap(),
        600
    );
    assert_eq!(db.account(id), -500);
    assert_eq!(
        C::done(Account::take_balance_up_to(&mut conn, id, 1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.account(id), -500);
    let below = db.new_account(-600);
    assert_eq!(
        C::done(Account::take_balance_up_to(&mut conn, below, 5))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.account(below), -600);

    let id = db.new_edge(0, 0, 0, 8);
    assert_eq!(
        C::done(Edge::take_floored_up_to(&mut conn, id, 10))
            .await
            .unwrap(),
        3
    );
    assert_eq!(db.edge(id), (0, 0, 0, 5));
    assert_eq!(
        C::done(Edge::take_floored_up_to(&mut conn, id, 10))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.edge(id), (0, 0, 0, 5));
}
