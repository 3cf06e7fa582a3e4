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

/// CPU-bound threads to run beside a concurrency scenario ([`beside_busy_threads`]).
pub const BUSY_THREADS: usize = 2;

/// Runs `work` while `threads` CPU-bound threads spin beside it, so the workers are preempted
/// anywhere in a call (between taking a lock and committing), as on a loaded machine, not only
/// where they wait on the database. The spinners stop when `work` returns or panics.
pub fn beside_busy_threads<T>(threads: usize, work: impl FnOnce() -> T) -> T {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Stops the spinners however `work` ends (a panic would otherwise leave the scope
    /// waiting for them forever).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut x = 1_u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) ^ i);
                    }
                }
            });
        }
        let _stop = Stop(&stop);
        work()
    })
}
