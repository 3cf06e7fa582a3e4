//! How the checker's threads reach the library: blocking connections from the cell's r2d2
//! pool, or diesel-async connections, each thread driving its own on a current-thread tokio
//! runtime. Both run the same [`execute`]; only how a call is sent and awaited differs.

use std::marker::PhantomData;

use counter_core::{
    AsyncConnection, AtomicFieldOn, BackendOf, Blocking, CallMode, Changes, RawConnection,
    UpsertRow,
};
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel_async::AsyncConnection as DieselAsync;

use super::op::{execute, KeyDebug, Op, Outcome};
use super::subject::{KeyOf, SaleOf, Subject};
use super::CheckConn;

/// One way of calling the library, for subject `S`.
pub trait Driver<S: Subject>: Sync {
    /// One thread's connection.
    type Thread: Calls<S>;
    /// A connection for a new thread.
    fn thread(&self) -> Self::Thread;
    /// What the report calls this driver.
    fn name(&self) -> &'static str;
}

/// One thread's calls.
pub trait Calls<S: Subject> {
    /// Runs `op`: its outcome, and whether the connection was left inside a transaction.
    fn call(&mut self, op: &Op<KeyOf<S>>) -> (Outcome, bool);
    /// Moves on to another connection (the checker changes connection now and then).
    fn renew(&mut self);
}

/// Blocking connections from an r2d2 pool.
pub struct Pooled<'p, C: CheckConn> {
    pub pool: &'p Pool<ConnectionManager<C>>,
}

impl<S, C> Driver<S> for Pooled<'_, C>
where
    C: CheckConn,
    S: Subject + AtomicFieldOn<S::Col, BackendOf<C>>,
    for<'r> &'r S: UpsertRow<S, S::Col, BackendOf<C>>,
    SaleOf<S>: Changes<S, BackendOf<C>, Key = KeyOf<S>, Values = (i32, i64)>,
    KeyOf<S>: KeyDebug,
{
    type Thread = PooledCalls<C>;

    fn thread(&self) -> PooledCalls<C> {
        PooledCalls {
            pool: self.pool.clone(),
            conn: self.pool.get().expect("checker: a connection"),
        }
    }

    fn name(&self) -> &'static str {
        "blocking"
    }
}

/// A thread's pooled blocking connection.
pub struct PooledCalls<C: CheckConn> {
    pool: Pool<ConnectionManager<C>>,
    conn: PooledConnection<ConnectionManager<C>>,
}

impl<S, C> Calls<S> for PooledCalls<C>
where
    C: CheckConn,
    S: Subject + AtomicFieldOn<S::Col, BackendOf<C>>,
    for<'r> &'r S: UpsertRow<S, S::Col, BackendOf<C>>,
    SaleOf<S>: Changes<S, BackendOf<C>, Key = KeyOf<S>, Values = (i32, i64)>,
    KeyOf<S>: KeyDebug,
{
    fn call(&mut self, op: &Op<KeyOf<S>>) -> (Outcome, bool) {
        let outcome = Blocking::drive(execute::<S, _>(&mut *self.conn, op));
        (outcome, left_in_transaction(&mut *self.conn))
    }

    fn renew(&mut self) {
        self.conn = self.pool.get().expect("checker: a connection");
    }
}

/// diesel-async connections to `url`, each set up with `setup` (the cell's settings), one per
/// thread on the thread's own current-thread runtime.
pub struct Async<A> {
    pub url: String,
    pub setup: String,
    pub marker: PhantomData<fn() -> A>,
}

impl<A> Async<A> {
    /// The driver for connections of type `A` to `url`, set up with `setup`.
    pub fn new(url: &str, setup: &str) -> Self {
        Async {
            url: url.to_owned(),
            setup: setup.to_owned(),
            marker: PhantomData,
        }
    }
}

impl<S, A> Driver<S> for Async<A>
where
    A: DieselAsync + AsyncConnection + RawConnection + 'static,
    S: Subject + AtomicFieldOn<S::Col, BackendOf<A>>,
    for<'r> &'r S: UpsertRow<S, S::Col, BackendOf<A>>,
    SaleOf<S>: Changes<S, BackendOf<A>, Key = KeyOf<S>, Values = (i32, i64)>,
    KeyOf<S>: KeyDebug,
{
    type Thread = AsyncCalls<A>;

    fn thread(&self) -> AsyncCalls<A> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("checker: a tokio runtime");
        let conn = runtime.block_on(connect::<A>(&self.url, &self.setup));
        AsyncCalls {
            runtime,
            conn,
            url: self.url.clone(),
            setup: self.setup.clone(),
        }
    }

    fn name(&self) -> &'static str {
        "async"
    }
}

async fn connect<A: DieselAsync>(url: &str, setup: &str) -> A {
    let mut conn = A::establish(url)
        .await
        .unwrap_or_else(|e| panic!("checker: an async connection to {url}: {e}"));
    if !setup.is_empty() {
        conn.batch_execute(setup)
            .await
            .unwrap_or_else(|e| panic!("checker: {setup}: {e}"));
    }
    conn
}

/// A thread's async connection and the runtime that drives it.
pub struct AsyncCalls<A> {
    runtime: tokio::runtime::Runtime,
    conn: A,
    url: String,
    setup: String,
}

impl<S, A> Calls<S> for AsyncCalls<A>
where
    A: DieselAsync + AsyncConnection + RawConnection + 'static,
    S: Subject + AtomicFieldOn<S::Col, BackendOf<A>>,
    for<'r> &'r S: UpsertRow<S, S::Col, BackendOf<A>>,
    SaleOf<S>: Changes<S, BackendOf<A>, Key = KeyOf<S>, Values = (i32, i64)>,
    KeyOf<S>: KeyDebug,
{
    fn call(&mut self, op: &Op<KeyOf<S>>) -> (Outcome, bool) {
        let outcome = self.runtime.block_on(execute::<S, _>(&mut self.conn, op));
        (outcome, left_in_transaction(&mut self.conn))
    }

    fn renew(&mut self) {
        self.conn = self.runtime.block_on(connect::<A>(&self.url, &self.setup));
    }
}

/// Is the connection inside a transaction (or in a state where Diesel cannot tell)?
fn left_in_transaction<R: RawConnection>(conn: &mut R) -> bool {
    !matches!(conn.transaction_status().transaction_depth(), Ok(None))
}

/// Runs `body(thread, conn)` on `threads` threads, each with its own blocking connection from
/// `pool`, driven to completion in place; the results in thread order.
pub fn on_pooled_threads<C, T>(
    pool: &Pool<ConnectionManager<C>>,
    threads: usize,
    body: impl AsyncFn(usize, &mut C) -> T + Sync,
) -> Vec<T>
where
    C: CheckConn,
    T: Send,
{
    let body = &body;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    let mut conn = pool.get().expect("checker: a connection");
                    Blocking::drive(body(thread, &mut *conn))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().expect("a checker thread panicked"))
            .collect()
    })
}

/// Runs `body(thread, conn)` on `threads` threads, each with its own diesel-async connection
/// of type `A` to `url` (set up with `setup`), all on one multi-threaded tokio runtime of two
/// workers (timers and I/O shared, as a service runs them); the results in thread order.
pub fn on_async_threads<A, T>(
    url: &str,
    setup: &str,
    threads: usize,
    body: impl AsyncFn(usize, &mut A) -> T + Sync,
) -> Vec<T>
where
    A: DieselAsync + 'static,
    T: Send,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("checker: a tokio runtime");
    let (body, runtime) = (&body, &runtime);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    runtime.block_on(async {
                        let mut conn = connect::<A>(url, setup).await;
                        body(thread, &mut conn).await
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().expect("a checker thread panicked"))
            .collect()
    })
}
