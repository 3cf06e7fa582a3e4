//! Each integer column type (`i16`, `i32`, `i64`) at its extremes: the type's range is the
//! bound when none is declared, and a signed column without `min` goes below zero.

use counter_core::{AtomicFieldOn, Limit};

use super::assert::{insufficient, out_of_range};
use crate::client::Client;
use crate::db::{DbOf, TestDb};
use crate::models::{Edge, Product};
use crate::schema::{ct_edges, ct_products};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! integer_type_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            type_overflow_i16,
            type_overflow_i32,
            type_overflow_i64,
            negative_values_without_min,
        );
    };
}

/// `i16` at its extremes: the type's range is the bound when none is declared.
pub async fn type_overflow_i16<C: Client>(client: &C)
where
    Edge: AtomicFieldOn<ct_edges::small, DbOf<C::Db>>,
{
    let db = client.db();
    let (max, min) = (i16::MAX, i16::MIN);
    let (max_w, min_w) = (i128::from(max), i128::from(min));
    let id = db.new_edge(max - 1, 0, 0, 5);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Edge::increment_small(&mut conn, id, 2)).await),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).0, max - 1);
    assert_eq!(
        C::done(Edge::increment_small(&mut conn, id, 1))
            .await
            .unwrap(),
        max
    );
    assert_eq!(
        out_of_range(C::done(Edge::increment_small(&mut conn, id, max)).await),
        (max_w, 2 * max_w, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).0, max);
    // The whole range in one step, down and up.
    assert_eq!(
        C::done(Edge::decrement_small(&mut conn, id, max))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Edge::decrement_small(&mut conn, id, max))
            .await
            .unwrap(),
        -max
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_small(&mut conn, id, 2)).await),
        (-max_w, -max_w - 2, Limit::Min(min_w))
    );
    assert_eq!(
        C::done(Edge::decrement_small(&mut conn, id, 1))
            .await
            .unwrap(),
        min
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_small(&mut conn, id, 1)).await),
        (min_w, min_w - 1, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id).0, min);
    assert_eq!(
        C::done(Edge::take_small_up_to(&mut conn, id, max))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Edge::increment_small(&mut conn, id, max))
            .await
            .unwrap(),
        -1
    );
    assert_eq!(db.edge(id), (-1, 0, 0, 5));
}

/// `i32` at its extremes.
pub async fn type_overflow_i32<C: Client>(client: &C)
where
    Edge: AtomicFieldOn<ct_edges::medium, DbOf<C::Db>>,
{
    let db = client.db();
    let (max, min) = (i32::MAX, i32::MIN);
    let (max_w, min_w) = (i128::from(max), i128::from(min));
    let id = db.new_edge(0, max - 1, 0, 5);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Edge::increment_medium(&mut conn, id, 2)).await),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).1, max - 1);
    assert_eq!(
        C::done(Edge::increment_medium(&mut conn, id, 1))
            .await
            .unwrap(),
        max
    );
    assert_eq!(
        out_of_range(C::done(Edge::increment_medium(&mut conn, id, 1)).await),
        (max_w, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(
        C::done(Edge::decrement_medium_if_at_least(&mut conn, id, max))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Edge::update_medium_locked(&mut conn, id, |_| Ok(min + 1)))
            .await
            .unwrap(),
        min + 1
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_medium(&mut conn, id, 2)).await),
        (min_w + 1, min_w - 1, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id).1, min + 1);
    assert_eq!(
        C::done(Edge::decrement_medium(&mut conn, id, 1))
            .await
            .unwrap(),
        min
    );
    assert_eq!(db.edge(id), (0, min, 0, 5));
}

/// `i64` at its extremes: `i64::MAX - 1` plus 2 is `OutOfRange`, and the stored value stays an
/// exact integer (SQLite would silently turn an overflowing sum into a REAL).
pub async fn type_overflow_i64<C: Client>(client: &C)
where
    Edge: AtomicFieldOn<ct_edges::big, DbOf<C::Db>>,
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let (max, min) = (i64::MAX, i64::MIN);
    let (max_w, min_w) = (i128::from(max), i128::from(min));
    let id = db.new_edge(0, 0, max - 1, 5);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Edge::increment_big(&mut conn, id, 2)).await),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).2, max - 1);
    assert_eq!(
        out_of_range(C::done(Edge::increment_big(&mut conn, id, max)).await),
        (max_w - 1, 2 * max_w - 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).2, max - 1);
    assert_eq!(
        C::done(Edge::increment_big(&mut conn, id, 1))
            .await
            .unwrap(),
        max
    );
    assert_eq!(
        out_of_range(C::done(Edge::increment_big(&mut conn, id, 1)).await),
        (max_w, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).2, max);
    assert_eq!(
        C::done(Edge::take_big_up_to(&mut conn, id, max))
            .await
            .unwrap(),
        max
    );
    assert_eq!(db.edge(id).2, 0);
    assert_eq!(
        C::done(Edge::decrement_big(&mut conn, id, max))
            .await
            .unwrap(),
        -max
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_big(&mut conn, id, 2)).await),
        (-max_w, -max_w - 2, Limit::Min(min_w))
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_big(&mut conn, id, max)).await),
        (-max_w, -2 * max_w, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id).2, -max);
    assert_eq!(
        C::done(Edge::decrement_big(&mut conn, id, 1))
            .await
            .unwrap(),
        min
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_big(&mut conn, id, 1)).await),
        (min_w, min_w - 1, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id), (0, 0, min, 5));

    // The unbounded i64 of the README model, too.
    let p = db.new_product(0, max - 1);
    assert_eq!(
        out_of_range(C::done(Product::increment_sold(&mut conn, p, 2)).await),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.product(p), (0, max - 1));
    assert_eq!(
        C::done(Product::increment_sold(&mut conn, p, 1))
            .await
            .unwrap(),
        max
    );
    assert_eq!(db.product(p), (0, max));
}

/// Negative values on signed columns without a declared minimum: plain arithmetic below zero
/// (MySQL's `LAST_INSERT_ID` capture must carry negative results).
pub async fn negative_values_without_min<C: Client>(client: &C)
where
    Edge: AtomicFieldOn<ct_edges::small, DbOf<C::Db>>
        + AtomicFieldOn<ct_edges::medium, DbOf<C::Db>>
        + AtomicFieldOn<ct_edges::big, DbOf<C::Db>>,
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_edge(-5, -5, -5, 5);
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Edge::decrement_small(&mut conn, id, 10))
            .await
            .unwrap(),
        -15
    );
    assert_eq!(
        C::done(Edge::decrement_medium(&mut conn, id, 10))
            .await
            .unwrap(),
        -15
    );
    assert_eq!(
        C::done(Edge::decrement_big(&mut conn, id, 10))
            .await
            .unwrap(),
        -15
    );
    assert_eq!(db.edge(id), (-15, -15, -15, 5));
    assert_eq!(
        C::done(Edge::increment_big(&mut conn, id, 3))
            .await
            .unwrap(),
        -12
    );
    assert_eq!(
        C::done(Edge::increment_big(&mut conn, id, 12))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Edge::decrement_big(&mut conn, id, 1))
            .await
            .unwrap(),
        -1
    );
    // Nothing above the floor (0): nothing taken.
    assert_eq!(
        C::done(Edge::take_medium_up_to(&mut conn, id, 3))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        insufficient(C::done(Edge::decrement_medium_if_at_least(&mut conn, id, 1)).await),
        (-15, 1)
    );
    assert_eq!(
        C::done(Edge::update_medium_locked(&mut conn, id, |v| Ok(v * 3)))
            .await
            .unwrap(),
        -45
    );
    assert_eq!(db.edge(id), (-15, -45, -1, 5));

    let p = db.new_product(0, 0);
    assert_eq!(
        C::done(Product::decrement_sold(&mut conn, p, 7))
            .await
            .unwrap(),
        -7
    );
    assert_eq!(db.product(p), (0, -7));
}
