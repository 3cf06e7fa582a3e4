//! How a scenario reaches the database: blocking Diesel connections from the harness's r2d2
//! pool ([`BlockingClient`]), or diesel-async connections from a deadpool or bb8 pool on a
//! multi-threaded tokio runtime ([`AsyncClient`]).
//!
//! The scenarios of [`crate::scenarios`] are `async fn`s generic over [`Client`], so one source
//! runs on both kinds of connection: each operation is awaited through
//! [`Client::done`] (`CallMode::into_future`), which a blocking connection's result passes
//! through at once. Rows are made and read back through the blocking harness ([`TestDb`]) on
//! both, independent of the path under test.
//!
//! Concurrency scenarios run [`Client::WORKERS`] workers ([`on_workers`]), each on its own
//! thread with its own pooled connection. An async worker is a future driven by
//! `Handle::block_on` on that thread: the runtime's own threads run the I/O drivers, the pools
//! and SQLite's blocking statements. It is not `tokio::spawn`ed because `spawn` wants a `Send`
//! future, and Rust proves the library's futures `Send` only where the connection type is
//! concrete, never in code generic over it (see `tests/async.rs` for spawned tasks).

use std::future::Future;
use std::hash::Hash;
use std::ops::DerefMut;
use std::sync::Barrier;

use counter_core::scoped_futures::ScopedFutureExt;
use counter_core::{
    transaction, transaction_async_local, AsyncBuffer, AtomicConnection, AtomicError, AtomicField,
    AtomicFieldOn, AtomicValue, Awaited, Blocking, Buffer, BufferReport, CallMode, ConnectionPool,
    Field, FlushPolicy, Idempotent, NewRow, Outcome, RawConnection, RedisConnection, RetryPolicy,
    UnknownKeyPolicy, UnknownKeys,
};
use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use diesel::Column;
use diesel::{Connection, SqliteConnection};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncMysqlConnection, AsyncPgConnection, TransactionManager};
use std::time::Duration;

use crate::db::{mysql_url, pg_url, redis_connection, redis_url, DbOf, TestDb};
use crate::{Mysql, Postgres, Sqlite};

mod redis_flusher;
pub use redis_flusher::{FlusherClient, RunningFlusher};

/// One kind of connection to one database, as the scenarios see it.
pub trait Client: Sync + Sized {
    /// The blocking harness that makes and reads rows.
    type Db: TestDb;
    /// [`Blocking`] or [`Awaited`].
    type Mode: TransactionMode;
    /// The connection underneath a pooled one: what a transaction's body gets.
    type Raw: RawConnection<Db = DbOf<Self::Db>>
        + AtomicConnection<Mode = Self::Mode, Raw = Self::Raw>;
    /// A pooled connection, as a scenario passes it: `&mut conn`.
    type Conn: AtomicConnection<Mode = Self::Mode, Raw = Self::Raw> + DerefMut<Target = Self::Raw>;
    /// A Redis connection of the same kind, for `RedisCounter`.
    type Redis: RedisConnection<Mode = Self::Mode>;
    /// Concurrent workers of a concurrency scenario.
    const WORKERS: usize;
    /// Calls per worker where a scenario runs "many": the same total on both kinds.
    const ITERATIONS: usize;

    /// The harness.
    fn db(&self) -> &Self::Db;
    /// `"PostgreSQL"`, `"PostgreSQL async"`, ...: for messages.
    fn name(&self) -> String;
    /// A connection from the client's pool.
    fn conn(&self) -> impl Future<Output = Self::Conn>;
    /// A connection to the Redis server of the tests.
    fn redis(&self) -> impl Future<Output = Self::Redis>;
    /// Runs a scenario (from the test's thread) or one worker (from its own thread) to its
    /// end: polls once on a blocking connection, whose futures never wait; blocks on the
    /// runtime on an async one.
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T;

    /// What an operation returned, as a future: `C::done(Product::increment_stock(&mut conn,
    /// id, 1)).await`.
    fn done<F: Future>(
        out: <Self::Mode as CallMode>::Out<F>,
    ) -> <Self::Mode as CallMode>::Future<F> {
        Self::Mode::into_future(out)
    }

    /// A write-behind buffer for `field` of the client's kind: `Buffer` on the harness's r2d2
    /// pool (its flusher a thread of its own), or `AsyncBuffer` on the client's pool (its
    /// flusher run on the runtime from a thread, as a service would spawn it).
    fn buffer<M, Col, R, F>(
        &self,
        field: Field<M, Col>,
        new_row: F,
        policy: FlushPolicy,
    ) -> impl TestBuffer<M::Key, M::Value>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<Self::Db>> + Send + Sync + 'static,
        M::Key: Ord + Hash + Clone + Send + Sync + 'static,
        R: NewRow<M, Col, DbOf<Self::Db>>,
        F: Fn(&M::Key, M::Value) -> R + Send + Sync + 'static,
    {
        self.buffer_at(None, field, new_row, policy)
    }

    /// [`buffer`](Self::buffer) whose flushes connect to `url` (a [`Gate`](crate::gate::Gate)'s)
    /// on a pool of their own, or, with `None`, to the harness's database as `buffer` does.
    fn buffer_at<M, Col, R, F>(
        &self,
        url: Option<&str>,
        field: Field<M, Col>,
        new_row: F,
        policy: FlushPolicy,
    ) -> impl TestBuffer<M::Key, M::Value>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<Self::Db>> + Send + Sync + 'static,
        M::Key: Ord + Hash + Clone + Send + Sync + 'static,
        R: NewRow<M, Col, DbOf<Self::Db>>,
        F: Fn(&M::Key, M::Value) -> R + Send + Sync + 'static;

    /// An update-only buffer (`Buffer::updating` / `AsyncBuffer::updating`) of the client's
    /// kind, on the harness's database.
    fn updating_buffer<M, Col>(
        &self,
        field: Field<M, Col>,
        unknown: UnknownKeys,
        policy: FlushPolicy,
    ) -> impl TestBuffer<M::Key, M::Value>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<Self::Db>> + Send + Sync + 'static,
        M::Key: Ord + Hash + Clone + Send + Sync + 'static;

    /// The library's retrying transaction: `transaction` on a blocking connection,
    /// `transaction_async_local` on an async one ([`TransactionMode`]).
    fn transaction<T>(
        conn: &mut Self::Conn,
        policy: RetryPolicy,
        body: impl AsyncFn(&mut Self::Raw) -> Result<T, AtomicError>,
    ) -> impl Future<Output = Result<T, AtomicError>> {
        Self::Mode::transaction(conn, policy, body)
    }

    /// An idempotent call ([`Idempotent::run`](counter_core::Idempotent::run), or
    /// `run_async_local` on an async connection), with one body for both kinds.
    fn once<T: Outcome>(
        conn: &mut Self::Conn,
        once: Idempotent<'_>,
        body: impl AsyncFn(&mut Self::Raw) -> Result<T, AtomicError>,
    ) -> impl Future<Output = Result<T, AtomicError>> {
        Self::Mode::once(conn, once, body)
    }

    /// The caller's own transaction, around library calls: Diesel's `Connection::transaction`,
    /// or diesel-async's transaction manager (begin, then commit on `Ok` or roll back on
    /// `Err`).
    fn own_transaction<T>(
        conn: &mut Self::Raw,
        body: impl AsyncFnOnce(&mut Self::Raw) -> Result<T, AtomicError>,
    ) -> impl Future<Output = Result<T, AtomicError>>;
}

/// The library's retrying transaction for connections of one [`CallMode`]: `transaction` on
/// a blocking connection, `transaction_async_local` on an async one, with one body for both
/// (each operation in it awaited through `CallMode::into_future`).
pub trait TransactionMode: CallMode + Sized {
    /// Runs `body` in a library transaction on `conn`.
    fn transaction<C, T>(
        conn: &mut C,
        policy: RetryPolicy,
        body: impl AsyncFn(&mut C::Raw) -> Result<T, AtomicError>,
    ) -> impl Future<Output = Result<T, AtomicError>>
    where
        C: AtomicConnection<Mode = Self>;

    /// Runs `body` as idempotent call `once` on `conn`.
    fn once<C, T: Outcome>(
        conn: &mut C,
        once: Idempotent<'_>,
        body: impl AsyncFn(&mut C::Raw) -> Result<T, AtomicError>,
    ) -> impl Future<Output = Result<T, AtomicError>>
    where
        C: AtomicConnection<Mode = Self>;
}

impl TransactionMode for Blocking {
    async fn transaction<C, T>(
        conn: &mut C,
        policy: RetryPolicy,
        body: impl AsyncFn(&mut C::Raw) -> Result<T, AtomicError>,
    ) -> Result<T, AtomicError>
    where
        C: AtomicConnection<Mode = Self>,
    {
        transaction(conn, policy, |c| Blocking::drive(body(c)))
    }

    async fn once<C, T: Outcome>(
        conn: &mut C,
        once: Idempotent<'_>,
        body: impl AsyncFn(&mut C::Raw) -> Result<T, AtomicError>,
    ) -> Result<T, AtomicError>
    where
        C: AtomicConnection<Mode = Self>,
    {
        once.run(conn, |c| Blocking::drive(body(c)))
    }
}

impl TransactionMode for Awaited {
    async fn transaction<C, T>(
        conn: &mut C,
        policy: RetryPolicy,
        body: impl AsyncFn(&mut C::Raw) -> Result<T, AtomicError>,
    ) -> Result<T, AtomicError>
    where
        C: AtomicConnection<Mode = Self>,
    {
        let body = &body;
        transaction_async_local(conn, policy, |c| body(c).scope_boxed_local()).await
    }

    async fn once<C, T: Outcome>(
        conn: &mut C,
        once: Idempotent<'_>,
        body: impl AsyncFn(&mut C::Raw) -> Result<T, AtomicError>,
    ) -> Result<T, AtomicError>
    where
        C: AtomicConnection<Mode = Self>,
    {
        let body = &body;
        once.run_async_local(conn, |c| body(c).scope_boxed_local())
            .await
    }
}

/// Runs `work(worker, conn)` on [`Client::WORKERS`] threads, each with its own pooled
/// connection, all released at once by a barrier; returns the results in worker order.
pub fn on_workers<Cl, T, W>(client: &Cl, work: W) -> Vec<T>
where
    Cl: Client,
    T: Send,
    W: AsyncFn(usize, &mut Cl::Conn) -> T + Sync,
{
    on_n_workers(client, Cl::WORKERS, work)
}

/// [`on_workers`] with `workers` workers.
pub fn on_n_workers<Cl, T, W>(client: &Cl, workers: usize, work: W) -> Vec<T>
where
    Cl: Client,
    T: Send,
    W: AsyncFn(usize, &mut Cl::Conn) -> T + Sync,
{
    on_barrier_threads(workers, |worker, barrier| {
        client.block_on(async {
            let mut conn = client.conn().await;
            barrier.wait();
            work(worker, &mut conn).await
        })
    })
}

/// Runs `body(thread, barrier)` on `threads` threads, each to wait at the barrier once it is
/// ready; returns the results in thread order.
pub fn on_barrier_threads<T, F>(threads: usize, body: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize, &Barrier) -> T + Sync,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (barrier, body) = (&barrier, &body);
                scope.spawn(move || body(thread, barrier))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Blocking: the harness's own r2d2 pool
// ---------------------------------------------------------------------------------------------

/// Blocking Diesel connections from the harness's r2d2 pool, 8 threads.
pub struct BlockingClient<B>(pub B);

impl<B: TestDb> Client for BlockingClient<B> {
    type Db = B;
    type Mode = Blocking;
    type Raw = B::Conn;
    type Conn = B::Pooled;
    type Redis = redis::Connection;
    const WORKERS: usize = 8;
    const ITERATIONS: usize = B::ITERATIONS;

    fn db(&self) -> &B {
        &self.0
    }

    fn name(&self) -> String {
        B::NAME.to_owned()
    }

    async fn conn(&self) -> B::Pooled {
        self.0.conn()
    }

    async fn redis(&self) -> redis::Connection {
        redis_connection()
    }

    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        Blocking::drive(future)
    }

    fn buffer_at<M, Col, R, F>(
        &self,
        url: Option<&str>,
        field: Field<M, Col>,
        new_row: F,
        policy: FlushPolicy,
    ) -> impl TestBuffer<M::Key, M::Value>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<B>> + Send + Sync + 'static,
        M::Key: Ord + Hash + Clone + Send + Sync + 'static,
        R: NewRow<M, Col, DbOf<B>>,
        F: Fn(&M::Key, M::Value) -> R + Send + Sync + 'static,
    {
        let pool = match url {
            Some(url) => pool_at::<B::Conn>(url),
            None => self.0.pool().clone(),
        };
        Buffer::new(pool, field, new_row, policy)
    }

    fn updating_buffer<M, Col>(
        &self,
        field: Field<M, Col>,
        unknown: UnknownKeys,
        policy: FlushPolicy,
    ) -> impl TestBuffer<M::Key, M::Value>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<B>> + Send + Sync + 'static,
        M::Key: Ord + Hash + Clone + Send + Sync + 'static,
    {
        Buffer::updating(self.0.pool().clone(), field, unknown, policy)
    }

    async fn own_transaction<T>(
        conn: &mut B::Conn,
        body: impl AsyncFnOnce(&mut B::Conn) -> Result<T, AtomicError>,
    ) -> Result<T, AtomicError> {
        conn.transaction(|c| Blocking::drive(body(c)))
    }
}

/// An r2d2 pool of 2 on `url`, opened without connecting (the database may be down), whose
/// `get` gives up after 2 s.
fn pool_at<C: R2D2Connection + Send + 'static>(url: &str) -> Pool<ConnectionManager<C>> {
    Pool::builder()
        .max_size(2)
        .connection_timeout(Duration::from_secs(2))
        .build_unchecked(ConnectionManager::new(url))
}

// ---------------------------------------------------------------------------------------------
// Async: diesel-async connections in a deadpool or bb8 pool
// ---------------------------------------------------------------------------------------------

/// A pool of diesel-async connections to the database of harness `B`.
pub trait AsyncPool<B: TestDb>: ConnectionPool<Conn = Self::Raw> + Clone + Sized + Sync {
    /// The diesel-async connection.
    type Raw: RawConnection<Db = DbOf<B>>
        + AtomicConnection<Mode = Awaited, Raw = Self::Raw>
        + diesel_async::AsyncConnection;
    /// A connection checked out of the pool.
    type Pooled: AtomicConnection<Mode = Awaited, Raw = Self::Raw> + DerefMut<Target = Self::Raw>;
    /// `"deadpool"` or `"bb8"`.
    const KIND: &'static str;
    /// A pool of `max` connections on `db`'s database.
    fn open(db: &B, max: usize) -> impl Future<Output = Self>;
    /// A pool of 2 on `url`, opened without connecting (the database may be down).
    fn at(url: &str) -> Self;
    /// A connection.
    fn get(&self) -> impl Future<Output = Self::Pooled>;
}

/// PostgreSQL through deadpool.
pub type PgPool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
/// MySQL/MariaDB through bb8.
pub type MysqlPool = diesel_async::pooled_connection::bb8::Pool<AsyncMysqlConnection>;
/// SQLite through deadpool.
pub type SqlitePool =
    diesel_async::pooled_connection::deadpool::Pool<SyncConnectionWrapper<SqliteConnection>>;

impl AsyncPool<Postgres> for PgPool {
    type Raw = AsyncPgConnection;
    type Pooled = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;
    const KIND: &'static str = "deadpool";

    async fn open(_: &Postgres, max: usize) -> Self {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(pg_url());
        PgPool::builder(manager)
            .max_size(max)
            .build()
            .expect("deadpool of AsyncPgConnection")
    }

    fn at(url: &str) -> Self {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
        PgPool::builder(manager)
            .max_size(2)
            .build()
            .expect("deadpool of AsyncPgConnection")
    }

    async fn get(&self) -> Self::Pooled {
        self.get().await.expect("a pooled AsyncPgConnection")
    }
}

impl AsyncPool<Mysql> for MysqlPool {
    type Raw = AsyncMysqlConnection;
    type Pooled =
        diesel_async::pooled_connection::bb8::PooledConnection<'static, AsyncMysqlConnection>;
    const KIND: &'static str = "bb8";

    async fn open(_: &Mysql, max: usize) -> Self {
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(mysql_url());
        MysqlPool::builder()
            .max_size(max as u32)
            .build(manager)
            .await
            .expect("bb8 pool of AsyncMysqlConnection")
    }

    fn at(url: &str) -> Self {
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url);
        MysqlPool::builder()
            .max_size(2)
            .connection_timeout(Duration::from_secs(2))
            .build_unchecked(manager)
    }

    async fn get(&self) -> Self::Pooled {
        self.get_owned()
            .await
            .expect("a pooled AsyncMysqlConnection")
    }
}

impl AsyncPool<Sqlite> for SqlitePool {
    type Raw = SyncConnectionWrapper<SqliteConnection>;
    type Pooled =
        diesel_async::pooled_connection::deadpool::Object<SyncConnectionWrapper<SqliteConnection>>;
    const KIND: &'static str = "deadpool";

    /// On the harness's file, with SQLite's defaults: the file's journal mode and no busy
    /// timeout (the library's own waiting must cope).
    async fn open(db: &Sqlite, max: usize) -> Self {
        let url = db.path().to_str().expect("UTF-8 path").to_owned();
        let manager =
            AsyncDieselConnectionManager::<SyncConnectionWrapper<SqliteConnection>>::new(url);
        SqlitePool::builder(manager)
            .max_size(max)
            .build()
            .expect("deadpool of SyncConnectionWrapper<SqliteConnection>")
    }

    fn at(url: &str) -> Self {
        let manager =
            AsyncDieselConnectionManager::<SyncConnectionWrapper<SqliteConnection>>::new(url);
        SqlitePool::builder(manager)
            .max_size(2)
            .build()
            .expect("deadpool of SyncConnectionWrapper<SqliteConnection>")
    }

    async fn get(&self) -> Self::Pooled {
        self.get().await.expect("a pooled SQLite connection")
    }
}

/// diesel-async connections from pool `P`, 16 workers on a 4-thread tokio runtime.
pub struct AsyncClient<B, P> {
    db: B,
    pool: P,
    runtime: tokio::runtime::Runtime,
}

impl<B: TestDb, P: AsyncPool<B>> AsyncClient<B, P> {
    /// On harness `db` (opened before the runtime: without a URL, opening starts a container,
    /// which blocks).
    pub fn on(db: B) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let pool = runtime.block_on(P::open(&db, Self::WORKERS + 4));
        AsyncClient { db, pool, runtime }
    }
}

impl<B: TestDb, P: AsyncPool<B>> Client for AsyncClient<B, P> {
    type Db = B;
    type Mode = Awaited;
    type Raw = P::Raw;
    type Conn = P::Pooled;
    type Redis = redis::aio::MultiplexedConnection;
    const WORKERS: usize = 16;
    const ITERATIONS: usize = B::ITERATIONS / 2;

    fn db(&self) -> &B {
        &self.db
    }

    fn name(&self) -> String {
        format!("{} async ({})", B::NAME, P::KIND)
    }

    fn conn(&self) -> impl Future<Output = P::Pooled> {
        self.pool.get()
    }

    async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let url = redis_url();
        redis::Client::open(url)
            .expect("Redis URL")
            .get_multiplexed_async_connection_with_config(&crate::db::redis_async_config())
            .await
            .unwrap_or_else(|e| panic!("Redis at {url}: {e}"))
    }

    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime.handle().block_on(future)
    }

    fn buffer_at<M, Col, R, F>(
        &self,
        url: Option<&str>,
        field: Field<M, Col>,
        new_row: F,
        policy: FlushPolicy,
    ) -> impl TestBuffer<M::Key, M::Value>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<B>> + Send + Sync + 'static,
        M::Key: Ord + Hash + Clone + Send + Sync + 'static,
        R: NewRow<M, Col, DbOf<B>>,
        F: Fn(&M::Key, M::Value) -> R + Send + Sync + 'static,
    {
        let pool = match url {
            Some(url) => {
                let _runtime = self.runtime.enter();
                P::at(url)
            }
            None => self.pool.clone(),
        };
        self.flushed(AsyncBuffer::new(pool, field, new_row, policy))
    }

    fn updating_buffer<M, Col>(
        &self,
        field: Field<M, Col>,
        unknown: UnknownKeys,
        policy: FlushPolicy,
    ) -> impl TestBuffer<M::Key, M::Value>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<B>> + Send + Sync + 'static,
        M::Key: Ord + Hash + Clone + Send + Sync + 'static,
    {
        self.flushed(AsyncBuffer::updating(
            self.pool.clone(),
            field,
            unknown,
            policy,
        ))
    }

    async fn own_transaction<T>(
        conn: &mut P::Raw,
        body: impl AsyncFnOnce(&mut P::Raw) -> Result<T, AtomicError>,
    ) -> Result<T, AtomicError> {
        type Manager<R> = <R as diesel_async::AsyncConnection>::TransactionManager;
        Manager::<P::Raw>::begin_transaction(conn).await?;
        match body(conn).await {
            Ok(value) => {
                Manager::<P::Raw>::commit_transaction(conn).await?;
                Ok(value)
            }
            Err(error) => {
                Manager::<P::Raw>::rollback_transaction(conn).await?;
                Err(error)
            }
        }
    }
}

impl<B: TestDb, P: AsyncPool<B>> AsyncClient<B, P> {
    /// `buffer` with its flusher running on the runtime from a thread of its own, as a
    /// service would spawn it.
    fn flushed<M, Col, F>(
        &self,
        buffer: AsyncBuffer<P, M, Col, F>,
    ) -> FlushedAsyncBuffer<P, M, Col, F>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<B>> + Send + Sync + 'static,
        M::Key: Ord + Hash + Clone + Send + Sync + 'static,
        F: UnknownKeyPolicy<M, Col, DbOf<B>> + Send + Sync + 'static,
    {
        let flusher = {
            let (buffer, runtime) = (buffer.clone(), self.runtime.handle().clone());
            std::thread::spawn(move || runtime.block_on(buffer.flusher()))
        };
        FlushedAsyncBuffer {
            buffer,
            flusher: Some(flusher),
        }
    }
}

/// PostgreSQL, async.
pub type AsyncPostgres = AsyncClient<Postgres, PgPool>;
/// MySQL/MariaDB, async.
pub type AsyncMysql = AsyncClient<Mysql, MysqlPool>;
/// SQLite, async.
pub type AsyncSqlite = AsyncClient<Sqlite, SqlitePool>;

// ---------------------------------------------------------------------------------------------
// Write-behind buffers
// ---------------------------------------------------------------------------------------------

/// A write-behind buffer as the scenarios use it: [`Buffer`], or an [`AsyncBuffer`] with its
/// flusher ([`FlushedAsyncBuffer`]). Only flushing differs: awaited or not.
pub trait TestBuffer<K, V>: Sync {
    /// `add`: memory only.
    fn add(&self, key: K, n: V) -> Result<(), AtomicError>;
    /// `flush`: what it wrote, refused and found without a row.
    fn flush(&self) -> impl Future<Output = Result<BufferReport<K>, AtomicError>>;
    /// The counts not yet written.
    fn pending(&self) -> i128;
    /// The error of the last flush, if it failed.
    fn last_error(&self) -> Option<String>;
    /// What the background flusher reported since the last call.
    fn background_report(&self) -> BufferReport<K>;
    /// Stops the flusher and flushes what is left.
    fn shutdown(self) -> impl Future<Output = Result<BufferReport<K>, AtomicError>>;
}

impl<K, V> TestBuffer<K, V> for Buffer<K, V>
where
    K: Ord + Hash + Clone + Send + Sync + 'static,
    V: AtomicValue,
{
    fn add(&self, key: K, n: V) -> Result<(), AtomicError> {
        Buffer::add(self, key, n)
    }

    async fn flush(&self) -> Result<BufferReport<K>, AtomicError> {
        Buffer::flush(self)
    }

    fn pending(&self) -> i128 {
        Buffer::pending(self)
    }

    fn last_error(&self) -> Option<String> {
        Buffer::last_error(self)
    }

    fn background_report(&self) -> BufferReport<K> {
        Buffer::background_report(self)
    }

    async fn shutdown(self) -> Result<BufferReport<K>, AtomicError> {
        Buffer::shutdown(self)
    }
}

/// An [`AsyncBuffer`] and the thread its flusher runs on (blocked on the client's runtime).
pub struct FlushedAsyncBuffer<P, M: AtomicField<Col>, Col: Column, F> {
    buffer: AsyncBuffer<P, M, Col, F>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl<P, M, Col, F> TestBuffer<M::Key, M::Value> for FlushedAsyncBuffer<P, M, Col, F>
where
    P: ConnectionPool,
    Col: Column + Send + Sync + 'static,
    M: AtomicFieldOn<Col, <P::Conn as RawConnection>::Db> + Send + Sync + 'static,
    M::Key: Ord + Hash + Clone + Send + Sync + 'static,
    F: UnknownKeyPolicy<M, Col, <P::Conn as RawConnection>::Db> + Send + Sync + 'static,
{
    fn add(&self, key: M::Key, n: M::Value) -> Result<(), AtomicError> {
        self.buffer.add(key, n)
    }

    fn flush(&self) -> impl Future<Output = Result<BufferReport<M::Key>, AtomicError>> {
        self.buffer.flush()
    }

    fn pending(&self) -> i128 {
        self.buffer.pending()
    }

    fn last_error(&self) -> Option<String> {
        self.buffer.last_error()
    }

    fn background_report(&self) -> BufferReport<M::Key> {
        self.buffer.background_report()
    }

    async fn shutdown(mut self) -> Result<BufferReport<M::Key>, AtomicError> {
        let flushed = self.buffer.shutdown().await;
        if let Some(flusher) = self.flusher.take() {
            flusher.join().expect("the buffer's flusher thread");
        }
        flushed
    }
}
