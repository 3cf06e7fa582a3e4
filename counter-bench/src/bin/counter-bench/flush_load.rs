//! The `flush` workloads: one batch of distinct keys, half of them rows that exist and half
//! new, written by `Buffer::flush()` or by the hand-written multi-row upserts. A run per batch
//! size and workload in every round (in a shuffled order), each from the same table state;
//! the fastest run of each is reported. After every run the table must hold exactly what was
//! added: a wrong total fails the benchmark, it is not a number.

use std::time::{Duration, Instant};

use counter_bench::heap;
use counter_bench::report::Measured;
use diesel::r2d2::{ConnectionManager, Pool};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::backend::Backend;
use crate::cli::Settings;
use crate::flush_sql::SEED;
use crate::tables::Row;
use crate::workload::Workload;
use crate::HEAP;

/// What a flush held and took in memory, measured around the timed part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Memory {
    /// Rust heap the batch held before the flush began: the buffer's pending map, or the
    /// hand-written statement's `Vec` (counted by the binary's allocator).
    pub batch_heap_bytes: i64,
    /// The most Rust heap in use at once during the flush, above `batch_heap_bytes`.
    pub flush_peak_heap_bytes: i64,
    /// The process's peak resident set during the flush (VmHWM, reset first) minus its
    /// resident set before: whole pages, C libraries included; `None` off Linux.
    pub flush_peak_rss_bytes: Option<u64>,
}

/// One timed run.
struct Run {
    time: Duration,
    memory: Memory,
}

/// The batch of `keys` keys: ids 1..=keys, each with an amount of 1 to 5.
pub fn batch(keys: usize) -> Vec<(i64, i64)> {
    (1..=keys as i64).map(|id| (id, 1 + id % 5)).collect()
}

/// The keys whose rows exist before a run: the even half, so new and existing rows
/// interleave in the index.
pub fn existing(keys: usize) -> Vec<i64> {
    (1..=keys as i64).filter(|id| id % 2 == 0).collect()
}

/// `(rows, Σ n)` the table must hold after a run over `keys` keys.
pub fn expected(keys: usize) -> (usize, i128) {
    let seeded = existing(keys).len() as i128 * i128::from(SEED);
    let added: i128 = batch(keys).iter().map(|&(_, n)| i128::from(n)).sum();
    (keys, seeded + added)
}

/// Runs `workloads` (the flush ones) over every batch size of the settings on `pool`; a row
/// per workload and size. A workload the backend does not have (the `unnest` form outside
/// PostgreSQL) is left out.
pub fn run<B: Backend>(
    pool: &Pool<ConnectionManager<B>>,
    s: &Settings,
    workloads: &[Workload],
) -> Result<Vec<Row>, String> {
    {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        B::create_flush_table(&mut conn).map_err(|e| format!("creating flush_counters: {e}"))?;
    }
    // Warm-up, not counted: the statements prepared once, the table's files grown once.
    let smallest = s.keys.first().copied().unwrap_or(1_000);
    let mut available = Vec::new();
    for &w in workloads {
        if once::<B>(pool, w, smallest)?.is_some() {
            available.push(w);
        }
    }
    let mut runs: Vec<((Workload, usize), Vec<Run>)> = Vec::new();
    let mut rng = SmallRng::seed_from_u64(s.seed);
    for round in 0..s.rounds {
        for &keys in &s.keys {
            let mut order = available.clone();
            order.shuffle(&mut rng);
            for w in order {
                let run = once::<B>(pool, w, keys)?.ok_or("a flush workload went away")?;
                eprintln!(
                    "[{}] round {}/{} {:<24} {:>7} keys {:>8.3} s {:>9.0} keys/s  heap {:.1}+{:.1} MiB",
                    B::NAME,
                    round + 1,
                    s.rounds,
                    w.name(),
                    keys,
                    run.time.as_secs_f64(),
                    keys as f64 / run.time.as_secs_f64(),
                    run.memory.batch_heap_bytes as f64 / f64::from(1 << 20),
                    run.memory.flush_peak_heap_bytes as f64 / f64::from(1 << 20),
                );
                match runs.iter_mut().find(|(k, _)| *k == (w, keys)) {
                    Some((_, v)) => v.push(run),
                    None => runs.push(((w, keys), vec![run])),
                }
            }
        }
    }
    runs.sort_by_key(|&(k, _)| k);
    Ok(runs
        .into_iter()
        .map(|((w, keys), runs)| row::<B>(w, keys, runs))
        .collect())
}

/// The result row of `runs` of `workload` over `keys` keys: the fastest run's rate, the
/// median and slowest durations, the largest memory seen.
fn row<B: Backend>(workload: Workload, keys: usize, runs: Vec<Run>) -> Row {
    let mut us: Vec<u64> = runs.iter().map(|r| r.time.as_micros() as u64).collect();
    us.sort_unstable();
    let best = Duration::from_micros(us[0]).max(Duration::from_nanos(1));
    let micros = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
    let largest = |f: fn(&Memory) -> i64| runs.iter().map(|r| f(&r.memory)).max().unwrap_or(0);
    Row {
        backend: B::NAME,
        workload,
        clients: 1,
        measured: Measured {
            ops_per_sec: (keys as f64 / best.as_secs_f64() * 10.0).round() / 10.0,
            p50_us: micros(us[(us.len() - 1) / 2]),
            p99_us: micros(us[us.len() - 1]),
            lost: 0,
            errors: 0,
        },
        rows: keys as i64,
        flush_per_sec: None,
        memory: Some(Memory {
            batch_heap_bytes: largest(|m| m.batch_heap_bytes),
            flush_peak_heap_bytes: largest(|m| m.flush_peak_heap_bytes),
            flush_peak_rss_bytes: runs
                .iter()
                .filter_map(|r| r.memory.flush_peak_rss_bytes)
                .max(),
        }),
    }
}

/// One run of `workload` over `keys` keys from the reset table, checked against the table;
/// `None` when the backend has no such statement (`unnest` outside PostgreSQL).
fn once<B: Backend>(
    pool: &Pool<ConnectionManager<B>>,
    workload: Workload,
    keys: usize,
) -> Result<Option<Run>, String> {
    if workload == Workload::FlushHandwrittenUnnest && !B::UNNEST {
        return Ok(None);
    }
    let batch = batch(keys);
    {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        B::reset_flush_table(&mut conn, &existing(keys))
            .map_err(|e| format!("resetting flush_counters: {e}"))?;
    }
    let run = match workload {
        Workload::Flush => {
            let buffer = B::flush_buffer(pool.clone());
            HEAP.start();
            let added = batch.iter().try_for_each(|&(id, n)| buffer.add(id, n));
            // Whatever `flush` returns (a count of keys today), only its error matters here.
            let run = added
                .map_err(|e| format!("buffer.add: {e}"))
                .and_then(|()| {
                    measured(|| buffer.flush().map(drop).map_err(|e| format!("flush: {e}")))
                });
            HEAP.stop();
            // Nothing is left, so dropping the buffer writes nothing.
            drop(buffer);
            run?
        }
        Workload::FlushHandwritten | Workload::FlushHandwrittenUnnest => {
            HEAP.start();
            let mine = batch.clone();
            let run = measured(|| {
                let mut conn = pool.get().map_err(|e| e.to_string())?;
                if workload == Workload::FlushHandwritten {
                    B::upsert_values(&mut conn, &mine)
                } else {
                    B::upsert_unnest(&mut conn, &mine)
                }
                .map_err(|e| format!("{}: {e}", workload.name()))
            });
            HEAP.stop();
            drop(mine);
            run?
        }
        other => return Err(format!("{other:?} is not a flush workload")),
    };
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let seen = B::flush_totals(&mut conn).map_err(|e| format!("reading flush_counters: {e}"))?;
    let want = expected(keys);
    if seen != want {
        return Err(format!(
            "{} of {keys} keys left (rows, sum) = {seen:?} in flush_counters, expected {want:?}",
            workload.name()
        ));
    }
    Ok(Some(run))
}

/// Times `write` (heap counting already on, with the batch in memory), and what it took in
/// memory above what was in use when it started.
fn measured(write: impl FnOnce() -> Result<(), String>) -> Result<Run, String> {
    let batch_heap_bytes = HEAP.current() as i64;
    HEAP.reset_peak();
    let rss_before = heap::reset_rss_peak().then(heap::rss).flatten();
    let start = Instant::now();
    let result = write();
    let time = start.elapsed();
    let rss_after = heap::rss();
    let flush_peak_heap_bytes = HEAP.peak() as i64 - batch_heap_bytes;
    result?;
    Ok(Run {
        time,
        memory: Memory {
            batch_heap_bytes,
            flush_peak_heap_bytes,
            flush_peak_rss_bytes: rss_before
                .zip(rss_after)
                .map(|((rss, _), (_, hwm))| hwm.saturating_sub(rss)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_keys_exist_and_the_total_adds_up() {
        assert_eq!(batch(4), [(1, 2), (2, 3), (3, 4), (4, 5)]);
        assert_eq!(existing(5), [2, 4]);
        assert_eq!(expected(4), (4, 2 * i128::from(SEED) + 14));
        assert_eq!(existing(20_000).len(), 10_000);
    }
}
