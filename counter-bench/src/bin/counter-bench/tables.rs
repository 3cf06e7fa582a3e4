//! The main benchmark's results: a row per configuration, printed as markdown tables (the
//! results, then each library workload against what a user writes by hand), written as JSON
//! and drawn as the chart.

use counter_bench::chart::{self, Point};
use counter_bench::report::{trim_float, write_json, Align, Measured, Table};
use serde::Serialize;

use crate::cli::{Cli, Settings};
use crate::flush_load::Memory;
use crate::workload::Workload;

/// One line of the results, as written to the JSON file.
///
/// A flush workload's row is one batch size: `rows` is the number of keys, `clients` 1,
/// `ops_per_sec` the keys/s of the fastest run, `p50_us` and `p99_us` the median and the
/// slowest run's duration, and `memory` what the flush took.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub backend: &'static str,
    pub workload: Workload,
    pub clients: usize,
    /// ops/s, latencies, lost updates and errors.
    #[serde(flatten)]
    pub measured: Measured,
    pub rows: i64,
    /// `redis`: counts the flushes after the slices moved into the table per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_per_sec: Option<f64>,
    /// The flush workloads: memory of the batch and of the flush.
    #[serde(flatten)]
    pub memory: Option<Memory>,
}

/// A backend measured: its name in the rows and its panel's title in the chart.
pub struct Panel {
    pub backend: &'static str,
    pub title: String,
}

/// Writes the JSON and the chart `cli` asks for, with every row measured so far.
pub fn write_outputs(
    cli: &Cli,
    s: &Settings,
    rows: &[Row],
    panels: &[Panel],
) -> Result<(), String> {
    if let Some(path) = &cli.json {
        write_json(path, rows)?;
    }
    if let Some(path) = &cli.svg {
        let panels: Vec<(String, Vec<Point<Workload>>)> = panels
            .iter()
            .map(|p| {
                // Flushes are runs per batch size, not clients: their own table only.
                let points = rows
                    .iter()
                    .filter(|r| r.backend == p.backend && !r.workload.is_flush())
                    .map(|r| Point {
                        series: r.workload,
                        clients: r.clients,
                        ops_per_sec: r.measured.ops_per_sec,
                    })
                    .collect();
                (p.title.clone(), points)
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
        std::fs::write(path, chart::render(&title, &panels))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Every row.
pub fn results(rows: &[Row]) -> String {
    use Align::{Left, Right};
    let columns = [
        ("backend", Left),
        ("workload", Left),
        ("clients", Right),
        ("rows", Right),
    ];
    let mut t = Table::new(columns.iter().chain(&Measured::COLUMNS));
    for r in rows {
        let mut cells = vec![
            r.backend.to_owned(),
            r.workload.name().to_owned(),
            r.clients.to_string(),
            r.rows.to_string(),
        ];
        cells.extend(r.measured.cells());
        t.row(cells);
    }
    t.render()
}

/// The library's workload against what a user writes by hand, per backend and client count;
/// then the rate of the `redis` flushes. Each table after a blank line, none when empty.
pub fn ratios(rows: &[Row]) -> String {
    use Align::{Left, Right};
    let pairs = [
        (Workload::Increment, Workload::Handwritten),
        (Workload::IncrementOnce, Workload::Increment),
        (Workload::Sale, Workload::SaleTwoUpdates),
        (Workload::Upsert, Workload::UpsertHandwritten),
        (Workload::Redis, Workload::RedisBenchmark),
        (Workload::Checkout, Workload::CheckoutFiveCalls),
        (Workload::InsertCounted, Workload::InsertCountedHandwritten),
        (
            Workload::InsertCountedSlotted,
            Workload::InsertCountedHandwritten,
        ),
    ];
    let mut out = String::new();
    for (ours, theirs) in pairs {
        let heading = format!("{} / {}", ours.name(), theirs.name());
        let mut t = Table::new(&[
            ("backend", Left),
            ("clients", Right),
            (heading.as_str(), Right),
        ]);
        for r in rows.iter().filter(|r| r.workload == ours) {
            let Some(h) = rows.iter().find(|h| {
                h.workload == theirs
                    && h.backend == r.backend
                    && h.clients == r.clients
                    && h.rows == r.rows
            }) else {
                continue;
            };
            t.row(vec![
                r.backend.to_owned(),
                r.clients.to_string(),
                format!("{:.3}", r.measured.ops_per_sec / h.measured.ops_per_sec),
            ]);
        }
        if !t.is_empty() {
            out += "\n";
            out += &t.render();
        }
    }
    let mut t = Table::new(&[
        ("backend", Left),
        ("clients", Right),
        ("redis flush after the slices: counts moved/s", Right),
    ]);
    for r in rows.iter().filter(|r| r.flush_per_sec.is_some()) {
        t.row(vec![
            r.backend.to_owned(),
            r.clients.to_string(),
            format!("{:.0}", r.flush_per_sec.unwrap_or(0.0)),
        ]);
    }
    if !t.is_empty() {
        out += "\n";
        out += &t.render();
    }
    out + &flushes(rows)
}

/// The flush workloads per backend and batch size: keys/s of the fastest run of each, the
/// library's against the hand-written statements', and the memory of the library's flush.
pub fn flushes(rows: &[Row]) -> String {
    use Align::{Left, Right};
    let mut t = Table::new(&[
        ("backend", Left),
        ("keys", Right),
        ("flush keys/s", Right),
        ("flush_handwritten keys/s", Right),
        ("ratio", Right),
        ("flush_handwritten_unnest keys/s", Right),
        ("ratio", Right),
        ("batch heap MiB", Right),
        ("flush peak heap MiB", Right),
        ("flush peak RSS MiB", Right),
    ]);
    let find = |w: Workload, r: &Row| {
        rows.iter()
            .find(|h| h.workload == w && h.backend == r.backend && h.rows == r.rows)
            .map(|h| h.measured.ops_per_sec)
    };
    let rate = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"));
    let ratio = |ours: f64, theirs: Option<f64>| {
        theirs.map_or_else(|| "-".to_owned(), |h| format!("{:.3}", ours / h))
    };
    let mib = |bytes: Option<f64>| {
        bytes.map_or_else(
            || "-".to_owned(),
            |b| format!("{:.1}", b / (1 << 20) as f64),
        )
    };
    for r in rows.iter().filter(|r| r.workload == Workload::Flush) {
        let ours = r.measured.ops_per_sec;
        let values = find(Workload::FlushHandwritten, r);
        let unnest = find(Workload::FlushHandwrittenUnnest, r);
        let m = r.memory;
        t.row(vec![
            r.backend.to_owned(),
            r.rows.to_string(),
            format!("{ours:.0}"),
            rate(values),
            ratio(ours, values),
            rate(unnest),
            ratio(ours, unnest),
            mib(m.map(|m| m.batch_heap_bytes as f64)),
            mib(m.map(|m| m.flush_peak_heap_bytes as f64)),
            mib(m.and_then(|m| m.flush_peak_rss_bytes).map(|b| b as f64)),
        ]);
    }
    if t.is_empty() {
        String::new()
    } else {
        "\n".to_owned() + &t.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(backend: &'static str, workload: Workload, clients: usize, ops: f64) -> Row {
        Row {
            backend,
            workload,
            clients,
            measured: Measured {
                ops_per_sec: ops,
                p50_us: 10,
                p99_us: 20,
                lost: 0,
                errors: 0,
            },
            rows: 1,
            flush_per_sec: (workload == Workload::Redis).then_some(5000.0),
            memory: None,
        }
    }

    #[test]
    fn tables_are_the_printed_markdown() {
        let rows = [
            row("sqlite", Workload::Handwritten, 1, 800.0),
            row("sqlite", Workload::Increment, 1, 1000.0),
            row("sqlite", Workload::Sale, 1, 500.0),
        ];
        assert_eq!(
            results(&rows[1..2]),
            "| backend | workload | clients | rows | ops/s | p50 µs | p99 µs | lost | errors |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|\n\
             | sqlite | increment | 1 | 1 | 1000 | 10 | 20 | 0 | 0 |\n"
        );
        assert_eq!(
            ratios(&rows),
            "\n| backend | clients | increment / handwritten |\n|---|---:|---:|\n\
             | sqlite | 1 | 1.250 |\n"
        );
        let redis = [row("postgres", Workload::Redis, 4, 9.0)];
        assert_eq!(
            ratios(&redis),
            "\n| backend | clients | redis flush after the slices: counts moved/s |\n\
             |---|---:|---:|\n| postgres | 4 | 5000 |\n"
        );
    }

    #[test]
    fn flush_table_pairs_by_batch_size() {
        let memory = Memory {
            batch_heap_bytes: 3 << 20,
            flush_peak_heap_bytes: 1 << 20,
            flush_peak_rss_bytes: None,
        };
        let flush = |w, keys, ops| Row {
            rows: keys,
            memory: (w == Workload::Flush).then_some(memory),
            ..row("postgres", w, 1, ops)
        };
        let rows = [
            flush(Workload::Flush, 1000, 500.0),
            flush(Workload::Flush, 20000, 800.0),
            flush(Workload::FlushHandwritten, 20000, 1000.0),
            flush(Workload::FlushHandwritten, 1000, 2000.0),
        ];
        assert_eq!(
            ratios(&rows),
            "\n| backend | keys | flush keys/s | flush_handwritten keys/s | ratio | \
             flush_handwritten_unnest keys/s | ratio | batch heap MiB | flush peak heap MiB | \
             flush peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
             | postgres | 1000 | 500 | 2000 | 0.250 | - | - | 3.0 | 1.0 | - |\n\
             | postgres | 20000 | 800 | 1000 | 0.800 | - | - | 3.0 | 1.0 | - |\n"
        );
        let text = serde_json::to_string(&rows[0]).expect("serializable");
        assert!(
            text.ends_with(
                ",\"rows\":1000,\"batch_heap_bytes\":3145728,\"flush_peak_heap_bytes\":1048576,\
                 \"flush_peak_rss_bytes\":null}"
            ),
            "{text}"
        );
    }

    #[test]
    fn json_keys_are_stable() {
        let text = serde_json::to_string(&row("mysql", Workload::DecrementIfAtLeast, 4, 1.5))
            .expect("serializable");
        assert_eq!(
            text,
            "{\"backend\":\"mysql\",\"workload\":\"decrement_if_at_least\",\"clients\":4,\
             \"ops_per_sec\":1.5,\"p50_us\":10,\"p99_us\":20,\"lost\":0,\"errors\":0,\"rows\":1}"
        );
        let text = serde_json::to_string(&row("mysql", Workload::Redis, 4, 1.5)).expect("ok");
        assert!(
            text.ends_with(",\"rows\":1,\"flush_per_sec\":5000.0}"),
            "{text}"
        );
    }
}
