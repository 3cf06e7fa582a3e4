//! The hot-counter strategies on every cell: slotted counters, the write-behind buffer and
//! the Redis counter.
//!
//! Their calls return no value that says where in an order they ran (an increment of a slot
//! returns nothing, an add to a buffer is memory), so the history is not ordered; what their
//! semantics promise is checked instead:
//! - slotted (`Article.likes`, `allow_decrement`): random increments and decrements (amounts
//!   0..=10 and negatives), reads and compactions from every thread on two keys. A negative
//!   amount is `NegativeAmount`; every read and every compaction returns a value between the
//!   sum of all decrements and the sum of all increments of the history; the final value is
//!   exactly the sum of the calls that returned `Ok`, and a compaction at the end returns it.
//! - buffer (`DailyView.views`): random adds to six keys from every thread while a background
//!   flusher runs every few milliseconds and threads flush by hand now and then; after
//!   `shutdown` every key holds exactly the sum of the adds that returned `Ok`.
//! - Redis counter (`DailyView.views` of six existing rows): random `add`s, `add_all`s of two
//!   keys (negatives refused, all or nothing), `discard`s and flushes from every thread, on
//!   the thread's own connections; after a last flush every row holds exactly the adds that
//!   returned `Ok` less what the discards returned, no flush kept a count, and the flush
//!   reports together wrote exactly that sum (no batch applied twice).

use std::collections::BTreeMap;
use std::time::Duration;

use counter_core::{AtomicError, AtomicFieldOn, BackendOf, FlushPolicy, NewRow, SlottedOn};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::watchdog::Watchdog;
use super::{CheckConn, Plan, THREADS};
use crate::db::{redis_connection, settle};
use crate::models::{Article, DailyView};
use crate::next_id;
use crate::scenarios::{daily_views_buffer, fresh_views};
use crate::schema::{ct_articles, ct_daily_views};

/// What one thread saw.
#[derive(Default)]
struct Seen {
    /// Per article: the deltas of the calls that returned `Ok`.
    applied: BTreeMap<i64, i64>,
    /// Per article: every positive and every negative delta tried (`Ok` or not).
    up: BTreeMap<i64, i64>,
    down: BTreeMap<i64, i64>,
    /// `(article, value)` of every read and compaction.
    observed: Vec<(i64, i64)>,
    /// Per buffer key: the adds that returned `Ok`.
    added: BTreeMap<(i64, i32), i64>,
    /// Per Redis counter key: the adds (and `add_all`s) that returned `Ok`, less what
    /// `discard` dropped.
    redis_added: BTreeMap<(i64, i32), i64>,
    /// What this thread's Redis flushes reported written.
    redis_written: i128,
    /// Anything that broke a promise.
    anomalies: Vec<String>,
}

/// One history of both strategies on `pool`; panics with every anomaly and the seed.
pub fn run_hot<C: CheckConn>(cell: &str, pool: &Pool<ConnectionManager<C>>, plan: Plan)
where
    Article: SlottedOn<ct_articles::likes, BackendOf<C>>,
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<C>>
        + NewRow<DailyView, ct_daily_views::views, BackendOf<C>>,
{
    let seed = plan.seed;
    let articles = [next_id(), next_id()];
    let page = next_id();
    // The Redis counter's rows exist (a flush only increments); six keys, like the buffer's.
    let redis_page = next_id();
    let rows: Vec<String> = (0..6)
        .map(|day| format!("({redis_page}, {day}, 0)"))
        .collect();
    let insert = format!(
        "INSERT INTO ct_daily_views (page_id, day, views) VALUES {}",
        rows.join(", ")
    );
    let mut conn = pool.get().expect("checker: a connection");
    settle(|| conn.batch_execute(&insert)).expect("checker: the Redis counter's rows");
    drop(conn);
    let (views, _) = fresh_views();
    let buffer = daily_views_buffer(
        pool.clone(),
        FlushPolicy {
            interval: Some(Duration::from_millis(5)),
            max_pending_adds: Some(40),
        },
    );
    // Before the watchdog starts: without COUNTER_REDIS_URL this starts a container.
    crate::db::redis_url();
    let watchdog = Watchdog::start(format!("cell {cell}, hot counters, seed {seed}"), THREADS);
    let seen: Vec<Seen> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let buffer = &buffer;
                let views = &views;
                let watchdog = &watchdog;
                scope.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed ^ ((thread as u64 + 7) << 48));
                    let mut conn = pool.get().expect("checker: a connection");
                    let mut redis = redis_connection();
                    let mut seen = Seen::default();
                    for _ in 0..plan.ops_per_thread {
                        let id = articles[rng.random_range(0..2)];
                        let n: i64 = match rng.random_range(0..10) {
                            0 => 0,
                            1 => -rng.random_range(1..=3),
                            _ => rng.random_range(1..=10),
                        };
                        let roll = rng.random_range(0..100);
                        let call = match roll {
                            0..30 => "increment_likes",
                            30..50 => "decrement_likes",
                            50..62 => "current_likes",
                            62..70 => "compact_likes",
                            70..84 => "buffer.add",
                            84..86 => "buffer.flush",
                            86..92 => "redis.add",
                            92..95 => "redis.add_all",
                            95..96 => "redis.discard",
                            _ => "redis.flush",
                        };
                        watchdog.call(thread, &(call, id, n), || match roll {
                            0..30 => {
                                *seen.up.entry(id).or_default() += n.max(0);
                                let result = Article::increment_likes(&mut *conn, id, n);
                                seen.slot_call(id, n, n < 0, result);
                            }
                            30..50 => {
                                *seen.down.entry(id).or_default() += n.max(0);
                                let result = Article::decrement_likes(&mut *conn, id, n);
                                seen.slot_call(id, -n, n < 0, result.map_err(|e| negate(e, n)));
                            }
                            50..62 => seen.observe(id, Article::current_likes(&mut *conn, id)),
                            62..70 => seen.observe(id, Article::compact_likes(&mut *conn, id)),
                            70..84 => {
                                let key = (page, rng.random_range(0..6));
                                match buffer.add(key, n) {
                                    Ok(()) => *seen.added.entry(key).or_default() += n,
                                    Err(AtomicError::NegativeAmount { amount }) if n < 0 => {
                                        assert_eq!(amount, i128::from(n));
                                    }
                                    Err(e) => seen.anomalies.push(format!("add {n}: {e}")),
                                }
                            }
                            84..86 => {
                                if let Err(e) = buffer.flush() {
                                    seen.anomalies.push(format!("flush: {e}"));
                                }
                            }
                            86..92 => {
                                let key = (redis_page, rng.random_range(0..6));
                                match views.add(&mut redis, &key, n) {
                                    Ok(pending) if pending >= n => {
                                        *seen.redis_added.entry(key).or_default() += n;
                                    }
                                    Ok(pending) => seen
                                        .anomalies
                                        .push(format!("redis add {n}: pending {pending}")),
                                    Err(AtomicError::NegativeAmount { amount }) if n < 0 => {
                                        assert_eq!(amount, i128::from(n));
                                    }
                                    Err(e) => seen.anomalies.push(format!("redis add {n}: {e}")),
                                }
                            }
                            92..95 => {
                                // Two keys in one MULTI: both or, with a negative, neither.
                                let keys = [0, 1].map(|_| (redis_page, rng.random_range(0..6)));
                                let m: i64 = rng.random_range(1..=5);
                                match views.add_all(&mut redis, [(keys[0], m), (keys[1], n)]) {
                                    Ok(()) if n >= 0 => {
                                        *seen.redis_added.entry(keys[0]).or_default() += m;
                                        *seen.redis_added.entry(keys[1]).or_default() += n;
                                    }
                                    Err(AtomicError::NegativeAmount { amount }) if n < 0 => {
                                        assert_eq!(amount, i128::from(n));
                                    }
                                    other => seen
                                        .anomalies
                                        .push(format!("redis add_all {m}, {n}: {other:?}")),
                                }
                            }
                            95..96 => {
                                // What it drops never reaches the row: subtracted from the adds.
                                let key = (redis_page, rng.random_range(0..6));
                                match views.discard(&mut redis, &key) {
                                    Ok(dropped) if dropped >= 0 => {
                                        *seen.redis_added.entry(key).or_default() -= dropped;
                                    }
                                    other => {
                                        seen.anomalies.push(format!("redis discard: {other:?}"))
                                    }
                                }
                            }
                            _ => match views.flush(&mut *conn, &mut redis) {
                                Ok(report) if report.kept.is_empty() => {
                                    seen.redis_written += report.total_written();
                                }
                                Ok(report) => seen
                                    .anomalies
                                    .push(format!("redis flush kept {:?}", report.kept)),
                                Err(e) => seen.anomalies.push(format!("redis flush: {e}")),
                            },
                        });
                    }
                    seen
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a checker thread panicked"))
            .collect()
    });

    let mut anomalies: Vec<String> = seen.iter().flat_map(|s| s.anomalies.clone()).collect();
    let sum = |pick: fn(&Seen) -> &BTreeMap<i64, i64>, id: i64| -> i64 {
        seen.iter()
            .map(|s| pick(s).get(&id).copied().unwrap_or(0))
            .sum()
    };
    let mut conn = pool.get().expect("checker: a connection");
    for id in articles {
        let (lo, hi) = (-sum(|s| &s.down, id), sum(|s| &s.up, id));
        for s in &seen {
            for &(_, v) in s.observed.iter().filter(|(a, _)| *a == id) {
                if !(lo..=hi).contains(&v) {
                    anomalies.push(format!("article {id}: read {v} outside {lo}..={hi}"));
                }
            }
        }
        let expected = sum(|s| &s.applied, id);
        let last = Article::current_likes(&mut *conn, id).expect("final read");
        let folded = Article::compact_likes(&mut *conn, id).expect("final compaction");
        if (last, folded) != (expected, expected) {
            anomalies.push(format!(
                "article {id}: {last} read and {folded} compacted, {expected} applied"
            ));
        }
    }
    buffer.shutdown().expect("the buffer's last flush");
    let mut redis = redis_connection();
    let last = views
        .flush(&mut *conn, &mut redis)
        .expect("the Redis counter's last flush");
    let mut redis_added: BTreeMap<(i64, i32), i64> = BTreeMap::new();
    for s in &seen {
        for (key, n) in &s.redis_added {
            *redis_added.entry(*key).or_default() += n;
        }
    }
    let flushed: i128 = seen.iter().map(|s| s.redis_written).sum::<i128>() + last.total_written();
    let added_total: i64 = redis_added.values().sum();
    if flushed != i128::from(added_total) || !last.kept.is_empty() {
        anomalies.push(format!(
            "redis: flushes wrote {flushed}, {added_total} added, kept {:?}",
            last.kept
        ));
    }
    for day in 0..6 {
        let key = (redis_page, day);
        let expected = redis_added.get(&key).copied().unwrap_or(0);
        let written = DailyView::current_views(&mut *conn, key).expect("a Redis counter row");
        if written != expected {
            anomalies.push(format!(
                "redis key {key:?}: {written} written, {expected} added"
            ));
        }
    }
    let mut added: BTreeMap<(i64, i32), i64> = BTreeMap::new();
    for s in &seen {
        for (key, n) in &s.added {
            *added.entry(*key).or_default() += n;
        }
    }
    for (key, expected) in &added {
        let written = DailyView::current_views(&mut *conn, *key).unwrap_or(0);
        if written != *expected {
            anomalies.push(format!(
                "buffer key {key:?}: {written} written, {expected} added"
            ));
        }
    }
    assert!(
        anomalies.is_empty(),
        "checker, cell {cell}, hot counters: {} anomalies (seed {seed}; replay with \
         COUNTER_CHECK_SEED={seed}):\n  {}",
        anomalies.len(),
        anomalies.join("\n  ")
    );
    eprintln!(
        "checker, cell {cell}, hot counters: {} calls, {} buffer keys and {} Redis keys exact, 0 anomalies (seed {seed})",
        THREADS * plan.ops_per_thread,
        added.len(),
        redis_added.len()
    );
}

/// A decrement's `NegativeAmount` names the amount passed, not the delta.
fn negate(error: AtomicError, n: i64) -> AtomicError {
    match error {
        AtomicError::NegativeAmount { .. } => AtomicError::NegativeAmount {
            amount: i128::from(-n),
        },
        other => other,
    }
}

impl Seen {
    /// A slotted increment (`delta > 0`), decrement (`delta < 0`) or zero: `Ok` counts;
    /// a negative amount must be refused, nothing else may fail.
    fn slot_call(&mut self, id: i64, delta: i64, negative: bool, result: Result<(), AtomicError>) {
        match result {
            Ok(()) if negative => self
                .anomalies
                .push(format!("article {id}: a negative amount was accepted")),
            Ok(()) => *self.applied.entry(id).or_default() += delta,
            // `delta` is the signed change; the amount passed was negative exactly when the
            // call was refused as negative (for a decrement, `negate` made it the delta).
            Err(AtomicError::NegativeAmount { amount })
                if negative && amount == i128::from(delta) => {}
            Err(e) => self
                .anomalies
                .push(format!("article {id}, delta {delta}: {e}")),
        }
    }

    fn observe(&mut self, id: i64, result: Result<i64, AtomicError>) {
        match result {
            Ok(v) => self.observed.push((id, v)),
            Err(e) => self.anomalies.push(format!("article {id}: read: {e}")),
        }
    }
}
