//! Write-behind buffers: counts added in memory, written to the database in batches.
//! (Everything a user needs is on the public types: this module is private.)
//!
//! The counts, their shards, and what a flush takes and gives back live here, once; the two
//! buffers differ only in how a batch reaches the database: [`Buffer`](blocking::Buffer) on a
//! thread of its own with an r2d2 pool, [`AsyncBuffer`](awaited::AsyncBuffer) on a task the
//! caller spawns with a pool of diesel-async connections.
//!
//! - [`policy`]: when a flush runs, and the bound on what waits in memory;
//! - [`pending`]: the sharded counts, the bound's counters, what a flush takes and how its
//!   outcome is settled key by key;
//! - [`batch`]: one batch written exactly once, through the flush ledger;
//! - [`report`]: what a flush tells its caller.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::AtomicError;

#[cfg(any(feature = "deadpool", feature = "bb8"))]
pub(crate) mod awaited;
pub(crate) mod batch;
#[cfg(feature = "r2d2")]
pub(crate) mod blocking;
pub(crate) mod pending;
pub(crate) mod policy;
pub(crate) mod report;

pub use policy::FlushPolicy;
pub use report::BufferReport;

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
