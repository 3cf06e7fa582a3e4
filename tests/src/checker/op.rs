//! The operations the checker runs: generated at random from a seed, executed through the
//! public API, and recorded with their outcome.

use std::fmt::Debug;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Poll;

use counter_core::{
    update, AtomicConnection, AtomicError, AtomicFieldOn, BackendOf, CallMode, Change, ChangeOp,
    Changes, Field, Idempotent, Out, UpsertRow,
};

use super::sale::sale_in_transaction;
use super::subject::{KeyOf, SaleOf, Subject};
use crate::client::TransactionMode;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;

/// The payload of the panics the checker injects into `update_locked` closures.
pub const INJECTED_PANIC: &str = "counter-tests checker: injected panic";

/// A key as the checker uses it: the spelling passed to the library, and the row the model
/// knows it names (`None`: no row has that key).
#[derive(Debug, Clone, PartialEq)]
pub struct Key<K> {
    pub key: K,
    pub row: Option<usize>,
}

/// What an `update_locked` closure does with the value it is given. All are pure, so a
/// re-run after a conflict computes the same thing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Closure {
    /// `v + d` (`d` may be negative); the library checks the bounds.
    Add(i32),
    /// `v - d` when `v >= d`, else the closure refuses with `AtomicError::custom`.
    RefuseBelow(i32),
    /// Panics (the caller catches it).
    Panic,
}

impl Closure {
    /// The closure's body.
    pub fn apply(self, v: i32) -> Result<i32, AtomicError> {
        match self {
            Closure::Add(d) => Ok(v + d),
            Closure::RefuseBelow(d) if v < d => Err(AtomicError::custom(refusal(v))),
            Closure::RefuseBelow(d) => Ok(v - d),
            Closure::Panic => std::panic::panic_any(INJECTED_PANIC),
        }
    }
}

/// The message of a `RefuseBelow` refusal of value `v`.
pub fn refusal(v: i32) -> String {
    format!("refused at {v}")
}

/// One call of the public API.
#[derive(Debug, Clone)]
pub enum Op<K> {
    Increment(Key<K>, i32),
    Decrement(Key<K>, i32),
    DecrementIfAtLeast(Key<K>, i32),
    TakeUpTo(Key<K>, i32),
    /// `increment_up_to(k, n)`: the fill to the upper bound, the mirror of `TakeUpTo`.
    IncrementUpTo(Key<K>, i32),
    /// The optimistic step: `current(k)`, then `compare_and_set(k, seen, seen + d)`. Its
    /// answer says both values: `Ok(seen + d)`, or `Mismatch { expected: seen, current }`.
    CompareAndSet(Key<K>, i32),
    /// `set_max(k, v)`: the high-water mark. Its answer `r = max(old, v)` says where the row
    /// was only when `r > v`; at `r == v` the row moved there from somewhere at or below `v`.
    SetMax(Key<K>, i32),
    /// `set_min(k, v)`: the low-water mark, the mirror of `SetMax`.
    SetMin(Key<K>, i32),
    UpdateLocked(Key<K>, Closure),
    Transfer(Key<K>, Key<K>, i32),
    Current(Key<K>),
    /// `transaction(|c| Ok((decrement_if_at_least(c, a, n)?, increment(c, b, n)?)))`: two
    /// single-statement operations, all or nothing (`a` and `b` may name one row).
    Transaction(Key<K>, Key<K>, i32),
    /// `increment_or_insert(&row, n)` on a key that has a row: an `Increment` by another
    /// statement (the rows are the history's own, so it never inserts).
    IncrementOrInsert(Key<K>, i32),
    /// `update_atomic(k, (v.decrement_if_at_least(n), w.increment(n)))`: the two-column sale,
    /// checked as a `DecrementIfAtLeast` of `v` (its refusal unwrapped from `InColumn`).
    Sale(Key<K>, i32),
    /// A set operation on the pairs as given (repeated keys, other spellings of one row and
    /// keys of no row included): every row or none.
    Many(SetOp, Vec<(Key<K>, i32)>),
    /// The operation under an idempotency key (`Idempotent::key(k)`): the first call with the
    /// key is checked as the operation; a call with a key already answered (a replay, which
    /// [`Answered`] makes) must return that answer and is kept out of the history.
    Once(String, Box<Op<K>>),
}

/// Which set operation an [`Op::Many`] is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SetOp {
    /// `increment_many`.
    Increment,
    /// `decrement_many`.
    Decrement,
    /// `decrement_if_at_least_many`: the checkout.
    AtLeast,
}

impl<K: Clone> Op<K> {
    /// The operation the history checks this call as: the new APIs are, on the checked
    /// column, exactly an older operation.
    pub fn classic(&self) -> Op<K> {
        match self {
            Op::IncrementOrInsert(k, n) => Op::Increment(k.clone(), *n),
            Op::Sale(k, n) => Op::DecrementIfAtLeast(k.clone(), *n),
            Op::Once(_, op) => op.classic(),
            other => other.clone(),
        }
    }
}

impl<K> Op<K> {
    /// The operation's name, for statistics.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Increment(..) => "increment",
            Op::Decrement(..) => "decrement",
            Op::DecrementIfAtLeast(..) => "decrement_if_at_least",
            Op::TakeUpTo(..) => "take_up_to",
            Op::IncrementUpTo(..) => "increment_up_to",
            Op::SetMax(..) => "set_max",
            Op::SetMin(..) => "set_min",
            Op::CompareAndSet(..) => "compare_and_set",
            Op::UpdateLocked(..) => "update_locked",
            Op::Transfer(..) => "transfer",
            Op::Current(..) => "current",
            Op::Transaction(..) => "transaction",
            Op::IncrementOrInsert(..) => "increment_or_insert",
            Op::Sale(..) => "update_atomic",
            Op::Many(SetOp::Increment, _) => "increment_many",
            Op::Many(SetOp::Decrement, _) => "decrement_many",
            Op::Many(SetOp::AtLeast, _) => "decrement_if_at_least_many",
            Op::Once(..) => "idempotent",
        }
    }
}

/// What a call returned.
#[derive(Debug)]
pub enum Outcome {
    /// `Ok` of a single value (the new value, the amount taken, or the current value).
    Value(i32),
    /// `Ok((from, to))` of a transfer.
    Pair(i32, i32),
    /// `Ok` of a set operation: each key (as `{:?}` prints it) with its new value.
    Values(Vec<(String, i32)>),
    /// `Err`.
    Failed(AtomicError),
    /// The call panicked (caught by the checker).
    Panicked,
}

/// One recorded call.
#[derive(Debug)]
pub struct Record<K> {
    pub thread: usize,
    pub op: Op<K>,
    pub outcome: Outcome,
    /// Was the connection inside a transaction after the call returned? (It never should be:
    /// the checker's calls run outside any transaction of its own.)
    pub left_in_transaction: bool,
}

/// The keys of one history: each row's spellings (the first is the one it was inserted
/// with), and keys that name no row.
#[derive(Debug, Clone)]
pub struct Keys<K> {
    pub rows: Vec<Vec<K>>,
    pub missing: Vec<K>,
}

impl<K: Clone> Keys<K> {
    /// A random key: 1 in 20 names no row, the others a random spelling of a random row.
    fn pick(&self, rng: &mut StdRng) -> Key<K> {
        self.pick_missing_one_in(rng, 20)
    }

    /// A random key: 1 in `n` names no row, the others a random spelling of a random row.
    fn pick_missing_one_in(&self, rng: &mut StdRng, n: u32) -> Key<K> {
        if rng.random_ratio(1, n) {
            let key = self.missing.choose(rng).expect("a missing key").clone();
            return Key { key, row: None };
        }
        let row = rng.random_range(0..self.rows.len());
        let key = self.rows[row].choose(rng).expect("a spelling").clone();
        Key {
            key,
            row: Some(row),
        }
    }
}

/// A random amount: zero, small and medium ones, negatives, and amounts at and past the
/// bounds `0..=hi` and the type's limit.
fn amount(rng: &mut StdRng, hi: i32) -> i32 {
    match rng.random_range(0..100) {
        0..10 => 0,
        10..15 => -rng.random_range(1..=5),
        15..22 => *[hi, hi + 1, i32::MAX].choose(rng).expect("non-empty"),
        22..75 => rng.random_range(1..=10),
        _ => rng.random_range(11..=60),
    }
}

/// A random set: 0 to 4 pairs (so now and then an empty one), 1 key in 12 of no row, and
/// amounts mostly small, so that many sets go through whole while others refuse.
fn random_set<K: Clone>(rng: &mut StdRng, keys: &Keys<K>, hi: i32) -> Vec<(Key<K>, i32)> {
    let len = rng.random_range(0..=4);
    (0..len)
        .map(|_| {
            let key = keys.pick_missing_one_in(rng, 12);
            let n = match rng.random_range(0..100) {
                0..6 => 0,
                6..9 => -rng.random_range(1..=5),
                9..12 => *[hi + 1, i32::MAX].choose(rng).expect("non-empty"),
                12..85 => rng.random_range(1..=10),
                _ => rng.random_range(11..=40),
            };
            (key, n)
        })
        .collect()
}

/// A random operation on `keys`; `hi` is the upper bound of the counters. Without `takes`, no
/// `take_up_to`, `increment_up_to`, `set_max` or `set_min`: their results do not always say
/// where the row was, so a history without them can be checked for one order of all its values
/// (see `history`).
pub fn random_op<K: Clone>(rng: &mut StdRng, keys: &Keys<K>, hi: i32, takes: bool) -> Op<K> {
    let key = keys.pick(rng);
    let kind = loop {
        let kind = rng.random_range(0..130);
        if takes || !(45..55).contains(&kind) && !(112..118).contains(&kind) && kind < 124 {
            break kind;
        }
    };
    match kind {
        0..18 => Op::Increment(key, amount(rng, hi)),
        18..30 => Op::Decrement(key, amount(rng, hi)),
        30..45 => Op::DecrementIfAtLeast(key, amount(rng, hi)),
        45..55 => Op::TakeUpTo(key, amount(rng, hi)),
        55..72 => {
            let closure = match rng.random_range(0..10) {
                0 => Closure::Panic,
                1..5 => Closure::RefuseBelow(rng.random_range(0..=30)),
                _ => Closure::Add(rng.random_range(-30..=30)),
            };
            Op::UpdateLocked(key, closure)
        }
        72..80 => Op::Transfer(key, keys.pick(rng), amount(rng, hi)),
        80..86 => Op::Transaction(key, keys.pick(rng), amount(rng, hi)),
        86..91 if key.row.is_some() => Op::IncrementOrInsert(key, amount(rng, hi)),
        91..96 => Op::Sale(key, amount(rng, hi)),
        100..104 => Op::Many(SetOp::Increment, random_set(rng, keys, hi)),
        104..108 => Op::Many(SetOp::Decrement, random_set(rng, keys, hi)),
        108..112 => Op::Many(SetOp::AtLeast, random_set(rng, keys, hi)),
        112..118 => Op::IncrementUpTo(key, amount(rng, hi)),
        118..124 => Op::CompareAndSet(key, rng.random_range(-20..=20)),
        // Marks within and past the bounds (0..=hi): past them the row refuses to move.
        124..127 => Op::SetMax(key, rng.random_range(-10..=hi + 10)),
        127.. => Op::SetMin(key, rng.random_range(-10..=hi + 10)),
        _ => Op::Current(key),
    }
}

/// `op` under a new idempotency key one time in eight, when it is an operation whose outcome
/// an idempotent call records (a value, a pair or a refusal, never a closure that may panic).
/// The key names the run, the subject's `table`, the history's seed, the thread and the call:
/// unique within the ledger the cells share.
pub fn maybe_once<K>(
    rng: &mut StdRng,
    op: Op<K>,
    (table, seed, thread, call): (&str, u64, usize, usize),
) -> Op<K> {
    let recordable = matches!(
        op,
        Op::Increment(..)
            | Op::Decrement(..)
            | Op::DecrementIfAtLeast(..)
            | Op::Transfer(..)
            | Op::Sale(..)
            | Op::IncrementUpTo(..)
            | Op::CompareAndSet(..)
            | Op::SetMax(..)
            | Op::SetMin(..)
    );
    if recordable && rng.random_ratio(1, 8) {
        // The run's own nonce too: a seed replayed in a later run must not meet its keys.
        static RUN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let run = RUN.get_or_init(rand::random::<u64>);
        let key = format!("check-{run:x}-{table}-{seed:x}-{thread}-{call}");
        Op::Once(key, Box::new(op))
    } else {
        op
    }
}

/// The idempotent calls of one history that have an answer the ledger recorded (a value or a
/// refusal), for other threads to replay: a replay must return the same answer, and change
/// nothing (which the history checks, since a replay is not in it).
pub struct Answered<K> {
    calls: std::sync::Mutex<Vec<(Op<K>, String)>>,
    /// What replays answered otherwise.
    pub anomalies: std::sync::Mutex<Vec<String>>,
    /// How many replays ran.
    pub replays: std::sync::atomic::AtomicUsize,
}

impl<K> Default for Answered<K> {
    fn default() -> Self {
        Answered {
            calls: Default::default(),
            anomalies: Default::default(),
            replays: Default::default(),
        }
    }
}

impl<K: Clone + Debug> Answered<K> {
    /// Keeps `op`'s outcome when it is an idempotent call whose outcome was recorded.
    pub fn keep(&self, op: &Op<K>, outcome: &Outcome) {
        let recorded = match outcome {
            Outcome::Value(_) | Outcome::Pair(..) => true,
            Outcome::Failed(error) => error.kind().is_refusal(),
            _ => false,
        };
        if recorded && matches!(op, Op::Once(..)) {
            let answer = format!("{outcome:?}");
            self.calls.lock().unwrap().push((op.clone(), answer));
        }
    }

    /// One answered call at random, to send again; `None` one time in four, or when none is.
    pub fn pick(&self, rng: &mut StdRng) -> Option<(Op<K>, String)> {
        let calls = self.calls.lock().unwrap();
        if calls.is_empty() || rng.random_ratio(3, 4) {
            return None;
        }
        calls.choose(rng).cloned()
    }

    /// Checks a replay's outcome against the first answer.
    pub fn check(&self, op: &Op<K>, first: &str, outcome: &Outcome) {
        self.replays
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = format!("{outcome:?}");
        if now != first {
            self.anomalies
                .lock()
                .unwrap()
                .push(format!("replay of {op:?} answered {now}, first {first}"));
        }
    }
}

/// Runs `op` through the library's handle for column `Col` of model `M` (what every generated
/// method delegates to), on a blocking or an async connection alike (written once: each call
/// is awaited through `C::Mode::into_future`); a panic is caught and recorded as
/// [`Outcome::Panicked`].
pub async fn execute<M, C>(conn: &mut C, op: &Op<KeyOf<M>>) -> Outcome
where
    C: AtomicConnection,
    C::Mode: TransactionMode,
    M: Subject + AtomicFieldOn<M::Col, BackendOf<C>>,
    KeyOf<M>: KeyDebug,
    for<'r> &'r M: UpsertRow<M, M::Col, BackendOf<C>>,
    SaleOf<M>: Changes<M, BackendOf<C>, Key = KeyOf<M>, Values = (i32, i64)>,
{
    if let Op::Once(key, op) = op {
        let once = Idempotent::key(key);
        let recorded = C::Mode::once(conn, once, async |c| {
            match Box::pin(execute::<M, C::Raw>(c, op)).await {
                Outcome::Value(v) => Ok(Recorded::Value(v)),
                Outcome::Pair(a, b) => Ok(Recorded::Pair(a, b)),
                Outcome::Failed(error) => Err(error),
                Outcome::Values(_) | Outcome::Panicked => {
                    unreachable!("`maybe_once` wraps single-row calls")
                }
            }
        })
        .await;
        return match recorded {
            Ok(Recorded::Value(v)) => Outcome::Value(v),
            Ok(Recorded::Pair(a, b)) => Outcome::Pair(a, b),
            Err(error) => Outcome::Failed(error),
        };
    }
    let field = Field::<M, M::Col>::new();
    let value = |r: Result<i32, AtomicError>| r.map(Outcome::Value);
    let result = caught(async {
        match op {
            Op::Increment(k, n) => {
                value(wait::<C, _>(field.increment(conn, k.key.clone(), *n)).await)
            }
            Op::Decrement(k, n) => {
                value(wait::<C, _>(field.decrement(conn, k.key.clone(), *n)).await)
            }
            Op::DecrementIfAtLeast(k, n) => {
                value(wait::<C, _>(field.decrement_if_at_least(conn, k.key.clone(), *n)).await)
            }
            Op::TakeUpTo(k, n) => {
                value(wait::<C, _>(field.take_up_to(conn, k.key.clone(), *n)).await)
            }
            Op::IncrementUpTo(k, n) => {
                value(wait::<C, _>(field.increment_up_to(conn, k.key.clone(), *n)).await)
            }
            Op::SetMax(k, v) => value(wait::<C, _>(field.set_max(conn, k.key.clone(), *v)).await),
            Op::SetMin(k, v) => value(wait::<C, _>(field.set_min(conn, k.key.clone(), *v)).await),
            Op::CompareAndSet(k, d) => {
                match wait::<C, _>(field.current(conn, k.key.clone())).await {
                    Ok(seen) => value(
                        wait::<C, _>(field.compare_and_set(
                            conn,
                            k.key.clone(),
                            seen,
                            seen.saturating_add(*d),
                        ))
                        .await,
                    ),
                    Err(error) => Err(error),
                }
            }
            Op::UpdateLocked(k, closure) => value(
                wait::<C, _>(field.update_locked(conn, k.key.clone(), |v| closure.apply(v))).await,
            ),
            Op::Transfer(from, to, n) => {
                wait::<C, _>(field.transfer(conn, from.key.clone(), to.key.clone(), *n))
                    .await
                    .map(|(a, b)| Outcome::Pair(a, b))
            }
            Op::Current(k) => value(wait::<C, _>(field.current(conn, k.key.clone())).await),
            Op::Transaction(a, b, n) => {
                sale_in_transaction::<C, M>(conn, a.key.clone(), b.key.clone(), *n)
                    .await
                    .map(|(left, added)| Outcome::Pair(left, added))
            }
            Op::IncrementOrInsert(k, n) => {
                let row = M::row(&k.key);
                value(wait::<C, _>(field.increment_or_insert(conn, &row, *n)).await)
            }
            Op::Sale(k, n) => {
                let sale = (
                    Change::new(ChangeOp::DecrementIfAtLeast, *n),
                    Change::new(ChangeOp::Increment, i64::from(*n)),
                );
                match wait::<C, _>(update::<M, _, _>(conn, k.key.clone(), sale)).await {
                    Ok((v, _)) => Ok(Outcome::Value(v)),
                    // The checked column's refusal is the `DecrementIfAtLeast` refusal.
                    Err(AtomicError::InColumn { column: "v", error }) => Err(*error),
                    Err(other) => Err(other),
                }
            }
            Op::Once(..) => unreachable!("run above"),
            Op::Many(set_op, pairs) => {
                let pairs: Vec<_> = pairs.iter().map(|(k, n)| (k.key.clone(), *n)).collect();
                let values = match set_op {
                    SetOp::Increment => wait::<C, _>(field.increment_many(conn, pairs)).await,
                    SetOp::Decrement => wait::<C, _>(field.decrement_many(conn, pairs)).await,
                    SetOp::AtLeast => {
                        wait::<C, _>(field.decrement_if_at_least_many(conn, pairs)).await
                    }
                };
                values.map(|values| {
                    let named = values.into_iter().map(|(k, v)| (format!("{k:?}"), v));
                    Outcome::Values(named.collect())
                })
            }
        }
    })
    .await;
    match result {
        Some(Ok(outcome)) => outcome,
        Some(Err(error)) => Outcome::Failed(error),
        None => Outcome::Panicked,
    }
}

/// What an idempotent call records: a value or a pair.
#[derive(Debug, Clone, Copy)]
enum Recorded {
    Value(i32),
    Pair(i32, i32),
}

impl counter_core::Outcome for Recorded {
    fn write(&self, out: &mut String) {
        match self {
            Recorded::Value(v) => (0u8, *v, 0).write(out),
            Recorded::Pair(a, b) => (1u8, *a, *b).write(out),
        }
    }
    fn read(text: &str) -> Option<Self> {
        match <(u8, i32, i32)>::read(text)? {
            (0, v, _) => Some(Recorded::Value(v)),
            (1, a, b) => Some(Recorded::Pair(a, b)),
            _ => None,
        }
    }
}

/// What an operation on `C` returned, as a future.
fn wait<C: AtomicConnection, F: Future>(out: Out<C, F>) -> <C::Mode as CallMode>::Future<F> {
    C::Mode::into_future(out)
}

/// Polls `body` to its end; `None` when a poll panicked.
async fn caught<T>(body: impl Future<Output = T>) -> Option<T> {
    let mut body = std::pin::pin!(body);
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Some(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        },
    )
    .await
}

/// Keeps the injected panics out of the test output (they are expected and recorded); every
/// other panic still reaches the default hook.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&INJECTED_PANIC) {
                default(info);
            }
        }));
    });
}

/// Keys are printed in anomaly reports, and ordered as a set operation orders them.
pub trait KeyDebug: Debug + Clone + Ord + Send + Sync + 'static {}
impl<K: Debug + Clone + Ord + Send + Sync + 'static> KeyDebug for K {}
