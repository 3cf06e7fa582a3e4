//! Composite keys and several columns in one statement: the add-to-cart's keyed pieces.

use counter_core::{AtomicError, AtomicFieldOn, Change, ChangeColumn, Changes, Limit};
use diesel::connection::TransactionManager;
use rand::{Rng, SeedableRng};

use super::assert::{assert_no_errors, errors_of, insufficient, negative, out_of_range};
use super::harness::{HarnessTransaction, Sale, KEYED_THREADS};
use crate::assert_err;
use crate::client::{on_n_workers, Client};
use crate::db::{next_id, DbOf, TestDb};
use crate::models::{CartLine, Edge, Product};
use crate::schema::{ct_cart_lines, ct_edges, ct_products};

/// The same columns the other way round.
type SaleReversed = (
    Change<ct_products::sold, i64>,
    Change<ct_products::stock, i32>,
);
/// Three columns of one edge row.
type EdgeTriple = (
    Change<ct_edges::floored, i32>,
    Change<ct_edges::small, i16>,
    Change<ct_edges::medium, i32>,
);

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! composite_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            composite_key_every_operation,
            composite_key_first_unlocked,
            several_columns_in_one_statement,
            several_columns_other_directions_on_one_connection,
            concurrent_sales_of_two_columns,
        );
    };
}

/// Every operation on a composite key `(cart_id, product_id)` changes that one line: the same
/// product in another cart and another product in the same cart stay as they were.
pub async fn composite_key_every_operation<C: Client>(client: &C)
where
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
{
    let db = client.db();
    let (cart, other_cart, product, other_product) = (next_id(), next_id(), next_id(), next_id());
    db.new_cart_line(cart, product, 10);
    db.new_cart_line(other_cart, product, 10);
    db.new_cart_line(cart, other_product, 10);
    let line = (cart, product);
    let c = &mut client.conn().await;
    let untouched = |db: &C::Db, expected: i32| {
        let lines = db.cart_lines(&[cart, other_cart]);
        let q = |c, p| {
            lines
                .iter()
                .find(|l| (l.cart_id, l.product_id) == (c, p))
                .unwrap()
                .quantity
        };
        assert_eq!(
            (q(other_cart, product), q(cart, other_product)),
            (10, expected)
        );
    };

    assert_eq!(
        C::done(CartLine::increment_quantity(c, line, 5))
            .await
            .unwrap(),
        15
    );
    assert_eq!(
        C::done(CartLine::decrement_quantity(c, line, 3))
            .await
            .unwrap(),
        12
    );
    assert_eq!(
        C::done(CartLine::decrement_quantity_if_at_least(c, line, 2))
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        insufficient(C::done(CartLine::decrement_quantity_if_at_least(c, line, 11)).await),
        (10, 11)
    );
    assert_eq!(
        out_of_range(C::done(CartLine::increment_quantity(c, line, 31)).await),
        (10, 41, Limit::Max(40))
    );
    assert_eq!(
        C::done(CartLine::take_quantity_up_to(c, line, 4))
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        C::done(CartLine::current_quantity(c, line)).await.unwrap(),
        6
    );
    assert_eq!(
        C::done(CartLine::update_quantity_locked(c, line, |q| Ok(q * 2)))
            .await
            .unwrap(),
        12
    );
    untouched(db, 10);

    assert_eq!(
        C::done(CartLine::transfer_quantity(
            c,
            line,
            (cart, other_product),
            2
        ))
        .await
        .unwrap(),
        (10, 12)
    );
    untouched(db, 12);
    assert_err!(
        C::done(CartLine::transfer_quantity(c, line, line, 1)).await,
        AtomicError::SameRow
    );
    // Same cart id, same product id, but crossed: another row, which does not exist.
    assert_err!(
        C::done(CartLine::transfer_quantity(c, line, (product, cart), 1)).await,
        AtomicError::NotFound
    );
    let missing = (next_id(), product);
    assert_err!(
        C::done(CartLine::increment_quantity(c, missing, 1)).await,
        AtomicError::NotFound
    );
    assert_err!(
        C::done(CartLine::current_quantity(c, missing)).await,
        AtomicError::NotFound
    );
    assert_err!(
        C::done(CartLine::take_quantity_up_to(c, missing, 1)).await,
        AtomicError::NotFound
    );
    assert_eq!(
        C::done(CartLine::current_quantity(c, line)).await.unwrap(),
        10
    );
    untouched(db, 12);
}

/// `update_first_unlocked` takes composite keys: it skips the line another transaction holds
/// (PostgreSQL, MySQL); SQLite, which locks the whole file, says `Unsupported`.
pub async fn composite_key_first_unlocked<C: Client>(client: &C)
where
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
{
    let db = client.db();
    let (cart, a, b) = (next_id(), next_id(), next_id());
    db.new_cart_line(cart, a, 1);
    db.new_cart_line(cart, b, 1);
    let keys = [(cart, a), (cart, b)];
    let mut c = client.conn().await;
    if <C::Db as TestDb>::NAME == "SQLite" {
        assert_err!(
            C::done(CartLine::atomic_quantity().update_first_unlocked(
                &mut c,
                &keys,
                |q| Ok(q + 1)
            ))
            .await,
            AtomicError::Unsupported { .. }
        );
        return;
    }
    // Another program holds line `a` with the library's own locked update, in a transaction
    // of its own kept open: a blocking connection of the harness.
    let mut holder = db.conn();
    HarnessTransaction::<C>::begin_transaction(&mut *holder).unwrap();
    CartLine::update_quantity_locked(&mut *holder, (cart, a), |q| Ok(q + 10)).unwrap();
    let (key, value) =
        C::done(CartLine::atomic_quantity().update_first_unlocked(&mut c, &keys, |q| Ok(q + 1)))
            .await
            .unwrap();
    assert_eq!((key, value), ((cart, b), 2));
    HarnessTransaction::<C>::rollback_transaction(&mut *holder).unwrap();
    let lines = db.cart_lines(&[cart]);
    assert_eq!(
        lines.iter().map(|l| l.quantity).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

/// The sale as one statement: both columns change or neither; a refusal names its column;
/// three columns with a declared floor; amounts of zero and negative ones.
pub async fn several_columns_in_one_statement<C: Client>(client: &C)
where
    Sale: Changes<Product, DbOf<C::Db>, Key = i64, Values = (i32, i64)>,
    SaleReversed: Changes<Product, DbOf<C::Db>, Key = i64, Values = (i64, i32)>,
    EdgeTriple: Changes<Edge, DbOf<C::Db>, Key = i64, Values = (i32, i16, i32)>,
{
    let db = client.db();
    let id = db.new_product(5, 100);
    let c = &mut client.conn().await;
    let sale = |n: i32| {
        (
            ct_products::stock.decrement_if_at_least(n),
            ct_products::sold.increment(i64::from(n)),
        )
    };
    assert_eq!(
        C::done(Product::update_atomic(c, id, sale(3)))
            .await
            .unwrap(),
        (2, 103)
    );
    assert_eq!(db.product(id), (2, 103));
    let refused = C::done(Product::update_atomic(c, id, sale(3)))
        .await
        .unwrap_err();
    match &refused {
        AtomicError::InColumn { column, error } => {
            assert_eq!(*column, "stock");
            assert!(matches!(
                **error,
                AtomicError::Insufficient {
                    available: 2,
                    requested: 3
                }
            ));
        }
        other => panic!("expected InColumn, got {other:?}"),
    }
    assert_eq!(db.product(id), (2, 103));
    // The second column refuses: the first is not written either.
    let over = (
        ct_products::sold.decrement(1),
        ct_products::stock.increment(999),
    );
    assert_err!(
        C::done(Product::update_atomic(c, id, over)).await,
        AtomicError::InColumn {
            column: "stock",
            ..
        }
    );
    assert_eq!(db.product(id), (2, 103));
    assert_eq!(
        negative(C::done(Product::update_atomic(c, id, sale(-1))).await),
        -1
    );
    assert_err!(
        C::done(Product::update_atomic(c, next_id(), sale(1))).await,
        AtomicError::NotFound
    );
    assert_eq!(
        C::done(Product::update_atomic(c, id, sale(0)))
            .await
            .unwrap(),
        (2, 103)
    );

    let edge = db.new_edge(0, 0, 0, 10);
    let three = (
        ct_edges::floored.decrement(5),
        ct_edges::small.increment(7i16),
        ct_edges::medium.decrement(9),
    );
    assert_eq!(
        C::done(Edge::update_atomic(c, edge, three)).await.unwrap(),
        (5, 7, -9)
    );
    match C::done(Edge::update_atomic(c, edge, three))
        .await
        .unwrap_err()
    {
        AtomicError::InColumn { column, error } => {
            assert_eq!(column, "floored");
            assert!(matches!(
                *error,
                AtomicError::OutOfRange {
                    current: 5,
                    attempted: 0,
                    limit: Limit::Min(5)
                }
            ));
        }
        other => panic!("expected InColumn, got {other:?}"),
    }
    assert_eq!(db.edge(edge), (7, -9, 0, 5));
}

/// `(stock.increment(n), sold.increment(m))` and `(stock.decrement_if_at_least(n),
/// sold.increment(m))` are one Rust type but two statements (`+`/`<=` against `-`/`>=`). On one
/// connection, with its prepared-statement cache, the second must run its own SQL: run with
/// the first's, a sale adds to the stock and passes a guard it should fail (the defect this
/// pins: one static statement id for both).
pub async fn several_columns_other_directions_on_one_connection<C: Client>(client: &C)
where
    Sale: Changes<Product, DbOf<C::Db>, Key = i64, Values = (i32, i64)>,
{
    let db = client.db();
    let id = db.new_product(0, 0);
    let c = &mut client.conn().await;
    let restock = |n: i32| {
        (
            ct_products::stock.increment(n),
            ct_products::sold.increment(0),
        )
    };
    let sale = |n: i32| {
        (
            ct_products::stock.decrement_if_at_least(n),
            ct_products::sold.increment(i64::from(n)),
        )
    };
    for round in 1..=3i64 {
        assert_eq!(
            C::done(Product::update_atomic(c, id, restock(1)))
                .await
                .unwrap(),
            (1, round - 1)
        );
        assert_eq!(
            C::done(Product::update_atomic(c, id, sale(1)))
                .await
                .unwrap(),
            (0, round)
        );
        match C::done(Product::update_atomic(c, id, sale(1))).await {
            Err(AtomicError::InColumn {
                column: "stock",
                error,
            }) => assert_eq!(insufficient::<()>(Err(*error)), (0, 1)),
            other => panic!("expected InColumn {{ stock, Insufficient }}, got {other:?}"),
        }
        assert_eq!(db.product(id), (0, round));
    }
}

/// 16 threads sell 1 to 3 units at a time as one two-column statement until the stock is
/// gone: stock and sold are exact and their sum never changes.
pub async fn concurrent_sales_of_two_columns<C: Client>(client: &C)
where
    Sale: Changes<Product, DbOf<C::Db>, Key = i64, Values = (i32, i64)>,
{
    let db = client.db();
    let initial = 500;
    let id = db.new_product(initial, 0);
    let results = on_n_workers(client, KEYED_THREADS, async |thread, c| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(thread as u64);
        let mut outcomes = Vec::new();
        loop {
            let n: i32 = rng.random_range(1..=3);
            let sale = (
                ct_products::stock.decrement_if_at_least(n),
                ct_products::sold.increment(i64::from(n)),
            );
            match C::done(Product::update_atomic(c, id, sale)).await {
                Ok((stock, sold)) => {
                    assert_eq!(i64::from(stock) + sold, i64::from(initial));
                    outcomes.push(Ok(n));
                }
                Err(AtomicError::InColumn {
                    column: "stock",
                    error,
                }) => {
                    let AtomicError::Insufficient { available, .. } = *error else {
                        panic!("stock refused with {error:?}")
                    };
                    if available == 0 {
                        break;
                    }
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        outcomes
    });
    let (sold, errors) = errors_of(results.into_iter().flatten().collect());
    assert_no_errors(client, "two-column sales", &errors);
    let total: i32 = sold.iter().sum();
    assert_eq!(total, initial);
    assert_eq!(db.product(id), (0, i64::from(initial)));
}
