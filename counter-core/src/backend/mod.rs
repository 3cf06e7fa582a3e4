//! The bottom layer: what a backend *is*, and how statements reach it.
//!
//! - [`Dialect`], implemented for Diesel's three backend types, holds the facts: the
//!   backend's name, how it spells what differs (`CAST` types, `BEGIN` forms, the upsert
//!   clause), its row-lock clauses and how its errors sort. No operation lives here; what an
//!   operation sends per backend is in [`crate::strategy`].
//! - [`RawConnection`], implemented for the three Diesel connections and, with the `async`
//!   feature, for the three diesel-async ones, says *how* to send: load rows, count rows,
//!   open and close a transaction, sleep. It is the only place blocking and async code differ.
//! - [`WriterQueue`](writer_queue): the line a SQLite file's writers in this process wait
//!   in, so the one write lock goes to them in turn instead of to whoever polls at the right
//!   instant.
//! - The modes ([`CallMode`]: [`Blocking`], [`Awaited`]) and the transaction guard.
//!
//! The operations are `async` code written once against both. On a blocking connection every
//! future they build is ready at its first poll, and [`CallMode::drive`] polls it once; on an
//! async connection the caller awaits it.

#[cfg(feature = "async")]
mod awaited;
mod blocking;
mod dialect;
mod mode;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "sqlite")]
mod sqlite;
mod transaction;
mod writer_queue;

use std::future::Future;
use std::time::Duration;

use diesel::connection::TransactionManagerStatus;
use diesel::deserialize::FromSqlRow;
use diesel::expression::QueryMetadata;
use diesel::query_builder::{Query, QueryFragment, QueryId};
use diesel::result::QueryResult;

// The one name this layer takes from above: the bound that lets any `C: AtomicConnection`
// reach its backend's strategy (see `RawConnection::Db`).
use crate::strategy::Strategy;

#[cfg(feature = "mysql")]
pub(crate) use dialect::message;
pub use dialect::{DerivedRows, Dialect, ErrorClass, UpdateJoin, UpsertClause};
pub use mode::{Awaited, Blocking, CallMode};
pub(crate) use transaction::{catch_unwind, guarded, InFlight, Open};
pub(crate) use writer_queue::{
    mark_writers_contended, take_turn, writers_contended, Turn, Waited, WriterQueue,
};

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
/// Dropped between statements (in the pause before a retry, or waiting in line for its turn
/// among a SQLite file's writers) an operation leaves the connection as it was, fit for reuse.
pub trait AsyncConnection: AtomicConnection<Mode = Awaited> {}

impl<C: AtomicConnection<Mode = Awaited>> AsyncConnection for C {}

/// The Diesel backend of an [`AtomicConnection`].
pub type BackendOf<C> = <<C as AtomicConnection>::Raw as RawConnection>::Db;

/// What an operation on connection `C` returns: the result of future `F` on a blocking
/// connection, `F` itself on an async one.
pub type Out<C, F> = <<C as AtomicConnection>::Mode as CallMode>::Out<F>;

/// Sending statements: the one place blocking and async connections differ. Each is its own
/// `AtomicConnection`, so generic code can hand the connection a
/// [`transaction`](crate::transaction) closure gets back to any operation.
///
/// Method names differ from Diesel's own (`load`, `execute_returning_count`) so that both can
/// be in scope.
#[doc(hidden)]
pub trait RawConnection: AtomicConnection<Raw = Self> + Sized + 'static {
    /// The Diesel backend: its facts ([`Dialect`]) and, through them, what each operation
    /// sends on it. The bound names the strategy layer above this one, the one upward name in
    /// this layer: Rust implies an associated type's bounds wherever the trait is bound, so
    /// this is how `C: AtomicConnection` alone (all the derive and users' generic code say)
    /// reaches the backend's strategy.
    type Db: Strategy;

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

    /// Waits until `listener` is notified or `timeout` has passed: the thread parks on a
    /// blocking connection, the task waits on an async one.
    fn wait_notified(
        listener: event_listener::EventListener,
        timeout: Duration,
    ) -> impl Future<Output = ()>;

    /// The database file whose writers must take turns ([`WriterQueue`]): the file of a SQLite
    /// connection's main database; `None` for a server, where the server queues writers
    /// itself, and for a SQLite database in memory, which only its connection sees.
    fn writers_file(&mut self) -> impl Future<Output = QueryResult<Option<String>>> {
        std::future::ready(Ok(None))
    }
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
