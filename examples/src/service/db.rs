//! The service's tables and models, and the database it runs on: a temporary SQLite file by
//! default, or PostgreSQL given a URL, each behind a deadpool of diesel-async connections.

use std::fmt;

use counter_core::AtomicField;
use diesel::prelude::*;
use diesel::SqliteConnection;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

/// Errors of setting the service up (opening the database, creating tables, binding).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

diesel::table! { svc_products (id) { id -> BigInt, stock -> Integer, sold -> BigInt, } }
diesel::table! { svc_articles (id) { id -> BigInt, views -> BigInt, } }
diesel::table! { svc_pages (id) { id -> BigInt, views -> BigInt, } }

/// The tables, on both databases (`svc_` so that nothing else in a shared database is touched).
const TABLES: &str = "\
    CREATE TABLE IF NOT EXISTS svc_products \
        (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL, sold BIGINT NOT NULL); \
    CREATE TABLE IF NOT EXISTS svc_articles (id BIGINT PRIMARY KEY, views BIGINT NOT NULL); \
    CREATE TABLE IF NOT EXISTS svc_pages (id BIGINT PRIMARY KEY, views BIGINT NOT NULL); \
    CREATE TABLE IF NOT EXISTS svc_flushes \
        (flush_id VARCHAR(64) PRIMARY KEY, kept TEXT NOT NULL, flushed_at BIGINT NOT NULL);";

/// A product on sale: `stock` never goes below zero, `sold` counts what left the shelves.
#[derive(Queryable, Identifiable, AtomicField)]
#[diesel(table_name = svc_products)]
pub struct Product {
    /// The key, the `{id}` of the routes.
    pub id: i64,
    /// Units on the shelves.
    #[atomic(min = 0)]
    pub stock: i32,
    /// Units sold so far.
    #[atomic]
    pub sold: i64,
}

/// A blog article whose page views are counted.
#[derive(Queryable, Identifiable, AtomicField)]
#[diesel(table_name = svc_articles)]
pub struct Article {
    /// The key, the `{id}` of the route.
    pub id: i64,
    /// Views so far.
    #[atomic]
    pub views: i64,
}

/// A page whose views are counted in Redis first and moved into `views` by a flusher
/// (`--redis-url`; see [`RedisViews`](super::RedisViews)).
#[derive(Queryable, Identifiable, AtomicField)]
#[diesel(table_name = svc_pages)]
pub struct Page {
    /// The key, the `{id}` of the routes.
    pub id: i64,
    /// Views flushed so far.
    #[atomic]
    pub views: i64,
}

/// The Redis counter's ledger of flushed batches (see `RedisCounter::ledger_table`).
pub const FLUSH_LEDGER: &str = "svc_flushes";

/// A deadpool of `AsyncPgConnection`s.
pub type PgPool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
/// A deadpool of SQLite connections, each run on tokio's blocking threads by diesel-async.
pub type SqlitePool =
    diesel_async::pooled_connection::deadpool::Pool<SyncConnectionWrapper<SqliteConnection>>;

/// The pool the handlers take connections from. Cloning it clones a handle: the clones share
/// the connections.
#[derive(Clone)]
pub enum Backend {
    /// SQLite (the default).
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs `$body` with `$conn`, a connection checked out of `$backend`'s pool, written once and
/// compiled once per backend (the operations are generic; what a spawned future may hold is
/// proven on concrete types). A failed checkout returns `Err($on_pool_error(e))`.
macro_rules! with_connection {
    ($backend:expr, $on_pool_error:expr, |$conn:ident| $body:expr) => {
        match $backend {
            $crate::service::Backend::Sqlite(pool) => {
                let mut $conn = pool.get().await.map_err($on_pool_error)?;
                $body
            }
            $crate::service::Backend::Postgres(pool) => {
                let mut $conn = pool.get().await.map_err($on_pool_error)?;
                $body
            }
        }
    };
}
pub(crate) use with_connection;

/// Connections in the SQLite pool: one writes at a time anyway, and every connection waits for
/// the others' write lock (counter-core polls a busy database by itself, no `busy_timeout`).
const SQLITE_CONNECTIONS: usize = 8;
/// Connections in the PostgreSQL pool.
const PG_CONNECTIONS: usize = 16;

/// The database of a running service: its pool, and the temporary SQLite file if it has one
/// (removed when this value is dropped).
pub struct Database {
    backend: Backend,
    description: String,
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    /// PostgreSQL at `url` when one is given, else a fresh temporary SQLite file.
    pub async fn open(url: Option<&str>) -> Result<Self, BoxError> {
        match url {
            Some(url) => Self::postgres(url).await,
            None => Self::sqlite_temp().await,
        }
    }

    /// A new SQLite file in a temporary directory, in WAL mode, with the tables created.
    pub async fn sqlite_temp() -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("service.db");
        let url = path
            .to_str()
            .ok_or("temporary path is not UTF-8")?
            .to_owned();
        // WAL once, before the pool opens connections concurrently (the journal mode is a
        // property of the file; changing it needs the database to itself).
        let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(&url).await?;
        conn.batch_execute("PRAGMA journal_mode = WAL;").await?;
        conn.batch_execute(TABLES).await?;
        drop(conn);
        // Per connection: WAL's usual companion, no fsync per commit.
        let mut config = ManagerConfig::default();
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            Box::pin(async move {
                let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(&url).await?;
                conn.batch_execute("PRAGMA synchronous = NORMAL;")
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
        let manager = AsyncDieselConnectionManager::new_with_config(url, config);
        let pool = SqlitePool::builder(manager)
            .max_size(SQLITE_CONNECTIONS)
            .build()?;
        Ok(Database {
            backend: Backend::Sqlite(pool),
            description: format!("SQLite file {} (WAL)", path.display()),
            _dir: Some(dir),
        })
    }

    /// PostgreSQL at `url`, with the tables created if they do not exist yet.
    pub async fn postgres(url: &str) -> Result<Self, BoxError> {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
        let pool = PgPool::builder(manager).max_size(PG_CONNECTIONS).build()?;
        let mut conn = pool.get().await?;
        // Two services starting at once would race in `CREATE TABLE IF NOT EXISTS` (a unique
        // violation in the catalog): serialize them on an advisory lock.
        conn.batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock(7305512063); {TABLES} COMMIT;"
        ))
        .await?;
        drop(conn);
        Ok(Database {
            backend: Backend::Postgres(pool),
            description: format!("PostgreSQL at {}", redact(url)),
            _dir: None,
        })
    }

    /// The pool, for [`router`](super::router).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Adds product `id` with `stock` units, none sold; `false` if it already exists (left as
    /// it is).
    pub async fn add_product(&self, id: i64, stock: i32) -> Result<bool, BoxError> {
        use svc_products::dsl;
        let row = (dsl::id.eq(id), dsl::stock.eq(stock), dsl::sold.eq(0_i64));
        let inserted = with_connection!(&self.backend, BoxError::from, |conn| {
            diesel::insert_into(svc_products::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(&mut conn)
                .await?
        });
        Ok(inserted == 1)
    }

    /// Adds page `id` with no views; `false` if it already exists (left as it is).
    pub async fn add_page(&self, id: i64) -> Result<bool, BoxError> {
        use svc_pages::dsl;
        let row = (dsl::id.eq(id), dsl::views.eq(0_i64));
        let inserted = with_connection!(&self.backend, BoxError::from, |conn| {
            diesel::insert_into(svc_pages::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(&mut conn)
                .await?
        });
        Ok(inserted == 1)
    }

    /// Adds article `id` with no views; `false` if it already exists (left as it is).
    pub async fn add_article(&self, id: i64) -> Result<bool, BoxError> {
        use svc_articles::dsl;
        let row = (dsl::id.eq(id), dsl::views.eq(0_i64));
        let inserted = with_connection!(&self.backend, BoxError::from, |conn| {
            diesel::insert_into(svc_articles::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(&mut conn)
                .await?
        });
        Ok(inserted == 1)
    }
}

/// "SQLite file …" or "PostgreSQL at …" (without the password).
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// `url` with the password of its user info, if any, replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    // The last `@` of the authority ends the user info (a password may hold another).
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => {
            let tail = &rest[authority.len()..];
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_the_password_only() {
        use super::redact;
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            redact("postgres://u:p@ss@h:5432/db?x=a@b"),
            "postgres://u:***@h:5432/db?x=a@b"
        );
    }
}
