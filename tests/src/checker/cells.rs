//! The database configurations the checker runs on: a pool whose every connection is set up
//! the way the cell says, and checked to be (`db::Setup`). The tables are the suite's own
//! (`db.rs`), created where every other test creates them.

use std::time::Duration;

use diesel::r2d2::{ConnectionManager, Pool};
use diesel::{MysqlConnection, PgConnection};

use super::{CheckConn, THREADS};
use crate::db::{mysql_pool, mysql_url, pg_pool, pg_url, Setup, Sqlite};

/// SQLite: a fresh file in `journal` mode (`DELETE`, `TRUNCATE`, `WAL`), with or without a busy
/// timeout the caller set (the library must cope without one).
pub fn sqlite(journal: &str, busy_timeout_ms: Option<u32>) -> Sqlite {
    Sqlite::open_with(journal, busy_timeout_ms)
}

/// PostgreSQL with `isolation` (`read committed`, `repeatable read`, `serializable`) as every
/// connection's default: what a server configured so, or CockroachDB, gives every statement.
pub fn postgres(isolation: &str) -> Pool<ConnectionManager<PgConnection>> {
    drop(pg_pool()); // the tables
    cell_pool(
        pg_url(),
        Setup {
            sql: format!("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {isolation};"),
            probe: (
                "SELECT current_setting('transaction_isolation') AS t".to_owned(),
                isolation.to_owned(),
            ),
        },
    )
}

/// MariaDB/MySQL with `sql_mode` and `isolation` (`REPEATABLE READ`, `READ COMMITTED`,
/// `SERIALIZABLE`) on every connection.
pub fn mysql(sql_mode: &str, isolation: &str) -> Pool<ConnectionManager<MysqlConnection>> {
    drop(mysql_pool()); // the tables
    cell_pool(
        mysql_url(),
        Setup {
            sql: format!(
                "SET SESSION sql_mode = '{sql_mode}'; \
                 SET SESSION TRANSACTION ISOLATION LEVEL {isolation};"
            ),
            probe: (
                "SELECT CONCAT(@@SESSION.sql_mode, '/', @@SESSION.tx_isolation) AS t".to_owned(),
                format!("{sql_mode}/{}", isolation.replace(' ', "-")),
            ),
        },
    )
}

/// One connection per thread and one for the checker, each through `setup`.
fn cell_pool<C: CheckConn>(url: &str, setup: Setup) -> Pool<ConnectionManager<C>>
where
    Setup: diesel::r2d2::CustomizeConnection<C, diesel::r2d2::Error>,
{
    let pool = Pool::builder()
        .max_size(THREADS as u32 + 2)
        // See `db::server_pool`: no refills on r2d2's threads while the process may exit.
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(120))
        .connection_customizer(Box::new(setup))
        .build(ConnectionManager::new(url))
        .unwrap_or_else(|e| panic!("checker: a pool on {url}: {e}"));
    drop(
        pool.get()
            .expect("checker: a connection with the cell's settings"),
    );
    pool
}
