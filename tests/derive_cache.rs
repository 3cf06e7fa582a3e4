//! `#[derive(CounterCache)]` end to end, on in-memory SQLite: a count of views whose keys the
//! database generates, a guarded sum of ordered units (stock), a child that carries its own
//! key under renamed columns, and the async path once.

use counter_core::{AtomicError, AtomicField, Counted, CounterCache, Recounted, RetryPolicy};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;

diesel::table! { articles (id) { id -> BigInt, title -> Text, view_count -> BigInt, } }
diesel::table! { views (id) { id -> BigInt, article_id -> BigInt, visitor -> Text, } }
diesel::table! { products (id) { id -> BigInt, stock -> Integer, } }
diesel::table! {
    orders (id) {
        id -> BigInt,
        product_id -> BigInt,
        quantity -> Integer,
        note -> Nullable<Text>,
    }
}

#[derive(Debug, Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = articles)]
pub struct Article {
    pub id: i64,
    pub title: String,
    #[atomic(min = 0)]
    pub view_count: i64,
}

#[derive(Debug, Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: i64,
    #[atomic(min = 0)]
    pub stock: i32,
}

/// One view counts one on its article; the database generates its key.
#[derive(CounterCache)]
#[diesel(table_name = views)]
#[counter_cache(parent = Article, column = articles::view_count, foreign_key = article_id)]
pub struct NewView {
    pub article_id: i64,
    pub visitor: String,
}

/// An order takes its quantity from its product's stock, refused beyond it.
#[derive(CounterCache)]
#[diesel(table_name = orders)]
#[counter_cache(
    parent = Product,
    column = products::stock,
    foreign_key = product_id,
    sum = quantity,
    change = decrement_if_at_least,
    key_type = i64,
)]
pub struct NewOrder {
    pub product_id: i64,
    pub quantity: i32,
    pub note: Option<String>,
}

/// The same cache from a struct that carries its key, with fields named unlike their columns.
#[derive(CounterCache)]
#[diesel(table_name = orders)]
#[counter_cache(
    parent = Product,
    column = products::stock,
    foreign_key = product,
    sum = units,
    change = decrement_if_at_least
)]
pub struct NumberedOrder {
    pub id: i64,
    #[diesel(column_name = product_id)]
    pub product: i64,
    #[diesel(column_name = quantity)]
    pub units: i32,
}

diesel::table! { pages (id) { id -> BigInt, hits -> BigInt, } }
diesel::table! { page_hit_slots (id, slot) { id -> BigInt, slot -> Integer, count -> BigInt, } }
diesel::table! { hits (id) { id -> BigInt, page_id -> BigInt, } }

/// A page whose hits are a slotted counter.
#[derive(Debug, Queryable, Selectable, Identifiable, AtomicField)]
#[diesel(table_name = pages)]
pub struct Page {
    pub id: i64,
    #[atomic(slots = 4, table = page_hit_slots)]
    pub hits: i64,
}

/// A hit, counted into a random slot of its page's hits.
#[derive(CounterCache)]
#[diesel(table_name = hits)]
#[counter_cache(parent = Page, column = pages::hits, foreign_key = page_id, slotted)]
pub struct NewHit {
    pub page_id: i64,
}

const SCHEMA: [&str; 7] = [
    "CREATE TABLE pages (id BIGINT PRIMARY KEY, hits BIGINT NOT NULL)",
    "CREATE TABLE page_hit_slots (id BIGINT NOT NULL, slot INTEGER NOT NULL, \
     count BIGINT NOT NULL, PRIMARY KEY (id, slot))",
    "CREATE TABLE hits (id INTEGER PRIMARY KEY, page_id BIGINT NOT NULL)",
    "CREATE TABLE articles (id BIGINT PRIMARY KEY, title TEXT NOT NULL, \
     view_count BIGINT NOT NULL)",
    "CREATE TABLE views (id INTEGER PRIMARY KEY, article_id BIGINT NOT NULL, \
     visitor TEXT NOT NULL)",
    "CREATE TABLE products (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL)",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, product_id BIGINT NOT NULL, \
     quantity INTEGER NOT NULL, note TEXT)",
];

fn connection() -> SqliteConnection {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    for statement in SCHEMA {
        diesel::sql_query(statement).execute(&mut conn).unwrap();
    }
    conn
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `SELECT COUNT(*) …`, for the rows the cache did or did not write.
fn count(conn: &mut SqliteConnection, query: &str) -> i64 {
    diesel::sql_query(query)
        .get_result::<Count>(conn)
        .unwrap()
        .n
}

fn view(article_id: i64, visitor: &str) -> NewView {
    NewView {
        article_id,
        visitor: visitor.to_owned(),
    }
}

#[test]
fn a_count_cache_inserts_deletes_and_recounts() {
    let mut conn = connection();
    diesel::sql_query("INSERT INTO articles VALUES (1, 'one', 0), (2, 'two', 0)")
        .execute(&mut conn)
        .unwrap();

    let first = view(1, "ann").insert_counted(&mut conn).unwrap();
    assert_eq!(first, Counted { key: 1, parent: 1 });
    let second = view(1, "bob").insert_counted(&mut conn).unwrap();
    assert_eq!(second, Counted { key: 2, parent: 2 });
    assert_eq!(
        count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM views WHERE article_id = 1 AND visitor = 'bob'"
        ),
        1
    );

    // An article that does not exist: nothing inserted.
    let missing = view(9, "eve").insert_counted(&mut conn);
    assert!(matches!(missing, Err(AtomicError::NotFound)), "{missing:?}");
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM views"), 2);

    // A delete reverses its row's change once.
    assert_eq!(
        NewView::delete_counted(&mut conn, first.key).unwrap(),
        Some(1)
    );
    let again = NewView::delete_counted(&mut conn, first.key);
    assert!(matches!(again, Err(AtomicError::NotFound)), "{again:?}");
    assert_eq!(Article::current_view_count(&mut conn, 1).unwrap(), 1);

    // Views written behind the cache's back, then repaired: article 1 by key, then the rest.
    diesel::sql_query(
        "INSERT INTO views (article_id, visitor) VALUES (1, 'raw'), (2, 'raw'), (2, 'raw')",
    )
    .execute(&mut conn)
    .unwrap();
    let fixed = NewView::recount_view_count(&mut conn, &[1, 9]).unwrap();
    assert_eq!(
        fixed,
        [Recounted {
            key: 1,
            was: 1,
            now: 2
        }]
    );
    let fixed = NewView::recount_all_view_count(&mut conn).unwrap();
    assert_eq!(
        fixed,
        [Recounted {
            key: 2,
            was: 0,
            now: 2
        }]
    );
    assert!(NewView::recount_all_view_count(&mut conn)
        .unwrap()
        .is_empty());

    // The handle, with a per-call retry policy.
    let cache =
        NewView::counter_cache_view_count().retry(RetryPolicy::DEFAULT.with_max_attempts(1));
    let third = cache.insert(&mut conn, &view(2, "cat")).unwrap();
    assert_eq!(third.parent, 3);
    assert_eq!(Article::current_view_count(&mut conn, 2).unwrap(), 3);
}

#[test]
fn a_guarded_sum_cache_refuses_what_the_parent_cannot_cover() {
    let mut conn = connection();
    diesel::sql_query("INSERT INTO products VALUES (1, 10)")
        .execute(&mut conn)
        .unwrap();

    let order = NewOrder {
        product_id: 1,
        quantity: 4,
        note: None,
    };
    assert_eq!(
        order.insert_counted(&mut conn).unwrap(),
        Counted { key: 1, parent: 6 }
    );
    // `None` is written as NULL.
    assert_eq!(
        count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM orders WHERE id = 1 AND product_id = 1 AND quantity = 4 \
             AND note IS NULL"
        ),
        1
    );

    let too_many = NewOrder {
        product_id: 1,
        quantity: 7,
        note: Some("too many".to_owned()),
    };
    let refused = too_many.insert_counted(&mut conn);
    assert!(
        matches!(
            refused,
            Err(AtomicError::Insufficient {
                available: 6,
                requested: 7
            })
        ),
        "{refused:?}"
    );
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM orders"), 1);
    assert_eq!(Product::current_stock(&mut conn, 1).unwrap(), 6);

    let no_product = NewOrder {
        product_id: 9,
        quantity: 1,
        note: Some("lost".to_owned()),
    };
    let missing = no_product.insert_counted(&mut conn);
    assert!(matches!(missing, Err(AtomicError::NotFound)), "{missing:?}");
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM orders"), 1);

    let noted = NewOrder {
        product_id: 1,
        quantity: 6,
        note: Some("the rest".to_owned()),
    };
    assert_eq!(
        noted.insert_counted(&mut conn).unwrap(),
        Counted { key: 2, parent: 0 }
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM orders WHERE id = 2 AND note = 'the rest'"
        ),
        1
    );

    // Deleting an order gives its units back, once.
    assert_eq!(NewOrder::delete_counted(&mut conn, 1).unwrap(), Some(4));
    let again = NewOrder::delete_counted(&mut conn, 1);
    assert!(matches!(again, Err(AtomicError::NotFound)), "{again:?}");
    assert_eq!(Product::current_stock(&mut conn, 1).unwrap(), 4);
}

#[test]
fn a_child_with_its_own_key_and_renamed_columns() {
    let mut conn = connection();
    diesel::sql_query("INSERT INTO products VALUES (1, 10)")
        .execute(&mut conn)
        .unwrap();

    let order = NumberedOrder {
        id: 100,
        product: 1,
        units: 3,
    };
    assert_eq!(
        order.insert_counted(&mut conn).unwrap(),
        Counted {
            key: 100,
            parent: 7
        }
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM orders WHERE id = 100 AND product_id = 1 AND quantity = 3"
        ),
        1
    );
    // The key is the struct's: a second row with it is the database's unique error, and
    // nothing changed.
    let twice = order.insert_counted(&mut conn);
    assert!(matches!(twice, Err(AtomicError::Database(_))), "{twice:?}");
    assert_eq!(Product::current_stock(&mut conn, 1).unwrap(), 7);

    let too_many = NumberedOrder {
        id: 101,
        product: 1,
        units: 8,
    };
    let refused = too_many.insert_counted(&mut conn);
    assert!(
        matches!(
            refused,
            Err(AtomicError::Insufficient {
                available: 7,
                requested: 8
            })
        ),
        "{refused:?}"
    );
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM orders"), 1);

    // The delete reads the amount from the renamed column.
    assert_eq!(
        NumberedOrder::delete_counted(&mut conn, 100).unwrap(),
        Some(10)
    );
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM orders"), 0);
}

#[tokio::test]
async fn the_async_path() {
    use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
    use diesel_async::AsyncConnection;

    let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(":memory:")
        .await
        .unwrap();
    let setup = SCHEMA
        .into_iter()
        .chain(["INSERT INTO articles VALUES (1, 'one', 0)"]);
    for statement in setup {
        // diesel's prelude brings the blocking `execute` too.
        diesel_async::RunQueryDsl::execute(diesel::sql_query(statement), &mut conn)
            .await
            .unwrap();
    }

    let counted = view(1, "ann").insert_counted(&mut conn).await.unwrap();
    assert_eq!(counted, Counted { key: 1, parent: 1 });
    assert_eq!(
        NewView::delete_counted(&mut conn, counted.key)
            .await
            .unwrap(),
        Some(0)
    );
    let again = NewView::delete_counted(&mut conn, counted.key).await;
    assert!(matches!(again, Err(AtomicError::NotFound)), "{again:?}");
}

/// `recount_all_<column>` of a slotted cache pages through every parent (1,001 of them: three
/// pages of 500), reports exactly the ones whose slots were wrong, and leaves every parent's
/// slots equal to its rows.
#[test]
fn a_slotted_cache_recounts_every_parent() {
    let mut conn = connection();
    let values: Vec<String> = (1..=1001).map(|id| format!("({id}, 0)")).collect();
    diesel::sql_query(format!("INSERT INTO pages VALUES {}", values.join(", ")))
        .execute(&mut conn)
        .unwrap();
    for id in [1, 500, 501, 1001] {
        NewHit { page_id: id }.insert_counted(&mut conn).unwrap();
    }
    // Hits written behind the cache's back on every third page, and a slot of 5 on page 2.
    for id in (3..=1001).step_by(3) {
        diesel::sql_query(format!("INSERT INTO hits (page_id) VALUES ({id})"))
            .execute(&mut conn)
            .unwrap();
    }
    Page::increment_hits(&mut conn, 2, 5).unwrap();

    let report = NewHit::recount_all_hits(&mut conn).unwrap();
    let mut expected: Vec<Recounted<i64, i64>> = (3..=1001)
        .step_by(3)
        .map(|id| {
            let was = i64::from([501].contains(&id));
            Recounted {
                key: id,
                was,
                now: was + 1,
            }
        })
        .collect();
    expected.push(Recounted {
        key: 2,
        was: 5,
        now: 0,
    });
    expected.sort_by_key(|r| r.key);
    assert_eq!(report, expected);
    for id in [1, 2, 3, 500, 501, 999, 1001] {
        let rows = count(
            &mut conn,
            &format!("SELECT COUNT(*) AS n FROM hits WHERE page_id = {id}"),
        );
        assert_eq!(
            Page::current_hits(&mut conn, id).unwrap(),
            rows,
            "page {id}"
        );
    }
    assert!(NewHit::recount_all_hits(&mut conn).unwrap().is_empty());
}
