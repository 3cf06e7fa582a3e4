//! Re-running an operation whole when the database reports a transient conflict.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use crate::backend::{
    in_transaction, mark_writers_contended, take_turn, writers_contended, Dialect, ErrorClass,
    RawConnection, Turn, Waited, WriterQueue,
};
use crate::error::AtomicError;
use crate::lock::LockMode;
use crate::trace;

/// How often and how patiently an operation is re-run after a transient conflict:
/// serialization failure (PostgreSQL 40001), deadlock (40P01, MySQL 1213) or lock wait timeout
/// (MySQL 1205), and how long it waits for a busy SQLite database.
///
/// After a conflict, each retry sleeps a random time between zero and
/// `base_delay * 2^(attempt-1)`, capped at `max_delay` ("full jitter"), so colliding writers
/// spread out instead of colliding again; at most `max_attempts` runs in all.
///
/// A lock wait that timed out (MySQL 1205, PostgreSQL `lock_timeout`) has already waited as
/// long as the server was told to: it is run again like a conflict, but only while less than
/// `busy_timeout` has passed since the first such timeout, so a call waits for a held row about
/// `busy_timeout` plus one server timeout, not `max_attempts` server timeouts (64 × MariaDB's
/// default 50 s). `with_busy_timeout(Duration::ZERO)` turns these runs off too.
///
/// A busy SQLite database is not a conflict but a lock someone holds for a moment. Once a
/// process has met one, the library's writers of one SQLite file in that process do not race
/// for it: they take turns (eventually fair: a free turn goes to whoever asks first, and at
/// least every millisecond to the first in line); a writer waits asleep, without polling, as
/// long as the line moves, and after `busy_timeout` with no turn ended, `Conflict`. The one
/// whose turn it is polls only for a lock held outside the line, by another process or by a
/// write made without the library: every 50 µs to 2 ms (jittered) until `busy_timeout` has
/// passed. Polls are not a queue: under load, sixteen writers polling for one lock let one
/// of them miss every free instant until its timeout, which is why the line exists.
///
/// Retries of one field's single-row operations take turns too. Under PostgreSQL's
/// REPEATABLE READ and SERIALIZABLE, every writer waiting for a row lock fails when its holder
/// commits, and runs again; many writers of one hot row retrying at once are a lottery that
/// one of them can keep losing until `max_attempts` (seen in CI: a locked update gave up after
/// 64 attempts under SERIALIZABLE). So after its first serialization failure or deadlock, a
/// single-row operation (`increment`, the guarded ones, `update_*_locked`, transfers,
/// increment-or-insert) runs its next attempts only when it holds its turn among this
/// process's retriers of the same field, first come, first served: the one at the head
/// competes only with calls that have not failed yet, the others sleep. A first attempt never
/// waits, `NoWait` and `SkipLocked` never wait in line, and the line is never a reason to
/// fail: a retrier whose line does not move for 250 ms (its head waits for a row lock held by
/// a long transaction, say) leaves it and retries on its own, as it did before the line.
///
/// Inside a transaction the caller opened, nothing is retried: only the caller can re-run its
/// transaction, so the conflict comes back as [`AtomicError::Conflict`](crate::AtomicError::Conflict)
/// at once.
///
/// ```
/// use counter_core::RetryPolicy;
/// use std::time::Duration;
/// let patient = RetryPolicy::DEFAULT.with_max_attempts(50).with_max_delay(Duration::from_secs(1));
/// assert_eq!(patient.max_attempts, 50);
/// assert_eq!(RetryPolicy::NEVER.max_attempts, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1.
    pub max_attempts: u32,
    /// The upper end of the first backoff.
    pub base_delay: Duration,
    /// No backoff is longer than this.
    pub max_delay: Duration,
    /// How long to keep waiting for a busy SQLite database, and for how long after a first
    /// lock wait timeout the operation is still run again.
    pub busy_timeout: Duration,
}

impl RetryPolicy {
    /// 64 attempts, backoff from up to 1 ms growing to at most 20 ms, 5 s for a busy SQLite.
    ///
    /// Measured: with 20 attempts and a 100 ms cap, 8 threads on one PostgreSQL row under
    /// SERIALIZABLE surfaced `Conflict` in 3 of 5 test-suite runs (a writer deep in its backoff
    /// keeps losing to fresh callers); with these values, 0 in 12 runs, half of them with two
    /// suites loading the server at once. Cheap single statements can afford many attempts;
    /// the short cap keeps a long-failing writer in the race.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_attempts: 64,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        busy_timeout: Duration::from_secs(5),
    };

    /// Run once: a serialization failure, deadlock or lock wait timeout is returned as
    /// `Conflict { attempts: 1 }`.
    ///
    /// Waiting is not retrying: like PostgreSQL and MySQL, which wait for a row lock inside the
    /// one statement, a busy SQLite database is still waited for up to `busy_timeout`. To fail
    /// at once on a busy SQLite as well, use
    /// `RetryPolicy::NEVER.with_busy_timeout(Duration::ZERO)`, which returns
    /// `Conflict { attempts: 1 }` on the first "database is locked". An `update_*_locked`
    /// closure runs at most once under `NEVER`: on SQLite it runs after the exclusive lock is
    /// taken, so nothing waited for afterwards can undo its transaction.
    pub const NEVER: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::DEFAULT
    };

    /// The same policy with `n` attempts in all (`0` is taken as `1`).
    pub const fn with_max_attempts(self, n: u32) -> Self {
        RetryPolicy {
            max_attempts: if n == 0 { 1 } else { n },
            ..self
        }
    }

    /// The same policy with another first backoff.
    pub const fn with_base_delay(self, d: Duration) -> Self {
        RetryPolicy {
            base_delay: d,
            ..self
        }
    }

    /// The same policy with another longest backoff.
    pub const fn with_max_delay(self, d: Duration) -> Self {
        RetryPolicy {
            max_delay: d,
            ..self
        }
    }

    /// The same policy with another wait for a busy SQLite database.
    pub const fn with_busy_timeout(self, d: Duration) -> Self {
        RetryPolicy {
            busy_timeout: d,
            ..self
        }
    }

    /// How long to sleep before polling a busy database again.
    pub(crate) fn busy_poll(&self) -> Duration {
        Duration::from_micros(50 + random_u64() % 1950)
    }

    /// How long to sleep after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random_u64() % (nanos + 1))
    }
}

/// Runs `$body` (an expression that may `.await`, `?` and `return`, with `$c` bound to the
/// connection), re-running it whole after a transient conflict, per `$policy`: the one retry
/// loop of the crate, shared by every operation and by [`transaction`](crate::transaction).
/// `$access` is `Write` or `Read`: a write first takes its turn among the library's writers
/// of the same SQLite file in this process ([`Retry::line_up`]) and keeps it until the loop
/// ends. Evaluates to the body's `Result<T, AtomicError>`; use it inside an `async` block.
///
/// A macro rather than a function taking an async closure: a future that awaits an async
/// closure's future which borrows its arguments cannot be proven `Send` by today's compiler
/// ("implementation of `Send` is not general enough"), and tasks spawned on tokio must be.
/// Each attempt runs in an `async` block, which borrows as plainly as any code. A loop whose
/// future is dropped before it finishes gives up its turn, and marks the connection broken
/// (see `InFlight`) unless it was dropped between statements: in a pause between attempts or
/// while waiting in line.
macro_rules! retrying {
    ($access:ident, $raw:expr, $policy:expr, $mode:expr, |$c:ident| $body:expr) => {
        $crate::retry::retrying!($access on None, $raw, $policy, $mode, |$c| $body)
    };
    ($access:ident on $subject:expr, $raw:expr, $policy:expr, $mode:expr, |$c:ident| $body:expr) => {{
        let flight = $crate::backend::InFlight::new($raw);
        let raw = &mut *flight.conn;
        let access = $crate::retry::Access::$access;
        let result = match $crate::retry::Retry::start(&mut *raw, $policy, $mode, $subject) {
            Err(error) => Err(error),
            Ok(mut retry) => match retry.line_up(&mut *raw, access, &flight.idle).await {
                Err(error) => Err(error),
                Ok(mut turn) => {
                    let result = loop {
                        let result = $crate::retry::attempt(async {
                            let $c = &mut *raw;
                            $body
                        })
                        .await;
                        match retry.after(&*raw, result) {
                            $crate::retry::Step::Done(result) => break result,
                            $crate::retry::Step::Pause(pause) => {
                                // Between attempts no statement is under way: a future dropped
                                // here leaves the connection fit for reuse.
                                flight
                                    .idle
                                    .store(true, ::std::sync::atomic::Ordering::Relaxed);
                                $crate::retry::pause(&*raw, pause).await;
                                flight
                                    .idle
                                    .store(false, ::std::sync::atomic::Ordering::Relaxed);
                                // A writer that found SQLite busy joins the line from now on.
                                if turn.is_none() {
                                    match retry.line_up(&mut *raw, access, &flight.idle).await {
                                        Ok(taken) => turn = taken,
                                        Err(error) => break Err(error),
                                    }
                                }
                            }
                        }
                    };
                    if let Some(turn) = turn.as_mut().filter(|_| retry.gave_up_busy()) {
                        turn.gave_up();
                    }
                    drop(turn);
                    result
                }
            },
        };
        flight.land();
        result
    }};
}
pub(crate) use retrying;

/// Fixes the type of one attempt's `async` block (so `?` inside it knows its error type).
pub(crate) async fn attempt<T, F>(body: F) -> Result<T, AtomicError>
where
    F: std::future::Future<Output = Result<T, AtomicError>>,
{
    body.await
}

/// Waits `duration` the way connection `R` waits: see [`RawConnection::pause`].
pub(crate) fn pause<R: RawConnection>(
    _: &R,
    duration: std::time::Duration,
) -> impl std::future::Future<Output = ()> {
    R::pause(duration)
}

/// Whether an operation writes: writers of one SQLite file take turns, readers do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// It writes (or may: a `transaction`'s closure).
    Write,
    /// It only reads.
    Read,
}

/// What the retry loop does after an attempt.
pub(crate) enum Step<T> {
    /// Return this.
    Done(Result<T, AtomicError>),
    /// Sleep this long, then run the attempt again.
    Pause(Duration),
}

/// The state of one retry loop: its policy and what the attempts so far met.
pub(crate) struct Retry {
    policy: RetryPolicy,
    mode: LockMode,
    nested: bool,
    attempts: u32,
    busy_since: Option<Instant>,
    timed_out_since: Option<Instant>,
    /// The last attempt gave up on a busy SQLite database after `busy_timeout`.
    busy_exhausted: bool,
    /// The field a single-row operation changes, whose retriers take turns (see
    /// [`Subject`]); `None` for operations of several rows or tables.
    subject: Option<Subject>,
    /// An attempt met a serialization failure or a deadlock.
    conflicted: bool,
    /// The retriers' line did not move for [`RETRIER_PATIENCE`]: this loop retries on its own.
    left_line: bool,
}

/// How long a retrier waits in its field's line without a turn ending before it retries on
/// its own: far longer than a turn of a hot row takes (a few milliseconds, including the
/// backoff), far shorter than a lock held by a long transaction.
pub(crate) const RETRIER_PATIENCE: Duration = Duration::from_millis(250);

/// The field of a single-row operation, named for the line its retriers wait in: after a
/// serialization failure or a deadlock, the library's writers of one field in one process
/// retry one at a time, in the order they came.
///
/// Why: under PostgreSQL's REPEATABLE READ and SERIALIZABLE, a transaction takes its snapshot
/// at its first statement, before it waits for the row lock; when the holder commits, every
/// waiter with an older snapshot fails (40001) and runs again. Sixteen writers of one row
/// retrying at once are a lottery that one of them can keep losing: CI saw a locked update
/// give up after 64 attempts beside fifteen writers that went through. In line, the retrier
/// at its head competes only with calls that have not failed yet, and the others sleep.
/// First attempts never wait, so a field without conflicts pays nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject {
    /// The model's type name.
    pub model: &'static str,
    /// The field's name.
    pub field: &'static str,
}

impl Retry {
    /// A loop on `raw`: inside the caller's own transaction, nothing is re-run. An error when
    /// the connection's transaction manager is broken.
    pub(crate) fn start<R: RawConnection>(
        raw: &mut R,
        policy: RetryPolicy,
        mode: LockMode,
        subject: Option<Subject>,
    ) -> Result<Retry, AtomicError> {
        Ok(Retry {
            policy,
            mode,
            nested: in_transaction(raw)?,
            attempts: 0,
            busy_since: None,
            timed_out_since: None,
            busy_exhausted: false,
            subject,
            conflicted: false,
            left_line: false,
        })
    }

    /// Takes this operation's turn among the library's writers of the same database file in
    /// this process, when `raw` is on such a file (SQLite; see [`WriterQueue`]), the
    /// operation writes outside the caller's transaction, and this process has found a SQLite
    /// database busy before (until then nothing waits in line, and a writer pays nothing for
    /// it; the retry loop calls this again after a busy attempt): writers are then served in the
    /// order they came instead of racing for SQLite's one write lock, and the loop polls only
    /// for a lock held outside the line (another process, or a write made without the
    /// library). Inside the caller's transaction no turn is taken: it already began, and it may
    /// hold the lock a writer ahead in the line waits for.
    ///
    /// A writer waits as long as the line moves; after `busy_timeout` without a turn ending,
    /// `Conflict { attempts: 1 }` with a "database is locked" source, as a poll that ran out
    /// of `busy_timeout` gives. Under `LockMode::NoWait` (and `SkipLocked`) it does not wait:
    /// `Locked` when another writer has the turn.
    ///
    /// `idle` is set while it waits in line, when no statement is under way: a future dropped
    /// then leaves its connection fit for reuse.
    pub(crate) async fn line_up<R: RawConnection>(
        &mut self,
        raw: &mut R,
        access: Access,
        idle: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<Turn>, AtomicError> {
        if access == Access::Read || self.nested {
            return Ok(None);
        }
        let file = match writers_contended() {
            true => raw.writers_file().await?,
            false => None,
        };
        let Some(file) = file else {
            return Ok(self.line_up_retrier::<R>(idle).await);
        };
        let queue = WriterQueue::of(&file);
        if self.mode != LockMode::Wait {
            // Not waiting for a lock includes not waiting for a turn.
            return queue.try_take().map(Some).ok_or(AtomicError::Locked);
        }
        idle.store(true, std::sync::atomic::Ordering::Relaxed);
        let waited = take_turn(&queue, self.policy.busy_timeout, R::wait_notified).await;
        idle.store(false, std::sync::atomic::Ordering::Relaxed);
        match waited {
            Waited::Turn(turn, moved) => {
                // Busy time counts from when the line last moved: a writer handed the turn by
                // one that gave up on an outside lock has been waiting for that lock since.
                self.busy_since = Some(self.busy_since.map_or(moved, |b| b.min(moved)));
                Ok(Some(turn))
            }
            Waited::Stuck => {
                self.attempts = self.attempts.max(1);
                let attempts = self.attempts;
                let error = diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::Unknown,
                    Box::new(format!(
                        "database is locked: no writer of {file} in this process ended its \
                         turn within busy_timeout ({:?})",
                        self.policy.busy_timeout
                    )),
                );
                trace::conflict(attempts, &error);
                Err(AtomicError::Conflict {
                    attempts,
                    source: error,
                })
            }
        }
    }

    /// On a server, after a conflict: the turn among this process's retriers of the same
    /// field ([`Subject`]), when the operation waits for locks. The line only orders retries;
    /// it is never a reason to fail: when no turn ends for [`RETRIER_PATIENCE`] (the one
    /// holding it waits for a row lock, say, held by a long transaction), the retrier leaves
    /// the line for the rest of the call and retries on its own, as it would without the
    /// line. `NoWait` and `SkipLocked` never wait in it.
    async fn line_up_retrier<R: RawConnection>(
        &mut self,
        idle: &std::sync::atomic::AtomicBool,
    ) -> Option<Turn> {
        let subject = self.subject?;
        if !self.conflicted || self.left_line || self.mode != LockMode::Wait {
            return None;
        }
        let line = format!(
            "{} retriers of {}.{}",
            <R::Db as Dialect>::NAME,
            subject.model,
            subject.field
        );
        let queue = WriterQueue::of(&line);
        let patience = RETRIER_PATIENCE.min(self.policy.busy_timeout);
        idle.store(true, std::sync::atomic::Ordering::Relaxed);
        let waited = take_turn(&queue, patience, R::wait_notified).await;
        idle.store(false, std::sync::atomic::Ordering::Relaxed);
        match waited {
            Waited::Turn(turn, _) => Some(turn),
            Waited::Stuck => {
                self.left_line = true;
                None
            }
        }
    }

    /// Did the loop end giving up on a busy SQLite database (so ending its turn is not
    /// progress for the writers behind it)?
    pub(crate) fn gave_up_busy(&self) -> bool {
        self.busy_exhausted
    }

    /// Sorts the result of an attempt on `R`: a database error, or a `Conflict` an operation
    /// inside the attempt returned at once (it found itself inside this transaction), is sorted
    /// by the backend: transient errors sleep a jittered backoff and run again, a busy SQLite is
    /// polled until `busy_timeout`, and inside the caller's own transaction nothing is re-run
    /// (the error comes back as `Conflict`).
    pub(crate) fn after<R: RawConnection, T>(
        &mut self,
        _: &R,
        result: Result<T, AtomicError>,
    ) -> Step<T> {
        self.attempts += 1;
        let error = match result {
            Err(AtomicError::Database(error) | AtomicError::Conflict { source: error, .. }) => {
                error
            }
            other => return Step::Done(other),
        };
        let (policy, nested, attempts) = (self.policy, self.nested, self.attempts);
        let class = <R::Db as Dialect>::classify(&error, self.mode);
        let pause = match class {
            ErrorClass::Locked => return Step::Done(Err(AtomicError::Locked)),
            ErrorClass::Transient if !nested && attempts < policy.max_attempts => {
                self.conflicted = true;
                policy.backoff(attempts)
            }
            ErrorClass::LockTimeout
                if !nested
                    && attempts < policy.max_attempts
                    && self
                        .timed_out_since
                        .get_or_insert_with(Instant::now)
                        .elapsed()
                        < policy.busy_timeout =>
            {
                policy.backoff(attempts)
            }
            ErrorClass::Busy
                if !nested
                    && self.busy_since.get_or_insert_with(Instant::now).elapsed()
                        < policy.busy_timeout =>
            {
                mark_writers_contended();
                policy.busy_poll()
            }
            ErrorClass::Transient | ErrorClass::Busy | ErrorClass::LockTimeout => {
                self.busy_exhausted = class == ErrorClass::Busy;
                trace::conflict(attempts, &error);
                return Step::Done(Err(AtomicError::Conflict {
                    attempts,
                    source: error,
                }));
            }
            ErrorClass::Other => return Step::Done(Err(AtomicError::Database(error))),
        };
        trace::retry(&class, attempts, pause, &error);
        Step::Pause(pause)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// A random number for jitter; std's hasher keys are random per `RandomState`.
fn random_u64() -> u64 {
    RandomState::new().hash_one(std::time::Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_the_growing_cap() {
        let p = RetryPolicy::DEFAULT;
        for attempt in 1..40 {
            let cap = Duration::from_millis(1)
                .saturating_mul(1 << (attempt - 1).min(20))
                .min(p.max_delay);
            assert!(p.backoff(attempt) <= cap, "attempt {attempt}");
        }
    }

    #[test]
    fn backoff_is_jittered() {
        let p = RetryPolicy::DEFAULT;
        let samples: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(8)).collect();
        assert!(samples.len() > 10, "only {} distinct delays", samples.len());
    }

    #[test]
    fn zero_attempts_means_one() {
        assert_eq!(RetryPolicy::DEFAULT.with_max_attempts(0).max_attempts, 1);
    }
}
