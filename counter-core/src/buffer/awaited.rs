//! [`AsyncBuffer`]: the write-behind buffer on diesel-async, flushed by a task the caller
//! spawns, through a deadpool or bb8 pool.

use std::future::Future;
use std::hash::Hash;
use std::ops::DerefMut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use diesel::Column;

use super::batch::{write_batch, Recorded};
use super::pending::Pending;
use super::{panicked, BufferReport, FlushPolicy};
use crate::backend::{catch_unwind, RawConnection};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::many::each::Each;
use crate::ops::Field;
use crate::unknown_keys::{UnknownKeyPolicy, UnknownKeys};
use crate::upsert::NewRow;

/// A pool of diesel-async connections an [`AsyncBuffer`] takes its flushes' connections from:
/// implemented for deadpool's and bb8's pools of the three diesel-async connections.
pub trait ConnectionPool: Send + Sync + 'static {
    /// The connection the pool hands out.
    type Conn: RawConnection;
    /// A connection from the pool; a pool error is an [`AtomicError::Custom`].
    fn connection(
        &self,
    ) -> impl Future<Output = Result<impl DerefMut<Target = Self::Conn> + '_, AtomicError>>;
}

/// The pool impls, one per pool crate and connection.
macro_rules! pools {
    ($($feature:literal => $conn:ty),* $(,)?) => {$(
        #[cfg(all(feature = "deadpool", feature = $feature))]
        impl ConnectionPool for diesel_async::pooled_connection::deadpool::Pool<$conn> {
            type Conn = $conn;
            async fn connection(
                &self,
            ) -> Result<impl DerefMut<Target = $conn> + '_, AtomicError> {
                self.get().await.map_err(AtomicError::custom)
            }
        }

        #[cfg(all(feature = "bb8", feature = $feature))]
        impl ConnectionPool for diesel_async::pooled_connection::bb8::Pool<$conn> {
            type Conn = $conn;
            async fn connection(
                &self,
            ) -> Result<impl DerefMut<Target = $conn> + '_, AtomicError> {
                self.get().await.map_err(AtomicError::custom)
            }
        }
    )*};
}
pools!(
    "postgres" => diesel_async::AsyncPgConnection,
    "mysql" => diesel_async::AsyncMysqlConnection,
    "sqlite" => diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>,
);

/// [`Buffer`](crate::Buffer) on diesel-async: increments of one atomic field added in memory,
/// written in batches through a pool of diesel-async connections.
///
/// Everything [`Buffer`](crate::Buffer) says holds here (what can be lost, one transaction per
/// flush in key order, each row on its own, the report, the bound on what waits in memory);
/// the counts, the batches, the bound and what a flush puts back are the same code. `F` is
/// the `new_row` closure of [`new`](Self::new), or [`UnknownKeys`] for an update-only buffer
/// ([`updating`](Self::updating)). What differs:
///
/// - **You spawn the flusher**: [`flusher`](Self::flusher) returns the background flush loop
///   as a future, so that `tokio::spawn` (or your runtime's spawn) sees your concrete types
///   and can prove it `Send`. It returns after [`shutdown`](Self::shutdown).
/// - **`flush` and `shutdown` are `async`**, and nothing flushes on drop (a drop cannot
///   await): call `shutdown().await` before the runtime stops, or the counts since the last
///   flush are lost with it.
/// - **A flush whose future is dropped** before it finished keeps its batch, as a failed
///   flush does: the next flush writes it under the same id, once, whether or not its
///   `COMMIT` had reached the database (with the flush ledger, [`FlushPolicy::ledger`]; without
///   it the counts go back and such a batch is written twice).
/// - The handle is cheap to clone (an `Arc`): keep one in your web framework's state.
///
/// ```
/// # use counter_core::{AsyncBuffer, AtomicField, FlushPolicy};
/// # use diesel::prelude::*;
/// # use diesel_async::pooled_connection::{deadpool::Pool, AsyncDieselConnectionManager};
/// # use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
/// # use diesel_async::SimpleAsyncConnection;
/// diesel::table! { page_views (page_id) { page_id -> BigInt, views -> BigInt, } }
///
/// #[derive(Queryable, Selectable, Identifiable, Insertable, AtomicField)]
/// #[diesel(table_name = page_views, primary_key(page_id))]
/// struct PageViews {
///     page_id: i64,
///     #[atomic]
///     views: i64,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let url = dir.path().join("doc.db").to_str().unwrap().to_owned();
/// type Conn = SyncConnectionWrapper<SqliteConnection>;
/// let pool = Pool::builder(AsyncDieselConnectionManager::<Conn>::new(url)).build()?;
/// # pool.get().await?.batch_execute("CREATE TABLE page_views (page_id BIGINT PRIMARY KEY, views BIGINT NOT NULL); CREATE TABLE counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept TEXT NOT NULL, flushed_at BIGINT NOT NULL)").await?;
///
/// let views = AsyncBuffer::new(
///     pool.clone(),
///     PageViews::atomic_views(),
///     |&page_id: &i64, views| PageViews { page_id, views }, // the row of a page seen first
///     FlushPolicy::DEFAULT,
/// );
/// let flusher = tokio::spawn(views.flusher());
/// for page in [1, 2, 1, 1] {
///     views.add(page, 1)?; // memory only, no await
/// }
/// let report = views.flush().await?; // one transaction: page 1 += 3, page 2 += 1 (rows created)
/// assert_eq!((report.written, report.counted), (2, 4));
/// assert_eq!(PageViews::current_views(&mut pool.get().await?, 1).await?, 3);
/// views.shutdown().await?; // a last flush; the flusher returns
/// flusher.await?;
/// # Ok(())
/// # }
/// ```
pub struct AsyncBuffer<P, M, Col, F>
where
    M: AtomicField<Col>,
    Col: Column,
{
    inner: Arc<Inner<P, M, Col, F>>,
}

/// An [`AsyncBuffer`] whose `new_row` is a plain function: a type you can name in your
/// application state (a struct field, axum's `State`), where the closure's own type cannot be
/// written. `R` is the type `new_row` returns, the model itself by default.
///
/// A closure that captures nothing coerces to the function pointer where the field's type is
/// known, so the buffer is built with [`AsyncBuffer::new`] as usual:
///
/// ```
/// # use counter_core::{AsyncBuffer, AsyncBufferOf, AtomicField, FlushPolicy};
/// # use diesel::prelude::*;
/// # use diesel_async::pooled_connection::{deadpool::Pool, AsyncDieselConnectionManager};
/// # use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
/// # use diesel_async::SimpleAsyncConnection;
/// diesel::table! { page_views (page_id) { page_id -> BigInt, views -> BigInt, } }
///
/// #[derive(Queryable, Selectable, Identifiable, Insertable, AtomicField)]
/// #[diesel(table_name = page_views, primary_key(page_id))]
/// struct PageViews {
///     page_id: i64,
///     #[atomic]
///     views: i64,
/// }
///
/// type Conn = SyncConnectionWrapper<SqliteConnection>;
///
/// /// What every request handler gets (axum: `Router::new().with_state(state)`).
/// #[derive(Clone)]
/// struct AppState {
///     pool: Pool<Conn>,
///     views: AsyncBufferOf<Pool<Conn>, PageViews, page_views::views>,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let url = dir.path().join("doc.db").to_str().unwrap().to_owned();
/// let pool = Pool::builder(AsyncDieselConnectionManager::<Conn>::new(url)).build()?;
/// # pool.get().await?.batch_execute("CREATE TABLE page_views (page_id BIGINT PRIMARY KEY, views BIGINT NOT NULL); CREATE TABLE counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept TEXT NOT NULL, flushed_at BIGINT NOT NULL)").await?;
/// let state = AppState {
///     views: AsyncBuffer::new(
///         pool.clone(),
///         PageViews::atomic_views(),
///         |&page_id, views| PageViews { page_id, views },
///         FlushPolicy::DEFAULT,
///     ),
///     pool,
/// };
/// let flusher = tokio::spawn(state.views.flusher());
///
/// async fn view_page(state: &AppState, page: i64) -> Result<(), counter_core::AtomicError> {
///     state.views.add(page, 1)
/// }
/// view_page(&state, 7).await?;
/// state.views.shutdown().await?;
/// flusher.await?;
/// assert_eq!(PageViews::current_views(&mut state.pool.get().await?, 7).await?, 1);
/// # Ok(())
/// # }
/// ```
pub type AsyncBufferOf<P, M, Col, R = M> =
    AsyncBuffer<P, M, Col, fn(&<M as AtomicField<Col>>::Key, <M as AtomicField<Col>>::Value) -> R>;

/// What the handles and the flusher share.
struct Inner<P, M: AtomicField<Col>, Col: Column, F> {
    pending: Pending<M::Key, M::Value>,
    /// One flush at a time, so batches are written in the order they were taken.
    flushing: tokio::sync::Mutex<()>,
    /// Woken by an `add` that made a flush due, and by shutdown.
    wake: tokio::sync::Notify,
    stopping: AtomicBool,
    pool: P,
    field: Field<M, Col>,
    /// The `new_row` closure, or [`UnknownKeys`].
    rows: F,
}

impl<P, M, Col, F> Clone for AsyncBuffer<P, M, Col, F>
where
    M: AtomicField<Col>,
    Col: Column,
{
    fn clone(&self) -> Self {
        AsyncBuffer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P, M, Col, F, R> AsyncBuffer<P, M, Col, F>
where
    P: ConnectionPool,
    Col: Column + 'static,
    M: AtomicFieldOn<Col, <P::Conn as RawConnection>::Db>,
    M::Key: Ord + Hash + Clone,
    F: Fn(&M::Key, M::Value) -> R,
    R: NewRow<M, Col, <P::Conn as RawConnection>::Db>,
{
    /// A buffer for `field` whose flushes take a connection from `pool`. `new_row(key,
    /// total)` builds the row to insert for a key that has none yet (its column should start
    /// at `total`). Nothing flushes in the background until [`flusher`](Self::flusher) is
    /// spawned.
    pub fn new(pool: P, field: Field<M, Col>, new_row: F, policy: FlushPolicy) -> Self {
        Self::with_rows(pool, field, new_row, policy)
    }
}

impl<P, M, Col> AsyncBuffer<P, M, Col, UnknownKeys>
where
    P: ConnectionPool,
    Col: Column + 'static,
    M: AtomicFieldOn<Col, <P::Conn as RawConnection>::Db>,
    M::Key: Ord + Hash + Clone,
{
    /// A buffer for `field` that updates existing rows only: a flush reports a key without a
    /// row in [`BufferReport::unknown`] with its count, once, and then drops the count or
    /// keeps it pending, as `unknown` says. No row is ever created. Its type names
    /// [`UnknownKeys`] where [`new`](Self::new)'s names the closure:
    /// `AsyncBuffer<Pool<Conn>, Article, articles::downloads, UnknownKeys>`.
    ///
    /// ```
    /// # use counter_core::{AsyncBuffer, AtomicField, FlushPolicy, UnknownKeys};
    /// # use diesel::prelude::*;
    /// # use diesel_async::pooled_connection::{deadpool::Pool, AsyncDieselConnectionManager};
    /// # use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
    /// # use diesel_async::SimpleAsyncConnection;
    /// diesel::table! { articles (id) { id -> BigInt, downloads -> BigInt, } }
    ///
    /// #[derive(Queryable, Selectable, Identifiable, AtomicField)]
    /// #[diesel(table_name = articles)]
    /// struct Article {
    ///     id: i64,
    ///     #[atomic]
    ///     downloads: i64,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let url = dir.path().join("doc.db").to_str().unwrap().to_owned();
    /// type Conn = SyncConnectionWrapper<SqliteConnection>;
    /// let pool = Pool::builder(AsyncDieselConnectionManager::<Conn>::new(url)).build()?;
    /// # pool.get().await?.batch_execute("CREATE TABLE articles (id BIGINT PRIMARY KEY, downloads BIGINT NOT NULL); INSERT INTO articles VALUES (1, 0); CREATE TABLE counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept TEXT NOT NULL, flushed_at BIGINT NOT NULL)").await?;
    /// let downloads: AsyncBuffer<Pool<Conn>, Article, articles::downloads, UnknownKeys> =
    ///     AsyncBuffer::updating(
    ///         pool.clone(),
    ///         Article::atomic_downloads(),
    ///         UnknownKeys::Keep,
    ///         FlushPolicy::MANUAL,
    ///     );
    /// downloads.add(1, 1)?;
    /// downloads.add(2, 5)?; // article 2 is being created by another transaction
    /// let report = downloads.flush().await?;
    /// assert_eq!(report.unknown, vec![(2, 5)]); // reported, and kept
    /// assert_eq!(downloads.pending(), 5);
    /// # pool.get().await?.batch_execute("INSERT INTO articles VALUES (2, 0)").await?;
    /// let report = downloads.flush().await?; // once the row exists, written
    /// assert_eq!((report.written, report.counted), (1, 5));
    /// assert_eq!(Article::current_downloads(&mut pool.get().await?, 2).await?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn updating(
        pool: P,
        field: Field<M, Col>,
        unknown: UnknownKeys,
        policy: FlushPolicy,
    ) -> Self {
        Self::with_rows(pool, field, unknown, policy)
    }
}

impl<P, M, Col, F> AsyncBuffer<P, M, Col, F>
where
    P: ConnectionPool,
    Col: Column + 'static,
    M: AtomicFieldOn<Col, <P::Conn as RawConnection>::Db>,
    M::Key: Ord + Hash + Clone,
    F: UnknownKeyPolicy<M, Col, <P::Conn as RawConnection>::Db>,
{
    /// The buffer of [`new`](Self::new) and [`updating`](Self::updating).
    fn with_rows(pool: P, field: Field<M, Col>, rows: F, policy: FlushPolicy) -> Self {
        AsyncBuffer {
            inner: Arc::new(Inner {
                pending: Pending::new(policy, rows.unknown()),
                flushing: tokio::sync::Mutex::new(()),
                wake: tokio::sync::Notify::new(),
                stopping: AtomicBool::new(false),
                pool,
                field,
                rows,
            }),
        }
    }

    /// The background flusher, to spawn: flushes at the policy's interval and as soon as
    /// enough adds are pending, until [`shutdown`](Self::shutdown). Under
    /// [`FlushPolicy::MANUAL`] it returns at once. A failed flush keeps its counts (and its
    /// error for [`last_error`](Self::last_error)) for the next.
    pub fn flusher(&self) -> impl Future<Output = ()> + 'static
    where
        P: 'static,
        M: 'static,
        F: 'static,
    {
        let inner = Arc::clone(&self.inner);
        async move {
            let policy = inner.pending.policy;
            if !policy.background() {
                return;
            }
            loop {
                loop {
                    if inner.stopping.load(Ordering::Acquire) {
                        return;
                    }
                    if inner.pending.due() {
                        break;
                    }
                    let waited = tokio::time::timeout(policy.wait(), inner.wake.notified()).await;
                    if waited.is_err() && policy.interval.is_some() {
                        break;
                    }
                }
                if inner.stopping.load(Ordering::Acquire) {
                    return;
                }
                if let Ok(report) = inner.flush().await {
                    inner.pending.keep_background(report);
                }
            }
        }
    }

    /// Adds `n` to `key`'s pending count: memory only, one shard lock, no await. Errors:
    /// `NegativeAmount` (a buffer only counts up); `BufferFull` at the policy's bound
    /// ([`FlushPolicy::max_keys`], [`FlushPolicy::max_adds`]): the count was **not** taken.
    pub fn add(&self, key: M::Key, n: M::Value) -> Result<(), AtomicError> {
        if self.inner.pending.add(key, n)? {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// Writes everything added so far, each row on its own: returns what it did
    /// ([`BufferReport`]: keys written, keys refused and unknown keys, by key). A row that
    /// refuses does not hold back the others; its count stays pending. On error (the database
    /// is down, the connection was lost) every count is kept, as [`Buffer::flush`](crate::Buffer::flush)
    /// says, and the error also for [`last_error`](Self::last_error).
    ///
    #[doc = include_str!("../../doc/ops/buffer_flush.md")]
    pub async fn flush(&self) -> Result<BufferReport<M::Key>, AtomicError> {
        self.inner.flush().await
    }

    /// The sum of the counts held: not yet written, or in a batch kept after a failed flush.
    pub fn pending(&self) -> i128 {
        self.inner.pending.total()
    }

    /// The message of the last flush's error, or `None` when the last flush succeeded (or
    /// none ran yet). A flush in which some rows refused succeeded: see its report.
    pub fn last_error(&self) -> Option<String> {
        self.inner.pending.last_error()
    }

    /// What the flusher's flushes did since the last call: as
    /// [`Buffer::background_report`](crate::Buffer::background_report).
    pub fn background_report(&self) -> BufferReport<M::Key> {
        self.inner.pending.take_background()
    }

    /// Stops the flusher (its future returns) and flushes what is left; the error of that last
    /// flush, whose counts are then still [`pending`](Self::pending). Adds after it are only
    /// written by [`flush`](Self::flush).
    pub async fn shutdown(&self) -> Result<BufferReport<M::Key>, AtomicError> {
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.wake.notify_one();
        self.inner.flush().await
    }
}

impl<P, M, Col, F> Inner<P, M, Col, F>
where
    P: ConnectionPool,
    Col: Column + 'static,
    M: AtomicFieldOn<Col, <P::Conn as RawConnection>::Db>,
    M::Key: Ord + Hash + Clone,
    F: UnknownKeyPolicy<M, Col, <P::Conn as RawConnection>::Db>,
{
    /// Takes every pending count, writes it as one batch, and settles: on error, and when
    /// this future is dropped before the write finished, every count is kept. A batch kept
    /// from a failed flush is written first, then the new counts.
    async fn flush(&self) -> Result<BufferReport<M::Key>, AtomicError> {
        let _one_at_a_time = self.flushing.lock().await;
        let mut report = BufferReport::default();
        loop {
            let (taken, batch) = self.pending.take();
            let result = if batch.is_empty() {
                Ok(Each::default())
            } else {
                let ledger = taken.recorded();
                // A panicking `new_row` fails the flush like a database error: the counts stay.
                catch_unwind(self.write(&batch, ledger))
                    .await
                    .unwrap_or_else(|_| Err(panicked()))
            };
            if !taken.settle_into(result, &mut report)? {
                return Ok(report);
            }
        }
    }

    /// One batch, in one transaction, on a connection from the pool.
    async fn write(
        &self,
        batch: &[(M::Key, M::Value)],
        ledger: Option<Recorded<'_>>,
    ) -> Result<Each<M::Key, M::Value>, AtomicError> {
        let mut conn = self.pool.connection().await?;
        write_batch(&self.field, &mut *conn, batch, &self.rows, ledger).await
    }
}
