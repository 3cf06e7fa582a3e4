//! The server backends: a URL from the environment, else a container, else a panic that says
//! what to do; one process-wide pool per server, the tables created when it is.

use super::ddl::{MYSQL_DDL, PG_DDL};
// Everything the parent names: `row_helpers!` expands here and uses it.
use super::*;
use std::sync::PoisonError;
use std::time::Instant;

/// Runs `read`, a query of InnoDB's `information_schema.innodb_trx`, `innodb_locks` or
/// `innodb_lock_waits`, at least 150 ms after the last such read of this process ended, one
/// read at a time.
///
/// MariaDB answers those tables from a cache it refreshes only when nobody read it for 100 ms
/// (`CACHE_MIN_IDLE_TIME` in trx0i_s.cc). Two tests each polling every 150 ms, out of phase,
/// kept it from ever going idle: neither saw the lock wait it waited for, and both failed
/// after 30 s in CI. Paced here, every read finds the cache idle and refreshes it (the test
/// binaries run one at a time, so no other process reads it meanwhile).
pub fn information_schema_read<T>(read: impl FnOnce() -> T) -> T {
    const IDLE: Duration = Duration::from_millis(150);
    static LAST_READ: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST_READ.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(idle) = last.and_then(|at| IDLE.checked_sub(at.elapsed())) {
        std::thread::sleep(idle);
    }
    let result = read();
    *last = Some(Instant::now());
    result
}

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

/// The tests' async Redis connection settings: redis-rs's defaults (a 500 ms response
/// timeout, 1 s to connect) fail calls of a busy 2-core machine running the whole suite (seen:
/// `Redis(timed out)` in adds that Redis answered late); a user under such load would raise
/// them too. The library's own behaviour when Redis is slow or down is tested apart.
pub fn redis_async_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(30)))
        .set_connection_timeout(Some(Duration::from_secs(10)))
}

/// [`redis_async_config`]'s timeouts for a `ConnectionManager` (the async flusher's
/// connection): its default 500 ms response timeout failed flushes on the busy 2-core machine
/// running the whole suite ("redis: timed out" in `.ci/run`).
pub fn redis_manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(30)))
        .set_connection_timeout(Some(Duration::from_secs(10)))
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

/// A server backend: a process-wide pool (the tables are created when it is), shared by every
/// test of the process, each test on rows of its own.
macro_rules! server_db {
    ($(#[$doc:meta])* $name:ident, $pool_fn:ident, $conn:ty, $label:literal, $env:expr, $url:expr, $ddl:expr, $port:expr, $waiters:expr, $now:expr, $micros:expr) => {
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

            const NOW: &'static str = $now;

            fn micros(expr: &str) -> String {
                $micros.replace("{}", expr)
            }

            fn lock_product_sql(id: i64) -> String {
                format!("SELECT stock FROM ct_products WHERE id = {id} FOR UPDATE")
            }

            fn gate(&self) -> crate::gate::Gate {
                crate::gate::Gate::proxy(&$url, $port)
            }

            fn lock_waiters(conn: &mut $conn) -> i64 {
                #[derive(QueryableByName)]
                struct Waiters {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                information_schema_read(|| {
                    diesel::sql_query($waiters)
                        .get_result::<Waiters>(conn)
                        .unwrap_or_else(|e| panic!("{}: lock waiters: {e}", $label))
                        .n
                })
            }

            row_helpers!();
        }

        impl WideRows for $name {
            fn new_wide(&self, amount: Decimal<18, 2>) -> i64 {
                let id = next_id();
                harness(self.pool(), "insert wide", |c| {
                    diesel::insert_into(ct_wide::table)
                        .values((ct_wide::id.eq(id), ct_wide::amount.eq(amount)))
                        .execute(c)
                });
                id
            }

            fn wide(&self, id: i64) -> Decimal<18, 2> {
                harness(self.pool(), "read wide", |c| {
                    ct_wide::table.find(id).select(ct_wide::amount).first(c)
                })
            }
        }
    };
}

server_db!(
    /// PostgreSQL: the process-wide pool on [`pg_url`].
    Postgres, pg_pool, PgConnection, "PostgreSQL", PG_ENV, pg_url(), PG_DDL, 5432,
    // `pg_locks`, not `pg_stat_activity`: inside a transaction the latter is a snapshot taken
    // at its first read, which never shows a backend that connected after it.
    "SELECT count(*)::bigint AS n FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))",
    // A `TIMESTAMP` column takes `clock_timestamp()` in the session's time zone: so does this.
    "clock_timestamp()::timestamp",
    "(EXTRACT(EPOCH FROM {}) * 1000000)::bigint"
);
server_db!(
    /// MySQL/MariaDB: the process-wide pool on [`mysql_url`].
    Mysql, mysql_pool, MysqlConnection, "MySQL", MYSQL_ENV, mysql_url(), MYSQL_DDL, 3306,
    "SELECT CAST(COUNT(*) AS SIGNED) AS n FROM information_schema.innodb_lock_waits w \
     JOIN information_schema.innodb_trx t ON t.trx_id = w.blocking_trx_id \
     WHERE t.trx_mysql_thread_id = CONNECTION_ID()",
    "SYSDATE(6)",
    "CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {}) AS SIGNED)"
);
