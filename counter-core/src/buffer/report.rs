//! [`BufferReport`]: what one flush of a buffer did, key by key where it did not write.

use crate::error::AtomicError;

/// What a flush of a [`Buffer`](crate::Buffer) or [`AsyncBuffer`](crate::AsyncBuffer) did.
///
/// A flush writes each row on its own: a row that refuses does not hold back the others, and
/// nothing the buffer took is dropped without being named here. Counts are `i128`, like
/// [`pending`](crate::Buffer::pending): a key's count may exceed the column type (only up to
/// the type's maximum is written at a time; the rest stays pending, unreported).
#[derive(Debug)]
pub struct BufferReport<K> {
    /// How many keys were written (rows updated or inserted).
    pub written: usize,
    /// The sum of the counts written.
    pub counted: i128,
    /// Keys without a row, with their counts, in key order: only from an update-only buffer
    /// (`updating`). Reported once by the flush that found them; then dropped or kept
    /// pending, as the buffer's [`UnknownKeys`](crate::UnknownKeys) says (a kept key is
    /// reported again by every flush until its row exists).
    pub unknown: Vec<(K, i128)>,
    /// Keys whose row refused, with their counts and why (`OutOfRange` past the row's
    /// maximum; `Database` for a `CHECK` or a trigger of the row's own), in key order. Their
    /// counts stay pending, and every flush tries (and reports) them again.
    pub refused: Vec<(K, i128, AtomicError)>,
}

impl<K> Default for BufferReport<K> {
    fn default() -> Self {
        BufferReport {
            written: 0,
            counted: 0,
            unknown: Vec::new(),
            refused: Vec::new(),
        }
    }
}

impl<K> BufferReport<K> {
    /// Adds what a later batch of the same flush did (a flush that first writes a batch kept
    /// from a failed flush writes the new counts after it).
    pub(crate) fn merge(&mut self, later: BufferReport<K>) {
        self.written += later.written;
        self.counted += later.counted;
        self.unknown.extend(later.unknown);
        self.refused.extend(later.refused);
    }

    /// Did every key taken get written (no unknown key, no refusal)?
    pub fn is_clean(&self) -> bool {
        self.unknown.is_empty() && self.refused.is_empty()
    }
}
