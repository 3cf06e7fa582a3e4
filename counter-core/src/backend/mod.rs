//! What differs between backends, and between blocking and async connections, behind two
//! traits.
//!
//! - [`Dialect`], implemented for Diesel's three backend types, says *what* to send: each
//!   backend's fastest statement for an operation, its row-lock clause, how its errors sort.
//! - [`RawConnection`], implemented for the three Diesel connections and, with the `async`
//!   feature, for the three diesel-async ones, says *how* to send it: load rows, count rows,
//!   open and close a transaction, sleep. It is the only place blocking and async code differ.
//!
//! The operations ([`crate::ops`] and its siblings) are `async` code written once against
//! both. On a blocking connection every future they build is ready at its first poll, and
//! [`CallMode::drive`] polls it once; on an async connection the caller awaits it.

#[cfg(feature = "async")]
mod awaited;
mod blocking;
mod mode;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "sqlite")]
mod sqlite;
mod transaction;

use std::future::Future;
use std::time::Duration;

use diesel::backend::Backend;
use diesel::connection::TransactionManagerStatus;
use diesel::deserialize::FromSqlRow;
use diesel::expression::QueryMetadata;
use diesel::query_builder::{Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::Column;

use crate::change::Changes;
use crate::error::AtomicError;
use crate::field::AtomicFieldOn;
use crate::lock::LockMode;
use crate::plan::{Direction, Take};
use crate::sql::{
    DeltaUpdate, LedgerDialect, MultiStatement, Upsert, DELTA_RETURNING, MULTI_RETURNING,
    UPSERT_ON_CONFLICT,
};

pub use mode::{Awaited, Blocking, CallMode};
pub(crate) use transaction::{catch_unwind, guarded, InFlight, Open};

/// A connection the atomic operations accept.
///
/// - Blocking ([`Blocking`]): `PgConnection`, `MysqlConnection`, `SqliteConnection` (each with
///   its cargo feature), and with the `r2d2` feature an r2d2 `PooledConnection` of one of them.
///   Operations return their result.
/// - Async ([`Awaited`], feature `async`): diesel-async's `AsyncPgConnection`,
///   `AsyncMysqlConnection` and `SyncConnectionWrapper<SqliteConnection>`, and with the
///   `deadpool` or `bb8` feature a pooled connection of one of them. Operations return a
///   future to await.
///
/// Pass pooled connections as `&mut pooled`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a connection counter-core can use",
    label = "not a connection of a backend feature (`postgres`, `mysql`, `sqlite`) or of a pool feature (`r2d2`, `deadpool`, `bb8`)",
    note = "counter-core runs on `&mut` of: `PgConnection`, `MysqlConnection`, `SqliteConnection`; with feature `async`, `AsyncPgConnection`, `AsyncMysqlConnection`, `SyncConnectionWrapper<SqliteConnection>`",
    note = "a pooled connection needs its pool's feature of counter-core: `r2d2` for `r2d2::PooledConnection`, `deadpool` for `deadpool::Object`, `bb8` for `bb8::PooledConnection`; pass it as `&mut pooled`"
)]
pub trait AtomicConnection {
    /// The concrete connection underneath (itself, for a concrete connection).
    #[doc(hidden)]
    type Raw: RawConnection + AtomicConnection<Mode = Self::Mode>;
    /// [`Blocking`] or [`Awaited`]: whether an operation returns its result or a future.
    type Mode: CallMode;
    /// The concrete connection underneath.
    #[doc(hidden)]
    fn raw(&mut self) -> &mut Self::Raw;
}

/// A blocking connection: one whose operations return their result. Name it in your own
/// generic code (`fn restock<C: BlockingConnection>(conn: &mut C)`) so that `?` applies.
pub trait BlockingConnection: AtomicConnection<Mode = Blocking> {}

impl<C: AtomicConnection<Mode = Blocking>> BlockingConnection for C {}

/// An async connection: one whose operations return a future. Name it in your own generic
/// code (`async fn restock<C: AsyncConnection>(conn: &mut C)`) so that `.await` applies.
///
/// # Cancellation
///
/// A future dropped before it finishes (a timeout, a request whose client went away) leaves
/// its connection in a state nobody can vouch for: a transaction still open, or a statement's
/// answer still on the wire (seen on MySQL: the next query read it). So an operation dropped
/// half-way marks the connection's transaction manager broken: deadpool and bb8 discard such a
/// connection instead of handing it out again, and a connection you keep yourself refuses
/// further work with `Database(BrokenTransactionManager)`. What the dropped operation did is
/// all or nothing, but either may have happened: its `COMMIT` may have reached the server.
pub trait AsyncConnection: AtomicConnection<Mode = Awaited> {}

impl<C: AtomicConnection<Mode = Awaited>> AsyncConnection for C {}

/// The Diesel backend of an [`AtomicConnection`].
pub type BackendOf<C> = <<C as AtomicConnection>::Raw as RawConnection>::Db;

/// What an operation on connection `C` returns: the result of future `F` on a blocking
/// connection, `F` itself on an async one.
pub type Out<C, F> = <<C as AtomicConnection>::Mode as CallMode>::Out<F>;

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

/// Sending statements: the one place blocking and async connections differ. Each is its own
/// `AtomicConnection`, so generic code can hand the connection a
/// [`transaction`](crate::transaction) closure gets back to any operation.
///
/// Method names differ from Diesel's own (`load`, `execute_returning_count`) so that both can
/// be in scope.
#[doc(hidden)]
pub trait RawConnection: AtomicConnection<Raw = Self> + Sized + 'static {
    /// The Diesel backend, which says what to send.
    type Db: Dialect;

    /// Runs `query` to its end and deserializes every row.
    fn query_rows<Q, U>(&mut self, query: Q) -> impl Future<Output = QueryResult<Vec<U>>>
    where
        Q: Query + QueryFragment<Self::Db> + QueryId,
        Self::Db: QueryMetadata<Q::SqlType>,
        U: FromSqlRow<Q::SqlType, Self::Db> + 'static;

    /// Runs `statement`; the number of rows it matched.
    fn query_count<Q>(&mut self, statement: Q) -> impl Future<Output = QueryResult<usize>>
    where
        Q: QueryFragment<Self::Db> + QueryId;

    /// Opens a transaction with `sql` (`BEGIN`, `BEGIN IMMEDIATE`), or a savepoint inside the
    /// caller's transaction.
    fn begin(&mut self, sql: &'static str) -> impl Future<Output = QueryResult<()>>;

    /// Commits the innermost transaction or savepoint.
    fn commit(&mut self) -> impl Future<Output = QueryResult<()>>;

    /// Rolls back the innermost transaction or savepoint.
    fn rollback(&mut self) -> impl Future<Output = QueryResult<()>>;

    /// The connection's transaction state, as Diesel (or diesel-async) tracks it.
    fn transaction_status(&mut self) -> &mut TransactionManagerStatus;

    /// Waits `duration`: the thread sleeps on a blocking connection, the task on an async one.
    fn pause(duration: Duration) -> impl Future<Output = ()>;
}

/// The per-backend statements and decisions; implemented for `Pg`, `Mysql` and `Sqlite`, each
/// method generic over the connection that sends them.
#[doc(hidden)]
pub trait Dialect: Backend + LedgerDialect + Sized + 'static {
    /// The backend's name, for messages.
    const NAME: &'static str;

    /// The name of a signed 64-bit integer in `CAST(… AS <type>)`.
    const BIGINT: &'static str = "BIGINT";

    /// Upserts say `ON DUPLICATE KEY UPDATE` (MySQL), not `ON CONFLICT (…) DO UPDATE`.
    const ON_DUPLICATE_KEY: bool = false;

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

    /// Runs `delta` as one guarded statement; the new value, or `None` when no row matched
    /// (missing, or the guard refused it). `UPDATE … RETURNING` unless the backend overrides
    /// it.
    fn apply_delta<R, M, Col>(
        conn: &mut R,
        key: &M::Key,
        direction: Direction,
        amount: M::Value,
        guard: M::Value,
    ) -> impl Future<Output = QueryResult<Option<M::Value>>>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>,
    {
        async move {
            let table = M::table();
            match direction {
                Direction::Up => {
                    let up = DeltaUpdate::<M, Col, DELTA_RETURNING, true> {
                        table,
                        key,
                        amount,
                        guard,
                    };
                    M::load_value(conn, up).await
                }
                Direction::Down => {
                    let down = DeltaUpdate::<M, Col, DELTA_RETURNING, false> {
                        table,
                        key,
                        amount,
                        guard,
                    };
                    M::load_value(conn, down).await
                }
            }
        }
    }

    /// Takes `min(n, c - floor)`; the amount taken, or `None` when the statement matched no row
    /// (missing, or already at or below the floor: the caller looks once more to tell which).
    /// A backend that already knows the row exists returns `Some(0)` for an empty take.
    fn take<R, M, Col>(
        conn: &mut R,
        key: &M::Key,
        take: Take<M::Value>,
    ) -> impl Future<Output = Result<Option<M::Value>, AtomicError>>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>;

    /// Runs a several-column change as one guarded statement; the new values, or `None` when
    /// no row matched (missing, or a guard refused). `UPDATE … RETURNING` unless the backend
    /// overrides it.
    fn apply_changes<R, M, Cs>(
        conn: &mut R,
        key: &Cs::Key,
        parts: &Cs::Parts,
    ) -> impl Future<Output = QueryResult<Option<Cs::Values>>>
    where
        R: RawConnection<Db = Self>,
        M: 'static,
        Cs: Changes<M, Self> + 'static,
    {
        async move {
            let mut statement = MultiStatement::<M, Cs, Self, MULTI_RETURNING>::new(key);
            statement.parts = Some(parts);
            Cs::load(conn, statement).await
        }
    }

    /// Runs `insert` with the clause that adds `amount` to an existing row whose value is at
    /// most `guard` (`None`: no existing row can take it). The value inserted or updated, or
    /// `None` when the existing row refused. `key` is `insert`'s key.
    fn upsert<R, M, Col, I>(
        conn: &mut R,
        key: &M::Key,
        insert: &I,
        amount: M::Value,
        guard: Option<M::Value>,
    ) -> impl Future<Output = Result<Option<M::Value>, AtomicError>>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>,
        I: QueryFragment<Self> + QueryId,
    {
        let _ = key;
        async move {
            Ok(match guard {
                Some(guard) => {
                    M::load_value(
                        conn,
                        Upsert::<M, Col, I, UPSERT_ON_CONFLICT, true> {
                            table: M::table(),
                            insert,
                            amount,
                            guard,
                        },
                    )
                    .await?
                }
                None => {
                    M::load_value(
                        conn,
                        Upsert::<M, Col, I, UPSERT_ON_CONFLICT, false> {
                            table: M::table(),
                            insert,
                            amount,
                            guard: amount,
                        },
                    )
                    .await?
                }
            })
        }
    }

    /// The clause appended to `SELECT c FROM t WHERE pk = ?` to lock the row.
    fn lock_sql(mode: LockMode) -> Result<&'static str, AtomicError>;

    /// Sorts a database error for the retry loop.
    fn classify(error: &diesel::result::Error, mode: LockMode) -> ErrorClass;
}

/// Runs `$body` in a transaction opened with the backend's [`Dialect::BEGIN_WRITE`]:
/// committed on `Ok`, rolled back on `Err` and on a panic (which then resumes), so the
/// connection is left as the call found it whatever the body does. See [`guarded`], also for
/// a future dropped half-way.
macro_rules! write_transaction {
    ($conn:expr, |$c:ident| $body:expr) => {{
        let conn = $conn;
        let begin = $crate::backend::begin_write_sql(&*conn);
        $crate::backend::guarded!(conn, begin, |$c| $body)
    }};
}
pub(crate) use write_transaction;

/// The statement that opens a writing transaction on `R`'s backend.
pub(crate) fn begin_write_sql<R: RawConnection>(_: &R) -> &'static str {
    R::Db::BEGIN_WRITE
}

/// Is `conn` inside a transaction (the caller's)? `Err` when Diesel cannot tell: its
/// transaction manager is broken (a failed rollback, or a transaction of ours whose future was
/// dropped half-way), and nothing should run on the connection.
pub(crate) fn in_transaction<R: RawConnection>(conn: &mut R) -> QueryResult<bool> {
    Ok(conn.transaction_status().transaction_depth()?.is_some())
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
    type Mode = T::Mode;
    fn raw(&mut self) -> &mut T {
        self
    }
}
