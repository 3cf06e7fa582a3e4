//! What differs between PostgreSQL, MySQL and SQLite, behind one trait.
//!
//! The operations in [`crate::ops`] are written once against [`RawConnection`]; each backend
//! module implements it with the fastest statement its SQL dialect allows. Pooled connections
//! reduce to the connection they wrap through [`AtomicConnection::raw`].

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "sqlite")]
mod sqlite;
mod transaction;

use diesel::connection::{LoadConnection, TransactionManager};
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::{Column, Connection};

use crate::change::Changes;
use crate::error::AtomicError;
use crate::field::AtomicFieldOn;
use crate::lock::LockMode;
use crate::plan::{Direction, Take};
use crate::sql::{LedgerConnection, MultiStatement, Upsert, MULTI_RETURNING, UPSERT_ON_CONFLICT};

/// A connection the atomic operations accept: `PgConnection`, `MysqlConnection`,
/// `SqliteConnection` (each with its cargo feature), or with the `r2d2` feature an r2d2
/// `PooledConnection` of one of them, passed as `&mut pooled`.
pub trait AtomicConnection {
    /// The concrete connection underneath.
    #[doc(hidden)]
    type Raw: RawConnection;
    /// The concrete connection underneath.
    #[doc(hidden)]
    fn raw(&mut self) -> &mut Self::Raw;
}

/// The Diesel backend of an [`AtomicConnection`].
pub type BackendOf<C> = <<C as AtomicConnection>::Raw as Connection>::Backend;

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

/// The per-backend primitives; implemented for the three Diesel connections only. Each is
/// its own `AtomicConnection`, so generic code can hand the connection a
/// [`transaction`](crate::transaction) closure gets back to any operation.
#[doc(hidden)]
pub trait RawConnection:
    Connection + LoadConnection + AtomicConnection<Raw = Self> + LedgerConnection + Sized + 'static
{
    /// The backend's name, for messages.
    const BACKEND: &'static str;

    /// Runs `delta` as one guarded statement; the new value, or `None` when no row matched
    /// (missing, or the guard refused it).
    fn apply_delta<M, Col>(
        &mut self,
        key: &M::Key,
        direction: Direction,
        amount: M::Value,
        guard: M::Value,
    ) -> QueryResult<Option<M::Value>>
    where
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self::Backend>;

    /// Takes `min(n, c - floor)`; the amount taken, or `None` when the statement matched no row
    /// (missing, or already at or below the floor: the caller looks once more to tell which).
    /// A backend that already knows the row exists returns `Some(0)` for an empty take.
    fn take<M, Col>(
        &mut self,
        key: &M::Key,
        take: Take<M::Value>,
    ) -> Result<Option<M::Value>, AtomicError>
    where
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self::Backend>;

    /// Runs a several-column change as one guarded statement; the new values, or `None` when
    /// no row matched (missing, or a guard refused). `UPDATE … RETURNING` unless the backend
    /// overrides it.
    fn apply_changes<M, Cs>(
        &mut self,
        key: &Cs::Key,
        parts: &Cs::Parts,
    ) -> QueryResult<Option<Cs::Values>>
    where
        M: 'static,
        Cs: Changes<M, Self::Backend> + 'static,
    {
        let mut statement = MultiStatement::<M, Cs, Self::Backend, MULTI_RETURNING>::new(key);
        statement.parts = Some(parts);
        Cs::load(self, statement)
    }

    /// Runs `insert` with the clause that adds `amount` to an existing row whose value is at
    /// most `guard` (`None`: no existing row can take it). The value inserted or updated, or
    /// `None` when the existing row refused. `key` is `insert`'s key.
    fn upsert<M, Col, I>(
        &mut self,
        key: &M::Key,
        insert: &I,
        amount: M::Value,
        guard: Option<M::Value>,
    ) -> Result<Option<M::Value>, AtomicError>
    where
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self::Backend>,
        I: QueryFragment<Self::Backend> + QueryId,
    {
        let _ = key;
        Ok(match guard {
            Some(guard) => M::load_value(
                self,
                Upsert::<M, Col, I, UPSERT_ON_CONFLICT, true> {
                    table: M::table(),
                    insert,
                    amount,
                    guard,
                },
            )?,
            None => M::load_value(
                self,
                Upsert::<M, Col, I, UPSERT_ON_CONFLICT, false> {
                    table: M::table(),
                    insert,
                    amount,
                    guard: amount,
                },
            )?,
        })
    }

    /// The clause appended to `SELECT c FROM t WHERE pk = ?` to lock the row.
    fn lock_sql(mode: LockMode) -> Result<&'static str, AtomicError>;

    /// The name of a signed 64-bit integer in `CAST(… AS <type>)`.
    const BIGINT: &'static str = "BIGINT";

    /// Upserts say `ON DUPLICATE KEY UPDATE` (MySQL), not `ON CONFLICT (…) DO UPDATE`.
    const ON_DUPLICATE_KEY: bool = false;

    /// Opens a transaction that will write: `BEGIN` on servers, `BEGIN IMMEDIATE` on SQLite;
    /// a savepoint inside the caller's transaction.
    fn begin_write(&mut self) -> QueryResult<()> {
        Self::TransactionManager::begin_transaction(self)
    }

    /// Runs `f` in a transaction opened by [`begin_write`](Self::begin_write): committed on
    /// `Ok`, rolled back on `Err` and on a panic (which then resumes), so the connection is
    /// left as the call found it whatever `f` does. (If the rollback itself fails, say the
    /// connection is gone, Diesel marks the connection broken and a pool discards it.)
    fn write_transaction<T, F>(&mut self, f: F) -> Result<T, AtomicError>
    where
        F: FnOnce(&mut Self) -> Result<T, AtomicError>,
    {
        transaction::guarded(self, Self::begin_write, f)
    }

    /// Sorts a database error for the retry loop.
    fn classify(error: &diesel::result::Error, mode: LockMode) -> ErrorClass;
}

/// Is `conn` inside a transaction (the caller's), or in a state where Diesel cannot tell?
pub(crate) fn in_transaction<C: Connection>(conn: &mut C) -> bool {
    !matches!(
        C::TransactionManager::transaction_manager_status_mut(conn).transaction_depth(),
        Ok(None)
    )
}

/// The message of a database error, or "" for other errors.
pub(crate) fn message(error: &diesel::result::Error) -> &str {
    match error {
        diesel::result::Error::DatabaseError(_, info) => info.message(),
        _ => "",
    }
}

#[cfg(feature = "r2d2")]
impl<T> AtomicConnection for diesel::r2d2::PooledConnection<diesel::r2d2::ConnectionManager<T>>
where
    T: AtomicConnection<Raw = T> + RawConnection + diesel::r2d2::R2D2Connection + Send + 'static,
{
    type Raw = T;
    fn raw(&mut self) -> &mut T {
        self
    }
}

/// Implements [`AtomicConnection`] for a raw connection type.
macro_rules! raw_connection {
    ($conn:ty) => {
        impl $crate::backend::AtomicConnection for $conn {
            type Raw = $conn;
            fn raw(&mut self) -> &mut $conn {
                self
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use raw_connection;
