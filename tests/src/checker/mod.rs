//! A randomized, model-based concurrency checker (a small Jepsen-style history checker).
//!
//! One *history*: a few counter rows with random initial values, `THREADS` threads on one
//! pool each running a seeded random sequence of every public operation (random amounts
//! including zero, negatives and amounts at and past the bounds; keys of missing rows; other
//! spellings of the same key; closures that refuse or panic; set operations over several
//! keys, [`many`]), every call recorded with its result. Then [`history::check`] holds the
//! records against the model. A *cell* is one database configuration (journal mode, isolation
//! level, `sql_mode`, ...; see `tests/checker.rs`), on which several histories run, on both
//! [`subject`]s.
//!
//! Sizes come from the environment, so CI runs a short check of every cell and a soak run is
//! one command:
//! - `COUNTER_CHECK_OPS`: calls per thread per history (default 60);
//! - `COUNTER_CHECK_HISTORIES`: histories per cell and subject (default 2);
//! - `COUNTER_CHECK_SECONDS`: instead, run histories until this many seconds per cell and
//!   subject have passed;
//! - `COUNTER_CHECK_SEED`: the seed (default: random, printed). The same seed replays the same
//!   operations (the interleaving is the machine's).

pub mod cache;
pub mod cache_reviews;
pub mod cells;
pub mod driver;
pub mod history;
pub mod hot;
pub mod many;
pub mod op;
pub mod sale;
pub mod subject;
pub mod watchdog;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use counter_core::{
    AtomicFieldOn, BackendOf, BlockingConnection, Changes, RawConnection, UpsertRow,
};
use diesel::connection::{LoadConnection, SimpleConnection};
use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use driver::{Calls, Driver, Pooled};
use history::{Bounds, Verdict};
use op::{maybe_once, quiet_injected_panics, random_op, Answered, KeyDebug, Record};
use subject::{KeyOf, SaleOf, Subject};

use crate::db::settle;
use watchdog::Watchdog;

/// Threads per history.
pub const THREADS: usize = 8;
/// Rows per history: few, so that calls collide.
pub const ROWS: usize = 4;
/// The bounds the checker's models declare (`#[atomic(min = 0, max = 100)]`).
pub const BOUNDS: Bounds = Bounds { lo: 0, hi: 100 };
/// A thread takes a fresh connection from the pool after this many calls, so connections move
/// between threads (a connection a call left dirty would reach another thread).
const CALLS_PER_CHECKOUT: usize = 25;

/// How much to run, from the environment (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub ops_per_thread: usize,
    pub histories: usize,
    pub seconds: Option<Duration>,
    pub seed: u64,
}

impl Plan {
    /// The plan the environment asks for.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).ok().map(|v| {
                v.trim()
                    .parse::<u64>()
                    .unwrap_or_else(|e| panic!("{name}={v}: {e}"))
            })
        };
        Plan {
            ops_per_thread: var("COUNTER_CHECK_OPS").unwrap_or(60) as usize,
            histories: var("COUNTER_CHECK_HISTORIES").unwrap_or(2) as usize,
            seconds: var("COUNTER_CHECK_SECONDS").map(Duration::from_secs),
            seed: var("COUNTER_CHECK_SEED")
                .unwrap_or_else(|| RandomState::new().hash_one(Instant::now()) >> 1),
        }
    }
}

/// A connection the checker can run on: the library takes it, and the checker reads and
/// writes rows with plain SQL on it.
pub trait CheckConn:
    Connection
    + LoadConnection
    + R2D2Connection
    + BlockingConnection<Raw = Self>
    + RawConnection<Db = <Self as Connection>::Backend>
    + Send
    + 'static
{
    /// The `v` of the one row the query selects.
    fn value(&mut self, sql: &str) -> diesel::QueryResult<i32>;
    /// The `v` of every row the query selects, a `BIGINT`.
    fn bigints(&mut self, sql: &str) -> diesel::QueryResult<Vec<i64>>;
}

#[derive(QueryableByName)]
struct BigValue {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    v: i64,
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    v: i32,
}

macro_rules! check_conn {
    ($($conn:ty),*) => {$(
        impl CheckConn for $conn {
            fn value(&mut self, sql: &str) -> diesel::QueryResult<i32> {
                Ok(diesel::sql_query(sql).get_result::<Value>(self)?.v)
            }
            fn bigints(&mut self, sql: &str) -> diesel::QueryResult<Vec<i64>> {
                Ok(diesel::sql_query(sql).load::<BigValue>(self)?.into_iter().map(|r| r.v).collect())
            }
        }
    )*};
}
check_conn!(
    diesel::PgConnection,
    diesel::MysqlConnection,
    diesel::SqliteConnection
);

/// What the histories of one cell and subject did, summed.
#[derive(Debug, Default)]
pub struct Summary {
    pub histories: usize,
    pub calls: usize,
    /// Rows whose values were all explained by one order (see `history`).
    pub rows_ordered: usize,
    pub outcomes: BTreeMap<String, usize>,
}

/// Runs the histories of `plan` for subject `S` on `pool`; panics with every anomaly, the
/// seed and the history that showed them.
pub fn run<S, C>(cell: &str, pool: &Pool<ConnectionManager<C>>, plan: Plan, trailing_space: bool)
where
    C: CheckConn,
    S: Subject + AtomicFieldOn<S::Col, BackendOf<C>>,
    for<'r> &'r S: UpsertRow<S, S::Col, BackendOf<C>>,
    SaleOf<S>: Changes<S, BackendOf<C>, Key = KeyOf<S>, Values = (i32, i64)>,
    KeyOf<S>: KeyDebug,
{
    run_with::<S, C, _>(cell, pool, &Pooled { pool }, plan, trailing_space)
}

/// [`run`] with the library's calls made through `driver` (the harness's own statements go
/// through `pool`).
pub fn run_with<S, C, D>(
    cell: &str,
    pool: &Pool<ConnectionManager<C>>,
    driver: &D,
    plan: Plan,
    trailing_space: bool,
) where
    C: CheckConn,
    S: Subject,
    D: Driver<S>,
    KeyOf<S>: KeyDebug,
{
    quiet_injected_panics();
    let started = Instant::now();
    let mut summary = Summary::default();
    for history in 0.. {
        let done = match plan.seconds {
            Some(budget) => started.elapsed() >= budget,
            None => history >= plan.histories,
        };
        if done {
            break;
        }
        let seed = plan.seed.wrapping_add(history as u64);
        let watchdog =
            Watchdog::start(format!("cell {cell}, {}, seed {seed}", S::SUBJECT), THREADS);
        let verdict = run_history::<S, C, D>(
            pool,
            driver,
            plan,
            seed,
            trailing_space,
            &watchdog,
            &mut summary,
        );
        drop(watchdog);
        if !verdict.anomalies.is_empty() {
            let shown: Vec<&str> = verdict
                .anomalies
                .iter()
                .take(12)
                .map(String::as_str)
                .collect();
            panic!(
                "checker, cell {cell}, {} ({}): {} anomalies in history {history} (seed {seed}; \
                 replay its operations with COUNTER_CHECK_SEED={seed} COUNTER_CHECK_HISTORIES=1):\n  {}\noutcomes: {:?}",
                S::SUBJECT,
                driver.name(),
                verdict.anomalies.len(),
                shown.join("\n  "),
                verdict.outcomes
            );
        }
    }
    eprintln!(
        "checker, cell {cell}, {} ({}): {} histories, {} calls, {} of {} rows ordered, 0 anomalies \
         in {:.1?} (seed {})\n  {:?}",
        S::SUBJECT,
        driver.name(),
        summary.histories,
        summary.calls,
        summary.rows_ordered,
        summary.histories * ROWS,
        started.elapsed(),
        plan.seed,
        summary.outcomes
    );
    assert!(
        summary.rows_ordered > 0,
        "checker, cell {cell}: no row got the full order check; run at least 2 histories"
    );
}

/// One history; adds its counts to `summary`.
fn run_history<S, C, D>(
    pool: &Pool<ConnectionManager<C>>,
    driver: &D,
    plan: Plan,
    seed: u64,
    trailing_space: bool,
    watchdog: &Watchdog,
    summary: &mut Summary,
) -> Verdict
where
    C: CheckConn,
    S: Subject,
    D: Driver<S>,
    KeyOf<S>: KeyDebug,
{
    let mut rng = StdRng::seed_from_u64(seed);
    // Every other history runs without `take_up_to`, so all its rows get the full check.
    let takes = seed % 2 == 1;
    let keys = S::keys(ROWS, trailing_space);
    let initial: Vec<i32> = (0..ROWS)
        .map(|_| rng.random_range(BOUNDS.lo..=BOUNDS.hi))
        .collect();
    let values: Vec<String> = keys
        .rows
        .iter()
        .zip(&initial)
        .map(|(spellings, v)| format!("({}, {v})", S::literal(&spellings[0])))
        .collect();
    // The harness's own statements wait out a busy SQLite file (a connection the pool opens in
    // the background reads it); only the library's calls are under test.
    let mut conn = pool.get().expect("checker: a connection");
    let insert = format!(
        "INSERT INTO {} ({}, v) VALUES {}",
        S::TABLE,
        S::KEY_COLUMN,
        values.join(", ")
    );
    settle(|| conn.batch_execute(&insert)).expect("checker: insert the rows");
    drop(conn);

    let answered = Answered::default();
    let records: Vec<Record<KeyOf<S>>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (keys, answered) = (&keys, &answered);
                scope.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed ^ ((thread as u64 + 1) << 56));
                    let mut records = Vec::with_capacity(plan.ops_per_thread);
                    let mut calls = driver.thread();
                    for call in 0..plan.ops_per_thread {
                        if call > 0 && call % CALLS_PER_CHECKOUT == 0 {
                            calls.renew();
                        }
                        // Now and then an idempotent call sent again: checked against its
                        // first answer, and kept out of the history (it changes nothing).
                        if let Some((op, first)) = answered.pick(&mut rng) {
                            let (outcome, _) = watchdog.call(thread, &op, || calls.call(&op));
                            answered.check(&op, &first, &outcome);
                            continue;
                        }
                        let op = random_op(&mut rng, keys, BOUNDS.hi, takes);
                        let op = maybe_once(&mut rng, op, (S::TABLE, seed, thread, call));
                        let (outcome, left_in_transaction) =
                            watchdog.call(thread, &op, || calls.call(&op));
                        answered.keep(&op, &outcome);
                        records.push(Record {
                            thread,
                            op,
                            outcome,
                            left_in_transaction,
                        });
                    }
                    records
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a checker thread panicked"))
            .collect()
    });

    let mut conn = pool.get().expect("checker: a connection");
    let last: Vec<i32> = keys
        .rows
        .iter()
        .map(|spellings| {
            let sql = format!(
                "SELECT v FROM {} WHERE ({}) = ({})",
                S::TABLE,
                S::KEY_COLUMN,
                S::literal(&spellings[0])
            );
            settle(|| conn.value(&sql)).unwrap_or_else(|e| panic!("checker: {sql}: {e}"))
        })
        .collect();
    let mut verdict = history::check(BOUNDS, &initial, &last, &records);
    verdict
        .anomalies
        .extend(answered.anomalies.into_inner().unwrap());
    let replays = answered.replays.into_inner();
    *verdict
        .outcomes
        .entry("idempotent: replayed".to_owned())
        .or_default() += replays;
    summary.histories += 1;
    summary.calls += records.len();
    summary.rows_ordered += verdict.rows_ordered;
    for (outcome, count) in &verdict.outcomes {
        *summary.outcomes.entry(outcome.clone()).or_default() += count;
    }
    verdict
}
