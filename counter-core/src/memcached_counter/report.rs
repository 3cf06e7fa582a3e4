//! [`MemcachedFlushReport`] and [`MemcachedKept`]: what a flush of a
//! [`MemcachedCounter`](crate::MemcachedCounter) did, and the counts it left in Memcached.

use crate::error::AtomicError;

/// What a flush did.
#[derive(Debug)]
pub struct MemcachedFlushReport<K> {
    /// Every key written, with the count added to its row.
    pub written: Vec<(K, i64)>,
    /// Keys without a row, with their counts: recorded as taken after this report
    /// ([`UnknownKeys::Drop`](crate::UnknownKeys::Drop)), or left in Memcached and reported
    /// again by the next flush ([`UnknownKeys::Keep`](crate::UnknownKeys::Keep)).
    pub unknown: Vec<(K, i64)>,
    /// Counts the database did not take, left in Memcached; reported by every flush until
    /// they can be applied.
    pub kept: Vec<MemcachedKept<K>>,
    /// Keys whose item is not the one the ledger last applied (its nonce differs): Memcached
    /// restarted or evicted the old item, and whatever of it had not been flushed is lost.
    /// (How much cannot be known: the old item is gone.)
    pub recreated: Vec<K>,
}

impl<K> Default for MemcachedFlushReport<K> {
    fn default() -> Self {
        MemcachedFlushReport {
            written: Vec::new(),
            unknown: Vec::new(),
            kept: Vec::new(),
            recreated: Vec::new(),
        }
    }
}

impl<K> MemcachedFlushReport<K> {
    /// The sum of the counts written.
    pub fn total_written(&self) -> i128 {
        self.written.iter().map(|(_, n)| i128::from(*n)).sum()
    }
}

/// A count a flush left in Memcached, and why.
#[derive(Debug)]
pub struct MemcachedKept<K> {
    /// The key's field (see [`RedisKey`](crate::RedisKey)).
    pub field: String,
    /// The key it names, `None` when it names none of this model's keys (a ledger row or an
    /// index entry written by something else).
    pub key: Option<K>,
    /// The count not taken.
    pub count: u64,
    /// `OutOfRange` (the row cannot take it, or the count is past `i64`), `Database` (the
    /// row's update failed on its own: a `CHECK`, a trigger; the other rows were written), or
    /// `Custom` for a field or an item this library never writes.
    pub error: AtomicError,
}
