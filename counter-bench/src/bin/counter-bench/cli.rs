//! The main benchmark's flags, and the settings of a run they give.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use counter_bench::cli::{client_counts, seconds, sorted_or, unique};

use crate::workload::Workload;

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
/// redis://127.0.0.1:6379/). The tables `counters` and `bench_views` (among others) in
/// those databases are dropped and recreated. SQLite runs on a temporary file in WAL mode with
/// synchronous=NORMAL and busy_timeout=5000 ms on every connection.
#[derive(Debug, Parser)]
#[command(
    name = "counter-bench",
    version,
    about,
    long_about,
    verbatim_doc_comment
)]
pub struct Cli {
    /// Backend to measure; repeat for several [default: postgres, mysql and sqlite].
    #[arg(long = "backend", value_enum)]
    pub backends: Vec<BackendName>,

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
    /// checkout: Counter::decrement_stock_if_at_least_many(conn, cart), a random 5-line cart
    /// over 20 products (1 to 3 units a line) in one call, every line or none.
    /// checkout_five_calls: the same cart as 5 decrement_stock_if_at_least calls inside
    /// counter_core::transaction.
    /// insert_counted: NewView { counter_id: id, client }.insert_counted(conn), a
    /// #[derive(CounterCache)] child row of bench_views counted on its row's value, both or
    /// neither (PostgreSQL: one statement; MariaDB, SQLite: one transaction).
    /// insert_counted_handwritten: the same with plain Diesel, a transaction (BEGIN
    /// IMMEDIATE on SQLite) of UPDATE counters SET value = value + 1 and INSERT INTO
    /// bench_views, re-run on a serialization failure, a deadlock or a busy SQLite.
    /// insert_counted_slotted: the same child row counted into a random one of 64 slots of
    /// its row's slotted hits (#[counter_cache(.., slotted)]; one transaction, the parent row
    /// only key-share locked). Every slice of these three starts with bench_views empty,
    /// every value 0 and no hit slots, and must end with every row's value plus its slots
    /// equal to its views.
    /// flush: Buffer::flush() of --keys distinct keys, half of them rows that exist, half
    /// new rows; not a client loop but one run per size and round (best of --rounds), from
    /// the same table state each time (emptied, then the existing half inserted).
    /// flush_handwritten: the same batch as Diesel multi-row upserts (INSERT … VALUES
    /// (…), (…) ON CONFLICT (id) DO UPDATE SET n = n + excluded.n on PostgreSQL and SQLite,
    /// ON DUPLICATE KEY UPDATE n = n + VALUES(n) on MariaDB), chunked by the parameter limit,
    /// in one transaction.
    /// flush_handwritten_unnest: PostgreSQL only, the batch as one INSERT … SELECT * FROM
    /// unnest($1::bigint[], $2::bigint[]) ON CONFLICT (id) DO UPDATE ….
    #[arg(long = "workload", value_enum, verbatim_doc_comment)]
    pub workloads: Vec<Workload>,

    /// Client counts to sweep, comma-separated [default: 1,4,16; with --quick: 1,4].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: Vec<u32>,

    /// Seconds of measurement per configuration, summed over all rounds
    /// [default: 10; with --quick: 1].
    #[arg(long)]
    pub seconds: Option<f64>,

    /// Rounds each configuration's time is split into [default: seconds/4 rounded up,
    /// between 1 and 5].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: Option<u32>,

    /// Rows the operations are spread over, each operation on a random one. 1 is the hot-row
    /// case: every client on the same row.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub rows: i64,

    /// Batch sizes of the flush workloads, comma-separated [default: 1000,20000,200000; with
    /// --quick: 1000,20000].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(2..=10_000_000))]
    pub keys: Vec<u32>,

    /// Write the result rows as a JSON array to this file: objects with backend, workload,
    /// clients, ops_per_sec, p50_us, p99_us, lost, errors (and rows).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Write an SVG chart (ops/s against clients, one line per workload, one panel per backend)
    /// to this file.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,

    /// CI smoke run: 1 and 4 clients, 1 s per configuration, one round, flushes of 1,000 and
    /// 20,000 keys, all workloads, unless given explicitly.
    #[arg(long)]
    pub quick: bool,

    /// Seed of the shuffled order and of the row choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    Postgres,
    Mysql,
    Sqlite,
}

/// What a run measures, with every default filled in.
pub struct Settings {
    pub backends: Vec<BackendName>,
    pub workloads: Vec<Workload>,
    pub clients: Vec<usize>,
    pub seconds: f64,
    pub rounds: u32,
    pub rows: i64,
    /// Batch sizes of the flush workloads.
    pub keys: Vec<usize>,
    pub seed: u64,
    pub quick: bool,
}

impl Settings {
    /// The settings `cli` asks for; an error for a `--seconds` that is not a positive number.
    pub fn new(cli: &Cli) -> Result<Self, String> {
        let backends = if cli.backends.is_empty() {
            vec![
                BackendName::Postgres,
                BackendName::Mysql,
                BackendName::Sqlite,
            ]
        } else {
            unique(cli.backends.clone())
        };
        let clients = client_counts(&cli.clients, if cli.quick { &[1, 4] } else { &[1, 4, 16] });
        let seconds = seconds(cli.seconds, 1.0, 10.0, cli.quick)?;
        let rounds = cli.rounds.unwrap_or(if cli.quick {
            1
        } else {
            (seconds / 4.0).ceil().clamp(1.0, 5.0) as u32
        });
        Ok(Settings {
            backends,
            workloads: sorted_or(&cli.workloads, &Workload::ALL),
            clients,
            seconds,
            rounds,
            rows: cli.rows,
            keys: sorted_or(
                &cli.keys.iter().map(|&k| k as usize).collect::<Vec<_>>(),
                if cli.quick {
                    &[1_000, 20_000]
                } else {
                    &[1_000, 20_000, 200_000]
                },
            ),
            seed: cli.seed,
            quick: cli.quick,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn quick_defaults() {
        let cli = Cli::parse_from(["counter-bench", "--quick", "--backend", "sqlite"]);
        let s = Settings::new(&cli).expect("valid");
        assert_eq!(s.backends, [BackendName::Sqlite]);
        assert_eq!(s.workloads, Workload::ALL);
        assert_eq!(
            (s.clients.as_slice(), s.seconds, s.rounds),
            (&[1, 4][..], 1.0, 1)
        );
        assert_eq!(s.keys, [1_000, 20_000]);
        let cli = Cli::parse_from(["counter-bench", "--seconds", "12"]);
        let s = Settings::new(&cli).expect("valid");
        assert_eq!((s.clients.as_slice(), s.rounds), (&[1, 4, 16][..], 3));
        assert_eq!(s.keys, [1_000, 20_000, 200_000]);
        let cli = Cli::parse_from(["counter-bench", "--keys", "500,20,500"]);
        assert_eq!(Settings::new(&cli).expect("valid").keys, [20, 500]);
        let cli = Cli::parse_from(["counter-bench", "--seconds", "0"]);
        assert!(Settings::new(&cli).is_err());
    }
}
