//! `counter-bench`: throughput, latency and lost updates of every counter strategy in
//! counter-core, against the same statement written by hand with Diesel, on PostgreSQL,
//! MySQL/MariaDB and SQLite.
//!
//! Configurations (workload × clients) are interleaved: the time of each is cut into rounds,
//! and every round runs every configuration once, in a fresh shuffled order, so drift of the
//! machine (other processes, autovacuum, checkpoints, thermal) hits all of them alike.

mod backend;
mod checkout;
mod cli;
mod flush_load;
mod flush_sql;
mod mysql_dsl;
mod redis_load;
mod run;
mod tables;
mod workload;

use std::process::ExitCode;

use clap::Parser;
use counter_bench::db::{env_or, MYSQL_URL, PG_URL};
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;

use backend::{Backend, SqlitePragmas};
use cli::{BackendName, Cli, Settings};
use run::run_backend;
use tables::{Panel, Row};
use workload::Workload;

/// Counts the Rust heap while the flush workloads measure their memory; off otherwise.
#[global_allocator]
static HEAP: counter_bench::heap::Counting = counter_bench::heap::Counting::new();

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::new(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };

    let mut all: Vec<Row> = Vec::new();
    let mut panels: Vec<Panel> = Vec::new();
    let mut failed = false;
    for &backend in &settings.backends {
        let result = match backend {
            BackendName::Postgres => {
                let url = env_or(PG_URL.0, PG_URL.1);
                run_backend::<PgConnection>(&url, &settings, None)
            }
            BackendName::Mysql => {
                let url = env_or(MYSQL_URL.0, MYSQL_URL.1);
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
                panels.push(Panel {
                    backend: backend_name(backend),
                    title,
                });
                all.extend(rows);
                // Written after every backend, so a long run keeps what it measured so far.
                if let Err(e) = tables::write_outputs(&cli, &settings, &all, &panels) {
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

    print!("{}{}", tables::results(&all), tables::ratios(&all));
    // Throughput is only reported. A lost update or an error in anything but `naive` is a
    // correctness failure, and fails the run (and so the CI smoke run).
    for r in all.iter().filter(|r| r.workload != Workload::Naive) {
        if r.measured.failed() {
            eprintln!(
                "error: {} {:?} with {} clients: {} lost, {} errors; it must be 0 and 0",
                r.backend, r.workload, r.clients, r.measured.lost, r.measured.errors
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

/// The name a backend's rows carry.
fn backend_name(b: BackendName) -> &'static str {
    match b {
        BackendName::Postgres => <PgConnection as Backend>::NAME,
        BackendName::Mysql => <MysqlConnection as Backend>::NAME,
        BackendName::Sqlite => <SqliteConnection as Backend>::NAME,
    }
}
