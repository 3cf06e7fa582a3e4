//! Running one backend: its pool, the warm-up, the rounds of shuffled configurations, and one
//! slice of a configuration, its client threads and what the table shows afterwards.

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use counter_bench::db::short_version;
use counter_bench::measure::{ClientLog, Totals};
use counter_bench::report::Measured;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::backend::{Backend, SLOTS};
use crate::checkout;
use crate::cli::Settings;
use crate::flush_load;
use crate::redis_load;
use crate::tables::Row;
use crate::workload::Workload;

/// What the slices of one configuration add up to.
#[derive(Debug, Default)]
struct Tally {
    totals: Totals,
    /// Successful operations minus the change seen in the table.
    lost: i128,
    /// `redis`: what the flushes after the slices moved, and how long they took.
    flushed: i128,
    flush_time: Duration,
    /// `redis_benchmark`: its own p50 and p99 (µs), instead of `latencies_us`.
    reference: Option<(u32, u32)>,
}

impl Tally {
    /// Adds a slice that ran after the others.
    fn add(&mut self, t: Tally) {
        self.totals.add(t.totals);
        self.lost += t.lost;
        self.flushed += t.flushed;
        self.flush_time += t.flush_time;
        self.reference = t.reference.or(self.reference);
    }
}

/// Sets up backend `B` and runs every configuration; the panel title and the result rows.
pub fn run_backend<B: Backend>(
    url: &str,
    s: &Settings,
    customizer: Option<Box<dyn CustomizeConnection<B, diesel::r2d2::Error>>>,
) -> Result<(String, Vec<Row>), String> {
    let max_clients = *s.clients.iter().max().expect("at least one client count");
    {
        let mut conn = B::establish(url).map_err(|e| format!("cannot connect to {url}: {e}"))?;
        B::create_schema(&mut conn, s.rows).map_err(|e| format!("creating the table: {e}"))?;
    }
    let mut builder = Pool::builder()
        .max_size(max_clients as u32 + 1)
        .min_idle(Some(max_clients as u32 + 1))
        .idle_timeout(None)
        .max_lifetime(None)
        // Checked out once per client per slice, outside the measured time: a connection
        // killed from outside (a server restart, `pg_terminate_backend`) is replaced.
        .test_on_check_out(true)
        .connection_timeout(Duration::from_secs(30));
    if let Some(c) = customizer {
        builder = builder.connection_customizer(c);
    }
    let pool = builder
        .build(ConnectionManager::<B>::new(url))
        .map_err(|e| format!("cannot build the pool for {url}: {e}"))?;
    let version = {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        B::version(&mut conn).map_err(|e| e.to_string())?
    };
    let title = format!("{} {}", B::TITLE, short_version(&version));
    eprintln!(
        "[{}] {version}; {} workloads x {} client counts, {} s each in {} round(s), {} row(s)",
        B::NAME,
        s.workloads.len(),
        s.clients.len(),
        s.seconds,
        s.rounds,
        s.rows
    );

    // The client loops; the flush workloads run afterwards, a run per batch size.
    let (flushes, loops): (Vec<Workload>, Vec<Workload>) =
        s.workloads.iter().partition(|w| w.is_flush());

    // Warm-up, not counted: every connection prepares every statement once.
    let warmup = Duration::from_millis(if s.quick { 100 } else { 300 });
    for &w in &loops {
        let mut rng = SmallRng::seed_from_u64(s.seed);
        run_slice::<B>(&pool, w, max_clients, s.rows, warmup, &mut rng)?;
    }

    let mut configs: Vec<(Workload, usize)> = Vec::new();
    for &w in &loops {
        for &c in &s.clients {
            configs.push((w, c));
        }
    }
    let slice = Duration::from_secs_f64(s.seconds / f64::from(s.rounds));
    let mut rng = SmallRng::seed_from_u64(s.seed);
    let mut tallies: BTreeMap<(Workload, usize), Tally> = BTreeMap::new();
    for round in (0..s.rounds).filter(|_| !configs.is_empty()) {
        let mut order = configs.clone();
        let shift = round as usize % order.len();
        order.rotate_left(shift);
        order.shuffle(&mut rng);
        for (k, &(w, c)) in order.iter().enumerate() {
            let t = run_slice::<B>(&pool, w, c, s.rows, slice, &mut rng)?;
            let secs = t.totals.elapsed.as_secs_f64();
            eprintln!(
                "[{}] round {}/{} {:>2}/{} {:<22} {:>3} clients {:>6.2} s {:>9.0} ops/s  lost {:<6} errors {}",
                B::NAME,
                round + 1,
                s.rounds,
                k + 1,
                order.len(),
                w.name(),
                c,
                secs,
                t.totals.ok as f64 / secs,
                t.lost,
                t.totals.errors
            );
            if let Some(e) = &t.totals.first_error {
                eprintln!("[{}]   first error: {e}", B::NAME);
            }
            tallies.entry((w, c)).or_default().add(t);
        }
    }

    let mut rows: Vec<Row> = tallies
        .into_iter()
        .map(|((w, c), mut t)| {
            let lost = i64::try_from(t.lost).unwrap_or(i64::MAX);
            let mut measured = Measured::new(&mut t.totals, lost);
            if let Some((p50_us, p99_us)) = t.reference {
                (measured.p50_us, measured.p99_us) = (p50_us, p99_us);
            }
            Row {
                backend: B::NAME,
                workload: w,
                clients: c,
                measured,
                rows: s.rows,
                flush_per_sec: (w == Workload::Redis && !t.flush_time.is_zero())
                    .then(|| (t.flushed as f64 / t.flush_time.as_secs_f64()).round()),
                memory: None,
            }
        })
        .collect();
    if !flushes.is_empty() {
        rows.extend(flush_load::run::<B>(&pool, s, &flushes)?);
    }
    Ok((title, rows))
}

/// Runs `workload` with `clients` threads for `duration`; returns the slice's tally.
fn run_slice<B: Backend>(
    pool: &Pool<ConnectionManager<B>>,
    workload: Workload,
    clients: usize,
    rows: i64,
    duration: Duration,
    rng: &mut SmallRng,
) -> Result<Tally, String> {
    let (before_value, before_stock, before_slots) = {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        B::refill(&mut conn).map_err(|e| format!("refilling stock: {e}"))?;
        if workload.is_counter_cache() {
            B::reset_views(&mut conn).map_err(|e| format!("emptying bench_views: {e}"))?;
        }
        B::totals(&mut conn).map_err(|e| format!("reading totals: {e}"))?
    };
    if workload == Workload::RedisBenchmark {
        // About 25,000 INCRBY a second per client on loopback, up to 100,000 from four
        // clients on: about the slice's length, at least 10,000.
        let rate = 25_000.0 * clients.min(4) as f64;
        let requests = ((duration.as_secs_f64() * rate) as u64).max(10_000);
        let r = redis_load::redis_benchmark(clients, requests)?;
        return Ok(Tally {
            totals: Totals {
                ok: r.requests,
                elapsed: Duration::from_secs_f64(r.requests as f64 / r.per_sec),
                ..Totals::default()
            },
            reference: Some((r.p50_us, r.p99_us)),
            ..Tally::default()
        });
    }
    let seeds: Vec<u64> = (0..clients).map(|_| rng.random()).collect();
    let barrier = Barrier::new(clients);
    let buffer = (workload == Workload::Buffered).then(|| B::buffer(pool.clone()));
    let buffer = buffer.as_ref();
    let redis = (workload == Workload::Redis)
        .then(redis_load::RedisLoad::new)
        .transpose()?;
    let redis = redis.as_ref();
    let results: Vec<Result<(ClientLog, i128), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .iter()
            .enumerate()
            .map(|(index, &seed)| {
                let barrier = &barrier;
                let me = Me {
                    index: index as i32,
                    seed,
                };
                scope.spawn(move || {
                    let shared = Shared { buffer, redis };
                    client::<B>(pool, workload, shared, rows, duration, me, barrier)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("client thread panicked".into()))
            })
            .collect()
    });
    if let Some(buffer) = buffer {
        // Every count in the database before the table is read.
        buffer
            .flush()
            .map_err(|e| format!("the buffer's last flush: {e}"))?;
    }
    let mut flushed = (0, Duration::ZERO);
    if let Some(redis) = redis {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        flushed = B::redis_flush(&mut conn, redis)?;
    }
    let (after_value, after_stock, after_slots, mismatched) = {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        let (value, stock, slots) =
            B::totals(&mut conn).map_err(|e| format!("reading totals: {e}"))?;
        // The counter caches: every row's `value` (0 at the start) must now be its views.
        let mismatched = if workload.is_counter_cache() {
            B::view_mismatches(&mut conn).map_err(|e| format!("counting bench_views: {e}"))?
        } else {
            Vec::new()
        };
        (value, stock, slots, mismatched)
    };
    let mut off = 0i128;
    for &(id, value, views) in &mismatched {
        eprintln!(
            "[{}] error: {} with {clients} clients: row {id} counts value {value} but has \
             {views} bench_views rows",
            B::NAME,
            workload.name()
        );
        off += (i128::from(value) - i128::from(views)).abs();
    }

    let mut logs = Vec::with_capacity(results.len());
    let mut applied: i128 = 0;
    for r in results {
        let (log, amount) = r?;
        logs.push(log);
        applied += amount;
    }
    // What the table shows happened, against what the clients were told happened.
    let seen = if workload.on_stock() {
        before_stock - after_stock
    } else if matches!(workload, Workload::Slotted | Workload::InsertCountedSlotted) {
        after_slots - before_slots
    } else {
        after_value - before_value
    };
    Ok(Tally {
        totals: Totals::of_clients(logs),
        // A counter that differs from its child rows is counted as lost too (and reported
        // above): the run fails either way.
        lost: applied - seen + off,
        flushed: flushed.0,
        flush_time: flushed.1,
        reference: None,
    })
}

/// What the clients of a slice share instead of running on their connections: the `buffered`
/// workload's buffer, the `redis` workload's counter.
#[derive(Clone, Copy)]
struct Shared<'a> {
    buffer: Option<&'a counter_core::Buffer<i64, i64>>,
    redis: Option<&'a redis_load::RedisLoad>,
}

/// Who a client is: its number in the slice (the `client` of the views it inserts) and the
/// seed of its random choices.
#[derive(Clone, Copy)]
struct Me {
    index: i32,
    seed: u64,
}

/// One client: its own pooled connection, operations back to back until the deadline. What
/// it measured, and the amount its successes moved the column by.
fn client<B: Backend>(
    pool: &Pool<ConnectionManager<B>>,
    workload: Workload,
    Shared { buffer, redis }: Shared<'_>,
    rows: i64,
    duration: Duration,
    Me { index, seed }: Me,
    barrier: &Barrier,
) -> Result<(ClientLog, i128), String> {
    let conn = pool.get();
    let redis_conn = redis.map(|r| r.connection());
    barrier.wait();
    let mut conn = conn.map_err(|e| format!("no pooled connection: {e}"))?;
    let mut redis_conn = redis_conn.transpose()?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut applied = 0i128;
    let start = Instant::now();
    let deadline = start + duration;
    let mut log = ClientLog::new(start, 1 << 16);
    while log.end < deadline {
        let id = if workload == Workload::Spread {
            rng.random_range(1..=SLOTS)
        } else if rows == 1 {
            1
        } else {
            rng.random_range(1..=rows)
        };
        let result = match (buffer, redis.zip(redis_conn.as_mut())) {
            (Some(buffer), _) => buffer.add(id, 1).map(|()| 1).map_err(|e| e.to_string()),
            (None, Some((redis, c))) => redis
                .counter
                .add(c, &id, 1)
                .map(|_| 1)
                .map_err(|e| e.to_string()),
            (None, None) if workload.is_checkout() => {
                B::checkout(&mut conn, workload, &checkout::cart(&mut rng))
            }
            (None, None) if workload.is_counter_cache() => B::view(&mut conn, workload, id, index),
            (None, None) => B::op(&mut conn, workload, id),
        };
        if let Some(amount) = log.record(result, Instant::now()) {
            applied += i128::from(amount);
        }
    }
    Ok((log, applied))
}
