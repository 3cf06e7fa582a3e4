//! What the examples share: a throwaway SQLite database file behind an r2d2 pool.
//!
//! The examples keep their models and their story in their own file; only the plumbing of a
//! file database that several threads can write at once lives here.

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::SqliteConnection;

pub mod http;
pub mod service;

/// A pool of connections to one SQLite file, as a web app would have.
pub type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;

/// Runs on every new pooled connection.
#[derive(Debug)]
struct Pragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // WAL: readers never wait for the writer, and the writer never waits for readers.
        // synchronous = NORMAL is the usual companion of WAL (no fsync per commit).
        // Deliberately no `PRAGMA busy_timeout`: with several writers SQLite answers
        // "database is locked" at once, and counter-core retries that by itself.
        conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// A database file in a fresh temporary directory, removed when this value is dropped.
pub struct TempDb {
    /// The pool; share it with threads by reference (or clone it: clones share the connections).
    pub pool: SqlitePool,
    _dir: tempfile::TempDir,
}

impl TempDb {
    /// Creates an empty database file and opens a pool of `connections` to it.
    pub fn new(connections: u32) -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("example.db");
        // Create the file and switch it to WAL once, before the pool opens its connections
        // concurrently (changing the journal mode needs the database to itself).
        let url = path.to_str().ok_or("temporary path is not UTF-8")?;
        {
            use diesel::Connection;
            let mut conn = SqliteConnection::establish(url)?;
            conn.batch_execute("PRAGMA journal_mode = WAL;")?;
        }
        let pool = Pool::builder()
            .max_size(connections)
            .connection_customizer(Box::new(Pragmas))
            .build(ConnectionManager::<SqliteConnection>::new(url))?;
        Ok(TempDb { pool, _dir: dir })
    }
}

/// Is this the error SQLite gives a writer when another connection holds the write lock?
pub fn is_busy(error: &diesel::result::Error) -> bool {
    matches!(error, diesel::result::Error::DatabaseError(_, info)
        if info.message().contains("database is locked"))
}

/// A connection checked out of a [`SqlitePool`].
pub type PooledSqlite = diesel::r2d2::PooledConnection<ConnectionManager<SqliteConnection>>;

/// The workspace README, whose Rust snippets run as doctests of this crate
/// (`cargo test -p counter-examples --doc`), so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The derive's documentation (`counter-derive/doc/derive.md`), whose example runs here.
#[cfg(doctest)]
#[doc = include_str!("../../counter-derive/doc/derive.md")]
pub struct DeriveDoctests;

/// The documentation of `#[derive(CounterCache)]` (`counter-derive/doc/counter_cache.md`),
/// whose example runs here.
#[cfg(doctest)]
#[doc = include_str!("../../counter-derive/doc/counter_cache.md")]
pub struct DeriveCacheDoctests;

/// The guide chapters of `counter-core/doc/` (reference the README links to), whose Rust
/// snippets run here as they do in the README.
#[cfg(doctest)]
mod guide_doctests {
    #[doc = include_str!("../../counter-core/doc/fields.md")]
    pub struct Fields;
    #[doc = include_str!("../../counter-core/doc/retries.md")]
    pub struct Retries;
    #[doc = include_str!("../../counter-core/doc/async.md")]
    pub struct Async;
    #[doc = include_str!("../../counter-core/doc/hot_counters.md")]
    pub struct HotCounters;
    #[doc = include_str!("../../counter-core/doc/redis.md")]
    pub struct Redis;
    #[doc = include_str!("../../counter-core/doc/memcached.md")]
    pub struct Memcached;
    #[doc = include_str!("../../counter-core/doc/guarantees.md")]
    pub struct Guarantees;
    #[doc = include_str!("../../counter-core/doc/sql.md")]
    pub struct Sql;
}

/// The per-operation SQL fragments (`counter-core/doc/ops/*.md`, for each operation's rustdoc):
/// SQL only today; a Rust block added to one runs here.
#[cfg(doctest)]
mod ops_doctests {
    #[doc = include_str!("../../counter-core/doc/ops/current.md")]
    pub struct Current;
    #[doc = include_str!("../../counter-core/doc/ops/increment.md")]
    pub struct Increment;
    #[doc = include_str!("../../counter-core/doc/ops/decrement.md")]
    pub struct Decrement;
    #[doc = include_str!("../../counter-core/doc/ops/decrement_if_at_least.md")]
    pub struct DecrementIfAtLeast;
    #[doc = include_str!("../../counter-core/doc/ops/take_up_to.md")]
    pub struct TakeUpTo;
    #[doc = include_str!("../../counter-core/doc/ops/increment_up_to.md")]
    pub struct IncrementUpTo;
    #[doc = include_str!("../../counter-core/doc/ops/set_max.md")]
    pub struct SetMax;
    #[doc = include_str!("../../counter-core/doc/ops/set_min.md")]
    pub struct SetMin;
    #[doc = include_str!("../../counter-core/doc/ops/compare_and_set.md")]
    pub struct CompareAndSet;
    #[doc = include_str!("../../counter-core/doc/ops/update_locked.md")]
    pub struct UpdateLocked;
    #[doc = include_str!("../../counter-core/doc/ops/transfer.md")]
    pub struct Transfer;
    #[doc = include_str!("../../counter-core/doc/ops/update_first_unlocked.md")]
    pub struct UpdateFirstUnlocked;
    #[doc = include_str!("../../counter-core/doc/ops/increment_or_insert.md")]
    pub struct IncrementOrInsert;
    #[doc = include_str!("../../counter-core/doc/ops/update_atomic.md")]
    pub struct UpdateAtomic;
    #[doc = include_str!("../../counter-core/doc/ops/slotted.md")]
    pub struct Slotted;
    #[doc = include_str!("../../counter-core/doc/ops/buffer_flush.md")]
    pub struct BufferFlush;
    #[doc = include_str!("../../counter-core/doc/ops/redis_flush.md")]
    pub struct RedisFlush;
}
