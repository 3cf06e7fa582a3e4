//! The async benchmark's flags, its workloads and row layouts, and the settings of a run.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use counter_bench::cli::{client_counts, seconds, sorted_or};

/// The one row every client of a `hot` configuration increments.
pub const HOT_ID: i64 = 1;
/// Client `i` of an `own-row` configuration increments row `OWN_BASE + 1 + i`.
const OWN_BASE: i64 = 100;

/// Measures counter-core's async `increment` (diesel-async, deadpool) against the same
/// statement written by hand with diesel-async, and against the library's blocking path.
///
/// Workloads, each on one hot row (`hot`: every client on row 1) and on one row per client
/// (`own-row`):
///   library-async        Counter::increment_hits(&mut conn, id, 1).await on a pooled
///                        AsyncPgConnection / AsyncMysqlConnection.
///   hand-async           the library's statement(s), same SQL text, written by hand with
///                        diesel::sql_query(..).bind(..) and diesel-async's RunQueryDsl
///                        (get_result / execute). diesel never caches an sql_query as a
///                        prepared statement, so diesel-async prepares (and on MySQL closes)
///                        it on every call, as it does for a DSL `diesel::update`.
///   hand-async-prepared  the same SQL text as a hand-written QueryFragment with a static
///                        QueryId, so that diesel-async prepares it once per connection, as
///                        it does the library's: the library's own overhead, nothing else.
///   library-sync         Counter::increment_hits(&mut conn, id, 1) on a blocking
///                        PgConnection / MysqlConnection, one OS thread per client.
/// PostgreSQL: UPDATE … SET hits = hits + $1 WHERE id = $2 AND hits <= $3 RETURNING hits.
/// MySQL: UPDATE … SET hits = hits + ? + CAST(LAST_INSERT_ID((hits + ?) ^ 2^63) & 0 AS SIGNED)
/// WHERE id = ? AND hits <= ?, then SELECT LAST_INSERT_ID(). Before measuring, the SQL text
/// and binds of the three async workloads are captured with diesel's instrumentation and must
/// be identical.
///
/// Each async client is a tokio task (multi-thread runtime) holding its own pooled connection
/// for the whole slice; one deadpool per client count, of that size. Reported per
/// configuration: ops/s, latency p50/p99, lost updates, errors, and the CPU time of the whole
/// process per operation (the client side's cost, whatever the server's commit waits for).
/// Progress goes to stderr, the markdown tables to stdout.
///
/// Environment: COUNTER_PG_URL (default postgres://postgres@127.0.0.1/test) and
/// COUNTER_MYSQL_URL (default mysql://root@127.0.0.1/test). The table bench_async_counters is
/// created there if missing and its rows are reset. A database that cannot be reached fails
/// the run.
#[derive(Debug, Parser)]
#[command(name = "async_bench", version, about, long_about, verbatim_doc_comment)]
pub struct Cli {
    /// Backend to measure; repeat for several [default: postgres and mysql].
    #[arg(long = "backend", value_enum)]
    pub backends: Vec<BackendName>,

    /// Workload to run; repeat for several [default: all four].
    #[arg(long = "workload", value_enum)]
    pub workloads: Vec<Workload>,

    /// Row layouts to run, comma-separated [default: hot,own-row].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub rows: Vec<Rows>,

    /// Client counts, comma-separated [default: 1,16].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=64))]
    pub clients: Vec<u32>,

    /// Seconds each configuration runs in every round [default: 3; with --quick: 1].
    #[arg(long)]
    pub seconds: Option<f64>,

    /// Rounds; each runs every configuration once (the compared ones back to back, in a
    /// shuffled order), and a configuration's operations and time are summed over the rounds
    /// [default: 3; with --quick: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: Option<u32>,

    /// Write the result rows as a JSON array to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Smoke run: 1 s per configuration, one round, a shorter warm-up.
    #[arg(long)]
    pub quick: bool,

    /// Take the disk out of the measurement, without changing anything server-wide: every
    /// PostgreSQL session of the run sets synchronous_commit=off (through the URL's
    /// `options`), and the MariaDB table is ENGINE=MEMORY (InnoDB's flush at commit has no
    /// session-level switch). Otherwise the servers' own settings apply, and the table is
    /// InnoDB.
    #[arg(long)]
    pub relaxed_durability: bool,

    /// Worker threads of the tokio runtime [default: tokio's, one per core].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: Option<u32>,

    /// Seed of the shuffled order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum BackendName {
    Postgres,
    Mysql,
}

/// What one client does in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Workload {
    /// `Counter::increment_hits(&mut conn, id, 1).await`.
    LibraryAsync,
    /// The same statement(s) with `diesel::sql_query`, prepared on every call.
    HandAsync,
    /// The same statement(s) as a `QueryFragment` with a static `QueryId`, prepared once.
    HandAsyncPrepared,
    /// `Counter::increment_hits(&mut conn, id, 1)` on a blocking connection, a thread each.
    LibrarySync,
}

impl Workload {
    pub const ALL: [Workload; 4] = [
        Workload::LibraryAsync,
        Workload::HandAsync,
        Workload::HandAsyncPrepared,
        Workload::LibrarySync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::LibraryAsync => "library-async",
            Workload::HandAsync => "hand-async",
            Workload::HandAsyncPrepared => "hand-async-prepared",
            Workload::LibrarySync => "library-sync",
        }
    }
}

/// Which rows the clients of a configuration increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Rows {
    /// Every client on row 1.
    Hot,
    /// Client i (from 0) on row 101 + i.
    OwnRow,
}

impl Rows {
    pub fn name(self) -> &'static str {
        match self {
            Rows::Hot => "hot",
            Rows::OwnRow => "own-row",
        }
    }

    /// The row client `i` increments.
    pub fn id(self, i: usize) -> i64 {
        match self {
            Rows::Hot => HOT_ID,
            Rows::OwnRow => OWN_BASE + 1 + i as i64,
        }
    }
}

/// One configuration: what a slice runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Config {
    pub backend: BackendName,
    pub workload: Workload,
    pub rows: Rows,
    pub clients: usize,
}

/// What a run measures, with every default filled in.
pub struct Settings {
    pub backends: Vec<BackendName>,
    pub workloads: Vec<Workload>,
    pub row_layouts: Vec<Rows>,
    pub clients: Vec<usize>,
    pub seconds: f64,
    pub rounds: u32,
    pub warmup: Duration,
}

impl Settings {
    /// The settings `cli` asks for; an error for a `--seconds` that is not a positive number.
    pub fn new(cli: &Cli) -> Result<Self, String> {
        Ok(Settings {
            backends: sorted_or(&cli.backends, &[BackendName::Postgres, BackendName::Mysql]),
            workloads: sorted_or(&cli.workloads, &Workload::ALL),
            row_layouts: sorted_or(&cli.rows, &[Rows::Hot, Rows::OwnRow]),
            clients: client_counts(&cli.clients, &[1, 16]),
            seconds: seconds(cli.seconds, 1.0, 3.0, cli.quick)?,
            rounds: cli.rounds.unwrap_or(if cli.quick { 1 } else { 3 }),
            warmup: Duration::from_millis(if cli.quick { 100 } else { 500 }),
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
        let cli = Cli::parse_from(["async_bench", "--quick"]);
        let s = Settings::new(&cli).expect("valid");
        assert_eq!(s.backends, [BackendName::Postgres, BackendName::Mysql]);
        assert_eq!(s.workloads, Workload::ALL);
        assert_eq!(s.row_layouts, [Rows::Hot, Rows::OwnRow]);
        assert_eq!(
            (s.clients.as_slice(), s.seconds, s.rounds),
            (&[1, 16][..], 1.0, 1)
        );
        let cli = Cli::parse_from(["async_bench", "--backend", "mysql", "--clients", "4,1,4"]);
        let s = Settings::new(&cli).expect("valid");
        assert_eq!(
            (s.backends.as_slice(), s.clients.as_slice()),
            (&[BackendName::Mysql][..], &[1, 4][..])
        );
        assert_eq!((s.seconds, s.rounds), (3.0, 3));
        assert!(Settings::new(&Cli::parse_from(["async_bench", "--seconds=-1"])).is_err());
    }

    #[test]
    fn rows_of_each_layout() {
        assert_eq!(Rows::Hot.id(7), HOT_ID);
        assert_eq!(Rows::OwnRow.id(0), 101);
        assert_eq!(Rows::OwnRow.id(15), 116);
    }
}
