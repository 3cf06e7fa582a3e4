//! SQLite: one temporary file per test, every pooled connection checked to have the journal
//! mode and busy timeout it was given.

use super::ddl::SQLITE_DDL;
// Everything the parent names: `row_helpers!` expands here and uses it.
use super::*;

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

    const NOW: &'static str = "strftime('%Y-%m-%d %H:%M:%f', 'now')";

    fn micros(expr: &str) -> String {
        format!("CAST(ROUND((julianday({expr}) - 2440587.5) * 86400000.0) AS INTEGER) * 1000")
    }

    /// Any write takes SQLite's one database write lock.
    fn lock_product_sql(id: i64) -> String {
        format!("UPDATE ct_products SET name = name WHERE id = {id}")
    }

    fn lock_waiters(_: &mut SqliteConnection) -> i64 {
        panic!("SQLite has no row locks to wait for")
    }

    fn gate(&self) -> crate::gate::Gate {
        crate::gate::Gate::sqlite(self.path.to_str().expect("UTF-8 path"))
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
