//! The randomized checker (`tests/src/checker`) on every database configuration users run:
//! one test per cell, each running the three subjects (an integer key, a string key the
//! database compares case-insensitively, and a composite key of both), the hot counters, the
//! counter caches and the several-parent caches. Sizes: see the checker's module documentation; CI
//! runs the defaults, a soak run is
//! `COUNTER_CHECK_SECONDS=120 cargo test --release -p counter-tests --all-features --test checker -- --test-threads 1 --nocapture`.

use counter_tests::checker::cache::{run_cache, run_cache_async};
use counter_tests::checker::cache_reviews::{run_reviews, run_reviews_async};
use counter_tests::checker::cells::{mysql, postgres, sqlite};
use counter_tests::checker::driver::Async;
use counter_tests::checker::hot::{run_hot, run_hot_async};
use counter_tests::checker::{run, run_with, Plan};
use counter_tests::db::{mysql_url, pg_url};
use counter_tests::models::{CkCounter, CkName, CkPair};
use counter_tests::TestDb;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;

/// Both subjects on one pool; `trailing_space`: the database ignores trailing spaces in keys.
macro_rules! both {
    ($cell:expr, $pool:expr, $trailing_space:expr) => {{
        let plan = Plan::from_env();
        run::<CkCounter, _>($cell, $pool, plan, $trailing_space);
        run::<CkName, _>($cell, $pool, plan, $trailing_space);
        run::<CkPair, _>($cell, $pool, plan, $trailing_space);
        run_hot($cell, $pool, plan);
        run_cache($cell, $pool, plan);
        run_reviews($cell, $pool, plan);
    }};
}

macro_rules! sqlite_cells {
    ($($name:ident: $journal:literal, $busy:expr;)*) => {$(
        #[test]
        fn $name() {
            let db = sqlite($journal, $busy);
            both!(stringify!($name), db.pool(), false);
        }
    )*};
}

sqlite_cells! {
    sqlite_delete: "DELETE", None;
    sqlite_delete_busy_timeout: "DELETE", Some(1000);
    sqlite_truncate: "TRUNCATE", None;
    sqlite_truncate_busy_timeout: "TRUNCATE", Some(1000);
    sqlite_wal: "WAL", None;
    sqlite_wal_busy_timeout: "WAL", Some(1000);
}

macro_rules! postgres_cells {
    ($($name:ident: $isolation:literal;)*) => {$(
        #[test]
        fn $name() {
            both!(stringify!($name), &postgres($isolation), false);
        }
    )*};
}

postgres_cells! {
    postgres_read_committed: "read committed";
    postgres_repeatable_read: "repeatable read";
    postgres_serializable: "serializable";
}

/// MariaDB's default `sql_mode`, which is strict.
const STRICT: &str =
    "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION";
const NON_STRICT: &str = "";
const ANSI_QUOTES: &str = "ANSI_QUOTES,STRICT_TRANS_TABLES";

macro_rules! mysql_cells {
    ($($name:ident: $mode:expr, $isolation:literal;)*) => {$(
        #[test]
        fn $name() {
            both!(stringify!($name), &mysql($mode, $isolation), true);
        }
    )*};
}

mysql_cells! {
    mysql_strict_repeatable_read: STRICT, "REPEATABLE READ";
    mysql_strict_read_committed: STRICT, "READ COMMITTED";
    mysql_non_strict_repeatable_read: NON_STRICT, "REPEATABLE READ";
    mysql_non_strict_read_committed: NON_STRICT, "READ COMMITTED";
    mysql_ansi_quotes_repeatable_read: ANSI_QUOTES, "REPEATABLE READ";
    mysql_ansi_quotes_read_committed: ANSI_QUOTES, "READ COMMITTED";
    mysql_strict_serializable: STRICT, "SERIALIZABLE";
}

/// A deadpool of `$conn` to `$url`, each connection set up with `$setup` (the cell's
/// settings), for the hot counters' `AsyncBuffer`.
macro_rules! async_pool {
    ($conn:ty, $url:expr, $setup:expr) => {{
        use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
        let setup: String = $setup.to_owned();
        let mut config = ManagerConfig::<$conn>::default();
        config.custom_setup = Box::new(move |url| {
            let setup = setup.clone();
            Box::pin(async move {
                let mut conn = <$conn as diesel_async::AsyncConnection>::establish(url).await?;
                if !setup.is_empty() {
                    diesel_async::SimpleAsyncConnection::batch_execute(&mut conn, &setup)
                        .await
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                }
                Ok(conn)
            })
        });
        let manager = AsyncDieselConnectionManager::<$conn>::new_with_config($url, config);
        diesel_async::pooled_connection::deadpool::Pool::builder(manager)
            .max_size(4)
            .build()
            .expect("checker: a deadpool of async connections")
    }};
}

/// The three subjects with the library's calls on diesel-async connections (each thread its
/// own, set up with `setup`), the harness's statements on the cell's blocking pool.
macro_rules! async_subjects {
    ($cell:expr, $pool:expr, $conn:ty, $url:expr, $setup:expr, $trailing_space:expr) => {{
        let plan = Plan::from_env();
        let driver = Async::<$conn>::new($url, $setup);
        run_with::<CkCounter, _, _>($cell, $pool, &driver, plan, $trailing_space);
        run_with::<CkName, _, _>($cell, $pool, &driver, plan, $trailing_space);
        run_with::<CkPair, _, _>($cell, $pool, &driver, plan, $trailing_space);
        let async_pool = async_pool!($conn, $url, $setup);
        run_hot_async::<_, $conn, _>($cell, $pool, plan, $url, $setup, async_pool);
        run_cache_async::<_, $conn>($cell, $pool, plan, $url, $setup);
        run_reviews_async::<_, $conn>($cell, $pool, plan, $url, $setup);
    }};
}

#[test]
fn async_sqlite_delete() {
    let db = sqlite("DELETE", None);
    let url = db.path().to_str().expect("UTF-8 path").to_owned();
    async_subjects!(
        "async_sqlite_delete",
        db.pool(),
        SyncConnectionWrapper<diesel::SqliteConnection>,
        &url,
        "",
        false
    );
}

#[test]
fn async_postgres_read_committed() {
    let isolation = "read committed";
    async_subjects!(
        "async_postgres_read_committed",
        &postgres(isolation),
        diesel_async::AsyncPgConnection,
        pg_url(),
        &format!("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {isolation};"),
        false
    );
}

#[test]
fn async_postgres_serializable() {
    let isolation = "serializable";
    async_subjects!(
        "async_postgres_serializable",
        &postgres(isolation),
        diesel_async::AsyncPgConnection,
        pg_url(),
        &format!("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {isolation};"),
        false
    );
}

macro_rules! async_mysql_cells {
    ($($name:ident: $mode:expr, $isolation:literal;)*) => {$(
        #[test]
        fn $name() {
            async_subjects!(
                stringify!($name),
                &mysql($mode, $isolation),
                diesel_async::AsyncMysqlConnection,
                mysql_url(),
                &format!(
                    "SET SESSION sql_mode = '{}'; SET SESSION TRANSACTION ISOLATION LEVEL {};",
                    $mode, $isolation
                ),
                true
            );
        }
    )*};
}

async_mysql_cells! {
    async_mysql_strict_repeatable_read: STRICT, "REPEATABLE READ";
    async_mysql_non_strict_read_committed: NON_STRICT, "READ COMMITTED";
}
