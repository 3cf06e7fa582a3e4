//! [`FlushPolicy`]: when a buffer flushes, and how much it holds at most.

use std::time::Duration;

use crate::sql::FLUSH_LEDGER;

/// When the background flusher flushes, and the bound on what a buffer holds in memory.
///
/// Both flush triggers may be set; with neither, only an explicit `flush`, `shutdown` (and,
/// for [`Buffer`](crate::Buffer), drop) flush.
///
/// **The bound** ([`max_keys`](Self::max_keys), [`max_adds`](Self::max_adds)): while the
/// database is down or slow, flushes fail or fall behind and the counts wait in memory. At the
/// bound `add` returns [`AtomicError::BufferFull`](crate::AtomicError::BufferFull) and **does
/// not take the count**: the caller knows, at the call, that this count is not in the buffer,
/// and chooses (answer 503, write it directly, or count it as lost in its own metrics). The
/// buffer never waits for a flush instead: `add` is called on request paths (and on async
/// tasks, where it cannot block), and a flush against a database that is down takes as long
/// as the database stays down, so a wait would turn a full buffer into stuck requests. Once a
/// flush writes what is held, adds are taken again.
///
/// ```
/// use counter_core::FlushPolicy;
/// use std::time::Duration;
///
/// // Flush every 5 s; hold at most 100,000 keys and 1,000,000 adds meanwhile.
/// let policy = FlushPolicy {
///     interval: Some(Duration::from_secs(5)),
///     max_keys: Some(100_000),
///     max_adds: Some(1_000_000),
///     ..FlushPolicy::DEFAULT
/// };
/// assert_eq!(policy.max_pending_adds, Some(10_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Flush this long after the previous flush.
    pub interval: Option<Duration>,
    /// Flush as soon as this many `add` calls are pending (a trigger, not a bound).
    pub max_pending_adds: Option<u64>,
    /// The bound on distinct keys held (pending, or in a flush under way; a key added again
    /// while a flush of it is under way counts twice until that flush ends): an `add` of a new
    /// key past it is refused. `None`: no bound.
    pub max_keys: Option<usize>,
    /// The bound on `add` calls held (not yet written): an `add` past it is refused. `None`:
    /// no bound.
    pub max_adds: Option<u64>,
    /// The flush ledger: the table in which each flush records its batch's id, in the
    /// transaction that writes the batch, so a batch whose answer was lost is written exactly
    /// once (see [`Buffer`](crate::Buffer)). `counter_flushes` by default, the table
    /// [`RedisCounter`](crate::RedisCounter)'s flushes use; its DDL is in the README.
    /// `None`: no ledger, and a batch whose `COMMIT` reached the database but whose answer
    /// was lost is written again.
    pub ledger: Option<&'static str>,
}

impl FlushPolicy {
    /// Every second, or at 10,000 pending adds, whichever comes first; at most 1,000,000 keys
    /// and 10,000,000 adds held.
    pub const DEFAULT: FlushPolicy = FlushPolicy {
        interval: Some(Duration::from_secs(1)),
        max_pending_adds: Some(10_000),
        max_keys: Some(1_000_000),
        max_adds: Some(10_000_000),
        ledger: Some(FLUSH_LEDGER),
    };
    /// No background flusher: flush by calling `flush` (and at shutdown). No bound. The flush
    /// ledger, as by default.
    pub const MANUAL: FlushPolicy = FlushPolicy {
        interval: None,
        max_pending_adds: None,
        max_keys: None,
        max_adds: None,
        ledger: Some(FLUSH_LEDGER),
    };

    /// Does the policy flush in the background (an interval or a trigger)?
    pub(crate) fn background(&self) -> bool {
        self.interval.is_some() || self.max_pending_adds.is_some()
    }

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
