//! How each backend gets a database, and the [`TestDb`] trait the scenarios are written against.
//!
//! - PostgreSQL: `COUNTER_PG_URL`, else a `testcontainers` PostgreSQL container started once per
//!   process, else a panic naming both options. Never a silent skip.
//! - MySQL/MariaDB: `COUNTER_MYSQL_URL`, else a MariaDB container, else a panic likewise.
//! - SQLite: a fresh temporary database file per test, in WAL mode, and deliberately no busy
//!   timeout: the library alone must cope with a busy file. [`Sqlite::open_rollback_journal`]
//!   keeps SQLite's default journal instead, for the tests of what WAL hides, and
//!   [`Sqlite::open_with`] takes any journal mode and busy timeout (the checker's cells).
//! - The SQLite pools and the checker's cell pools put every connection through a [`Setup`]
//!   that checks its settings took, and the
//!   harness's own statements go through [`settle`], which waits out what only neighbours cause
//!   (a serialization failure, a busy SQLite file).
//!
//! The server databases are shared by every test of the process (tests run in parallel
//! threads) and by other runs: each test works on rows with ids from [`next_id`], unique per
//! process and, through a random base, across processes.

use std::hash::{BuildHasher, RandomState};
use std::ops::DerefMut;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use counter_core::{BlockingConnection, RawConnection};
use diesel::connection::{LoadConnection, SimpleConnection};
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{
    ConnectionManager, CustomizeConnection, Pool, PooledConnection, R2D2Connection,
};
use diesel::sqlite::SqliteConnection;

use crate::models::CartLine;
use crate::schema::*;

/// Environment variable naming the PostgreSQL database the tests use.
pub const PG_ENV: &str = "COUNTER_PG_URL";
/// Environment variable naming the MySQL/MariaDB database the tests use.
pub const MYSQL_ENV: &str = "COUNTER_MYSQL_URL";
/// Environment variable naming the Redis server the tests use.
pub const REDIS_ENV: &str = "COUNTER_REDIS_URL";

/// Connections per pool: at least the 8 threads of the concurrency scenarios plus the test's own.
pub const POOL_SIZE: u32 = 20;
/// Connections of the process-wide pool of a server, shared by the tests running in parallel.
const SERVER_POOL_SIZE: u32 = 32;

/// The backend's Diesel backend type, as the derive's `where` clauses name it.
pub type DbOf<B> = <<B as TestDb>::Conn as Connection>::Backend;

/// The r2d2 pool of a backend.
pub type PoolOf<C> = Pool<ConnectionManager<C>>;

/// One backend, as the scenarios see it: a pool, and rows created for the calling test only.
///
/// Rows are created with fresh ids ([`next_id`]) and read back with plain Diesel queries,
/// independent of the library under test.
pub trait TestDb: Sized + Send + Sync + 'static {
    /// The backend's name, for messages.
    const NAME: &'static str;
    /// How many operations each of the 8 threads runs in the concurrency scenarios.
    const ITERATIONS: usize;
    /// The Diesel connection.
    type Conn: Connection
        + LoadConnection
        + R2D2Connection
        + BlockingConnection<Raw = Self::Conn>
        + RawConnection<Db = <Self::Conn as Connection>::Backend>
        + Send
        + 'static;
    /// A connection checked out of the pool; the library takes it as `&mut pooled`.
    type Pooled: BlockingConnection<Raw = Self::Conn> + DerefMut<Target = Self::Conn>;

    /// A database for one test: a fresh file (SQLite) or the process-wide server database.
    fn open() -> Self;
    /// The pool, for spawning threads.
    fn pool(&self) -> &PoolOf<Self::Conn>;
    /// A connection from the pool.
    fn conn(&self) -> Self::Pooled;
    /// SQL that takes the write lock of product row `id` (and holds it until the transaction
    /// it runs in ends).
    fn lock_product_sql(id: i64) -> String;

    /// A new product row; returns its id.
    fn new_product(&self, stock: i32, sold: i64) -> i64;
    /// `(stock, sold)` of a product row.
    fn product(&self, id: i64) -> (i32, i64);
    /// Is there a product row with this id?
    fn product_exists(&self, id: i64) -> bool;
    /// A new edge row `(small, medium, big, floored)`; returns its id.
    fn new_edge(&self, small: i16, medium: i32, big: i64, floored: i32) -> i64;
    /// `(small, medium, big, floored)` of an edge row.
    fn edge(&self, id: i64) -> (i16, i32, i64, i32);
    /// A new account row; returns its id.
    fn new_account(&self, balance_cents: i64) -> i64;
    /// `balance_cents` of an account row.
    fn account(&self, id: i64) -> i64;
    /// A new wallet row; returns its id.
    fn new_wallet(&self, coins: i32) -> i64;
    /// `coins` of a wallet row.
    fn wallet(&self, id: i64) -> i32;
    /// A new `ct_named` row with exactly this name.
    fn new_named(&self, name: &str, balance: i64);
    /// `balance` of the `ct_named` row the database matches to `name` (under its collation).
    fn named(&self, name: &str) -> i64;
    /// A new cart line.
    fn new_cart_line(&self, cart_id: i64, product_id: i64, quantity: i32);
    /// Every line of these carts, ordered by key.
    fn cart_lines(&self, cart_ids: &[i64]) -> Vec<CartLine>;
    /// Every `(page_id, day, views)` row of these pages, ordered by key.
    fn daily_views(&self, page_ids: &[i64]) -> Vec<(i64, i32, i64)>;
    /// The `(slot, count)` rows of article `id`'s view counter, in slot order.
    fn view_slots(&self, id: i64) -> Vec<(i32, i64)>;
}

/// A fresh row id: a random per-process base plus a process-wide counter, so tests running in
/// parallel (and other runs against the same server) never share a row.
pub fn next_id() -> i64 {
    static BASE: OnceLock<i64> = OnceLock::new();
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let base = *BASE.get_or_init(|| {
        let random =
            RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
        // In [2^40, 2^40 + 2^60): positive, far from other runs, room for the counter.
        (1_i64 << 40) + (random % (1_u64 << 60)) as i64
    });
    base + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs one statement of the harness itself (not of the library under test), again while it
/// fails only because of the tests beside it: a serialization failure (the PostgreSQL suite also
/// runs under SERIALIZABLE, where even a plain `INSERT` can conflict) or a busy SQLite file
/// (the SQLite pools set no busy timeout, on purpose). At most 100 tries, about 5 s.
pub fn settle<T>(mut f: impl FnMut() -> QueryResult<T>) -> QueryResult<T> {
    use diesel::result::{DatabaseErrorKind, Error};
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f() {
            Err(Error::DatabaseError(kind, info))
                if attempt < 100
                    && (kind == DatabaseErrorKind::SerializationFailure
                        || info.message().contains("database is locked")) => {}
            result => return result,
        }
        std::thread::sleep(Duration::from_millis(attempt));
    }
}

/// [`settle`] on a connection from `pool`; panics with `what` on any other error.
fn harness<C, T>(pool: &PoolOf<C>, what: &str, mut f: impl FnMut(&mut C) -> QueryResult<T>) -> T
where
    C: R2D2Connection + Send + 'static,
{
    let mut conn = pool
        .get()
        .unwrap_or_else(|e| panic!("{what}: no connection from the pool: {e}"));
    settle(|| f(&mut conn)).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The row helpers, identical for the three backends, written once.
macro_rules! row_helpers {
    () => {
        fn conn(&self) -> Self::Pooled {
            self.pool()
                .get()
                .unwrap_or_else(|e| panic!("{}: no connection from the pool: {e}", Self::NAME))
        }

        fn new_product(&self, stock: i32, sold: i64) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert product", |c| {
                diesel::insert_into(ct_products::table)
                    .values((
                        ct_products::id.eq(id),
                        ct_products::name.eq(format!("product {id}")),
                        ct_products::stock.eq(stock),
                        ct_products::sold.eq(sold),
                    ))
                    .execute(c)
            });
            id
        }

        fn product(&self, id: i64) -> (i32, i64) {
            harness(self.pool(), "read product", |c| {
                ct_products::table
                    .find(id)
                    .select((ct_products::stock, ct_products::sold))
                    .first(c)
            })
        }

        fn product_exists(&self, id: i64) -> bool {
            let rows: i64 = harness(self.pool(), "count products", |c| {
                ct_products::table
                    .filter(ct_products::id.eq(id))
                    .count()
                    .get_result(c)
            });
            rows > 0
        }

        fn new_edge(&self, small: i16, medium: i32, big: i64, floored: i32) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert edge", |c| {
                diesel::insert_into(ct_edges::table)
                    .values((
                        ct_edges::id.eq(id),
                        ct_edges::small.eq(small),
                        ct_edges::medium.eq(medium),
                        ct_edges::big.eq(big),
                        ct_edges::floored.eq(floored),
                    ))
                    .execute(c)
            });
            id
        }

        fn edge(&self, id: i64) -> (i16, i32, i64, i32) {
            harness(self.pool(), "read edge", |c| {
                ct_edges::table
                    .find(id)
                    .select((
                        ct_edges::small,
                        ct_edges::medium,
                        ct_edges::big,
                        ct_edges::floored,
                    ))
                    .first(c)
            })
        }

        fn new_account(&self, balance_cents: i64) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert account", |c| {
                diesel::insert_into(ct_accounts::table)
                    .values((
                        ct_accounts::id.eq(id),
                        ct_accounts::balance_cents.eq(balance_cents),
                    ))
                    .execute(c)
            });
            id
        }

        fn account(&self, id: i64) -> i64 {
            harness(self.pool(), "read account", |c| {
                ct_accounts::table
                    .find(id)
                    .select(ct_accounts::balance_cents)
                    .first(c)
            })
        }

        fn new_wallet(&self, coins: i32) -> i64 {
            let id = next_id();
            harness(self.pool(), "insert wallet", |c| {
                diesel::insert_into(ct_wallets::table)
                    .values((ct_wallets::id.eq(id), ct_wallets::coins.eq(coins)))
                    .execute(c)
            });
            id
        }

        fn wallet(&self, id: i64) -> i32 {
            harness(self.pool(), "read wallet", |c| {
                ct_wallets::table
                    .find(id)
                    .select(ct_wallets::coins)
                    .first(c)
            })
        }

        fn new_named(&self, name: &str, balance: i64) {
            harness(self.pool(), "insert named", |c| {
                diesel::insert_into(ct_named::table)
                    .values((ct_named::name.eq(name), ct_named::balance.eq(balance)))
                    .execute(c)
            });
        }

        fn named(&self, name: &str) -> i64 {
            harness(self.pool(), "read named", |c| {
                ct_named::table
                    .find(name)
                    .select(ct_named::balance)
                    .first(c)
            })
        }

        fn new_cart_line(&self, cart_id: i64, product_id: i64, quantity: i32) {
            harness(self.pool(), "insert cart line", |c| {
                diesel::insert_into(ct_cart_lines::table)
                    .values((
                        ct_cart_lines::cart_id.eq(cart_id),
                        ct_cart_lines::product_id.eq(product_id),
                        ct_cart_lines::quantity.eq(quantity),
                    ))
                    .execute(c)
            });
        }

        fn cart_lines(&self, cart_ids: &[i64]) -> Vec<CartLine> {
            harness(self.pool(), "read cart lines", |c| {
                ct_cart_lines::table
                    .filter(ct_cart_lines::cart_id.eq_any(cart_ids))
                    .order((ct_cart_lines::cart_id, ct_cart_lines::product_id))
                    .select(CartLine::as_select())
                    .load(c)
            })
        }

        fn view_slots(&self, id: i64) -> Vec<(i32, i64)> {
            harness(self.pool(), "read view slots", |c| {
                ct_article_view_slots::table
                    .filter(ct_article_view_slots::id.eq(id))
                    .order(ct_article_view_slots::slot)
                    .select((ct_article_view_slots::slot, ct_article_view_slots::count))
                    .load(c)
            })
        }

        fn daily_views(&self, page_ids: &[i64]) -> Vec<(i64, i32, i64)> {
            harness(self.pool(), "read daily views", |c| {
                ct_daily_views::table
                    .filter(ct_daily_views::page_id.eq_any(page_ids))
                    .order((ct_daily_views::page_id, ct_daily_views::day))
                    .load(c)
            })
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Servers: URL from the environment, else a container, else a panic that says what to do.
// ---------------------------------------------------------------------------------------------

/// Containers started by this process; kept alive (never dropped) until the process exits.
static CONTAINERS: Mutex<Vec<Box<dyn std::any::Any + Send>>> = Mutex::new(Vec::new());

/// The URL from `env`, else from a container started by `start`; the error says what to do.
fn server_url(
    env: &str,
    what: &str,
    example: &str,
    start: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    if let Ok(url) = std::env::var(env) {
        if !url.trim().is_empty() {
            return Ok(url);
        }
    }
    start().map_err(|error| {
        format!(
            "{what} tests need a server: set {env}={example}, or install Docker so \
             testcontainers can start one (`source .ci/env.sh` does the former on Debian) \
             (error: {error})"
        )
    })
}

/// Starts a container of image `I` (kept until the process exits) and builds its URL from the
/// host and the host port mapped to `port`.
fn start_container<I>(port: u16, url: impl FnOnce(String, u16) -> String) -> Result<String, String>
where
    I: testcontainers_modules::testcontainers::Image + Default + Send + 'static,
{
    use testcontainers_modules::testcontainers::runners::SyncRunner;
    let container = I::default().start().map_err(|e| e.to_string())?;
    let host = container.get_host().map_err(|e| e.to_string())?;
    let port = container
        .get_host_port_ipv4(port)
        .map_err(|e| e.to_string())?;
    CONTAINERS.lock().unwrap().push(Box::new(container));
    Ok(url(host.to_string(), port))
}

/// The URL in `cell`, resolved once per process; panics with the resolution's message.
fn resolved(
    cell: &'static OnceLock<Result<String, String>>,
    resolve: impl FnOnce() -> Result<String, String>,
) -> &'static str {
    match cell.get_or_init(resolve) {
        Ok(url) => url,
        Err(message) => panic!("{message}"),
    }
}

/// The PostgreSQL URL the tests use (see the module documentation). Panics when there is none.
pub fn pg_url() -> &'static str {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    resolved(&URL, || {
        server_url(PG_ENV, "PostgreSQL", "postgres://user@host/db", || {
            start_container::<testcontainers_modules::postgres::Postgres>(5432, |host, port| {
                format!("postgres://postgres:postgres@{host}:{port}/postgres")
            })
        })
    })
}

/// Does [`pg_url`] ask for `default_transaction_isolation = serializable` (as `.ci/run`'s
/// second PostgreSQL run does)?
pub fn pg_serializable() -> bool {
    let decoded = pg_url()
        .replace("%20", " ")
        .replace("%3D", "=")
        .replace("%3d", "=");
    decoded.contains("default_transaction_isolation=serializable")
}

/// The MySQL/MariaDB URL the tests use (see the module documentation). Panics when there is none.
pub fn mysql_url() -> &'static str {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    resolved(&URL, || {
        server_url(MYSQL_ENV, "MySQL", "mysql://user@host/db", || {
            start_container::<testcontainers_modules::mariadb::Mariadb>(3306, |host, port| {
                format!("mysql://root@{host}:{port}/test")
            })
        })
    })
}

/// The Redis URL the tests use (see the module documentation). Panics when there is none.
pub fn redis_url() -> &'static str {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    resolved(&URL, || {
        server_url(REDIS_ENV, "Redis", "redis://host:6379/", || {
            start_container::<testcontainers_modules::redis::Redis>(6379, |host, port| {
                format!("redis://{host}:{port}/")
            })
        })
    })
}

/// A connection to the tests' Redis; panics with the server's message.
pub fn redis_connection() -> redis::Connection {
    let url = redis_url();
    redis::Client::open(url)
        .and_then(|client| client.get_connection())
        .unwrap_or_else(|e| {
            panic!("Redis: cannot connect to {url} (from {REDIS_ENV} or a container): {e}")
        })
}

/// A pool on `url`, after one direct connection proved the URL works (so a wrong URL fails at
/// once with the database's message, not after the pool's connection timeout), and after
/// `ddl` ran on that connection.
fn server_pool<C>(name: &str, env: &str, url: &str, ddl: &str) -> PoolOf<C>
where
    C: R2D2Connection + Send + 'static,
{
    let mut first = C::establish(url).unwrap_or_else(|e| {
        panic!("{name}: cannot connect to {url} (from {env} or a container): {e}")
    });
    first
        .batch_execute(ddl)
        .unwrap_or_else(|e| panic!("{name}: creating the test tables failed: {e}"));
    Pool::builder()
        .max_size(SERVER_POOL_SIZE)
        // No idle minimum: r2d2 refills one on its worker threads after each check-out, and a
        // test binary that exits while libpq is connecting there crashes in its exit handlers
        // (SIGSEGV or abort, about one run in three of a one-test binary, seen in CI).
        .min_idle(Some(0))
        // Tests share the pool; one that waits for a connection waits for others to finish.
        .connection_timeout(Duration::from_secs(600))
        .build(ConnectionManager::new(url))
        .unwrap_or_else(|e| panic!("{name}: building the pool on {url} failed: {e}"))
}

const PG_DDL: &str = "
CREATE TABLE IF NOT EXISTS counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept TEXT NOT NULL,
    flushed_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS counter_flushes_at ON counter_flushes (flushed_at);
CREATE TABLE IF NOT EXISTS ct_products (id BIGINT PRIMARY KEY, name TEXT NOT NULL,
    stock INTEGER NOT NULL, sold BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS ct_edges (id BIGINT PRIMARY KEY, small SMALLINT NOT NULL,
    medium INTEGER NOT NULL, big BIGINT NOT NULL, floored INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ct_accounts (id BIGINT PRIMARY KEY, balance_cents BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS ct_wallets (id BIGINT PRIMARY KEY, coins INTEGER NOT NULL);
CREATE COLLATION IF NOT EXISTS ct_ci (provider = icu, locale = 'und-u-ks-level2',
    deterministic = false);
CREATE TABLE IF NOT EXISTS ct_named (name TEXT COLLATE ct_ci PRIMARY KEY,
    balance BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS ck_ints (id BIGINT PRIMARY KEY, v INTEGER NOT NULL,
    w BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ck_texts (name TEXT COLLATE ct_ci PRIMARY KEY, v INTEGER NOT NULL,
    w BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ck_pairs (a BIGINT NOT NULL, b TEXT COLLATE ct_ci NOT NULL,
    v INTEGER NOT NULL, w BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (a, b));
CREATE TABLE IF NOT EXISTS ct_cart_lines (cart_id BIGINT NOT NULL, product_id BIGINT NOT NULL,
    quantity INTEGER NOT NULL, PRIMARY KEY (cart_id, product_id));
CREATE TABLE IF NOT EXISTS ct_daily_views (page_id BIGINT NOT NULL, day INTEGER NOT NULL,
    views BIGINT NOT NULL, PRIMARY KEY (page_id, day));
CREATE TABLE IF NOT EXISTS ct_articles (id BIGINT PRIMARY KEY, views BIGINT NOT NULL,
    likes BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS ct_article_view_slots (id BIGINT NOT NULL, slot INTEGER NOT NULL,
    count BIGINT NOT NULL, PRIMARY KEY (id, slot));
CREATE TABLE IF NOT EXISTS ct_article_like_slots (id BIGINT NOT NULL, slot INTEGER NOT NULL,
    count BIGINT NOT NULL, PRIMARY KEY (id, slot));
";

const MYSQL_DDL: &str = "
CREATE TABLE IF NOT EXISTS counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept LONGTEXT NOT NULL,
    flushed_at BIGINT NOT NULL, INDEX counter_flushes_at (flushed_at)) ENGINE = InnoDB;
ALTER TABLE counter_flushes MODIFY kept LONGTEXT NOT NULL;
CREATE TABLE IF NOT EXISTS ct_products (id BIGINT PRIMARY KEY, name VARCHAR(255) NOT NULL,
    stock INT NOT NULL, sold BIGINT NOT NULL) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ct_edges (id BIGINT PRIMARY KEY, small SMALLINT NOT NULL,
    medium INT NOT NULL, big BIGINT NOT NULL, floored INT NOT NULL) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ct_accounts (id BIGINT PRIMARY KEY, balance_cents BIGINT NOT NULL)
    ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ct_wallets (id BIGINT PRIMARY KEY, coins INT NOT NULL) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ct_unsigned (id BIGINT PRIMARY KEY, u32v INT UNSIGNED NOT NULL,
    u64v BIGINT UNSIGNED NOT NULL) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ct_named (
    name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY,
    balance BIGINT NOT NULL) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ck_ints (id BIGINT PRIMARY KEY, v INT NOT NULL,
    w BIGINT NOT NULL DEFAULT 0) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ck_texts (
    name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY,
    v INT NOT NULL, w BIGINT NOT NULL DEFAULT 0) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ck_pairs (a BIGINT NOT NULL,
    b VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL,
    v INT NOT NULL, w BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (a, b)) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ct_cart_lines (cart_id BIGINT NOT NULL, product_id BIGINT NOT NULL,
    quantity INT NOT NULL, PRIMARY KEY (cart_id, product_id)) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ct_daily_views (page_id BIGINT NOT NULL, day INT NOT NULL,
    views BIGINT NOT NULL, PRIMARY KEY (page_id, day)) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ct_articles (id BIGINT PRIMARY KEY, views BIGINT NOT NULL,
    likes BIGINT NOT NULL) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ct_article_view_slots (id BIGINT NOT NULL, slot INT NOT NULL,
    count BIGINT NOT NULL, PRIMARY KEY (id, slot)) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ct_article_like_slots (id BIGINT NOT NULL, slot INT NOT NULL,
    count BIGINT NOT NULL, PRIMARY KEY (id, slot)) ENGINE = InnoDB;
";

const SQLITE_DDL: &str = "
CREATE TABLE IF NOT EXISTS counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept TEXT NOT NULL,
    flushed_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS counter_flushes_at ON counter_flushes (flushed_at);
CREATE TABLE IF NOT EXISTS ct_products (id BIGINT PRIMARY KEY, name TEXT NOT NULL,
    stock INTEGER NOT NULL, sold BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS ct_edges (id BIGINT PRIMARY KEY, small SMALLINT NOT NULL,
    medium INTEGER NOT NULL, big BIGINT NOT NULL, floored INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ct_accounts (id BIGINT PRIMARY KEY, balance_cents BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS ct_wallets (id BIGINT PRIMARY KEY, coins INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ct_named (name TEXT COLLATE NOCASE PRIMARY KEY,
    balance BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS ck_ints (id BIGINT PRIMARY KEY, v INTEGER NOT NULL,
    w BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ck_texts (name TEXT COLLATE NOCASE PRIMARY KEY, v INTEGER NOT NULL,
    w BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ck_pairs (a BIGINT NOT NULL, b TEXT COLLATE NOCASE NOT NULL,
    v INTEGER NOT NULL, w BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (a, b));
CREATE TABLE IF NOT EXISTS ct_cart_lines (cart_id BIGINT NOT NULL, product_id BIGINT NOT NULL,
    quantity INTEGER NOT NULL, PRIMARY KEY (cart_id, product_id));
CREATE TABLE IF NOT EXISTS ct_daily_views (page_id BIGINT NOT NULL, day INTEGER NOT NULL,
    views BIGINT NOT NULL, PRIMARY KEY (page_id, day));
CREATE TABLE IF NOT EXISTS ct_articles (id BIGINT PRIMARY KEY, views BIGINT NOT NULL,
    likes BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS ct_article_view_slots (id BIGINT NOT NULL, slot INTEGER NOT NULL,
    count BIGINT NOT NULL, PRIMARY KEY (id, slot));
CREATE TABLE IF NOT EXISTS ct_article_like_slots (id BIGINT NOT NULL, slot INTEGER NOT NULL,
    count BIGINT NOT NULL, PRIMARY KEY (id, slot));
";

/// A server backend: a process-wide pool (the tables are created when it is), shared by every
/// test of the process, each test on rows of its own.
macro_rules! server_db {
    ($(#[$doc:meta])* $name:ident, $pool_fn:ident, $conn:ty, $label:literal, $env:expr, $url:expr, $ddl:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            pool: PoolOf<$conn>,
        }

        #[doc = concat!("The process-wide ", $label, " pool; the tables are created when it is.")]
        pub fn $pool_fn() -> PoolOf<$conn> {
            static POOL: OnceLock<PoolOf<$conn>> = OnceLock::new();
            POOL.get_or_init(|| server_pool($label, $env, $url, $ddl)).clone()
        }

        impl TestDb for $name {
            const NAME: &'static str = $label;
            const ITERATIONS: usize = 200;
            type Conn = $conn;
            type Pooled = PooledConnection<ConnectionManager<$conn>>;

            fn open() -> Self {
                $name { pool: $pool_fn() }
            }

            fn pool(&self) -> &PoolOf<$conn> {
                &self.pool
            }

            fn lock_product_sql(id: i64) -> String {
                format!("SELECT stock FROM ct_products WHERE id = {id} FOR UPDATE")
            }

            row_helpers!();
        }
    };
}

server_db!(
    /// PostgreSQL: the process-wide pool on [`pg_url`].
    Postgres, pg_pool, PgConnection, "PostgreSQL", PG_ENV, pg_url(), PG_DDL
);
server_db!(
    /// MySQL/MariaDB: the process-wide pool on [`mysql_url`].
    Mysql, mysql_pool, MysqlConnection, "MySQL", MYSQL_ENV, mysql_url(), MYSQL_DDL
);

// ---------------------------------------------------------------------------------------------
// SQLite: one temporary file per test.
// ---------------------------------------------------------------------------------------------

/// SQL run on every new pooled connection, then a probe that must give `expected` on that
/// same connection, so a pool never hands out a connection whose settings did not take.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Run first (may be empty).
    pub sql: String,
    /// A query selecting one text column `t`, and its expected answer.
    pub probe: (String, String),
}

#[derive(QueryableByName)]
struct Probe {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

impl<C> CustomizeConnection<C, diesel::r2d2::Error> for Setup
where
    C: R2D2Connection + Send + 'static,
    diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, Probe>,
{
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
        let error = diesel::r2d2::Error::QueryError;
        settle(|| conn.batch_execute(&self.sql)).map_err(error)?;
        let (query, expected) = &self.probe;
        let seen = settle(|| diesel::sql_query(query).get_result::<Probe>(conn))
            .map_err(error)?
            .t;
        if &seen == expected {
            return Ok(());
        }
        Err(error(diesel::result::Error::QueryBuilderError(
            format!("connection settings did not take: {query} gave {seen}, not {expected}").into(),
        )))
    }
}

/// SQLite: a fresh database file in a temporary directory, removed when the test ends.
pub struct Sqlite {
    pool: PoolOf<SqliteConnection>,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Sqlite {
    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Like [`TestDb::open`], but the file stays in SQLite's default rollback journal
    /// (`journal_mode = DELETE`, where a reader's shared lock blocks a writer's commit).
    pub fn open_rollback_journal() -> Self {
        Self::open_with("DELETE", None)
    }

    /// A fresh file with the tables, in `journal` mode (`DELETE`, `TRUNCATE`, `WAL`), every
    /// pooled connection with `busy_timeout_ms` (none: the library alone copes with a busy
    /// file), each connection checked to have both.
    pub fn open_with(journal: &str, busy_timeout_ms: Option<u32>) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("counter-tests.sqlite3");
        let url = path.to_str().expect("UTF-8 temporary path").to_owned();
        // WAL is a property of the file: switch it (and create the tables) on one connection
        // before the pool opens several.
        let mut first = SqliteConnection::establish(&url).expect("create the SQLite file");
        first
            .batch_execute(&format!("PRAGMA journal_mode = {journal};"))
            .and_then(|()| first.batch_execute(SQLITE_DDL))
            .expect("create the SQLite tables");
        drop(first);
        // The rollback journal modes are per connection: every connection sets its own.
        let mut sql = String::new();
        if journal != "WAL" {
            sql += &format!("PRAGMA journal_mode = {journal};");
        }
        if let Some(ms) = busy_timeout_ms {
            sql += &format!("PRAGMA busy_timeout = {ms};");
        }
        let probe = (
            "SELECT journal_mode || '/' || (SELECT timeout FROM pragma_busy_timeout) AS t \
             FROM pragma_journal_mode"
                .to_owned(),
            format!(
                "{}/{}",
                journal.to_lowercase(),
                busy_timeout_ms.unwrap_or(0)
            ),
        );
        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_customizer(Box::new(Setup { sql, probe }))
            .build(ConnectionManager::new(url))
            .expect("SQLite pool");
        Sqlite {
            pool,
            path,
            _dir: dir,
        }
    }
}

impl TestDb for Sqlite {
    const NAME: &'static str = "SQLite";
    const ITERATIONS: usize = 100;
    type Conn = SqliteConnection;
    type Pooled = PooledConnection<ConnectionManager<SqliteConnection>>;

    fn open() -> Self {
        Self::open_with("WAL", None)
    }

    fn pool(&self) -> &PoolOf<SqliteConnection> {
        &self.pool
    }

    /// Any write takes SQLite's one database write lock.
    fn lock_product_sql(id: i64) -> String {
        format!("UPDATE ct_products SET name = name WHERE id = {id}")
    }

    row_helpers!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe is what proves every cell's settings: a pool whose setting did not take
    /// hands out no connection.
    #[test]
    fn a_connection_whose_settings_did_not_take_is_refused() {
        let db = Sqlite::open_rollback_journal();
        let claims_wal = Setup {
            sql: String::new(),
            probe: (
                "SELECT journal_mode AS t FROM pragma_journal_mode".to_owned(),
                "wal".to_owned(),
            ),
        };
        let pool: PoolOf<SqliteConnection> = Pool::builder()
            .max_size(1)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_millis(500))
            .connection_customizer(Box::new(claims_wal))
            .build_unchecked(ConnectionManager::new(db.path().to_str().unwrap()));
        let refused = pool.get().map(|_| ()).unwrap_err().to_string();
        assert!(refused.contains("gave delete, not wal"), "{refused}");
    }
}
