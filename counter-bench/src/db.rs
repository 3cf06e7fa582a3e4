//! Reaching the servers and setting up their tables: the URLs (from the environment, else the
//! local defaults CI uses), the server's version, and the rows a run starts from.

use diesel::dsl::sql;
use diesel::query_dsl::LoadQuery;
use diesel::sql_types::Text;
use diesel::QueryResult;

/// The PostgreSQL of the run: `COUNTER_PG_URL`, and its default.
pub const PG_URL: (&str, &str) = ("COUNTER_PG_URL", "postgres://postgres@127.0.0.1/test");

/// The MySQL/MariaDB of the run: `COUNTER_MYSQL_URL`, and its default.
pub const MYSQL_URL: (&str, &str) = ("COUNTER_MYSQL_URL", "mysql://root@127.0.0.1/test");

/// The Redis of the run: `COUNTER_REDIS_URL`, and its default.
pub const REDIS_URL: (&str, &str) = ("COUNTER_REDIS_URL", "redis://127.0.0.1:6379/");

/// The environment variable `name`, else `default` (an empty variable counts as unset).
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// `SELECT <expression>` as text: `select_text(conn, "version()")`.
pub fn select_text<C>(conn: &mut C, expression: &str) -> QueryResult<String>
where
    C: diesel::Connection,
    diesel::dsl::select<diesel::expression::SqlLiteral<Text>>: for<'a> LoadQuery<'a, C, String>,
{
    diesel::RunQueryDsl::get_result(diesel::select(sql::<Text>(expression)), conn)
}

/// `INSERT INTO <table> (<columns>) VALUES (…), (…)`, one tuple of literal values per row.
pub fn insert_sql<R, V>(table: &str, columns: &str, rows: R) -> String
where
    R: IntoIterator<Item = V>,
    V: std::fmt::Display,
{
    let values: Vec<String> = rows.into_iter().map(|v| format!("({v})")).collect();
    format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        values.join(", ")
    )
}

/// "PostgreSQL 15.20 (Debian …) on x86_64…" → "15.20"; "10.11.19-MariaDB-0+deb12u1" →
/// "10.11.19"; "3.46.0" → "3.46.0".
pub fn short_version(v: &str) -> String {
    v.split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .map(|w| {
            w.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .next()
                .unwrap_or(w)
                .to_owned()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_shortened() {
        assert_eq!(
            short_version("PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu"),
            "15.20"
        );
        assert_eq!(short_version("10.11.19-MariaDB-0+deb12u1"), "10.11.19");
        assert_eq!(short_version("3.46.0"), "3.46.0");
    }

    #[test]
    fn insert_lists_every_row() {
        assert_eq!(
            insert_sql("t", "id, hits", [1, 2].map(|id| format!("{id}, 0"))),
            "INSERT INTO t (id, hits) VALUES (1, 0), (2, 0)"
        );
    }

    #[test]
    fn an_empty_variable_is_unset() {
        assert_eq!(
            env_or("COUNTER_BENCH_SURELY_UNSET_VARIABLE", "fallback"),
            "fallback"
        );
    }

    #[test]
    fn select_text_runs_on_sqlite() {
        use diesel::Connection;
        let mut conn = diesel::SqliteConnection::establish(":memory:").expect("in memory");
        assert_eq!(
            select_text(&mut conn, "'a' || 'b'").expect("selected"),
            "ab"
        );
    }
}
