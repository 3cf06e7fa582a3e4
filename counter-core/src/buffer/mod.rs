//! Write-behind buffers: counts added in memory, written to the database in batches.
//! (Everything a user needs is on the public types: this module is private.)
//!
//! The counts, their shards, and what a flush takes and gives back live here, once; the two
//! buffers differ only in how a batch reaches the database: [`Buffer`](blocking::Buffer) on a
//! thread of its own with an r2d2 pool, [`AsyncBuffer`](awaited::AsyncBuffer) on a task the
//! caller spawns with a pool of diesel-async connections.

use std::collections::hash_map::{DefaultHasher, HashMap};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::AtomicError;
use crate::plan::non_negative;
use crate::trace;
use crate::value::AtomicValue;

#[cfg(any(feature = "deadpool", feature = "bb8"))]
pub(crate) mod awaited;
#[cfg(feature = "r2d2")]
pub(crate) mod blocking;

/// How many shards the map has: enough that 16 to 64 adding threads rarely meet.
const SHARDS: usize = 64;

/// When the background flusher flushes. Both triggers may be set; with neither, only an
/// explicit `flush`, `shutdown` (and, for [`Buffer`](crate::Buffer), drop) flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Flush this long after the previous flush.
    pub interval: Option<Duration>,
    /// Flush as soon as this many `add` calls are pending.
    pub max_pending_adds: Option<u64>,
}

impl FlushPolicy {
    /// Every second, or at 10,000 pending adds, whichever comes first.
    pub const DEFAULT: FlushPolicy = FlushPolicy {
        interval: Some(Duration::from_secs(1)),
        max_pending_adds: Some(10_000),
    };
    /// No background flusher: flush by calling `flush` (and at shutdown).
    pub const MANUAL: FlushPolicy = FlushPolicy {
        interval: None,
        max_pending_adds: None,
    };

    /// Is a flush due at `adds` pending `add` calls?
    pub(crate) fn due(&self, adds: u64) -> bool {
        self.max_pending_adds.is_some_and(|max| adds >= max)
    }

    /// How long the flusher waits before it looks again. Without an interval, still 100 ms:
    /// an `add` that crossed the threshold between the flusher's check and its wait would
    /// otherwise only wake it with the next add.
    pub(crate) fn wait(&self) -> Duration {
        self.interval.unwrap_or(Duration::from_millis(100))
    }
}

/// The counts not yet written, sharded by key, and the last flush's error.
pub(crate) struct Pending<K, V> {
    shards: Box<[Mutex<HashMap<K, i128>>]>,
    /// `add` calls since the last flush took its snapshot.
    adds: AtomicU64,
    last_error: Mutex<Option<String>>,
    pub(crate) policy: FlushPolicy,
    marker: std::marker::PhantomData<fn() -> V>,
}

impl<K, V> Pending<K, V>
where
    K: Ord + Hash + Clone,
    V: AtomicValue,
{
    pub(crate) fn new(policy: FlushPolicy) -> Self {
        Pending {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            adds: AtomicU64::new(0),
            last_error: Mutex::new(None),
            policy,
            marker: std::marker::PhantomData,
        }
    }

    /// Adds `n` to `key`'s count: one shard lock. `Ok(true)` when a flush is now due.
    /// Errors: `NegativeAmount` (a buffer only counts up).
    pub(crate) fn add(&self, key: K, n: V) -> Result<bool, AtomicError> {
        let n = non_negative(n)?;
        *lock(self.shard(&key)).entry(key).or_insert(0) += n;
        let adds = self.adds.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(self.policy.due(adds))
    }

    /// Is a flush due now?
    pub(crate) fn due(&self) -> bool {
        self.policy.due(self.adds.load(Ordering::Relaxed))
    }

    /// The sum of the counts not yet written.
    pub(crate) fn total(&self) -> i128 {
        self.shards
            .iter()
            .map(|shard| lock(shard).values().sum::<i128>())
            .sum()
    }

    /// The message of the last flush's error.
    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// Takes every count for one flush: what to write (`(key, total)` in key order, none
    /// zero, each at most the column type's maximum), and the [`Taken`] to settle once it is
    /// written. One flush at a time (the caller's lock), so batches are written in the order
    /// they were taken.
    pub(crate) fn take(&self) -> (Taken<'_, K, V>, Vec<(K, V)>) {
        let mut totals: BTreeMap<K, i128> = BTreeMap::new();
        for shard in self.shards.iter() {
            let taken = std::mem::take(&mut *lock(shard));
            for (key, n) in taken {
                *totals.entry(key).or_insert(0) += n;
            }
        }
        self.adds.store(0, Ordering::Relaxed);
        // A total past the column type is written in part; the rest stays for the next flush.
        let max = V::MAX.to_i128();
        let batch: Vec<(K, V)> = totals
            .iter()
            .filter(|&(_, &total)| total > 0)
            .map(|(key, &total)| {
                let now = total.min(max);
                (key.clone(), V::from_i128(now).expect("clamped to the type"))
            })
            .collect();
        let taken = Taken {
            pending: self,
            totals: Some(totals),
            written: batch.len(),
            started: Instant::now(),
        };
        (taken, batch)
    }

    /// Adds `n` back to `key`.
    fn put_back(&self, key: K, n: i128) {
        *lock(self.shard(&key)).entry(key).or_insert(0) += n;
    }

    /// The shard of `key`.
    fn shard(&self, key: &K) -> &Mutex<HashMap<K, i128>> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        &self.shards[hasher.finish() as usize % self.shards.len()]
    }
}

/// The counts one flush took. [`Taken::settle`] says how the write went; dropped unsettled
/// (an async flush whose future was dropped mid-write), every count goes back, as after a
/// failed write.
pub(crate) struct Taken<'p, K: Ord + Hash + Clone, V: AtomicValue> {
    pending: &'p Pending<K, V>,
    totals: Option<BTreeMap<K, i128>>,
    /// How many keys the batch has.
    written: usize,
    /// When the batch was taken, for the flush's trace event.
    started: Instant,
}

impl<K: Ord + Hash + Clone, V: AtomicValue> Taken<'_, K, V> {
    /// After the write of the batch: on `Ok` only what went past the column type stays;
    /// on `Err` nothing of the batch was written (one transaction), so every count goes back,
    /// and the error is kept for `last_error`. Returns the number of keys written.
    pub(crate) fn settle(mut self, result: Result<(), AtomicError>) -> Result<usize, AtomicError> {
        let totals = self.totals.take().expect("settled once");
        let pending = self.pending;
        match result {
            Ok(()) => {
                let max = V::MAX.to_i128();
                let (mut counts, mut kept) = (0, 0);
                for (key, total) in totals {
                    counts += total.min(max).max(0);
                    if total > max {
                        kept += 1;
                        pending.put_back(key, total - max);
                    }
                }
                *lock(&pending.last_error) = None;
                if self.written > 0 {
                    let took = self.started.elapsed();
                    trace::flush("buffer", self.written, counts, took, kept, None);
                }
                Ok(self.written)
            }
            Err(error) => {
                let counts = totals.values().sum();
                let took = self.started.elapsed();
                trace::flush("buffer", 0, counts, took, totals.len(), Some(&error));
                for (key, total) in totals {
                    pending.put_back(key, total);
                }
                *lock(&pending.last_error) = Some(error.to_string());
                Err(error)
            }
        }
    }
}

impl<K: Ord + Hash + Clone, V: AtomicValue> Drop for Taken<'_, K, V> {
    fn drop(&mut self) {
        if let Some(totals) = self.totals.take() {
            for (key, total) in totals {
                self.pending.put_back(key, total);
            }
        }
    }
}

/// What a flush whose write panicked (in `new_row`?) returns: like a database error, the
/// counts stay.
pub(crate) fn panicked() -> AtomicError {
    AtomicError::custom("a flush panicked (in `new_row`?)")
}

/// Locks `m`, ignoring poisoning: a panic while holding a shard lock happens between two
/// plain map operations, which leave the map consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
