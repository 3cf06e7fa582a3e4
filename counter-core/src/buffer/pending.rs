//! [`Pending`]: the counts a buffer holds, sharded by key, with the bound on what it holds;
//! and [`Taken`], what one flush took and how its outcome is settled.

use std::collections::hash_map::{DefaultHasher, HashMap};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::batch::Recorded;
use super::report::BufferReport;
use super::{lock, FlushPolicy};
use crate::error::AtomicError;
use crate::many::each::Each;
use crate::plan::non_negative;
use crate::trace;
use crate::unknown_keys::UnknownKeys;
use crate::value::AtomicValue;

/// How many shards the map has: enough that 16 to 64 adding threads rarely meet.
const SHARDS: usize = 64;

/// What a buffer holds for one key: the count, and how many `add` calls it sums (for the
/// bound on adds).
#[derive(Debug, Clone, Copy)]
struct Held {
    count: i128,
    adds: u64,
}

/// The counts not yet written, sharded by key, the bound's counters, the last flush's error
/// and what the background flusher reported.
pub(crate) struct Pending<K, V> {
    shards: Box<[Mutex<HashMap<K, Held>>]>,
    /// `add` calls since the last flush took its snapshot: the flush trigger.
    since_take: AtomicU64,
    /// Keys held: entries of the shards plus the keys of the flush under way.
    keys: AtomicUsize,
    /// `add` calls held, in the shards or in the flush under way.
    adds: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// What background flushes reported since [`take_background`](Self::take_background).
    background: Mutex<BufferReport<K>>,
    pub(crate) policy: FlushPolicy,
    /// What a flush does with a key an update-only flush found without a row.
    unknown: UnknownKeys,
    /// A batch whose write failed with the flush ledger on: it may be in the database (its
    /// answer was lost), so it is written again as it was, under its id, by the next flush.
    retained: Mutex<Option<Retained<K>>>,
    /// When the flush ledger was last pruned.
    pruned: Mutex<Option<Instant>>,
    marker: std::marker::PhantomData<fn() -> V>,
}

impl<K, V> Pending<K, V>
where
    K: Ord + Hash + Clone,
    V: AtomicValue,
{
    pub(crate) fn new(policy: FlushPolicy, unknown: UnknownKeys) -> Self {
        Pending {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            since_take: AtomicU64::new(0),
            keys: AtomicUsize::new(0),
            adds: AtomicU64::new(0),
            last_error: Mutex::new(None),
            background: Mutex::new(BufferReport::default()),
            policy,
            unknown,
            retained: Mutex::new(None),
            pruned: Mutex::new(None),
            marker: std::marker::PhantomData,
        }
    }

    /// Adds `n` to `key`'s count: one shard lock. `Ok(true)` when a flush is now due.
    /// Errors: `NegativeAmount` (a buffer only counts up); `BufferFull` at the policy's bound,
    /// and then nothing was added. The bound is exact: each add reserves its place in the
    /// counters before it writes, and gives it back when refused.
    pub(crate) fn add(&self, key: K, n: V) -> Result<bool, AtomicError> {
        let n = non_negative(n)?;
        let mut shard = lock(self.shard(&key));
        let adds = self.adds.fetch_add(1, Ordering::Relaxed);
        if self.policy.max_adds.is_some_and(|max| adds >= max) {
            self.adds.fetch_sub(1, Ordering::Relaxed);
            return Err(self.full());
        }
        match shard.get_mut(&key) {
            Some(held) => {
                held.count += n;
                held.adds += 1;
            }
            None => {
                let keys = self.keys.fetch_add(1, Ordering::Relaxed);
                if self.policy.max_keys.is_some_and(|max| keys >= max) {
                    self.keys.fetch_sub(1, Ordering::Relaxed);
                    self.adds.fetch_sub(1, Ordering::Relaxed);
                    return Err(self.full());
                }
                shard.insert(key, Held { count: n, adds: 1 });
            }
        }
        drop(shard);
        let since = self.since_take.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(self.policy.due(since))
    }

    /// The refusal of an add at the bound, with what is held now.
    fn full(&self) -> AtomicError {
        AtomicError::BufferFull {
            keys: self.keys.load(Ordering::Relaxed),
            adds: self.adds.load(Ordering::Relaxed),
        }
    }

    /// Is a flush due now?
    pub(crate) fn due(&self) -> bool {
        self.policy.due(self.since_take.load(Ordering::Relaxed))
    }

    /// The sum of the counts not yet written (in a flush under way: not counted; in a batch
    /// kept for the next flush: counted).
    pub(crate) fn total(&self) -> i128 {
        let retained = lock(&self.retained).as_ref().map_or(0, |r| {
            r.totals.values().map(|held| held.count).sum::<i128>()
        });
        retained
            + self
                .shards
                .iter()
                .map(|shard| lock(shard).values().map(|held| held.count).sum::<i128>())
                .sum::<i128>()
    }

    /// Is the flush ledger due for pruning (once an hour)? Marks it pruned when it is.
    pub(crate) fn prune_due(&self) -> bool {
        let mut pruned = lock(&self.pruned);
        let due = pruned.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(3600));
        if due {
            *pruned = Some(Instant::now());
        }
        due
    }

    /// The message of the last flush's error.
    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// What background flushes reported since the last call, and starts a new one.
    pub(crate) fn take_background(&self) -> BufferReport<K> {
        std::mem::take(&mut *lock(&self.background))
    }

    /// Keeps what a background flush reported for [`take_background`](Self::take_background):
    /// written keys and counts add up; refused keys, and unknown keys that are kept, are
    /// pending still, so the latest flush's list replaces the earlier ones (it is the whole
    /// list); unknown keys that were dropped are appended, each reported once.
    pub(crate) fn keep_background(&self, report: BufferReport<K>) {
        let mut kept = lock(&self.background);
        kept.written += report.written;
        kept.counted += report.counted;
        kept.refused = report.refused;
        match self.unknown {
            UnknownKeys::Drop => kept.unknown.extend(report.unknown),
            UnknownKeys::Keep => kept.unknown = report.unknown,
        }
    }

    /// Takes every count for one flush: what to write (`(key, total)` in key order, none
    /// zero, each at most the column type's maximum), and the [`Taken`] to settle once it is
    /// written. One flush at a time (the caller's lock), so batches are written in the order
    /// they were taken.
    ///
    /// A batch kept after a failed write (see [`Retained`]) is taken first, as it was, and
    /// nothing else: [`Taken::again`] says so, and the caller takes again after it.
    pub(crate) fn take(&self) -> (Taken<'_, K, V>, Vec<(K, V)>) {
        if let Some(retained) = lock(&self.retained).take() {
            let batch = batch_of::<K, V>(&retained.totals);
            let taken = Taken {
                pending: self,
                keys: batch.len(),
                totals: Some(retained.totals),
                id: retained.id,
                again: true,
                started: Instant::now(),
            };
            return (taken, batch);
        }
        let mut totals: BTreeMap<K, Held> = BTreeMap::new();
        for shard in self.shards.iter() {
            // A key lives in one shard: no two entries of one key meet here.
            totals.extend(std::mem::take(&mut *lock(shard)));
        }
        self.since_take.store(0, Ordering::Relaxed);
        let batch = batch_of::<K, V>(&totals);
        let taken = Taken {
            pending: self,
            totals: Some(totals),
            keys: batch.len(),
            id: format!("{:032x}", rand::random::<u128>()),
            again: false,
            started: Instant::now(),
        };
        (taken, batch)
    }

    /// Keeps the counts of a batch whose write failed: for the next flush to write again under
    /// `id` with the flush ledger on, else back among the pending counts.
    fn keep(&self, id: String, totals: BTreeMap<K, Held>) {
        if self.policy.ledger.is_some() {
            *lock(&self.retained) = Some(Retained { id, totals });
        } else {
            for (key, held) in totals {
                self.put_back(key, held);
            }
        }
    }

    /// Puts `held` back for `key`, after a flush that did not write it.
    fn put_back(&self, key: K, held: Held) {
        let mut shard = lock(self.shard(&key));
        match shard.get_mut(&key) {
            Some(now) => {
                // Added again during the flush: two entries were counted, one remains.
                now.count += held.count;
                now.adds += held.adds;
                self.keys.fetch_sub(1, Ordering::Relaxed);
            }
            None => {
                shard.insert(key, held);
            }
        }
    }

    /// Lets go of `held`: written, or dropped after being reported.
    fn release(&self, held: Held) {
        self.keys.fetch_sub(1, Ordering::Relaxed);
        self.adds.fetch_sub(held.adds, Ordering::Relaxed);
    }

    /// The shard of `key`.
    fn shard(&self, key: &K) -> &Mutex<HashMap<K, Held>> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        &self.shards[hasher.finish() as usize % self.shards.len()]
    }
}

/// What to write for `totals`: `(key, total)` in key order, none zero, each at most the
/// column type's maximum (a total past it is written in part; the rest stays for the next
/// flush). The same totals give the same batch: a retained batch is written again as it was.
fn batch_of<K: Ord + Clone, V: AtomicValue>(totals: &BTreeMap<K, Held>) -> Vec<(K, V)> {
    let max = V::MAX.to_i128();
    totals
        .iter()
        .filter(|(_, held)| held.count > 0)
        .map(|(key, held)| {
            let now = held.count.min(max);
            (key.clone(), V::from_i128(now).expect("clamped to the type"))
        })
        .collect()
}

/// A batch whose write failed, kept whole with its id (see [`Pending::take`]).
struct Retained<K> {
    id: String,
    totals: BTreeMap<K, Held>,
}

/// The counts one flush took. [`Taken::settle`] says how the write went; dropped unsettled
/// (an async flush whose future was dropped mid-write), every count goes back, as after a
/// failed write.
pub(crate) struct Taken<'p, K: Ord + Hash + Clone, V: AtomicValue> {
    pending: &'p Pending<K, V>,
    totals: Option<BTreeMap<K, Held>>,
    /// How many keys the batch has.
    keys: usize,
    /// The batch's id in the flush ledger.
    id: String,
    /// A batch kept from a failed flush, taken again.
    again: bool,
    /// When the batch was taken, for the flush's trace event.
    started: Instant,
}

impl<K: Ord + Hash + Clone, V: AtomicValue> Taken<'_, K, V> {
    /// Where the batch is recorded: the flush ledger and the batch's id (pruning the ledger
    /// now and then); `None` without a ledger.
    pub(crate) fn recorded(&self) -> Option<Recorded<'_>> {
        self.pending.policy.ledger.map(|table| Recorded {
            table,
            id: &self.id,
            prune: self.pending.prune_due(),
        })
    }

    /// [`settle`](Self::settle) as one step of a flush that may write two batches (a batch
    /// kept from a failed flush, then the new counts): adds the outcome to `report`, and says
    /// whether to take again (this was a kept batch). On error, a kept batch already written
    /// by this flush keeps its report (keys written, keys dropped as unknown) for
    /// `background_report` rather than lose it with the error.
    pub(crate) fn settle_into(
        self,
        result: Result<Each<K, V>, AtomicError>,
        report: &mut BufferReport<K>,
    ) -> Result<bool, AtomicError> {
        let (pending, again) = (self.pending, self.again);
        match self.settle(result) {
            Ok(done) => {
                report.merge(done);
                Ok(again)
            }
            Err(error) => {
                if report.written > 0 || !report.unknown.is_empty() {
                    pending.keep_background(std::mem::take(report));
                }
                Err(error)
            }
        }
    }

    /// After the write of the batch, each key by what happened to it: a written key keeps
    /// only what went past the column type; a refused key keeps its whole count; an unknown
    /// key is dropped or kept as the buffer's [`UnknownKeys`] says; all three are in the
    /// report. On `Err` the batch may or may not have been written (one transaction, whose
    /// answer may have been lost): it is kept whole for the next flush ([`Pending::keep`]),
    /// and the error is kept for `last_error`.
    pub(crate) fn settle(
        mut self,
        result: Result<Each<K, V>, AtomicError>,
    ) -> Result<BufferReport<K>, AtomicError> {
        let mut totals = self.totals.take().expect("settled once");
        let pending = self.pending;
        let each = match result {
            Ok(each) => each,
            Err(error) => {
                let counts = totals.values().map(|held| held.count).sum();
                let took = self.started.elapsed();
                trace::flush("buffer", 0, counts, took, totals.len(), Some(&error));
                pending.keep(std::mem::take(&mut self.id), totals);
                *lock(&pending.last_error) = Some(error.to_string());
                return Err(error);
            }
        };
        let mut report = BufferReport::default();
        let mut kept = 0;
        for (key, amount, _) in each.written {
            let held = totals.remove(&key).expect("a key of the batch");
            let amount = amount.to_i128();
            report.written += 1;
            report.counted += amount;
            if held.count > amount {
                kept += 1;
                let rest = Held {
                    count: held.count - amount,
                    adds: held.adds,
                };
                pending.put_back(key, rest);
            } else {
                pending.release(held);
            }
        }
        for (key, _, error) in each.refused {
            let held = totals.remove(&key).expect("a key of the batch");
            kept += 1;
            report.refused.push((key.clone(), held.count, error));
            pending.put_back(key, held);
        }
        for (key, _) in each.missing {
            let held = totals.remove(&key).expect("a key of the batch");
            report.unknown.push((key.clone(), held.count));
            match pending.unknown {
                UnknownKeys::Drop => pending.release(held),
                UnknownKeys::Keep => {
                    kept += 1;
                    pending.put_back(key, held);
                }
            }
        }
        // What is left had nothing to write (adds of 0).
        for held in totals.into_values() {
            pending.release(held);
        }
        *lock(&pending.last_error) = None;
        if self.keys > 0 {
            let took = self.started.elapsed();
            trace::flush("buffer", report.written, report.counted, took, kept, None);
        }
        Ok(report)
    }
}

impl<K: Ord + Hash + Clone, V: AtomicValue> Drop for Taken<'_, K, V> {
    fn drop(&mut self) {
        if let Some(totals) = self.totals.take() {
            self.pending.keep(std::mem::take(&mut self.id), totals);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded(keys: usize, adds: u64) -> Pending<u32, i64> {
        let policy = FlushPolicy {
            max_keys: Some(keys),
            max_adds: Some(adds),
            ..FlushPolicy::MANUAL
        };
        Pending::new(policy, UnknownKeys::Drop)
    }

    /// 8 threads race 1,000 new keys each into a bound of 1,000 keys: exactly 1,000 are
    /// taken, every other add is `BufferFull`, and the counts held are exactly those taken.
    #[test]
    fn the_key_bound_is_exact_under_contention() {
        let pending = bounded(1_000, u64::MAX);
        let taken: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8u32)
                .map(|t| {
                    let pending = &pending;
                    scope.spawn(move || {
                        (0..1_000u32)
                            .filter(|i| match pending.add(t * 1_000 + i, 1) {
                                Ok(_) => true,
                                Err(AtomicError::BufferFull { .. }) => false,
                                Err(other) => panic!("{other:?}"),
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, 1_000);
        assert_eq!(pending.total(), 1_000);
        assert_eq!(pending.keys.load(Ordering::Relaxed), 1_000);
    }

    /// The adds bound counts calls, and frees them only when a flush wrote their key; a key
    /// written in part (past the type) or put back keeps its adds held.
    #[test]
    fn adds_are_held_until_written() {
        let pending = bounded(10, 3);
        pending.add(1, 5).unwrap();
        pending.add(2, 5).unwrap();
        let (taken, batch) = pending.take();
        assert_eq!(batch, vec![(1, 5), (2, 5)]);
        // Added during the flush: a second entry of key 1.
        pending.add(1, 1).unwrap();
        assert!(matches!(
            pending.add(3, 1),
            Err(AtomicError::BufferFull { keys: 3, adds: 3 })
        ));
        let mut each = Each::default();
        each.written.push((2, 5, 5));
        each.missing.push((1, 5));
        let report = taken.settle(Ok(each)).unwrap();
        assert_eq!((report.written, report.counted), (1, 5));
        assert_eq!(report.unknown, vec![(1, 5)]);
        // Key 2 written, key 1's flushed entry dropped (unknown): one key, one add held.
        assert_eq!(pending.keys.load(Ordering::Relaxed), 1);
        assert_eq!(pending.adds.load(Ordering::Relaxed), 1);
        assert_eq!(pending.total(), 1);
        // A failed flush puts back and merges: still one key.
        let (taken, _) = pending.take();
        assert!(taken.settle(Err(AtomicError::NotFound)).is_err());
        assert_eq!(pending.keys.load(Ordering::Relaxed), 1);
        assert_eq!(pending.total(), 1);
    }
}
