//! What a run hands back: markdown tables for the terminal and the README, and the result
//! rows as a JSON array.

use std::path::Path;

use serde::Serialize;

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
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            header: columns.iter().map(|(name, _)| (*name).to_owned()).collect(),
            align: columns.iter().map(|&(_, align)| align).collect(),
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
