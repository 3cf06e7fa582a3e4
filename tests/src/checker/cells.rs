//! The database configurations the checker runs on, each a pool whose every connection is set
//! up the way the cell says (and checked to be).

use std::sync::OnceLock;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::{Connection, MysqlConnection, PgConnection, SqliteConnection};

use super::{CheckConn, THREADS};
use crate::db::{mysql_url, pg_url};

/// The checker's pools: one connection per thread and one for the checker itself.
fn pool<C: CheckConn>(url: &str, setup: Setup) -> Pool<ConnectionManager<C>> {
    Pool::builder()
        .max_size(THREADS as u32 + 2)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(120))
        .connection_customizer(Box::new(setup))
        .build(ConnectionManager::new(url))
        .unwrap_or_else(|e| panic!("checker: a pool on {url}: {e}"))
}

/// SQL run on every new connection of a cell's pool, and a probe that checks, on that same
/// connection, that the setting took: `(query, expected answer)`.
#[derive(Debug, Clone)]
struct Setup {
    sql: String,
    probe: Option<(String, String)>,
}

impl<C: CheckConn> CustomizeConnection<C, diesel::r2d2::Error> for Setup {
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
        let error = diesel::r2d2::Error::QueryError;
        harness_wait(|| conn.batch_execute(&self.sql)).map_err(error)?;
        let Some((query, expected)) = &self.probe else {
            return Ok(());
        };
        let seen = harness_wait(|| conn.text(query)).map_err(error)?;
        if &seen == expected {
            return Ok(());
        }
        Err(error(diesel::result::Error::QueryBuilderError(
            format!("the cell's settings did not take: {query} gave {seen}, not {expected}").into(),
        )))
    }
}

/// Runs one statement of the harness (not of the library under test), waiting out a busy
/// SQLite file (another connection writing) for up to 10 s.
pub(crate) fn harness_wait<T>(
    mut f: impl FnMut() -> diesel::QueryResult<T>,
) -> diesel::QueryResult<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Err(e) if e.to_string().contains("locked") && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            result => return result,
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// SQLite: a fresh file per cell, in `journal` mode, with or without a busy timeout the
/// caller set (the library must cope without one).
pub struct SqliteCell {
    pub pool: Pool<ConnectionManager<SqliteConnection>>,
    _dir: tempfile::TempDir,
}

const SQLITE_DDL: &str = "
CREATE TABLE ck_counters (id BIGINT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE ck_names (name TEXT COLLATE NOCASE PRIMARY KEY, v INTEGER NOT NULL);
";

impl SqliteCell {
    /// `journal`: `DELETE` (SQLite's default), `TRUNCATE` or `WAL`.
    pub fn open(journal: &str, busy_timeout_ms: Option<u32>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = dir.path().join("checker.sqlite3");
        let url = url.to_str().expect("a UTF-8 path").to_owned();
        let mut first = SqliteConnection::establish(&url).expect("create the SQLite file");
        first
            .batch_execute(&format!("PRAGMA journal_mode = {journal};"))
            .and_then(|()| first.batch_execute(SQLITE_DDL))
            .expect("the checker's tables");
        drop(first);
        // WAL is kept in the file (set above, once); the rollback journal modes are per
        // connection, so every connection sets its own.
        let mut setup = String::new();
        if journal != "WAL" {
            setup += &format!("PRAGMA journal_mode = {journal};");
        }
        if let Some(ms) = busy_timeout_ms {
            setup += &format!("PRAGMA busy_timeout = {ms};");
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
        let pool = pool::<SqliteConnection>(
            &url,
            Setup {
                sql: setup,
                probe: Some(probe),
            },
        );
        drop(pool.get().expect("a connection"));
        SqliteCell { pool, _dir: dir }
    }
}

// ---------------------------------------------------------------------------------------------

const PG_DDL: &str = "
CREATE COLLATION IF NOT EXISTS ct_ci (provider = icu, locale = 'und-u-ks-level2',
    deterministic = false);
CREATE TABLE IF NOT EXISTS ck_counters (id BIGINT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ck_names (name TEXT COLLATE ct_ci PRIMARY KEY, v INTEGER NOT NULL);
";

/// PostgreSQL with `isolation` (`read committed`, `repeatable read`, `serializable`) as every
/// connection's default: what a server configured so, or CockroachDB, gives every statement.
pub fn postgres(isolation: &str) -> Pool<ConnectionManager<PgConnection>> {
    static DDL: OnceLock<()> = OnceLock::new();
    server_cell(
        pg_url(),
        (&DDL, PG_DDL),
        format!("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {isolation};"),
        "SELECT current_setting('transaction_isolation') AS t",
        isolation.to_owned(),
    )
}

// ---------------------------------------------------------------------------------------------

const MYSQL_DDL: &str = "
CREATE TABLE IF NOT EXISTS ck_counters (id BIGINT PRIMARY KEY, v INT NOT NULL) ENGINE = InnoDB;
CREATE TABLE IF NOT EXISTS ck_names (
    name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY,
    v INT NOT NULL) ENGINE = InnoDB;
";

/// MariaDB/MySQL with `sql_mode` and `isolation` (`REPEATABLE READ`, `READ COMMITTED`) on
/// every connection.
pub fn mysql(sql_mode: &str, isolation: &str) -> Pool<ConnectionManager<MysqlConnection>> {
    static DDL: OnceLock<()> = OnceLock::new();
    server_cell(
        mysql_url(),
        (&DDL, MYSQL_DDL),
        format!(
            "SET SESSION sql_mode = '{sql_mode}'; \
             SET SESSION TRANSACTION ISOLATION LEVEL {isolation};"
        ),
        "SELECT CONCAT(@@SESSION.sql_mode, '/', @@SESSION.tx_isolation) AS t",
        format!("{sql_mode}/{}", isolation.replace(' ', "-")),
    )
}

/// A server cell: the tables created once per process (`ddl`), then a pool whose connections
/// run `setup`, each checked by `probe` answering `expected`.
fn server_cell<C: CheckConn>(
    url: &str,
    ddl: (&OnceLock<()>, &str),
    setup: String,
    probe: &str,
    expected: String,
) -> Pool<ConnectionManager<C>> {
    let (once, ddl) = ddl;
    once.get_or_init(|| {
        C::establish(url)
            .map_err(|e| e.to_string())
            .and_then(|mut c| c.batch_execute(ddl).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| panic!("checker: the tables on {url}: {e}"))
    });
    let pool = pool::<C>(
        url,
        Setup {
            sql: setup,
            probe: Some((probe.to_owned(), expected)),
        },
    );
    drop(pool.get().expect("a connection"));
    pool
}
