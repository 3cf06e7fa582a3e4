//! The async benchmark's results: a row per configuration (the JSON), the result table and
//! the ratio tables of the library against the hand-written statements and the blocking path.

use counter_bench::report::{Align, Measured, Table};
use counter_bench::stats::{round_ratios, round_to};
use serde::Serialize;

use crate::cli::{Config, Workload};
use crate::client::Tally;

/// One line of the results, as written to the JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub backend: &'static str,
    pub workload: &'static str,
    pub rows: &'static str,
    pub clients: usize,
    /// ops/s, latencies, increments minus what the rows moved by, errors.
    #[serde(flatten)]
    pub measured: Measured,
    /// Returned values that were duplicates or outside what the row went through.
    pub bad_values: u64,
    /// CPU time of the whole benchmark process per successful increment, µs: what the client
    /// side costs, whatever the server's commit waits for.
    pub cpu_us_per_op: f64,
    /// Successful increments and measured seconds, summed over the rounds.
    pub ops: u64,
    pub seconds: f64,
    /// ops/s of each round, in the order the rounds ran.
    pub ops_per_sec_by_round: Vec<f64>,
}

impl Row {
    /// The row of configuration `c` of `backend` (its name in the JSON), from its tally.
    pub fn new(c: &Config, backend: &'static str, mut t: Tally) -> Row {
        let secs = t.totals.elapsed.as_secs_f64();
        Row {
            backend,
            workload: c.workload.name(),
            rows: c.rows.name(),
            clients: c.clients,
            measured: Measured::new(&mut t.totals, t.lost),
            bad_values: t.bad_values,
            cpu_us_per_op: round_to(t.cpu.as_secs_f64() * 1e6 / t.totals.ok.max(1) as f64, 1),
            ops: t.totals.ok,
            seconds: round_to(secs, 3),
            ops_per_sec_by_round: t.per_round.iter().map(|x| x.round()).collect(),
        }
    }
}

/// The result table and the ratio tables, in markdown.
pub fn tables(rows: &[Row]) -> String {
    use Align::{Left, Right};
    let columns = [
        ("backend", Left),
        ("workload", Left),
        ("rows", Left),
        ("clients", Right),
    ];
    let cpu_column = [("CPU µs/op", Right)];
    let mut t = Table::new(columns.iter().chain(&Measured::COLUMNS).chain(&cpu_column));
    for r in rows {
        let mut cells = vec![
            r.backend.to_owned(),
            r.workload.to_owned(),
            r.rows.to_owned(),
            r.clients.to_string(),
        ];
        cells.extend(r.measured.cells());
        cells.push(format!("{:.1}", r.cpu_us_per_op));
        t.row(cells);
    }
    let mut out = t.render();
    let library: Vec<&Row> = rows
        .iter()
        .filter(|r| r.workload == Workload::LibraryAsync.name())
        .collect();
    if library.is_empty() {
        return out;
    }
    // The row of `other` compared with `r`: same backend, rows and clients.
    let partner = |r: &Row, other: Workload| {
        rows.iter().find(|o| {
            o.workload == other.name()
                && o.backend == r.backend
                && o.rows == r.rows
                && o.clients == r.clients
        })
    };
    let cell = |r: &Row, other: Workload| {
        partner(r, other).map_or_else(|| "–".to_owned(), |o| ratio_cell(r, o))
    };
    // CPU µs/op of `other` ÷ library-async: below 1 when the library costs more.
    let cpu = |r: &Row, other: Workload| {
        partner(r, other).map_or_else(
            || "–".to_owned(),
            |o| format!("{:.3}", o.cpu_us_per_op / r.cpu_us_per_op),
        )
    };
    out += "\nlibrary-async ÷ hand-async (the same SQL with sql_query, which diesel-async \
            prepares on every call) and library-async ÷ hand-async-prepared (the same SQL with a \
            static QueryId, prepared once per connection, as the library's): ops/s summed over \
            the rounds (in brackets: the median, lowest and highest ratio of one round's pair; \
            the two sides of a pair run back to back); and CPU \
            µs/op of hand-async-prepared ÷ library-async (below 1: the library costs more CPU). \
            Target: at least 0.97.\n\n";
    let mut t = Table::new(&[
        ("backend", Left),
        ("rows", Left),
        ("clients", Right),
        ("÷ hand-async", Right),
        ("÷ hand-async-prepared", Right),
        ("CPU/op: prepared ÷ library", Right),
    ]);
    for r in &library {
        t.row(vec![
            r.backend.to_owned(),
            r.rows.to_owned(),
            r.clients.to_string(),
            cell(r, Workload::HandAsync),
            cell(r, Workload::HandAsyncPrepared),
            cpu(r, Workload::HandAsyncPrepared),
        ]);
    }
    out += &t.render();
    out += "\nlibrary-async ÷ library-sync: the same operation from tokio tasks and from blocking \
            threads, ops/s (in brackets: median and range per round), and CPU µs/op of library-sync ÷ \
            library-async (below 1: the async path costs more CPU per operation).\n\n";
    let mut t = Table::new(&[
        ("backend", Left),
        ("rows", Left),
        ("clients", Right),
        ("ops/s: async ÷ sync", Right),
        ("CPU/op: sync ÷ async", Right),
    ]);
    for r in &library {
        t.row(vec![
            r.backend.to_owned(),
            r.rows.to_owned(),
            r.clients.to_string(),
            cell(r, Workload::LibrarySync),
            cpu(r, Workload::LibrarySync),
        ]);
    }
    out += &t.render();
    out
}

/// `r ÷ o` in ops/s over all rounds, then the median and range of the per-round ratios.
fn ratio_cell(r: &Row, o: &Row) -> String {
    let total = r.measured.ops_per_sec / o.measured.ops_per_sec;
    match round_ratios(&r.ops_per_sec_by_round, &o.ops_per_sec_by_round) {
        None => format!("{total:.3}"),
        Some(s) => format!(
            "{total:.3} (median {:.3}; {:.2}–{:.2})",
            s.median, s.min, s.max
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(workload: Workload, ops: f64, by_round: &[f64], cpu: f64) -> Row {
        Row {
            backend: "postgres",
            workload: workload.name(),
            rows: "hot",
            clients: 1,
            measured: Measured {
                ops_per_sec: ops,
                p50_us: 100,
                p99_us: 300,
                lost: 0,
                errors: 0,
            },
            bad_values: 0,
            cpu_us_per_op: cpu,
            ops: 1000,
            seconds: 1.0,
            ops_per_sec_by_round: by_round.to_vec(),
        }
    }

    #[test]
    fn ratio_cells_show_the_spread_of_the_rounds() {
        let a = row(Workload::LibraryAsync, 300.0, &[100.0, 200.0, 300.0], 10.0);
        let b = row(Workload::HandAsync, 200.0, &[100.0, 100.0, 100.0], 10.0);
        assert_eq!(ratio_cell(&a, &b), "1.500 (median 2.000; 1.00–3.00)");
        let a = row(Workload::LibraryAsync, 300.0, &[300.0], 10.0);
        assert_eq!(ratio_cell(&a, &b), "1.500");
    }

    #[test]
    fn tables_compare_the_library_with_each_other_workload() {
        let rows = [
            row(Workload::LibraryAsync, 1000.0, &[1000.0], 20.0),
            row(Workload::HandAsyncPrepared, 990.0, &[990.0], 19.0),
        ];
        let text = tables(&rows);
        assert!(text.starts_with(
            "| backend | workload | rows | clients | ops/s | p50 µs | p99 µs | lost | errors \
             | CPU µs/op |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n\
             | postgres | library-async | hot | 1 | 1000 | 100 | 300 | 0 | 0 | 20.0 |\n"
        ));
        assert!(
            text.contains("| postgres | hot | 1 | – | 1.010 | 0.950 |\n"),
            "{text}"
        );
        assert!(text.ends_with("| postgres | hot | 1 | – | – |\n"), "{text}");
        assert_eq!(tables(&rows[1..]).lines().count(), 3);
    }

    #[test]
    fn json_keys_are_stable() {
        let text = serde_json::to_string(&row(Workload::HandAsync, 2.5, &[2.0], 1.5))
            .expect("serializable");
        assert_eq!(
            text,
            "{\"backend\":\"postgres\",\"workload\":\"hand-async\",\"rows\":\"hot\",\
             \"clients\":1,\"ops_per_sec\":2.5,\"p50_us\":100,\"p99_us\":300,\"lost\":0,\
             \"errors\":0,\"bad_values\":0,\"cpu_us_per_op\":1.5,\"ops\":1000,\"seconds\":1.0,\
             \"ops_per_sec_by_round\":[2.0]}"
        );
    }
}
