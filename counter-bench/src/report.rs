//! What a run hands back: markdown tables for the terminal and the README, and the result
//! rows as a JSON array.

use std::path::Path;

use serde::Serialize;

use crate::measure::Totals;

/// How a column's cells are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A markdown table: `| a | b |`, then `|---|---:|`, then a line per row.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names and alignments.
    pub fn new<'a>(columns: impl IntoIterator<Item = &'a (&'a str, Align)>) -> Self {
        let (header, align) = columns
            .into_iter()
            .map(|&(name, align)| (name.to_owned(), align))
            .unzip();
        Table {
            header,
            align,
            rows: Vec::new(),
        }
    }

    /// Adds a row; its cells in the order of the columns.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len(), "one cell per column");
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The markdown text, each line ended by a newline.
    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let rule: Vec<&str> = self
            .align
            .iter()
            .map(|a| match a {
                Align::Left => "---",
                Align::Right => "---:",
            })
            .collect();
        let mut out = line(&self.header);
        out += &format!("|{}|\n", rule.join("|"));
        for r in &self.rows {
            out += &line(r);
        }
        out
    }
}

/// What every result row reports of its configuration, in this order, in the JSON (flattened
/// into the row) and in the tables.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measured {
    /// Successful operations per second, to a tenth.
    pub ops_per_sec: f64,
    pub p50_us: u32,
    pub p99_us: u32,
    /// Successful operations minus the change actually seen in the table.
    pub lost: i64,
    pub errors: u64,
}

impl Measured {
    /// The table columns of [`Measured::cells`].
    pub const COLUMNS: [(&'static str, Align); 5] = [
        ("ops/s", Align::Right),
        ("p50 µs", Align::Right),
        ("p99 µs", Align::Right),
        ("lost", Align::Right),
        ("errors", Align::Right),
    ];

    /// What `totals` measured (sorting its latencies), with `lost` updates.
    pub fn new(totals: &mut Totals, lost: i64) -> Self {
        let (p50_us, p99_us) = totals.p50_p99();
        Measured {
            ops_per_sec: totals.ops_per_sec(),
            p50_us,
            p99_us,
            lost,
            errors: totals.errors,
        }
    }

    /// The cells of [`Measured::COLUMNS`]: ops/s without decimals, the rest as they are.
    pub fn cells(&self) -> [String; 5] {
        [
            format!("{:.0}", self.ops_per_sec),
            self.p50_us.to_string(),
            self.p99_us.to_string(),
            self.lost.to_string(),
            self.errors.to_string(),
        ]
    }

    /// A lost update or an error: a correctness failure, whatever the throughput.
    pub fn failed(&self) -> bool {
        self.lost != 0 || self.errors != 0
    }
}

/// Writes `rows` to `path` as a pretty-printed JSON array and a final newline.
pub fn write_json<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), String> {
    let text = serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

/// `1.0` → `"1"`, `2.5` → `"2.5"`: a number of seconds as a person writes it.
pub fn trim_float(x: f64) -> String {
    let s = format!("{x}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_as_markdown() {
        let mut t = Table::new(&[("backend", Align::Left), ("ops/s", Align::Right)]);
        assert!(t.is_empty());
        t.row(vec!["postgres".into(), "1200".into()]);
        t.row(vec!["mysql".into(), "900".into()]);
        assert_eq!(
            t.render(),
            "| backend | ops/s |\n|---|---:|\n| postgres | 1200 |\n| mysql | 900 |\n"
        );
    }

    #[test]
    fn measured_columns_render_and_flatten_in_order() {
        let m = Measured {
            ops_per_sec: 1234.56,
            p50_us: 7,
            p99_us: 90,
            lost: 0,
            errors: 2,
        };
        assert!(m.failed());
        assert!(!Measured { errors: 0, ..m }.failed());
        let mut t = Table::new([("backend", Align::Left)].iter().chain(&Measured::COLUMNS));
        let mut cells = vec!["sqlite".to_owned()];
        cells.extend(m.cells());
        t.row(cells);
        assert_eq!(
            t.render(),
            "| backend | ops/s | p50 µs | p99 µs | lost | errors |\n|---|---:|---:|---:|---:|---:|\n\
             | sqlite | 1235 | 7 | 90 | 0 | 2 |\n"
        );

        #[derive(Serialize)]
        struct Row {
            backend: &'static str,
            #[serde(flatten)]
            measured: Measured,
            rows: i64,
        }
        let text = serde_json::to_string(&Row {
            backend: "sqlite",
            measured: m,
            rows: 1,
        })
        .expect("serializable");
        assert_eq!(
            text,
            "{\"backend\":\"sqlite\",\"ops_per_sec\":1234.56,\"p50_us\":7,\"p99_us\":90,\
             \"lost\":0,\"errors\":2,\"rows\":1}"
        );
    }

    #[test]
    fn measured_of_totals() {
        let mut totals = Totals {
            ok: 30,
            errors: 1,
            elapsed: std::time::Duration::from_secs(3),
            latencies_us: vec![5, 1, 9, 3],
            ..Totals::default()
        };
        let m = Measured::new(&mut totals, 4);
        assert_eq!(
            m,
            Measured {
                ops_per_sec: 10.0,
                p50_us: 3,
                p99_us: 9,
                lost: 4,
                errors: 1
            }
        );
    }

    #[test]
    fn json_is_a_pretty_array_with_a_final_newline() {
        #[derive(Serialize)]
        struct R {
            a: u32,
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("rows.json");
        write_json(&path, &[R { a: 1 }]).expect("written");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert_eq!(text, "[\n  {\n    \"a\": 1\n  }\n]\n");
        assert!(write_json(&dir.path().join("no/such/dir.json"), &[R { a: 1 }]).is_err());
    }

    #[test]
    fn whole_seconds_lose_their_point() {
        assert_eq!(trim_float(1.0), "1");
        assert_eq!(trim_float(2.5), "2.5");
        assert_eq!(trim_float(10.0), "10");
    }
}
