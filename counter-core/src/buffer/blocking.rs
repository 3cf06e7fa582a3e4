//! [`Buffer`]: a write-behind buffer flushed from a thread of its own, through an r2d2 pool.

use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use diesel::Column;

use super::batch::{write_batch, Recorded};
use super::pending::Pending;
use super::{lock, panicked, BufferReport, FlushPolicy};
use crate::backend::{BackendOf, Blocking, BlockingConnection, CallMode, RawConnection};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::many::each::Each;
use crate::ops::Field;
use crate::unknown_keys::UnknownKeyPolicy;
use crate::unknown_keys::UnknownKeys;
use crate::upsert::NewRow;
use crate::value::AtomicValue;

/// Writes one batch; built by [`Buffer::new`] or [`Buffer::updating`] around the pool, the
/// field and what to do with a key without a row.
type FlushFn<K, V> =
    Box<dyn Fn(&[(K, V)], Option<Recorded<'_>>) -> Result<Each<K, V>, AtomicError> + Send + Sync>;

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
/// sums it per key, sorts the keys, and writes the batch in one transaction on a connection of
/// its own, so two buffers (two app servers) flushing overlapping keys take their row locks in
/// one order. Each row is written on its own: a row that refuses (past its maximum, a `CHECK`,
/// a trigger) is named in the flush's [`BufferReport`] and keeps its count pending, and every
/// other row is written. A key without a row is inserted (`new`, with your `new_row`) or
/// reported and dropped or kept (`updating`, see [`UnknownKeys`]).
///
/// **What can be lost:** only counts added since the last successful flush, and only if the
/// process dies before the next one. A flush that fails (the database is down, the connection
/// was killed, a bound refused) puts every count it took back into the buffer, and the next
/// flush writes them. Counts are only dropped when you ask: an unknown key under
/// [`UnknownKeys::Drop`], after the report names it.
///
/// **Nothing is written twice:** each batch has an id, recorded in the flush ledger
/// ([`FlushPolicy::ledger`], the table `counter_flushes`) by the transaction that writes the
/// batch. A flush whose `COMMIT` reached the database but whose answer was lost (the
/// connection cut, the server restarted) keeps its batch whole, and the next flush writes it
/// again under the same id: the ledger's primary key refuses it if it was committed, and the
/// flush then reports what the first write did. New counts wait for the next batch meanwhile.
/// The ledger keeps a day of batches, pruned by the flushes (and by a
/// [`RedisCounter`](crate::RedisCounter) sharing the table, after its `prune_after`): a batch
/// kept longer than the ledger remembers, through an outage of more than a day, is written
/// again whether or not its first write was in.
///
/// A connection the server closed (a restart, a killed session) is replaced by the pool when
/// it tests connections on check-out, which r2d2 does by default; with
/// `test_on_check_out(false)` a MySQL connection that died stays in the pool and every flush
/// fails (keeping its counts) until the pool drops it.
///
/// **What waits in memory is bounded** ([`FlushPolicy::max_keys`], [`FlushPolicy::max_adds`]):
/// while the database is down, `add` past the bound returns
/// [`AtomicError::BufferFull`] and does not take the count (see [`FlushPolicy`] for why it
/// does not wait instead).
///
/// **Column bounds are not enforced through a buffer**: a buffer is for counters (views,
/// downloads), never for stock. A row past its bound is refused, reported, and keeps its
/// count.
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
/// // The flush ledger: each batch's id, so none is written twice (DDL per backend: README).
/// diesel::sql_query("CREATE TABLE counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, \
///     kept TEXT NOT NULL, flushed_at BIGINT NOT NULL)").execute(&mut pool.get()?)?;
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
/// let report = views.flush()?; // one transaction: page 1 += 3, page 2 += 1 (rows created)
/// assert_eq!((report.written, report.counted), (2, 4));
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
        Self::with_rows(pool, field, new_row, policy)
    }

    /// A buffer for `field` that updates existing rows only: a flush reports a key without a
    /// row in [`BufferReport::unknown`] with its count, once, and then drops the count or keeps
    /// it pending, as `unknown` says. No row is ever created.
    ///
    /// ```
    /// use counter_core::{AtomicField, Buffer, FlushPolicy, UnknownKeys};
    /// use diesel::prelude::*;
    /// use diesel::r2d2::{ConnectionManager, Pool};
    ///
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
    /// # let dir = tempfile::tempdir()?;
    /// # let url = dir.path().join("doc.db").to_str().unwrap().to_owned();
    /// let pool = Pool::new(ConnectionManager::<SqliteConnection>::new(url))?;
    /// diesel::sql_query("CREATE TABLE articles (id BIGINT PRIMARY KEY, downloads BIGINT NOT NULL)")
    ///     .execute(&mut pool.get()?)?;
    /// diesel::sql_query("INSERT INTO articles VALUES (1, 0)").execute(&mut pool.get()?)?;
    /// # diesel::sql_query("CREATE TABLE counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept TEXT NOT NULL, flushed_at BIGINT NOT NULL)").execute(&mut pool.get()?)?;
    ///
    /// let downloads = Buffer::updating(
    ///     pool.clone(),
    ///     Article::atomic_downloads(),
    ///     UnknownKeys::Drop,
    ///     FlushPolicy::MANUAL,
    /// );
    /// downloads.add(1, 1)?;
    /// downloads.add(999, 2)?; // no article 999
    /// let report = downloads.flush()?;
    /// assert_eq!((report.written, report.counted), (1, 1));
    /// assert_eq!(report.unknown, vec![(999, 2)]); // reported once, then dropped
    /// assert_eq!(downloads.pending(), 0);
    /// assert_eq!(Article::current_downloads(&mut pool.get()?, 1)?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn updating<M, Col, C>(
        pool: Pool<ConnectionManager<C>>,
        field: Field<M, Col>,
        unknown: UnknownKeys,
        policy: FlushPolicy,
    ) -> Self
    where
        C: BlockingConnection<Raw = C> + RawConnection + R2D2Connection + Send + 'static,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, BackendOf<C>> + AtomicField<Col, Key = K, Value = V>,
    {
        Self::with_rows(pool, field, unknown, policy)
    }

    /// The buffer of [`new`](Self::new) and [`updating`](Self::updating).
    fn with_rows<M, Col, C, Rows>(
        pool: Pool<ConnectionManager<C>>,
        field: Field<M, Col>,
        rows: Rows,
        policy: FlushPolicy,
    ) -> Self
    where
        C: BlockingConnection<Raw = C> + RawConnection + R2D2Connection + Send + 'static,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, BackendOf<C>> + AtomicField<Col, Key = K, Value = V>,
        Rows: UnknownKeyPolicy<M, Col, BackendOf<C>> + Send + Sync + 'static,
    {
        let unknown = rows.unknown();
        let write: FlushFn<K, V> = Box::new(move |batch, ledger| {
            let mut conn = pool.get().map_err(AtomicError::custom)?;
            Blocking::drive(write_batch(&field, &mut *conn, batch, &rows, ledger))
        });
        let shared = Arc::new(Shared {
            pending: Pending::new(policy, unknown),
            flushing: Mutex::new(()),
            write,
            stopping: Mutex::new(false),
            wake: Condvar::new(),
        });
        let flusher = policy.background().then(|| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("counter-buffer-flush".into())
                .spawn(move || shared.run_flusher())
                .expect("spawning the buffer's flush thread")
        });
        Buffer { shared, flusher }
    }

    /// Adds `n` to `key`'s pending count: memory only, one shard lock. Errors:
    /// `NegativeAmount` (a buffer only counts up); `BufferFull` at the policy's bound
    /// ([`FlushPolicy::max_keys`], [`FlushPolicy::max_adds`]): the count was **not** taken.
    pub fn add(&self, key: K, n: V) -> Result<(), AtomicError> {
        if self.shared.pending.add(key, n)? {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Writes everything added so far, on the calling thread, each row on its own: returns
    /// what it did ([`BufferReport`]: keys written, keys refused and unknown keys, by key). A
    /// row that refuses does not hold back the others; its count stays pending. On error
    /// (the database is down, the connection was lost) every count is kept, and the error
    /// also for [`last_error`](Self::last_error): the batch was written whole or not at all,
    /// and if its answer was lost the next flush finds out from the flush ledger and writes it
    /// only if it is not in (see the type's docs). A flush that first wrote a batch kept from
    /// an earlier failure and then failed on the new counts keeps the report of that batch
    /// for [`background_report`](Self::background_report).
    ///
    #[doc = include_str!("../../doc/ops/buffer_flush.md")]
    pub fn flush(&self) -> Result<BufferReport<K>, AtomicError> {
        self.shared.flush()
    }

    /// The sum of the counts held: not yet written, or in a batch kept after a failed flush
    /// (which its answer may have written; the next flush finds out).
    pub fn pending(&self) -> i128 {
        self.shared.pending.total()
    }

    /// The message of the last flush's error, or `None` when the last flush succeeded (or
    /// none ran yet). A flush in which some rows refused succeeded: see its report.
    pub fn last_error(&self) -> Option<String> {
        self.shared.pending.last_error()
    }

    /// What the background flusher's flushes did since the last call (their reports are
    /// nobody's return value): keys and counts written, summed; the refused keys of the
    /// latest one (they are pending still); and the unknown keys each reported, once each
    /// under [`UnknownKeys::Drop`] (appended until taken here: a service with many unknown
    /// keys takes them regularly, to log them), the latest flush's under
    /// [`UnknownKeys::Keep`].
    pub fn background_report(&self) -> BufferReport<K> {
        self.shared.pending.take_background()
    }

    /// Stops the background flusher and flushes what is left; the error of that last flush,
    /// whose counts are then still [`pending`](Self::pending).
    pub fn shutdown(mut self) -> Result<BufferReport<K>, AtomicError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<BufferReport<K>, AtomicError> {
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
    /// stays. A batch kept from a failed flush is written first, then the new counts.
    fn flush(&self) -> Result<BufferReport<K>, AtomicError> {
        let _one_at_a_time = lock(&self.flushing);
        let mut report = BufferReport::default();
        loop {
            let (taken, batch) = self.pending.take();
            let result = if batch.is_empty() {
                Ok(Each::default())
            } else {
                let ledger = taken.recorded();
                // A panicking `new_row` fails the flush like a database error: the counts stay.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    (self.write)(&batch, ledger)
                }))
                .unwrap_or_else(|_| Err(panicked()))
            };
            if !taken.settle_into(result, &mut report)? {
                return Ok(report);
            }
        }
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
            if let Ok(report) = self.flush() {
                self.pending.keep_background(report);
            }
        }
    }
}
