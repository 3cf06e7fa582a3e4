//! `async_bench`: counter-core's `increment` on diesel-async connections, against the same
//! statements written by hand with diesel-async, and against the library's blocking path, on
//! PostgreSQL and MySQL/MariaDB.
//!
//! Every configuration (backend × workload × rows × clients) runs once per round and its rounds
//! are added up. In each round the groups of configurations that are compared (same backend,
//! rows and clients) come in a fresh shuffled order, and a group's workloads run back to back,
//! also shuffled: drift of the machine hits both sides of a ratio alike.
//! After every slice the table is read back on a separate blocking connection: the rows must
//! have moved by exactly the number of increments the clients were told succeeded (`lost`),
//! and the values the clients got back must be exactly the values the rows went through.
//! Throughput is reported, never asserted; a lost update, an error or a wrong value fails the
//! run.

mod bench;
mod cli;
mod client;
mod mariadb;
mod postgres;
mod server;
mod statements;
mod tables;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use counter_bench::report::{trim_float, write_json};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use bench::Bench;
use cli::{BackendName, Cli, Config, Rows, Settings, Workload};
use client::Tally;
use mariadb::Mariadb;
use postgres::Postgres;
use server::Server;
use tables::{tables, Row};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything; `Ok(false)` when a configuration lost an update, failed or saw a wrong value.
fn run(cli: &Cli) -> Result<bool, String> {
    let s = Settings::new(cli)?;
    let Settings {
        backends,
        workloads,
        row_layouts,
        clients,
        ..
    } = &s;

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(w) = cli.workers {
        builder.worker_threads(w as usize);
    }
    let rt = builder.build().map_err(|e| format!("tokio runtime: {e}"))?;
    let workers = rt.metrics().num_workers();

    // Both servers first: an unreachable one fails the run before anything is measured.
    let sync = workloads.contains(&Workload::LibrarySync);
    let mut pg = None;
    let mut my = None;
    for &b in backends {
        match b {
            BackendName::Postgres => {
                pg = Some(Bench::<Postgres>::open(
                    &rt,
                    clients,
                    sync,
                    cli.relaxed_durability,
                )?)
            }
            BackendName::Mysql => {
                my = Some(Bench::<Mariadb>::open(
                    &rt,
                    clients,
                    sync,
                    cli.relaxed_durability,
                )?)
            }
        }
    }

    let mut out = String::new();
    out += &format!(
        "async_bench: {} s per configuration in each of {} round(s), tokio multi-thread runtime \
         with {workers} worker(s), {} CPU(s){}\n\n",
        trim_float(s.seconds),
        s.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cli.relaxed_durability {
            ", --relaxed-durability"
        } else {
            ""
        }
    );
    if let Some(b) = &pg {
        out += &format!("PostgreSQL durability: {}\n\n", b.durability);
    }
    if let Some(b) = &my {
        out += &format!("MariaDB durability: {}\n\n", b.durability);
    }
    if let Some(b) = &pg {
        out += &statement_report(b, &rt)?;
    }
    if let Some(b) = &my {
        out += &statement_report(b, &rt)?;
    }
    eprint!("{out}");

    let mut configs = Vec::new();
    for &backend in backends {
        for &workload in workloads {
            for &rows in row_layouts {
                for &c in clients {
                    configs.push(Config {
                        backend,
                        workload,
                        rows,
                        clients: c,
                    });
                }
            }
        }
    }

    // Warm-up, not counted: every connection prepares its statements.
    for c in &configs {
        let t = run_config(&mut pg, &mut my, &rt, c, s.warmup)?;
        if t.totals.errors > 0 || t.lost != 0 || t.bad_values > 0 {
            return Err(format!(
                "warm-up of {} {} {} {} clients: {} errors ({}), {} lost, {} bad values",
                backend_title(c.backend),
                c.workload.name(),
                c.rows.name(),
                c.clients,
                t.totals.errors,
                t.totals.first_error.unwrap_or_default(),
                t.lost,
                t.bad_values
            ));
        }
    }

    let slice = Duration::from_secs_f64(s.seconds);
    let mut rng = SmallRng::seed_from_u64(cli.seed);
    let mut tallies: BTreeMap<Config, Tally> = BTreeMap::new();
    for round in 0..s.rounds {
        let order = round_order(&configs, &mut rng);
        for (k, c) in order.iter().enumerate() {
            let t = run_config(&mut pg, &mut my, &rt, c, slice)?;
            let secs = t.totals.elapsed.as_secs_f64();
            eprintln!(
                "round {}/{} {:>2}/{} {:<10} {:<19} {:<7} {:>2} clients {:>9.0} ops/s  lost {} errors {} bad {}",
                round + 1,
                s.rounds,
                k + 1,
                order.len(),
                backend_title(c.backend),
                c.workload.name(),
                c.rows.name(),
                c.clients,
                t.totals.ok as f64 / secs,
                t.lost,
                t.totals.errors,
                t.bad_values
            );
            if let Some(e) = &t.totals.first_error {
                eprintln!("  first error: {e}");
            }
            tallies.entry(*c).or_default().add(t);
        }
    }

    let rows: Vec<Row> = tallies
        .into_iter()
        .map(|(c, t)| Row::new(&c, backend_name(c.backend), t))
        .collect();
    if let Some(path) = &cli.json {
        write_json(path, &rows)?;
    }
    let mut titles = Vec::new();
    if let Some(b) = &pg {
        titles.push(format!("PostgreSQL: {}", b.version));
    }
    if let Some(b) = &my {
        titles.push(format!("MariaDB: {}", b.version));
    }
    out += &format!("Servers: {}\n\n", titles.join("; "));
    out += &tables(&rows);
    print!("{out}");
    let _ = std::io::stdout().flush();

    let mut ok = true;
    for r in &rows {
        if r.measured.failed() || r.bad_values != 0 {
            eprintln!(
                "error: {} {} {} with {} clients: {} lost, {} errors, {} bad values; all must be 0",
                r.backend,
                r.workload,
                r.rows,
                r.clients,
                r.measured.lost,
                r.measured.errors,
                r.bad_values
            );
            ok = false;
        }
    }
    Ok(ok)
}

fn run_config(
    pg: &mut Option<Bench<Postgres>>,
    my: &mut Option<Bench<Mariadb>>,
    rt: &tokio::runtime::Runtime,
    c: &Config,
    duration: Duration,
) -> Result<Tally, String> {
    match c.backend {
        BackendName::Postgres => pg
            .as_mut()
            .expect("opened")
            .slice(rt, c.workload, c.rows, c.clients, duration),
        BackendName::Mysql => my
            .as_mut()
            .expect("opened")
            .slice(rt, c.workload, c.rows, c.clients, duration),
    }
}

/// The statements each async workload sent for one increment; an error unless all are equal.
fn statement_report<S: Server>(
    b: &Bench<S>,
    rt: &tokio::runtime::Runtime,
) -> Result<String, String> {
    let statements = b.statements(rt)?;
    let (_, library) = &statements[0];
    for (w, sent) in &statements[1..] {
        if sent != library {
            return Err(format!(
                "{}: {} does not send the library's statements.\n  library: {library:#?}\n  {}: {sent:#?}",
                S::TITLE,
                w.name(),
                w.name()
            ));
        }
    }
    let mut text = format!(
        "{}: library-async, hand-async and hand-async-prepared send the same statements \
         (captured with diesel's instrumentation, binds included):\n\n",
        S::TITLE
    );
    for sql in library {
        text += &format!("    {sql}\n");
    }
    text.push('\n');
    Ok(text)
}

fn backend_name(b: BackendName) -> &'static str {
    match b {
        BackendName::Postgres => Postgres::NAME,
        BackendName::Mysql => Mariadb::NAME,
    }
}

fn backend_title(b: BackendName) -> &'static str {
    match b {
        BackendName::Postgres => Postgres::TITLE,
        BackendName::Mysql => Mariadb::TITLE,
    }
}

/// One round's order: the groups of configurations that are compared with each other (same
/// backend, rows and clients) in a shuffled order, and each group's workloads back to back in
/// a shuffled order, so that the two sides of a ratio run seconds apart, not minutes.
fn round_order(configs: &[Config], rng: &mut SmallRng) -> Vec<Config> {
    let mut groups: BTreeMap<(BackendName, Rows, usize), Vec<Config>> = BTreeMap::new();
    for c in configs {
        groups
            .entry((c.backend, c.rows, c.clients))
            .or_default()
            .push(*c);
    }
    let mut groups: Vec<Vec<Config>> = groups.into_values().collect();
    groups.shuffle(rng);
    for g in &mut groups {
        g.shuffle(rng);
    }
    groups.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_runs_each_compared_group_back_to_back() {
        let mut configs = Vec::new();
        for backend in [BackendName::Postgres, BackendName::Mysql] {
            for workload in Workload::ALL {
                for clients in [1, 16] {
                    configs.push(Config {
                        backend,
                        workload,
                        rows: Rows::Hot,
                        clients,
                    });
                }
            }
        }
        let order = round_order(&configs, &mut SmallRng::seed_from_u64(1));
        assert_eq!(order.len(), configs.len());
        for group in order.chunks(Workload::ALL.len()) {
            assert!(group
                .iter()
                .all(|c| (c.backend, c.clients) == (group[0].backend, group[0].clients)));
        }
    }
}
