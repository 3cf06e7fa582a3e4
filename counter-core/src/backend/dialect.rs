//! [`Dialect`]: what a backend *is*, as facts the layers above read. No operation lives here:
//! what an operation sends on each backend is in [`crate::strategy`].

use diesel::backend::Backend;
use diesel::query_builder::AstPass;
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, SingleValue, SqlType};

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

/// How a statement spells a derived table of rows it binds (`(…) AS v`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerivedRows {
    /// `(SELECT column1 AS a, column2 AS b FROM (VALUES (?, ?), (?, ?)))` (SQLite, which caps a
    /// compound `SELECT` at 500 terms but not a `VALUES` list).
    Values,
    /// `(SELECT ? AS a, ? AS b UNION ALL SELECT ?, ?)` (MySQL and MariaDB, whose `VALUES`
    /// table constructors are spelled differently from each other).
    UnionAll,
}

/// How an `UPDATE` joins another table.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateJoin {
    /// `UPDATE t SET c = v.c FROM v WHERE …` (PostgreSQL, SQLite 3.33+).
    From,
    /// `UPDATE t JOIN v ON … SET t.c = v.c` (MySQL, MariaDB).
    Join,
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

    /// The database's current time, as an expression a touched column is set to
    /// ([`AtomicField::TOUCH`](crate::AtomicField::TOUCH)): the time the row is written,
    /// not the time the statement or its transaction began, so a change that waited for
    /// another's row lock is stamped after it (PostgreSQL `clock_timestamp()`, MySQL
    /// `SYSDATE(6)`; SQLite's `'now'` is fixed per statement, which never waits for a row).
    const NOW: &'static str;

    /// Whether a `NUMERIC` column holds a decimal as a double (SQLite's REAL affinity): every
    /// value a statement computes for a [`Decimal`](crate::AtomicValue::SCALE) field is then
    /// rounded back to its scale in SQL.
    const FLOAT_NUMERIC: bool = false;

    /// The type a decimal parameter is cast to in the statement (`DECIMAL` on MySQL), where
    /// a driver may send it as text: MySQL computes `c + '0.10'` in doubles, and compares
    /// `c >= '0.80'` as doubles. `None` where parameters arrive typed (PostgreSQL) or the
    /// column holds doubles anyway (SQLite).
    const DECIMAL_CAST: Option<&'static str> = None;

    /// How an upsert says what to do with the row already there.
    const UPSERT: UpsertClause = UpsertClause::OnConflict;

    /// The statement that opens a transaction that will write: `BEGIN` on servers,
    /// `BEGIN IMMEDIATE` on SQLite (inside the caller's transaction, a savepoint instead).
    const BEGIN_WRITE: &'static str = "BEGIN";

    /// The statement that opens a row-locked read-modify-write (`update_locked`), whose
    /// closure runs between the read and the write: [`Self::BEGIN_WRITE`] unless the backend
    /// overrides it. SQLite opens it `BEGIN EXCLUSIVE`: in a rollback journal a reader of the
    /// file refuses a `COMMIT` (busy), SQLite then rolls the transaction back and the closure
    /// would run again; holding the exclusive lock from the start leaves no reader to refuse
    /// it, so the closure runs once per run of the transaction. (In WAL mode `EXCLUSIVE` is
    /// `IMMEDIATE`: readers never block a commit there.)
    const BEGIN_LOCKED: &'static str = Self::BEGIN_WRITE;

    /// The statement that opens a row-locked read-modify-write taken with lock `mode`:
    /// [`Self::BEGIN_LOCKED`] when it waits for the lock; [`Self::BEGIN_WRITE`] when it must
    /// not wait, since not waiting for a lock includes not waiting out SQLite's readers (a
    /// `COMMIT` a reader refuses is then `Locked`, never a second run of the closure).
    fn begin_locked(mode: LockMode) -> &'static str {
        match mode {
            LockMode::Wait => Self::BEGIN_LOCKED,
            _ => Self::BEGIN_WRITE,
        }
    }

    /// The statement that opens a transaction that reads only rows it locks: a slotted
    /// counter's compaction, a flush (buffers, `RedisCounter`). [`Self::BEGIN_WRITE`] unless
    /// the backend overrides it; PostgreSQL opens it `READ COMMITTED` whatever the session's
    /// default. Under `SERIALIZABLE` a compaction locks every slot of a key while increments
    /// keep landing on them, so one of its slots has nearly always changed since its snapshot
    /// and it fails "could not serialize access" on each try: it starves. A flush of many keys
    /// is a long serializable transaction, during which PostgreSQL keeps every concurrent
    /// serializable transaction's read locks; the suite's concurrent transfers then failed 64
    /// attempts in a row (2 of 3 CI runs). Neither needs a snapshot: they read only rows they
    /// lock (`FOR UPDATE` returns their latest version).
    const BEGIN_COMPACT: &'static str = Self::BEGIN_WRITE;

    /// The clause appended to a `SELECT` to read the latest committed version of its rows
    /// under a shared lock (`FOR SHARE`, MySQL's `LOCK IN SHARE MODE`, which MariaDB also
    /// takes); SQLite needs none. What an idempotency key's read-back takes after its claim
    /// found the key: on MySQL the claim (`INSERT IGNORE`) already holds a shared lock on the
    /// row, and asking for an exclusive one there would deadlock two calls with one key.
    const SHARE_LOCK: &'static str = "";

    /// The lock a counted change of a slotted counter cache takes on the parent row, which it
    /// does not write: enough to keep the parent from being deleted, or recounted, under it,
    /// and no more (`FOR KEY SHARE` lets the parent's other columns be updated meanwhile;
    /// MySQL's shared lock is the weakest it has); SQLite needs none.
    const KEY_SHARE_LOCK: &'static str = "";

    /// The lock a recount of a slotted counter cache takes on the parent row: one that waits
    /// for, and holds off, every [`KEY_SHARE_LOCK`](Self::KEY_SHARE_LOCK) (on PostgreSQL
    /// `FOR UPDATE`, since `FOR NO KEY UPDATE` does not conflict with `FOR KEY SHARE`).
    const EXCLUSIVE_LOCK: &'static str = "";

    /// How a derived table of bound rows is spelled.
    const DERIVED_ROWS: DerivedRows = DerivedRows::Values;

    /// How an `UPDATE` joins a derived table.
    const UPDATE_JOIN: UpdateJoin = UpdateJoin::From;

    /// How many rows one batched statement of a set carries: within the backend's limit on
    /// bound parameters (65,535 on PostgreSQL and MySQL, 32,766 on SQLite) for a key of up to
    /// four columns and a value, and small enough that a chunk's statement text stays far
    /// below MySQL's `max_allowed_packet`.
    const SET_CHUNK: usize = 2_000;

    /// How many rows one multi-row `INSERT` of new rows carries: 500 rows stay within every
    /// backend's parameter limit for a row type of up to 65 columns.
    const INSERT_CHUNK: usize = 500;

    /// Binds `values` as one array parameter of element type `ST` (PostgreSQL); the backends
    /// without array parameters never call it and refuse.
    fn bind_array<'b, ST, T>(values: &'b [T], out: &mut AstPass<'_, 'b, Self>) -> QueryResult<()>
    where
        ST: SqlType + SingleValue + 'static,
        Self: HasSqlType<ST>,
        T: ToSql<ST, Self> + std::fmt::Debug,
    {
        let _ = (values, out);
        Err(diesel::result::Error::QueryBuilderError(
            format!("{} has no array parameters", Self::NAME).into(),
        ))
    }

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
