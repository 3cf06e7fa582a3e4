//! The add-to-cart's pieces: composite keys, several columns in one statement,
//! increment-or-insert, and the whole add-to-cart in the library's retrying transaction.

use std::collections::BTreeMap;

use counter_core::{
    AtomicError, AtomicFieldOn, Change, ChangeColumn, Changes, Limit, NewRow, RetryPolicy,
    UpsertRow,
};
use diesel::connection::TransactionManager;
use rand::{Rng, SeedableRng};

use super::{
    assert_no_errors, errors_of, insufficient, negative, on_n_workers, out_of_range, Client,
    HarnessTransaction, Sale,
};
use crate::assert_err;
use crate::db::{next_id, DbOf, TestDb};
use crate::models::{CartLine, DailyView, Edge, Named, NewCartLine, Product};
use crate::schema::{ct_cart_lines, ct_daily_views, ct_edges, ct_named, ct_products};

/// The load: 16 workers.
pub const KEYED_THREADS: usize = 16;

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

/// Increment-or-insert: inserts the row as given, then adds; refuses past `max` with nothing
/// written; adding zero refuses nothing; negative amounts are refused before any SQL.
pub async fn increment_or_insert_inserts_then_adds<C: Client>(client: &C)
where
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
    for<'r> &'r NewCartLine: UpsertRow<CartLine, ct_cart_lines::quantity, DbOf<C::Db>>,
    for<'r> &'r DailyView: UpsertRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let c = &mut client.conn().await;
    let (cart, product) = (next_id(), next_id());
    let row = NewCartLine {
        cart_id: cart,
        product_id: product,
        quantity: 3,
    };
    assert_eq!(
        C::done(CartLine::increment_quantity_or_insert(c, &row, 3))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        C::done(CartLine::increment_quantity_or_insert(c, &row, 30))
            .await
            .unwrap(),
        33
    );
    assert_eq!(
        out_of_range(C::done(CartLine::increment_quantity_or_insert(c, &row, 8)).await),
        (33, 41, Limit::Max(40))
    );
    assert_eq!(
        C::done(CartLine::increment_quantity_or_insert(c, &row, 0))
            .await
            .unwrap(),
        33
    );
    assert_eq!(
        negative(C::done(CartLine::increment_quantity_or_insert(c, &row, -1)).await),
        -1
    );
    assert_eq!(
        db.cart_lines(&[cart]),
        vec![CartLine {
            cart_id: cart,
            product_id: product,
            quantity: 33
        }]
    );

    // The model itself as the row; the inserted value need not equal the amount.
    let page = next_id();
    let day = DailyView {
        page_id: page,
        day: 7,
        views: 100,
    };
    assert_eq!(
        C::done(DailyView::increment_views_or_insert(c, &day, 1))
            .await
            .unwrap(),
        100
    );
    assert_eq!(
        C::done(DailyView::increment_views_or_insert(c, &day, 1))
            .await
            .unwrap(),
        101
    );
    assert_eq!(db.daily_views(&[page]), vec![(page, 7, 101)]);
}

/// The batch form sums amounts per key, applies keys in order, returns each new value, and
/// writes nothing when one key refuses.
pub async fn increment_or_insert_all_is_all_or_nothing<C: Client>(client: &C)
where
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
    NewCartLine: NewRow<CartLine, ct_cart_lines::quantity, DbOf<C::Db>>,
{
    let db = client.db();
    let c = &mut client.conn().await;
    let (cart, p1, p2, p3) = (next_id(), next_id(), next_id(), next_id());
    db.new_cart_line(cart, p2, 30);
    let new_row = |&(cart_id, product_id): &(i64, i64), quantity| NewCartLine {
        cart_id,
        product_id,
        quantity,
    };
    let done = C::done(CartLine::increment_quantity_or_insert_all(
        c,
        [
            ((cart, p3), 4),
            ((cart, p2), 5),
            ((cart, p3), 6),
            ((cart, p1), 1),
        ],
        new_row,
    ))
    .await
    .unwrap();
    assert_eq!(
        done,
        vec![((cart, p1), 1), ((cart, p2), 35), ((cart, p3), 10)]
    );
    // p2 would pass 40: nothing of the batch is written, p1 included.
    assert_eq!(
        out_of_range(
            C::done(CartLine::increment_quantity_or_insert_all(
                c,
                [((cart, p1), 1), ((cart, p2), 6)],
                new_row
            ))
            .await
        ),
        (35, 41, Limit::Max(40))
    );
    assert_eq!(
        negative(
            C::done(CartLine::increment_quantity_or_insert_all(
                c,
                [((cart, p1), 1), ((cart, p2), -6)],
                new_row
            ))
            .await
        ),
        -6
    );
    let quantities: Vec<i32> = db.cart_lines(&[cart]).iter().map(|l| l.quantity).collect();
    assert_eq!(quantities, vec![1, 35, 10]);
}

/// The add-to-cart of the README: take up to `n` from the product's stock, then add what was
/// taken to the cart line (creating it), all in one retrying transaction. A full line makes
/// the whole call fail with `OutOfRange` and take nothing.
pub async fn add_to_cart<C: Client>(
    conn: &mut C::Conn,
    cart: i64,
    product: i64,
    n: i32,
) -> Result<i32, AtomicError>
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
    for<'r> &'r NewCartLine: UpsertRow<CartLine, ct_cart_lines::quantity, DbOf<C::Db>>,
{
    C::transaction(conn, RetryPolicy::DEFAULT, async |c| {
        let taken = C::done(Product::take_stock_up_to(c, product, n)).await?;
        if taken > 0 {
            let line = NewCartLine {
                cart_id: cart,
                product_id: product,
                quantity: taken,
            };
            C::done(CartLine::increment_quantity_or_insert(c, &line, taken)).await?;
        }
        Ok(taken)
    })
    .await
}

/// 16 workers add to 8 carts at random until every cart refuses: stock + the cart lines is
/// the initial stock, no line passes 40, and every `Ok(taken)` is in a line.
async fn add_to_cart_storm<C: Client>(client: &C, stock: i32) -> (i32, Vec<CartLine>)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
    for<'r> &'r NewCartLine: UpsertRow<CartLine, ct_cart_lines::quantity, DbOf<C::Db>>,
{
    let db = client.db();
    let product = db.new_product(stock, 0);
    let carts: Vec<i64> = (0..8).map(|_| next_id()).collect();
    let calls = 60;
    let results = on_n_workers(client, KEYED_THREADS, async |worker, c| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1000 + worker as u64);
        let mut results = Vec::new();
        for _ in 0..calls {
            let cart = carts[rng.random_range(0..carts.len())];
            results.push(add_to_cart::<C>(c, cart, product, rng.random_range(1..=6)).await);
        }
        results
    });
    let (taken, errors) = errors_of(results.into_iter().flatten().collect());
    let (full, other): (Vec<_>, Vec<_>) = errors.into_iter().partition(|e| {
        matches!(
            e,
            AtomicError::OutOfRange {
                limit: Limit::Max(40),
                ..
            }
        )
    });
    assert_no_errors(client, "add to cart, besides full lines", &other);
    let lines = db.cart_lines(&carts);
    let in_lines: i32 = lines.iter().map(|l| l.quantity).sum();
    let left = db.product(product).0;
    assert_eq!(left + in_lines, stock, "stock + cart lines");
    assert_eq!(
        taken.iter().sum::<i32>(),
        in_lines,
        "what calls took is in lines"
    );
    assert!(lines.iter().all(|l| l.quantity <= 40), "{lines:?}");
    assert!(lines.iter().all(|l| l.product_id == product));
    assert_eq!(
        taken.len() + full.len(),
        KEYED_THREADS * calls,
        "every call either took something or nothing"
    );
    (left, lines)
}

/// More add-to-cart calls than 8 carts of 40 can hold, on a stock of 500: the carts fill,
/// stock is left, and every refused call took nothing.
pub async fn add_to_cart_fills_carts_exactly<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
    for<'r> &'r NewCartLine: UpsertRow<CartLine, ct_cart_lines::quantity, DbOf<C::Db>>,
{
    let (left, lines) = add_to_cart_storm(client, 500).await;
    assert_eq!(lines.len(), 8);
    assert!(left >= 500 - 8 * 40);
    // 960 calls of 1..=6 on 8 lines of 40: every line is within 5 of full.
    assert!(lines.iter().all(|l| l.quantity > 35), "{lines:?}");
}

/// The same on a stock of 100: the stock runs out first, and all of it is in the carts.
pub async fn add_to_cart_runs_out_of_stock_exactly<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
    for<'r> &'r NewCartLine: UpsertRow<CartLine, ct_cart_lines::quantity, DbOf<C::Db>>,
{
    let (left, lines) = add_to_cart_storm(client, 100).await;
    assert_eq!(left, 0);
    assert_eq!(lines.iter().map(|l| l.quantity).sum::<i32>(), 100);
}

/// Daily counters keyed `(page_id, day)` from an empty table: 16 threads count views over 3
/// pages and 5 days, each view one increment-or-insert. Every key is exact and no
/// duplicate-key error surfaces (concurrent first inserts of one key race; the loser adds).
pub async fn daily_counters_from_an_empty_table<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
    for<'r> &'r DailyView: UpsertRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let pages: Vec<i64> = (0..3).map(|_| next_id()).collect();
    let per_thread = <C::Db as TestDb>::ITERATIONS;
    let results = on_n_workers(client, KEYED_THREADS, async |thread, c| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2000 + thread as u64);
        let mut counted = BTreeMap::new();
        let mut errors = Vec::new();
        for _ in 0..per_thread {
            let key = (pages[rng.random_range(0..3)], rng.random_range(0..5));
            let row = DailyView {
                page_id: key.0,
                day: key.1,
                views: 1,
            };
            match C::done(DailyView::increment_views_or_insert(c, &row, 1)).await {
                Ok(_) => *counted.entry(key).or_insert(0i64) += 1,
                Err(e) => errors.push(e),
            }
        }
        (counted, errors)
    });
    let mut expected = BTreeMap::new();
    let mut errors = Vec::new();
    for (counted, errs) in results {
        errors.extend(errs);
        for (key, n) in counted {
            *expected.entry(key).or_insert(0) += n;
        }
    }
    assert_no_errors(client, "daily counters", &errors);
    let rows: BTreeMap<(i64, i32), i64> = db
        .daily_views(&pages)
        .into_iter()
        .map(|(page, day, views)| ((page, day), views))
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(
        rows.values().sum::<i64>(),
        (KEYED_THREADS * per_thread) as i64
    );
}

/// Under a case-insensitive key (MariaDB `utf8mb4_general_ci`, PostgreSQL's nondeterministic
/// ICU collation, SQLite `NOCASE`), another spelling of an existing key is that row: the
/// upsert adds to it instead of inserting a second row or failing on the duplicate, in the
/// single form and in a batch holding both spellings.
pub async fn increment_or_insert_under_a_case_insensitive_key<C: Client>(client: &C)
where
    Named: AtomicFieldOn<ct_named::balance, DbOf<C::Db>>
        + NewRow<Named, ct_named::balance, DbOf<C::Db>>,
    for<'r> &'r Named: UpsertRow<Named, ct_named::balance, DbOf<C::Db>>,
{
    let db = client.db();
    let c = &mut client.conn().await;
    let lower = format!("zed{}", next_id());
    let upper = lower.to_uppercase();
    let row = |name: &String, balance| Named {
        name: name.clone(),
        balance,
    };
    assert_eq!(
        C::done(Named::increment_balance_or_insert(c, &row(&lower, 5), 5))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        C::done(Named::increment_balance_or_insert(c, &row(&upper, 100), 3))
            .await
            .unwrap(),
        8
    );
    // Rust orders "ZED…" before "zed…"; both name the one row.
    let done = C::done(Named::increment_balance_or_insert_all(
        c,
        [(lower.clone(), 1), (upper.clone(), 2)],
        |name: &String, balance| row(name, balance),
    ))
    .await
    .unwrap();
    assert_eq!(done, vec![(upper.clone(), 10), (lower.clone(), 11)]);
    assert_eq!((db.named(&lower), db.named(&upper)), (11, 11));
}
