//! The set operations (`increment_*_many`, `decrement_*_many`, the checkout
//! `decrement_*_if_at_least_many`) on one connection: their exact results, and every row or
//! none: a refusal names the first refusing key in key order and leaves every row as it was.

use counter_core::{AtomicError, AtomicFieldOn, Limit};

use super::assert::in_row;
use crate::client::Client;
use crate::db::{next_id, DbOf, TestDb};
use crate::models::{CartLine, Edge, Named, Product};
use crate::schema::{ct_cart_lines, ct_edges, ct_named, ct_products};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! set_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            set_operations_return_new_values_in_key_order,
            an_empty_set_changes_nothing,
            a_missing_key_refuses_the_whole_set,
            a_refusing_row_refuses_the_whole_set,
            the_first_refusing_key_in_key_order_is_named,
            a_negative_amount_names_its_key,
            set_operations_on_composite_keys,
            two_spellings_of_one_row_in_one_set,
            a_refused_set_leaves_the_callers_transaction_usable,
        );
    };
}

/// `(stock, sold)` of each product, in the order given.
fn products<B: TestDb>(db: &B, ids: &[i64]) -> Vec<(i32, i64)> {
    ids.iter().map(|&id| db.product(id)).collect()
}

/// Each operation returns every key once with its new value, in key order, whatever order
/// the pairs came in; the amounts of a repeated key are summed; a zero amount returns the
/// value; rows outside the set are untouched.
pub async fn set_operations_return_new_values_in_key_order<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    // Ids grow: a < b < c < outside.
    let ids = [
        db.new_product(10, 0),
        db.new_product(20, 0),
        db.new_product(30, 0),
    ];
    let [a, b, c] = ids;
    let outside = db.new_product(40, 0);
    let conn = &mut client.conn().await;

    let up = C::done(Product::increment_stock_many(
        conn,
        [(c, 1), (a, 2), (c, 3)],
    ))
    .await;
    assert_eq!(up.unwrap(), [(a, 12), (c, 34)]);
    assert_eq!(products(db, &ids), [(12, 0), (20, 0), (34, 0)]);

    let down = C::done(Product::decrement_stock_many(
        conn,
        [(b, 5), (a, 2), (b, 1)],
    ))
    .await;
    assert_eq!(down.unwrap(), [(a, 10), (b, 14)]);
    assert_eq!(products(db, &ids), [(10, 0), (14, 0), (34, 0)]);

    let cart = [(c, 34), (a, 1), (b, 4), (a, 1)];
    let taken = C::done(Product::decrement_stock_if_at_least_many(conn, cart)).await;
    assert_eq!(
        taken.unwrap(),
        [(a, 8), (b, 10), (c, 0)],
        "c emptied exactly"
    );
    assert_eq!(products(db, &ids), [(8, 0), (10, 0), (0, 0)]);

    let sold = C::done(Product::increment_sold_many(
        conn,
        [(b, i64::MAX - 1), (a, 7)],
    ))
    .await;
    assert_eq!(sold.unwrap(), [(a, 7), (b, i64::MAX - 1)]);

    // Zero amounts: the values as they are, for each operation.
    let zero = [(b, 0), (a, 0), (c, 0)];
    let expected = [(a, 8), (b, 10), (c, 0)];
    assert_eq!(
        C::done(Product::increment_stock_many(conn, zero))
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        C::done(Product::decrement_stock_many(conn, zero))
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        C::done(Product::decrement_stock_if_at_least_many(conn, zero))
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        products(db, &ids),
        [(8, 7), (10, i64::MAX - 1), (0, 0)],
        "{}",
        client.name()
    );
    assert_eq!(db.product(outside), (40, 0), "a row outside the set");
}

/// An empty set returns an empty list and changes nothing, for each operation.
pub async fn an_empty_set_changes_nothing<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let conn = &mut client.conn().await;
    let none = Vec::<(i64, i32)>::new;
    assert_eq!(
        C::done(Product::increment_stock_many(conn, none()))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        C::done(Product::decrement_stock_many(conn, none()))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        C::done(Product::decrement_stock_if_at_least_many(conn, none()))
            .await
            .unwrap(),
        []
    );
    assert_eq!(db.product(id), (10, 0));
}

/// A key without a row refuses the whole set with `InRow { key, NotFound }` naming it, for
/// each operation and also with amount 0; rows before and after it in key order are
/// unchanged, and no row is created.
pub async fn a_missing_key_refuses_the_whole_set<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(10, 0);
    let missing = next_id();
    let b = db.new_product(10, 0);
    let conn = &mut client.conn().await;
    for by in [0, 1] {
        let set = [(b, 1), (missing, by), (a, 1)];
        for result in [
            C::done(Product::increment_stock_many(conn, set)).await,
            C::done(Product::decrement_stock_many(conn, set)).await,
            C::done(Product::decrement_stock_if_at_least_many(conn, set)).await,
        ] {
            let (key, error) = in_row(result);
            assert_eq!(key, format!("{missing:?}"));
            assert!(matches!(error, AtomicError::NotFound), "{error:?}");
        }
    }
    assert_eq!(
        products(db, &[a, b]),
        [(10, 0), (10, 0)],
        "every row unchanged"
    );
    assert!(!db.product_exists(missing), "no row created");
}

/// A row that refuses refuses the whole set, `InRow` naming it with the refusal a one-row
/// call would give (with the summed amount): `Insufficient` for the checkout, `OutOfRange`
/// past the maximum, past the minimum, past a declared minimum above zero, and for a sum
/// past the column's type. Every row is read back unchanged, also the rows before it in key
/// order (changed first by a row-by-row implementation).
pub async fn a_refusing_row_refuses_the_whole_set<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
    Edge: AtomicFieldOn<ct_edges::floored, DbOf<C::Db>>,
{
    let db = client.db();
    let ids = [
        db.new_product(10, 0),
        db.new_product(3, 0),
        db.new_product(10, 0),
    ];
    let [a, b, c] = ids;
    let conn = &mut client.conn().await;
    let named_b = |result: Result<Vec<(i64, i32)>, AtomicError>| {
        let (key, error) = in_row(result);
        assert_eq!(key, format!("{b:?}"));
        error
    };

    let checkout = [(c, 5), (b, 4), (a, 5)];
    let error = named_b(C::done(Product::decrement_stock_if_at_least_many(conn, checkout)).await);
    assert!(
        matches!(
            error,
            AtomicError::Insufficient {
                available: 3,
                requested: 4
            }
        ),
        "{error:?}"
    );
    // The amounts of b, summed, are what b cannot give.
    let repeated = [(a, 1), (b, 2), (b, 2)];
    let error = named_b(C::done(Product::decrement_stock_if_at_least_many(conn, repeated)).await);
    assert!(
        matches!(
            error,
            AtomicError::Insufficient {
                available: 3,
                requested: 4
            }
        ),
        "{error:?}"
    );
    let error = named_b(C::done(Product::increment_stock_many(conn, [(a, 1), (b, 998)])).await);
    assert!(
        matches!(
            error,
            AtomicError::OutOfRange {
                current: 3,
                attempted: 1001,
                limit: Limit::Max(1000)
            }
        ),
        "{error:?}"
    );
    let error = named_b(C::done(Product::decrement_stock_many(conn, [(a, 1), (b, 4)])).await);
    assert!(
        matches!(
            error,
            AtomicError::OutOfRange {
                current: 3,
                attempted: -1,
                limit: Limit::Min(0)
            }
        ),
        "{error:?}"
    );
    // A sum past i32: refused with the true amounts, never wrapped.
    let past_type = [(b, i32::MAX), (a, 1), (b, 1)];
    let error = named_b(C::done(Product::increment_stock_many(conn, past_type)).await);
    let attempted = 3 + i128::from(i32::MAX) + 1;
    assert!(
        matches!(
            error,
            AtomicError::OutOfRange { current: 3, attempted: at, limit: Limit::Max(1000) }
                if at == attempted
        ),
        "{error:?}"
    );
    assert_eq!(
        products(db, &ids),
        [(10, 0), (3, 0), (10, 0)],
        "{}: every row unchanged",
        client.name()
    );

    // A declared minimum above zero (`floored`: min 5): enough to take, not enough to keep 5.
    let (e1, e2) = (db.new_edge(0, 0, 0, 20), db.new_edge(0, 0, 0, 10));
    let result = C::done(Edge::decrement_floored_if_at_least_many(
        conn,
        [(e2, 7), (e1, 1)],
    ))
    .await;
    let (key, error) = in_row(result);
    assert_eq!(key, format!("{e2:?}"));
    assert!(
        matches!(
            error,
            AtomicError::OutOfRange {
                current: 10,
                attempted: 3,
                limit: Limit::Min(5)
            }
        ),
        "{error:?}"
    );
    assert_eq!((db.edge(e1).3, db.edge(e2).3), (20, 10));
}

/// Several keys refuse: the first of them in key order (not in the order given) is named,
/// a missing key included; nothing changes.
pub async fn the_first_refusing_key_in_key_order_is_named<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    // Ids grow: missing_low < a < b < c < missing_high.
    let missing_low = next_id();
    let ids = [
        db.new_product(10, 0),
        db.new_product(3, 0),
        db.new_product(3, 0),
    ];
    let [a, b, c] = ids;
    let missing_high = next_id();
    let conn = &mut client.conn().await;
    let cases = [
        (vec![(c, 99), (b, 99), (a, 1)], b),
        (vec![(c, 99), (missing_high, 1), (b, 99)], b),
        (vec![(c, 99), (missing_low, 1), (a, 1)], missing_low),
        (vec![(missing_high, 1), (c, 4), (a, 1)], c),
    ];
    for (cart, first) in cases {
        let result = C::done(Product::decrement_stock_if_at_least_many(
            conn,
            cart.clone(),
        ))
        .await;
        let (key, error) = in_row(result);
        assert_eq!(key, format!("{first:?}"), "{}: {cart:?}", client.name());
        let expected = if first == missing_low {
            matches!(error, AtomicError::NotFound)
        } else {
            matches!(error, AtomicError::Insufficient { available: 3, .. })
        };
        assert!(expected, "{cart:?}: {error:?}");
    }
    assert_eq!(products(db, &ids), [(10, 0), (3, 0), (3, 0)]);
}

/// A negative amount is `InRow { key, NegativeAmount }` naming its key, for each operation,
/// before any row is looked at (a missing key in the same set is not what is reported).
pub async fn a_negative_amount_names_its_key<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let (a, b) = (db.new_product(10, 0), db.new_product(10, 0));
    let missing = next_id();
    let conn = &mut client.conn().await;
    let set = [(a, 1), (missing, 1), (b, -3)];
    for result in [
        C::done(Product::increment_stock_many(conn, set)).await,
        C::done(Product::decrement_stock_many(conn, set)).await,
        C::done(Product::decrement_stock_if_at_least_many(conn, set)).await,
    ] {
        let (key, error) = in_row(result);
        assert_eq!(key, format!("{b:?}"));
        assert!(
            matches!(error, AtomicError::NegativeAmount { amount: -3 }),
            "{error:?}"
        );
    }
    assert_eq!(products(db, &[a, b]), [(10, 0), (10, 0)]);
}

/// Composite keys `(cart_id, product_id)`: new values in key order, a refusal naming the
/// whole key, a missing pair whose halves each exist alone, and lines outside the set
/// untouched.
pub async fn set_operations_on_composite_keys<C: Client>(client: &C)
where
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
{
    let db = client.db();
    let (cart, other_cart, p1, p2) = (next_id(), next_id(), next_id(), next_id());
    db.new_cart_line(cart, p1, 10);
    db.new_cart_line(cart, p2, 10);
    db.new_cart_line(other_cart, p1, 10);
    let quantities = |db: &C::Db| -> Vec<i32> {
        db.cart_lines(&[cart, other_cart])
            .iter()
            .map(|l| l.quantity)
            .collect()
    };
    let conn = &mut client.conn().await;

    let set = [((cart, p2), 5), ((cart, p1), 1), ((cart, p2), 1)];
    let up = C::done(CartLine::increment_quantity_many(conn, set)).await;
    assert_eq!(up.unwrap(), [((cart, p1), 11), ((cart, p2), 16)]);
    assert_eq!(quantities(db), [11, 16, 10]);

    let cart_lines = [((cart, p2), 17), ((cart, p1), 11)];
    let result = C::done(CartLine::decrement_quantity_if_at_least_many(
        conn, cart_lines,
    ))
    .await;
    let (key, error) = in_row(result);
    assert_eq!(key, format!("{:?}", (cart, p2)));
    assert!(
        matches!(
            error,
            AtomicError::Insufficient {
                available: 16,
                requested: 17
            }
        ),
        "{error:?}"
    );
    let past_max = [((cart, p1), 1), ((cart, p2), 25)];
    let (key, error) = in_row(C::done(CartLine::increment_quantity_many(conn, past_max)).await);
    assert_eq!(key, format!("{:?}", (cart, p2)));
    assert!(
        matches!(
            error,
            AtomicError::OutOfRange {
                current: 16,
                attempted: 41,
                limit: Limit::Max(40)
            }
        ),
        "{error:?}"
    );
    // (other_cart, p2): other_cart has a line, p2 has a line, not together.
    let set = [((cart, p1), 1), ((other_cart, p2), 1)];
    let (key, error) = in_row(C::done(CartLine::decrement_quantity_many(conn, set)).await);
    assert_eq!(key, format!("{:?}", (other_cart, p2)));
    assert!(matches!(error, AtomicError::NotFound), "{error:?}");
    assert_eq!(quantities(db), [11, 16, 10], "every line unchanged");

    let all = [((cart, p2), 16), ((other_cart, p1), 10), ((cart, p1), 11)];
    let taken = C::done(CartLine::decrement_quantity_if_at_least_many(conn, all)).await;
    assert_eq!(
        taken.unwrap(),
        [((cart, p1), 0), ((cart, p2), 0), ((other_cart, p1), 0)]
    );
    assert_eq!(quantities(db), [0, 0, 0]);
}

/// Two spellings of one row under a case-insensitive key are two keys to Rust but one row to
/// the database: both amounts reach the row (none is lost to a join that matches the row
/// once), the checkout checks their sum, and the values come back per key in key order, the
/// last of the row's keys holding the row's new value.
pub async fn two_spellings_of_one_row_in_one_set<C: Client>(client: &C)
where
    Named: AtomicFieldOn<ct_named::balance, DbOf<C::Db>>,
{
    let db = client.db();
    let lower = format!("set-{}", next_id());
    let upper = lower.to_uppercase();
    db.new_named(&lower, 5);
    let conn = &mut client.conn().await;

    let both = [(lower.clone(), 2), (upper.clone(), 3)];
    let values = C::done(Named::increment_balance_many(conn, both))
        .await
        .unwrap();
    let keys: Vec<&String> = values.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [&upper, &lower], "{}: key order", client.name());
    assert_eq!(values[1].1, 10, "{}: {values:?}", client.name());
    assert_eq!(
        db.named(&lower),
        10,
        "{}: both amounts reached the row",
        client.name()
    );

    // 6 + 6 > 10: the row cannot give both, whichever spelling is checked last.
    let both = [(lower.clone(), 6), (upper.clone(), 6)];
    let result = C::done(Named::decrement_balance_if_at_least_many(conn, both)).await;
    let (key, error) = in_row(result);
    assert!(
        key == format!("{lower:?}") || key == format!("{upper:?}"),
        "{key}"
    );
    assert!(
        matches!(error, AtomicError::Insufficient { requested: 6, .. }),
        "{}: {error:?}",
        client.name()
    );
    assert_eq!(db.named(&lower), 10, "{}: nothing taken", client.name());

    // With a key of no row among them, that key is the one named. PostgreSQL 18 returned the
    // row locked for both spellings twice, and the answers, one per key in key order, named
    // a spelling of the existing row `NotFound` (seen by the checker on 18.4).
    // "sa-…" sorts between the two spellings ("SET-…" < "sa-…" < "set-…"), where the
    // duplicated answer shifted the missing key's `NULL` onto the lower-case spelling.
    let missing = format!("sa-{}", next_id());
    let three = [(lower.clone(), 1), (upper.clone(), 1), (missing.clone(), 1)];
    let (key, error) = in_row(C::done(Named::increment_balance_many(conn, three)).await);
    assert_eq!(
        (key, matches!(error, AtomicError::NotFound)),
        (format!("{missing:?}"), true),
        "{}: {error:?}",
        client.name()
    );
    assert_eq!(db.named(&lower), 10, "{}: nothing added", client.name());
}

/// Inside the caller's transaction: a refused set (a row short of stock, a missing key)
/// changes nothing of its own, leaves the caller's earlier writes intact and the transaction
/// usable; the caller's commit applies what it did, its rollback discards a set that
/// succeeded.
pub async fn a_refused_set_leaves_the_callers_transaction_usable<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let (a, b) = (db.new_product(10, 0), db.new_product(3, 0));
    let missing = next_id();
    let mut conn = client.conn().await;

    let committed = C::own_transaction(&mut conn, async |c| {
        assert_eq!(C::done(Product::increment_sold(c, a, 5)).await?, 5);
        let (key, error) = in_row(
            C::done(Product::decrement_stock_if_at_least_many(
                c,
                [(a, 1), (b, 4)],
            ))
            .await,
        );
        assert_eq!(key, format!("{b:?}"));
        assert!(
            matches!(error, AtomicError::Insufficient { .. }),
            "{error:?}"
        );
        let (key, error) =
            in_row(C::done(Product::increment_sold_many(c, [(a, 1), (missing, 1)])).await);
        assert_eq!(key, format!("{missing:?}"));
        assert!(matches!(error, AtomicError::NotFound), "{error:?}");
        // The caller's write is there, the refused sets left nothing.
        assert_eq!(C::done(Product::current_sold(c, a)).await?, 5);
        assert_eq!(C::done(Product::current_stock(c, a)).await?, 10);
        let taken = C::done(Product::decrement_stock_if_at_least_many(
            c,
            [(a, 1), (b, 3)],
        ))
        .await?;
        assert_eq!(taken, [(a, 9), (b, 0)]);
        C::done(Product::increment_sold_many(c, [(a, 1), (b, 3)])).await
    })
    .await;
    assert_eq!(committed.unwrap(), [(a, 6), (b, 3)]);
    assert_eq!(products(db, &[a, b]), [(9, 6), (0, 3)], "committed");

    let rolled_back: Result<(), _> = C::own_transaction(&mut conn, async |c| {
        let taken = C::done(Product::increment_stock_many(c, [(a, 1), (b, 1)])).await?;
        assert_eq!(taken, [(a, 10), (b, 1)]);
        Err(AtomicError::custom("roll back"))
    })
    .await;
    assert!(matches!(rolled_back, Err(AtomicError::Custom(_))));
    assert_eq!(products(db, &[a, b]), [(9, 6), (0, 3)], "rolled back");
}
