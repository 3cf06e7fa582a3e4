//! The scenarios on SQLite: a fresh WAL database file per test, no busy timeout anywhere (so
//! the concurrency scenarios, which assert zero errors, prove that no call surfaces
//! "database is locked"). Plus checks of that setup and of integer storage at the extremes.

use counter_core::Limit;
use counter_tests::models::Edge;
use counter_tests::scenarios::{on_threads, out_of_range};
use counter_tests::{Sqlite, TestDb};
use diesel::prelude::*;

counter_tests::backend_tests!(counter_tests::Sqlite);

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

#[derive(QueryableByName)]
struct Int {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    value: i64,
}

/// Every pooled connection (8 held at once) is in WAL mode with busy timeout 0: the library
/// alone copes with a busy database.
#[test]
fn pool_connections_are_wal_without_busy_timeout() {
    let db = Sqlite::open();
    assert!(db.path().exists());
    let settings = on_threads(&db, |_, conn| {
        let mode = diesel::sql_query("SELECT journal_mode AS value FROM pragma_journal_mode")
            .get_result::<Text>(&mut **conn)
            .unwrap()
            .value;
        let timeout = diesel::sql_query("SELECT timeout AS value FROM pragma_busy_timeout")
            .get_result::<Int>(&mut **conn)
            .unwrap()
            .value;
        (mode, timeout)
    });
    for (mode, timeout) in settings {
        assert_eq!((mode.as_str(), timeout), ("wal", 0));
    }
}

/// Overflow attempts at `i64::MAX`/`MIN` are refused before SQLite could turn the sum into a
/// REAL: the stored value stays an exact INTEGER.
#[test]
fn overflow_attempts_leave_an_exact_integer() {
    let db = Sqlite::open();
    let id = db.new_edge(0, 0, i64::MAX - 1, 5);
    let mut conn = db.conn();
    let max_w = i128::from(i64::MAX);
    assert_eq!(
        out_of_range(Edge::increment_big(&mut conn, id, 2)),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(Edge::increment_big(&mut conn, id, 1).unwrap(), i64::MAX);
    assert_eq!(
        out_of_range(Edge::increment_big(&mut conn, id, i64::MAX)),
        (max_w, 2 * max_w, Limit::Max(max_w))
    );
    let stored = |conn: &mut SqliteConnection| {
        diesel::sql_query(format!(
            "SELECT typeof(big) || ':' || CAST(big AS TEXT) AS value FROM ct_edges WHERE id = {id}"
        ))
        .get_result::<Text>(conn)
        .unwrap()
        .value
    };
    assert_eq!(stored(&mut conn), format!("integer:{}", i64::MAX));
    assert_eq!(Edge::decrement_big(&mut conn, id, i64::MAX).unwrap(), 0);
    assert_eq!(
        Edge::decrement_big(&mut conn, id, i64::MAX).unwrap(),
        -i64::MAX
    );
    assert_eq!(Edge::decrement_big(&mut conn, id, 1).unwrap(), i64::MIN);
    assert_eq!(
        out_of_range(Edge::decrement_big(&mut conn, id, i64::MAX)),
        (
            i128::from(i64::MIN),
            i128::from(i64::MIN) - max_w,
            Limit::Min(i128::from(i64::MIN))
        )
    );
    assert_eq!(stored(&mut conn), format!("integer:{}", i64::MIN));
}
