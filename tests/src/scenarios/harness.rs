//! What scenarios share besides assertions: threads that start together, a panic caught from
//! a future, the change tuples and the harness transaction several topics use.

use std::future::Future;
use std::task::Poll;

use counter_core::Change;
use diesel::Connection;

use crate::client::{on_barrier_threads, Client};
use crate::db::TestDb;
use crate::schema::ct_products;

/// Threads of [`on_threads`], for the tests of one backend's blocking connections.
pub const THREADS: usize = 8;

/// Runs `work(thread, conn)` on [`THREADS`] threads, each with its own pooled connection, all
/// released at once by a barrier; returns the results in thread order.
pub fn on_threads<B, T, F>(db: &B, work: F) -> Vec<T>
where
    B: TestDb,
    T: Send,
    F: Fn(usize, &mut B::Pooled) -> T + Sync,
{
    on_n_threads(db, THREADS, work)
}

/// [`on_threads`] on `threads` threads.
pub fn on_n_threads<B, T, F>(db: &B, threads: usize, work: F) -> Vec<T>
where
    B: TestDb,
    T: Send,
    F: Fn(usize, &mut B::Pooled) -> T + Sync,
{
    on_barrier_threads(threads, |thread, barrier| {
        let mut conn = db.conn();
        barrier.wait();
        work(thread, &mut conn)
    })
}

/// `catch_unwind` for a future: a panic while it was polled, as `Err`.
pub async fn catch_panic<F: Future>(future: F) -> std::thread::Result<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

/// The sale: `stock` down if enough, `sold` up.
pub type Sale = (
    Change<ct_products::stock, i32>,
    Change<ct_products::sold, i64>,
);

/// Does `client` run on PostgreSQL under SERIALIZABLE (`.ci/run`'s second run), where a hot
/// row can spend a call's whole retry budget on serialization failures?
pub fn serializable_postgres<C: Client>(_: &C) -> bool {
    <C::Db as TestDb>::NAME == "PostgreSQL" && crate::db::pg_serializable()
}

/// The transaction manager of the harness's blocking connections.
pub type HarnessTransaction<C> =
    <<<C as Client>::Db as TestDb>::Conn as Connection>::TransactionManager;

/// The load for the keyed scenarios: 16 workers.
pub const KEYED_THREADS: usize = 16;
