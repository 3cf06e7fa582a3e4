//! [`Dialect`]: what a backend *is*, as facts the layers above read. No operation lives here:
//! what an operation sends on each backend is in [`crate::strategy`].

use diesel::backend::Backend;

use crate::error::AtomicError;
use crate::lock::LockMode;

/// How the retry loop treats a database error.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Re-running the whole operation can succeed.
    Transient,
    /// A lock wait ran out of the server's own timeout: run again, within the busy timeout.
    LockTimeout,
    /// The database is busy (SQLite): poll again shortly, within the busy timeout.
    Busy,
    /// The row is held by another transaction and the caller asked not to wait.
    Locked,
    /// Anything else: returned as it is.
    Other,
}

/// How an upsert names the row it collides with.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertClause {
    /// `ON CONFLICT (pk…) DO UPDATE SET …` (PostgreSQL, SQLite).
    OnConflict,
    /// `ON DUPLICATE KEY UPDATE …` (MySQL, MariaDB).
    OnDuplicateKey,
}

/// The facts of one backend, implemented for Diesel's `Pg`, `Mysql` and `Sqlite`: its name,
/// how it spells what differs, its row-lock clauses and how its errors sort. Like Diesel's
/// `SqlDialect` and sqlx's `Database`, it says what a backend is, never what an operation does.
#[doc(hidden)]
pub trait Dialect: Backend + Sized + 'static {
    /// The backend's name, for messages.
    const NAME: &'static str;

    /// The name of a signed 64-bit integer in `CAST(… AS <type>)`.
    const BIGINT: &'static str = "BIGINT";

    /// How an upsert says what to do with the row already there.
    const UPSERT: UpsertClause = UpsertClause::OnConflict;

    /// The statement that opens a transaction that will write: `BEGIN` on servers,
    /// `BEGIN IMMEDIATE` on SQLite (inside the caller's transaction, a savepoint instead).
    const BEGIN_WRITE: &'static str = "BEGIN";

    /// The statement that opens a slotted counter's compaction. [`Self::BEGIN_WRITE`] unless
    /// the backend overrides it; PostgreSQL opens it `READ COMMITTED` whatever the session's
    /// default. Under `SERIALIZABLE` a compaction locks every slot of a key while increments
    /// keep landing on them, so one of its slots has nearly always changed since its snapshot
    /// and it fails "could not serialize access" on each try: it starves. It needs no
    /// snapshot: it reads only rows it locks (`FOR UPDATE` returns their latest version), and
    /// it leaves the sum every reader sees unchanged, at one commit.
    const BEGIN_COMPACT: &'static str = Self::BEGIN_WRITE;

    /// The clause appended to `SELECT c FROM t WHERE pk = ?` to lock the row; `Unsupported`
    /// where the backend cannot lock that way.
    fn lock_sql(mode: LockMode) -> Result<&'static str, AtomicError>;

    /// Sorts a database error for the retry loop.
    fn classify(error: &diesel::result::Error, mode: LockMode) -> ErrorClass;
}

/// The message of a database error, or "" for other errors.
pub(crate) fn message(error: &diesel::result::Error) -> &str {
    match error {
        diesel::result::Error::DatabaseError(_, info) => info.message(),
        _ => "",
    }
}
