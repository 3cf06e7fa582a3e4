//! Increment-or-insert (one upsert statement per key), and the whole add-to-cart in the
//! library's retrying transaction.

use std::collections::BTreeMap;

use counter_core::{AtomicError, AtomicFieldOn, Limit, NewRow, RetryPolicy, UpsertRow};
use rand::{Rng, SeedableRng};

use super::assert::{assert_no_errors, errors_of, negative, out_of_range};
use super::harness::KEYED_THREADS;
use crate::client::{on_n_workers, Client};
use crate::db::{next_id, DbOf, TestDb};
use crate::models::{CartLine, DailyView, Named, NewCartLine, Product};
use crate::schema::{ct_cart_lines, ct_daily_views, ct_named, ct_products};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! upsert_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            increment_or_insert_inserts_then_adds,
            increment_or_insert_all_is_all_or_nothing,
            add_to_cart_fills_carts_exactly,
            add_to_cart_runs_out_of_stock_exactly,
            daily_counters_from_an_empty_table,
            increment_or_insert_under_a_case_insensitive_key,
        );
    };
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
