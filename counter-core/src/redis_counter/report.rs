//! [`FlushReport`] and [`Kept`]: what a flush says it did, and the counts it left in Redis.

use crate::error::AtomicError;
use crate::value::AtomicValue;

/// What a flush did.
#[derive(Debug)]
pub struct FlushReport<K> {
    /// Batches this call applied to the database.
    pub applied: usize,
    /// Batches an earlier flush left in Redis that this call settled (applied, or found in
    /// the ledger and only cleaned up).
    pub recovered: usize,
    /// Every key written, with the count added to its row.
    pub written: Vec<(K, i64)>,
    /// Keys without a row, with their counts, when the counter updates existing rows only
    /// (see [`UnknownKeys`](crate::UnknownKeys)): dropped after this report, or kept pending
    /// and reported again by the next flush. Empty when the counter inserts missing rows.
    pub unknown: Vec<(K, i64)>,
    /// Counts the database did not take, back in Redis as pending; reported by every flush
    /// until they can be applied.
    pub kept: Vec<Kept<K>>,
}

impl<K> Default for FlushReport<K> {
    fn default() -> Self {
        FlushReport {
            applied: 0,
            recovered: 0,
            written: Vec::new(),
            unknown: Vec::new(),
            kept: Vec::new(),
        }
    }
}

impl<K> FlushReport<K> {
    /// The sum of the counts written.
    pub fn total_written(&self) -> i128 {
        self.written.iter().map(|(_, n)| i128::from(*n)).sum()
    }

    /// Adds what `other` did to what this report says.
    pub(super) fn absorb(&mut self, other: FlushReport<K>) {
        self.applied += other.applied;
        self.recovered += other.recovered;
        self.written.extend(other.written);
        self.unknown.extend(other.unknown);
        self.kept.extend(other.kept);
    }
}

/// A count a flush left in Redis, and why.
#[derive(Debug)]
pub struct Kept<K> {
    /// The hash field (see [`RedisKey`](super::RedisKey)).
    pub field: String,
    /// The key it names, `None` when it names none of this model's keys.
    pub key: Option<K>,
    /// The pending count, `None` when the value is not an integer.
    pub count: Option<i64>,
    /// `OutOfRange` (the row cannot take it), `Database` (the row's update or insert failed
    /// on its own: a `CHECK`, a trigger; the other rows were written), or `Custom` for a field
    /// or value this library never writes. (A key without a row is in
    /// [`FlushReport::unknown`], not here.)
    pub error: AtomicError,
}

impl<K: Clone> Kept<K> {
    /// Key `key` of a batch, under `field`, with its count `n`, kept for `error`.
    pub(super) fn of<V: AtomicValue>(key: &K, field: &str, n: V, error: AtomicError) -> Self {
        Kept {
            field: field.to_owned(),
            key: Some(key.clone()),
            count: i64::try_from(n.to_i128()).ok(),
            error,
        }
    }
}
