//! [`Buffer`]: a write-behind buffer flushed from a thread of its own, through an r2d2 pool.

use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use diesel::Column;

use super::{lock, panicked, FlushPolicy, Pending};
use crate::backend::{BackendOf, Blocking, BlockingConnection, CallMode, RawConnection};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::ops::Field;
use crate::upsert::NewRow;
use crate::value::AtomicValue;

/// Writes one batch; built by [`Buffer::new`] around the pool, the field and `new_row`.
type FlushFn<K, V> = Box<dyn Fn(Vec<(K, V)>) -> Result<(), AtomicError> + Send + Sync>;

/// The part shared with the background thread.
struct Shared<K, V> {
    pending: Pending<K, V>,
    /// One flush at a time, so batches are written in the order they were taken.
    flushing: Mutex<()>,
    write: FlushFn<K, V>,
    /// `true` once shutdown began; the background thread waits on `wake`.
    stopping: Mutex<bool>,
    wake: Condvar,
}

/// Buffered increments of one atomic field, keyed like the model (`M::Key`), flushed to the
/// database in batches.
///
/// A hot counter row takes one commit per increment, and every increment of the row waits for
/// the previous one's. [`Buffer::add`] only adds to an in-memory map (sharded by key, so threads
/// adding to different keys never wait for one another); a flush takes what has accumulated,
/// sums it per key, sorts the keys, and writes the batch with
/// [`Field::increment_or_insert_all`] in one transaction on a connection of its own, so two
/// buffers (two app servers) flushing overlapping keys take their row locks in one order.
///
/// **What can be lost:** only counts added since the last successful flush, and only if the
/// process dies before the next one. A flush that fails (the database is down, the connection
/// was killed, a bound refused) puts every count it took back into the buffer, and the next
/// flush writes them. One window is shared with every database write: a flush whose `COMMIT`
/// reached the database but whose answer was lost with the connection cannot know it
/// succeeded, and its counts are written again.
///
/// A connection the server closed (a restart, a killed session) is replaced by the pool when
/// it tests connections on check-out, which r2d2 does by default; with
/// `test_on_check_out(false)` a MySQL connection that died stays in the pool and every flush
/// fails (keeping its counts) until the pool drops it.
///
/// **Bounds are not enforced through a buffer**: a buffer is for counters (views, downloads),
/// never for stock. A flush that a bound refuses fails whole and keeps its counts.
///
/// ```
/// use counter_core::{AtomicField, Buffer, FlushPolicy};
/// use diesel::prelude::*;
/// use diesel::r2d2::{ConnectionManager, Pool};
///
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
/// # let dir = tempfile::tempdir()?;
/// # let url = dir.path().join("doc.db").to_str().unwrap().to_owned();
/// let pool = Pool::new(ConnectionManager::<SqliteConnection>::new(url))?;
/// diesel::sql_query("CREATE TABLE page_views (page_id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
///     .execute(&mut pool.get()?)?;
///
/// let views = Buffer::new(
///     pool.clone(),
///     PageViews::atomic_views(),
///     |&page_id: &i64, views| PageViews { page_id, views }, // the row of a page seen first
///     FlushPolicy::DEFAULT,
/// );
/// for page in [1, 2, 1, 1] {
///     views.add(page, 1)?; // memory only
/// }
/// assert_eq!(views.pending(), 4);
/// views.flush()?; // one transaction: page 1 += 3, page 2 += 1 (rows created)
/// assert_eq!(PageViews::current_views(&mut pool.get()?, 1)?, 3);
/// views.shutdown()?; // stops the background thread after a last flush
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Buffer<K, V>
where
    K: Ord + Hash + Clone + Send + Sync + 'static,
    V: AtomicValue,
{
    shared: Arc<Shared<K, V>>,
    flusher: Option<JoinHandle<()>>,
}

impl<K, V> Buffer<K, V>
where
    K: Ord + Hash + Clone + Send + Sync + 'static,
    V: AtomicValue,
{
    /// A buffer for `field` whose flushes take a connection from `pool`. `new_row(key,
    /// total)` builds the row to insert for a key that has none yet (its column should start
    /// at `total`). Starts the background flusher unless the policy is
    /// [`FlushPolicy::MANUAL`].
    pub fn new<M, Col, C, R, F>(
        pool: Pool<ConnectionManager<C>>,
        field: Field<M, Col>,
        new_row: F,
        policy: FlushPolicy,
    ) -> Self
    where
        C: BlockingConnection<Raw = C> + RawConnection + R2D2Connection + Send + 'static,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, BackendOf<C>> + AtomicField<Col, Key = K, Value = V>,
        R: NewRow<M, Col, BackendOf<C>>,
        F: Fn(&K, V) -> R + Send + Sync + 'static,
    {
        let write: FlushFn<K, V> = Box::new(move |batch| {
            let mut conn = pool.get().map_err(AtomicError::custom)?;
            Blocking::drive(field.upsert_all(&mut *conn, batch, &new_row)).map(drop)
        });
        let shared = Arc::new(Shared {
            pending: Pending::new(policy),
            flushing: Mutex::new(()),
            write,
            stopping: Mutex::new(false),
            wake: Condvar::new(),
        });
        let flusher = (policy != FlushPolicy::MANUAL).then(|| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("counter-buffer-flush".into())
                .spawn(move || shared.run_flusher())
                .expect("spawning the buffer's flush thread")
        });
        Buffer { shared, flusher }
    }

    /// Adds `n` to `key`'s pending count: memory only, one shard lock. Errors:
    /// `NegativeAmount` (a buffer only counts up).
    pub fn add(&self, key: K, n: V) -> Result<(), AtomicError> {
        if self.shared.pending.add(key, n)? {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Writes everything added so far, on the calling thread; returns the number of keys
    /// written. On error every count is kept for the next flush, and the error is also kept
    /// for [`last_error`](Self::last_error).
    ///
    #[doc = include_str!("../../doc/ops/buffer_flush.md")]
    pub fn flush(&self) -> Result<usize, AtomicError> {
        self.shared.flush()
    }

    /// The sum of the counts not yet written.
    pub fn pending(&self) -> i128 {
        self.shared.pending.total()
    }

    /// The message of the last flush's error, or `None` when the last flush succeeded (or
    /// none ran yet).
    pub fn last_error(&self) -> Option<String> {
        self.shared.pending.last_error()
    }

    /// Stops the background flusher and flushes what is left; the error of that last flush,
    /// whose counts are then still [`pending`](Self::pending).
    pub fn shutdown(mut self) -> Result<usize, AtomicError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<usize, AtomicError> {
        *lock(&self.shared.stopping) = true;
        self.shared.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            // A panic of the flusher (a bug, or a panicking `new_row`) is not resumed here:
            // the counts it had taken are lost with it, what is pending is flushed below.
            let _ = flusher.join();
        }
        self.shared.flush()
    }
}

impl<K, V> Drop for Buffer<K, V>
where
    K: Ord + Hash + Clone + Send + Sync + 'static,
    V: AtomicValue,
{
    /// Flushes what is left (see [`Buffer::shutdown`], which also returns the error; here it
    /// is kept in `last_error` of nobody, and the counts are lost with the buffer).
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl<K, V> Shared<K, V>
where
    K: Ord + Hash + Clone + Send + Sync + 'static,
    V: AtomicValue,
{
    /// Takes every pending count, writes it as one batch, and settles: on error every count
    /// goes back.
    fn flush(&self) -> Result<usize, AtomicError> {
        let _one_at_a_time = lock(&self.flushing);
        let (taken, batch) = self.pending.take();
        let result = if batch.is_empty() {
            Ok(())
        } else {
            // A panicking `new_row` fails the flush like a database error: the counts stay.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.write)(batch)))
                .unwrap_or_else(|_| Err(panicked()))
        };
        taken.settle(result)
    }

    /// The background flusher: waits for the interval, enough pending adds, or shutdown.
    fn run_flusher(&self) {
        let policy = self.pending.policy;
        loop {
            let mut stopping = lock(&self.stopping);
            while !*stopping && !self.pending.due() {
                let (guard, timeout) = self
                    .wake
                    .wait_timeout(stopping, policy.wait())
                    .unwrap_or_else(PoisonError::into_inner);
                stopping = guard;
                if timeout.timed_out() && policy.interval.is_some() {
                    break;
                }
            }
            if *stopping {
                return;
            }
            drop(stopping);
            // An error is kept in `last_error` and the counts stay for the next flush.
            let _ = self.flush();
        }
    }
}
