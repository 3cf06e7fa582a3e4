//! What the two benchmark binaries share, one job per module. The binaries keep their
//! workloads and their wiring:
//!
//! ```text
//! src/bin/counter-bench/   every strategy × PostgreSQL, MariaDB, SQLite (r2d2, threads)
//!   main.rs        the run: backends in turn, outputs, the correctness verdict
//!   cli.rs         flags and the settings they give
//!   workload.rs    the workloads, their names, their colours in the chart
//!   run.rs         rounds, slices, client threads, what the table shows afterwards
//!   tables.rs      the result rows, the printed tables, the JSON and the chart
//!   backend.rs     the schema and each backend's operations (mysql_dsl.rs: its DSL)
//!   redis_load.rs  the `redis` and `redis_benchmark` workloads
//!   checkout.rs    the `checkout` workloads' carts
//!   flush_load.rs  the `flush` workloads: a run per batch size, best of N, memory
//!   flush_sql.rs   their table and the hand-written multi-row upserts per backend
//! src/bin/async_bench/     library-async vs hand-written diesel-async vs blocking
//!   main.rs        the run: servers, warm-up, rounds, outputs, verdict
//!   cli.rs         flags, workloads, row layouts
//!   statements.rs  the hand-written statements (sql_query and prepared forms)
//!   server.rs      what differs between the servers (postgres.rs, mariadb.rs)
//!   bench.rs       one server's connections and one slice of a configuration
//!   client.rs      the client loops and the check of a slice against the table
//!   tables.rs      the result rows and the ratio tables
//! src/ (this library)
//!   stats.rs       percentiles, rates, per-round ratio spreads
//!   measure.rs     what a client records, how clients and slices add up
//!   report.rs      markdown tables, JSON output
//!   chart.rs       the SVG chart: ops/s against clients, a panel per backend
//!   cli.rs         repeated flags made unique, defaults, --seconds
//!   db.rs          server URLs, version, the rows a run starts from
//!   heap.rs        memory of a piece of work: a counting allocator, the peak resident set
//!   pages.rs       the table and model of the cache benchmarks (redis_cluster, memcached_adds)
//! ```

pub mod chart;
pub mod cli;
pub mod db;
pub mod heap;
pub mod measure;
pub mod pages;
pub mod report;
pub mod stats;
