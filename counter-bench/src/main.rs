//! `counter-bench`: throughput, latency and lost updates of every counter strategy in
//! counter-core, against the same statement written by hand with Diesel, on PostgreSQL,
//! MySQL/MariaDB and SQLite.
//!
//! Configurations (workload × clients) are interleaved: the time of each is cut into rounds,
//! and every round runs every configuration once, in a fresh shuffled order, so drift of the
//! machine (other processes, autovacuum, checkpoints, thermal) hits all of them alike.

mod db;
mod redis_load;
mod svg;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sqlite::SqliteConnection;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use db::{Backend, SqlitePragmas};

/// Measures counter-core's generated methods against naive read-modify-write and against the
/// same SQL written directly with Diesel.
///
/// Every client is a thread with its own pooled connection. For each backend, the run time of
/// every (workload, clients) configuration is split into rounds; each round runs every
/// configuration once in a shuffled order, and the rounds are added up per configuration.
/// Progress goes to stderr; the result table to stdout.
///
/// Environment: COUNTER_PG_URL (default postgres://postgres@127.0.0.1/test),
/// COUNTER_MYSQL_URL (default mysql://root@127.0.0.1/test) and COUNTER_REDIS_URL (default
/// redis://127.0.0.1:6379/). The table `counters` in those
/// databases is dropped and recreated. SQLite runs on a temporary file in WAL mode with
/// synchronous=NORMAL and busy_timeout=5000 ms on every connection.
#[derive(Debug, Parser)]
#[command(
    name = "counter-bench",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
struct Cli {
    /// Backend to measure; repeat for several [default: postgres, mysql and sqlite].
    #[arg(long = "backend", value_enum)]
    backends: Vec<BackendName>,

    /// Workload to run; repeat for several [default: all].
    ///
    /// naive: load the row, add 1 in Rust, save it (two statements, no lock; loses updates).
    /// handwritten: the library's guarded increment written directly with Diesel's query
    /// builder (UPDATE … RETURNING on PostgreSQL/SQLite, UPDATE with LAST_INSERT_ID capture
    /// then SELECT LAST_INSERT_ID() on MySQL). Diesel never caches an UPDATE as a prepared
    /// statement, so this prepares the statement on every call; the library's statements are
    /// prepared once per connection.
    /// increment: Counter::increment_value(conn, id, 1).
    /// decrement_if_at_least: Counter::decrement_stock_if_at_least(conn, id, 1).
    /// take_up_to: Counter::take_stock_up_to(conn, id, 1).
    /// locked: Counter::update_value_locked(conn, id, |v| Ok(v + 1)) (row lock, then write).
    /// sale: Counter::update_atomic(conn, id, (stock.decrement_if_at_least(1),
    /// value.increment(1))): two columns, one statement.
    /// sale_two_updates: the same sale as two UPDATEs in a transaction with a retry loop.
    /// upsert: Counter::increment_value_or_insert(conn, &row, 1) on existing rows.
    /// upsert_handwritten: Diesel's on_conflict().do_update().set(value + 1).returning(value)
    /// (PostgreSQL, SQLite); raw INSERT … ON DUPLICATE KEY UPDATE value =
    /// LAST_INSERT_ID(value + 1) then SELECT LAST_INSERT_ID() (MariaDB).
    /// buffered: buffer.add(id, 1) on a counter_core::Buffer the clients share (flushed every
    /// second or at 10,000 pending adds, and after the slice, before `lost` is measured).
    /// slotted: Counter::increment_hits(conn, id, 1), a slotted counter over 16 slot rows.
    /// spread: Counter::increment_value(conn, id, 1) on a random one of 16 rows, the limit
    /// a 16-slot counter approaches.
    /// redis: RedisCounter::add(redis, id, 1) (one HINCRBY, a Redis connection per client),
    /// then one flush into the table after the slice (its rate is reported as well).
    /// redis_benchmark: redis-benchmark -c <clients> INCRBY on the same Redis, the reference
    /// for redis (needs redis-benchmark on the PATH).
    #[arg(long = "workload", value_enum, verbatim_doc_comment)]
    workloads: Vec<Workload>,

    /// Client counts to sweep, comma-separated [default: 1,4,16; with --quick: 1,4].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=256))]
    clients: Vec<u32>,

    /// Seconds of measurement per configuration, summed over all rounds
    /// [default: 10; with --quick: 1].
    #[arg(long)]
    seconds: Option<f64>,

    /// Rounds each configuration's time is split into [default: seconds/4 rounded up,
    /// between 1 and 5].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: Option<u32>,

    /// Rows the operations are spread over, each operation on a random one. 1 is the hot-row
    /// case: every client on the same row.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    rows: i64,

    /// Write the result rows as a JSON array to this file: objects with backend, workload,
    /// clients, ops_per_sec, p50_us, p99_us, lost, errors (and rows).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Write an SVG chart (ops/s against clients, one line per workload, one panel per backend)
    /// to this file.
    #[arg(long, value_name = "PATH")]
    svg: Option<PathBuf>,

    /// CI smoke run: 1 and 4 clients, 1 s per configuration, one round, all workloads, unless
    /// given explicitly. Under a minute per backend.
    #[arg(long)]
    quick: bool,

    /// Seed of the shuffled order and of the row choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendName {
    Postgres,
    Mysql,
    Sqlite,
}

/// What one client does in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Load, add in Rust, save.
    Naive,
    /// The same single statement as `increment`, written with Diesel's query builder.
    Handwritten,
    /// `increment_value(conn, id, 1)`.
    Increment,
    /// `decrement_stock_if_at_least(conn, id, 1)`.
    #[value(name = "decrement_if_at_least", alias = "decrement-if-at-least")]
    DecrementIfAtLeast,
    /// `take_stock_up_to(conn, id, 1)`.
    #[value(name = "take_up_to", alias = "take-up-to")]
    TakeUpTo,
    /// `update_value_locked(conn, id, |v| Ok(v + 1))`.
    Locked,
    /// `update_atomic(conn, id, (stock.decrement_if_at_least(1), value.increment(1)))`: the
    /// sale of two columns in one statement.
    Sale,
    /// The same sale as a user writes it today: a transaction of two `UPDATE`s (the guarded
    /// one first) with a hand-written retry loop.
    #[value(name = "sale_two_updates", alias = "sale-two-updates")]
    SaleTwoUpdates,
    /// `increment_value_or_insert(conn, &row, 1)` on rows that exist.
    Upsert,
    /// The same upsert hand-written: Diesel's `on_conflict().do_update()` returning the value
    /// (PostgreSQL, SQLite); on MariaDB the textbook raw SQL `ON DUPLICATE KEY UPDATE value =
    /// LAST_INSERT_ID(value + 1)` then `SELECT LAST_INSERT_ID()` (which reports a stale value
    /// when it inserts).
    #[value(name = "upsert_handwritten", alias = "upsert-handwritten")]
    UpsertHandwritten,
    /// `buffer.add(id, 1)` on a `counter_core::Buffer` shared by the clients, flushed in the
    /// background (every second or at 10,000 pending adds) and once more after the slice;
    /// `lost` is measured after that last flush.
    Buffered,
    /// `increment_hits(conn, id, 1)`: a slotted counter over 16 rows of a slot table.
    Slotted,
    /// `increment_value(conn, id, 1)` on a random one of 16 rows: the limit a 16-slot
    /// counter approaches (the same statement, no hot row).
    Spread,
    /// `RedisCounter::add(redis, id, 1)` (one `HINCRBY`), each client on its own Redis
    /// connection; one flush after the slice moves the counts into the table (its rate is
    /// `flush_per_sec`), and `lost` is measured after it.
    Redis,
    /// The reference for `redis`: `redis-benchmark -c <clients> INCRBY` on the same Redis,
    /// in the same run. Not the library; its numbers are redis-benchmark's own.
    #[value(name = "redis_benchmark", alias = "redis-benchmark")]
    RedisBenchmark,
}

impl Workload {
    const ALL: [Workload; 15] = [
        Workload::Naive,
        Workload::Handwritten,
        Workload::Increment,
        Workload::DecrementIfAtLeast,
        Workload::TakeUpTo,
        Workload::Locked,
        Workload::Sale,
        Workload::SaleTwoUpdates,
        Workload::Upsert,
        Workload::UpsertHandwritten,
        Workload::Buffered,
        Workload::Slotted,
        Workload::Spread,
        Workload::Redis,
        Workload::RedisBenchmark,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Naive => "naive",
            Workload::Handwritten => "handwritten",
            Workload::Increment => "increment",
            Workload::DecrementIfAtLeast => "decrement_if_at_least",
            Workload::TakeUpTo => "take_up_to",
            Workload::Locked => "locked",
            Workload::Sale => "sale",
            Workload::SaleTwoUpdates => "sale_two_updates",
            Workload::Upsert => "upsert",
            Workload::UpsertHandwritten => "upsert_handwritten",
            Workload::Buffered => "buffered",
            Workload::Slotted => "slotted",
            Workload::Spread => "spread",
            Workload::Redis => "redis",
            Workload::RedisBenchmark => "redis_benchmark",
        }
    }

    /// Does it move `stock` down (else `value` up)?
    fn on_stock(self) -> bool {
        matches!(self, Workload::DecrementIfAtLeast | Workload::TakeUpTo)
    }
}

/// One line of the results, as written to the JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    backend: &'static str,
    workload: Workload,
    clients: usize,
    ops_per_sec: f64,
    p50_us: u32,
    p99_us: u32,
    /// Successful operations minus the change actually seen in the table.
    lost: i64,
    errors: u64,
    rows: i64,
    /// `redis`: counts the flushes after the slices moved into the table per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    flush_per_sec: Option<f64>,
}

/// What the slices of one configuration add up to.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    errors: u64,
    lost: i128,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
    /// `redis`: what the flushes after the slices moved, and how long they took.
    flushed: i128,
    flush_time: Duration,
    /// `redis_benchmark`: its own p50 and p99 (µs), instead of `latencies_us`.
    reference: Option<(u32, u32)>,
}

/// What one client thread measured in one slice.
struct ClientResult {
    ok: u64,
    errors: u64,
    applied: i128,
    start: Instant,
    end: Instant,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

struct Settings {
    workloads: Vec<Workload>,
    clients: Vec<usize>,
    seconds: f64,
    rounds: u32,
    rows: i64,
    seed: u64,
    quick: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let backends = if cli.backends.is_empty() {
        vec![
            BackendName::Postgres,
            BackendName::Mysql,
            BackendName::Sqlite,
        ]
    } else {
        dedup(cli.backends.clone())
    };
    let workloads = if cli.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        let mut w = dedup(cli.workloads.clone());
        w.sort();
        w
    };
    let mut clients: Vec<usize> = if cli.clients.is_empty() {
        if cli.quick {
            vec![1, 4]
        } else {
            vec![1, 4, 16]
        }
    } else {
        cli.clients.iter().map(|&c| c as usize).collect()
    };
    clients.sort_unstable();
    clients.dedup();
    let seconds = cli.seconds.unwrap_or(if cli.quick { 1.0 } else { 10.0 });
    if !(seconds.is_finite() && seconds > 0.0) {
        eprintln!("error: --seconds must be a positive number");
        return ExitCode::from(2);
    }
    let rounds = cli.rounds.unwrap_or(if cli.quick {
        1
    } else {
        (seconds / 4.0).ceil().clamp(1.0, 5.0) as u32
    });
    let settings = Settings {
        workloads,
        clients,
        seconds,
        rounds,
        rows: cli.rows,
        seed: cli.seed,
        quick: cli.quick,
    };

    let mut all: Vec<Row> = Vec::new();
    let mut titles: Vec<(BackendName, String)> = Vec::new();
    let mut failed = false;
    for backend in backends {
        let result = match backend {
            BackendName::Postgres => {
                let url = env_or("COUNTER_PG_URL", "postgres://postgres@127.0.0.1/test");
                run_backend::<PgConnection>(&url, &settings, None)
            }
            BackendName::Mysql => {
                let url = env_or("COUNTER_MYSQL_URL", "mysql://root@127.0.0.1/test");
                run_backend::<MysqlConnection>(&url, &settings, None)
            }
            BackendName::Sqlite => match tempfile::tempdir() {
                Ok(dir) => {
                    let path = dir.path().join("counter-bench.db");
                    let url = path.to_string_lossy().into_owned();
                    run_backend::<SqliteConnection>(&url, &settings, Some(Box::new(SqlitePragmas)))
                }
                Err(e) => Err(format!("cannot create a temporary directory: {e}")),
            },
        };
        match result {
            Ok((title, rows)) => {
                titles.push((backend, title));
                all.extend(rows);
                // Written after every backend, so a long run keeps what it measured so far.
                if let Err(e) = write_outputs(&cli, &settings, &all, &titles) {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("error: {backend:?}: {e}");
                failed = true;
            }
        }
    }

    print_table(&all);
    print_ratios(&all);
    // Throughput is only reported. A lost update or an error in anything but `naive` is a
    // correctness failure, and fails the run (and so the CI smoke run).
    for r in all.iter().filter(|r| r.workload != Workload::Naive) {
        if r.lost != 0 || r.errors != 0 {
            eprintln!(
                "error: {} {:?} with {} clients: {} lost, {} errors; it must be 0 and 0",
                r.backend, r.workload, r.clients, r.lost, r.errors
            );
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Sets up backend `B` and runs every configuration; the panel title and the result rows.
fn run_backend<B: Backend>(
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

    // Warm-up, not counted: every connection prepares every statement once.
    let warmup = Duration::from_millis(if s.quick { 100 } else { 300 });
    for &w in &s.workloads {
        let mut rng = SmallRng::seed_from_u64(s.seed);
        run_slice::<B>(&pool, w, max_clients, s.rows, warmup, &mut rng)?;
    }

    let mut configs: Vec<(Workload, usize)> = Vec::new();
    for &w in &s.workloads {
        for &c in &s.clients {
            configs.push((w, c));
        }
    }
    let slice = Duration::from_secs_f64(s.seconds / f64::from(s.rounds));
    let mut rng = SmallRng::seed_from_u64(s.seed);
    let mut tallies: BTreeMap<(Workload, usize), Tally> = BTreeMap::new();
    for round in 0..s.rounds {
        let mut order = configs.clone();
        let shift = round as usize % order.len();
        order.rotate_left(shift);
        order.shuffle(&mut rng);
        for (k, &(w, c)) in order.iter().enumerate() {
            let t = run_slice::<B>(&pool, w, c, s.rows, slice, &mut rng)?;
            let secs = t.elapsed.as_secs_f64();
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
                t.ok as f64 / secs,
                t.lost,
                t.errors
            );
            if let Some(e) = &t.first_error {
                eprintln!("[{}]   first error: {e}", B::NAME);
            }
            let total = tallies.entry((w, c)).or_default();
            total.ok += t.ok;
            total.errors += t.errors;
            total.lost += t.lost;
            total.elapsed += t.elapsed;
            total.latencies_us.extend(t.latencies_us);
            if total.first_error.is_none() {
                total.first_error = t.first_error;
            }
            total.flushed += t.flushed;
            total.flush_time += t.flush_time;
            total.reference = t.reference.or(total.reference);
        }
    }

    let rows = tallies
        .into_iter()
        .map(|((w, c), mut t)| {
            t.latencies_us.sort_unstable();
            let (p50_us, p99_us) = t.reference.unwrap_or((
                percentile(&t.latencies_us, 0.50),
                percentile(&t.latencies_us, 0.99),
            ));
            Row {
                backend: B::NAME,
                workload: w,
                clients: c,
                ops_per_sec: (t.ok as f64 / t.elapsed.as_secs_f64() * 10.0).round() / 10.0,
                p50_us,
                p99_us,
                lost: i64::try_from(t.lost).unwrap_or(i64::MAX),
                errors: t.errors,
                rows: s.rows,
                flush_per_sec: (w == Workload::Redis && !t.flush_time.is_zero())
                    .then(|| (t.flushed as f64 / t.flush_time.as_secs_f64()).round()),
            }
        })
        .collect();
    Ok((title, rows))
}

/// "PostgreSQL 15.20 (Debian …) on x86_64…" → "15.20"; "10.11.19-MariaDB-0+deb12u1" →
/// "10.11.19"; "3.46.0" → "3.46.0".
fn short_version(v: &str) -> String {
    v.split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .map(|w| {
            w.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .next()
                .unwrap_or(w)
                .to_owned()
        })
        .unwrap_or_default()
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
        B::totals(&mut conn).map_err(|e| format!("reading totals: {e}"))?
    };
    if workload == Workload::RedisBenchmark {
        // About 25,000 INCRBY a second per client on loopback, up to 100,000 from four
        // clients on: about the slice's length, at least 10,000.
        let rate = 25_000.0 * clients.min(4) as f64;
        let requests = ((duration.as_secs_f64() * rate) as u64).max(10_000);
        let r = redis_load::redis_benchmark(clients, requests)?;
        return Ok(Tally {
            ok: r.requests,
            elapsed: Duration::from_secs_f64(r.requests as f64 / r.per_sec),
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
    let results: Vec<Result<ClientResult, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .iter()
            .map(|&seed| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let shared = Shared { buffer, redis };
                    client::<B>(pool, workload, shared, rows, duration, seed, barrier)
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
    let (after_value, after_stock, after_slots) = {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        B::totals(&mut conn).map_err(|e| format!("reading totals: {e}"))?
    };

    let mut tally = Tally {
        flushed: flushed.0,
        flush_time: flushed.1,
        ..Tally::default()
    };
    let mut applied: i128 = 0;
    let mut start: Option<Instant> = None;
    let mut end: Option<Instant> = None;
    for r in results {
        let r = r?;
        tally.ok += r.ok;
        tally.errors += r.errors;
        applied += r.applied;
        tally.latencies_us.extend(r.latencies_us);
        if tally.first_error.is_none() {
            tally.first_error = r.first_error;
        }
        start = Some(start.map_or(r.start, |s| s.min(r.start)));
        end = Some(end.map_or(r.end, |e| e.max(r.end)));
    }
    tally.elapsed = match (start, end) {
        (Some(s), Some(e)) => e - s,
        _ => Duration::ZERO,
    };
    // What the table shows happened, against what the clients were told happened.
    let seen = if workload.on_stock() {
        before_stock - after_stock
    } else if workload == Workload::Slotted {
        after_slots - before_slots
    } else {
        after_value - before_value
    };
    tally.lost = applied - seen;
    Ok(tally)
}

/// What the clients of a slice share instead of running on their connections: the `buffered`
/// workload's buffer, the `redis` workload's counter.
#[derive(Clone, Copy)]
struct Shared<'a> {
    buffer: Option<&'a counter_core::Buffer<i64, i64>>,
    redis: Option<&'a redis_load::RedisLoad>,
}

/// One client: its own pooled connection, operations back to back until the deadline.
fn client<B: Backend>(
    pool: &Pool<ConnectionManager<B>>,
    workload: Workload,
    Shared { buffer, redis }: Shared<'_>,
    rows: i64,
    duration: Duration,
    seed: u64,
    barrier: &Barrier,
) -> Result<ClientResult, String> {
    let conn = pool.get();
    let redis_conn = redis.map(|r| r.connection());
    barrier.wait();
    let mut conn = conn.map_err(|e| format!("no pooled connection: {e}"))?;
    let mut redis_conn = redis_conn.transpose()?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut latencies_us: Vec<u32> = Vec::with_capacity(1 << 16);
    let (mut ok, mut errors, mut applied) = (0u64, 0u64, 0i128);
    let mut first_error = None;
    let start = Instant::now();
    let deadline = start + duration;
    let mut now = start;
    while now < deadline {
        let id = if workload == Workload::Spread {
            rng.random_range(1..=crate::db::SLOTS)
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
            (None, None) => B::op(&mut conn, workload, id),
        };
        let after = Instant::now();
        latencies_us.push(u32::try_from((after - now).as_micros()).unwrap_or(u32::MAX));
        now = after;
        match result {
            Ok(amount) => {
                ok += 1;
                applied += i128::from(amount);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    Ok(ClientResult {
        ok,
        errors,
        applied,
        start,
        end: now,
        latencies_us,
        first_error,
    })
}

/// The `p` quantile (nearest rank) of sorted `v`; 0 when empty.
fn percentile(v: &[u32], p: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn write_outputs(
    cli: &Cli,
    s: &Settings,
    rows: &[Row],
    titles: &[(BackendName, String)],
) -> Result<(), String> {
    if let Some(path) = &cli.json {
        let text = serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if let Some(path) = &cli.svg {
        let panels: Vec<(String, Vec<&Row>)> = titles
            .iter()
            .map(|(b, title)| {
                let name = backend_name(*b);
                (
                    title.clone(),
                    rows.iter().filter(|r| r.backend == name).collect(),
                )
            })
            .collect();
        let where_ = if s.rows == 1 {
            "all clients on one row".to_owned()
        } else {
            format!("spread over {} rows", s.rows)
        };
        let title = format!(
            "counter-bench: ops/s vs clients ({where_}, {} s per configuration)",
            trim_float(s.seconds)
        );
        std::fs::write(path, svg::render(&title, &panels))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn backend_name(b: BackendName) -> &'static str {
    match b {
        BackendName::Postgres => <PgConnection as Backend>::NAME,
        BackendName::Mysql => <MysqlConnection as Backend>::NAME,
        BackendName::Sqlite => <SqliteConnection as Backend>::NAME,
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{x}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

fn print_table(rows: &[Row]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "| backend | workload | clients | rows | ops/s | p50 µs | p99 µs | lost | errors |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            r.backend,
            r.workload.name(),
            r.clients,
            r.rows,
            r.ops_per_sec,
            r.p50_us,
            r.p99_us,
            r.lost,
            r.errors
        );
    }
}

/// The library's workload against what a user writes by hand, per backend and client count.
fn print_ratios(rows: &[Row]) {
    let pairs = [
        (Workload::Increment, Workload::Handwritten),
        (Workload::Sale, Workload::SaleTwoUpdates),
        (Workload::Upsert, Workload::UpsertHandwritten),
        (Workload::Redis, Workload::RedisBenchmark),
    ];
    let mut out = std::io::stdout().lock();
    for (ours, theirs) in pairs {
        let mut header = false;
        for r in rows.iter().filter(|r| r.workload == ours) {
            let Some(h) = rows
                .iter()
                .find(|h| h.workload == theirs && h.backend == r.backend && h.clients == r.clients)
            else {
                continue;
            };
            if !header {
                let _ = writeln!(
                    out,
                    "\n| backend | clients | {} / {} |",
                    ours.name(),
                    theirs.name()
                );
                let _ = writeln!(out, "|---|---:|---:|");
                header = true;
            }
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} |",
                r.backend,
                r.clients,
                r.ops_per_sec / h.ops_per_sec
            );
        }
    }
    let mut header = false;
    for r in rows.iter().filter(|r| r.flush_per_sec.is_some()) {
        if !header {
            let _ = writeln!(
                out,
                "\n| backend | clients | redis flush after the slices: counts moved/s |"
            );
            let _ = writeln!(out, "|---|---:|---:|");
            header = true;
        }
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} |",
            r.backend,
            r.clients,
            r.flush_per_sec.unwrap_or(0.0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.50), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn versions_are_shortened() {
        assert_eq!(
            short_version("PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu"),
            "15.20"
        );
        assert_eq!(short_version("10.11.19-MariaDB-0+deb12u1"), "10.11.19");
        assert_eq!(short_version("3.46.0"), "3.46.0");
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
