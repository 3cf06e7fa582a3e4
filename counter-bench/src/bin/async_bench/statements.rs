//! The statements the hand-written workloads send: the library's SQL text, as an
//! `sql_query` (prepared on every call) and as a [`Fixed`] statement with a static `QueryId`
//! (prepared once per connection), and the settings queries of the report.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Unsigned};

/// The guard of `increment` by 1 on a column with no declared maximum.
pub const GUARD: i64 = i64::MAX - 1;

/// The library's PostgreSQL statement (counter-core/src/sql/delta.rs, `DELTA_RETURNING`),
/// binds `[by, id, i64::MAX - by]`.
pub const PG_UPDATE: &str = "UPDATE \"bench_async_counters\" SET \"hits\" = \"hits\" + $1 \
     WHERE \"id\" = $2 AND \"hits\" <= $3 RETURNING \"hits\"";

/// The library's MySQL statement (`DELTA_CAPTURE`), binds `[by, by, id, i64::MAX - by]`:
/// adds a signed zero that captures the new value, XOR the sign bit, in `LAST_INSERT_ID`.
pub const MYSQL_UPDATE: &str = "UPDATE `bench_async_counters` SET `hits` = `hits` + ? + \
     CAST(LAST_INSERT_ID((`hits` + ?) ^ 9223372036854775808) & 0 AS SIGNED) \
     WHERE `id` = ? AND `hits` <= ?";

/// Reads back what [`MYSQL_UPDATE`] captured, on the same connection.
pub const MYSQL_CAPTURED: &str = "SELECT LAST_INSERT_ID()";

/// The row of [`PG_UPDATE`] for `sql_query`.
#[derive(QueryableByName)]
pub struct NewHits {
    #[diesel(sql_type = BigInt)]
    pub hits: i64,
}

/// The row of [`MYSQL_CAPTURED`] for `sql_query`.
#[derive(QueryableByName)]
pub struct Captured {
    #[diesel(sql_type = Unsigned<BigInt>, column_name = "LAST_INSERT_ID()")]
    pub raw: u64,
}

/// PostgreSQL's durability at commit, as the session sees it.
pub const PG_DURABILITY: &str =
    "SELECT 'synchronous_commit=' || current_setting('synchronous_commit') AS v";

/// MariaDB's durability at commit, and the engine of the table.
pub const MYSQL_DURABILITY: &str = "SELECT CONCAT('innodb_flush_log_at_trx_commit=', \
     @@innodb_flush_log_at_trx_commit, ', table ENGINE=', (SELECT ENGINE FROM \
     information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
     AND TABLE_NAME = 'bench_async_counters')) AS v";

/// One text setting.
#[derive(QueryableByName)]
pub struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub v: String,
}

/// Undoes the XOR with the sign bit of the MySQL capture.
pub fn decode_capture(raw: u64) -> i64 {
    (raw ^ (1 << 63)) as i64
}

/// SQL text cut at its bind parameters, and the type of its result.
pub trait Text: Send + Sync + 'static {
    /// The text before the first bind, between binds, and after the last.
    const PIECES: &'static [&'static str];
    type SqlType: 'static;
}

/// [`PG_UPDATE`] in pieces.
pub struct PgUpdateText;
impl Text for PgUpdateText {
    const PIECES: &'static [&'static str] = &[
        "UPDATE \"bench_async_counters\" SET \"hits\" = \"hits\" + ",
        " WHERE \"id\" = ",
        " AND \"hits\" <= ",
        " RETURNING \"hits\"",
    ];
    type SqlType = BigInt;
}

/// [`MYSQL_UPDATE`] in pieces.
pub struct MysqlUpdateText;
impl Text for MysqlUpdateText {
    const PIECES: &'static [&'static str] = &[
        "UPDATE `bench_async_counters` SET `hits` = `hits` + ",
        " + CAST(LAST_INSERT_ID((`hits` + ",
        ") ^ 9223372036854775808) & 0 AS SIGNED) WHERE `id` = ",
        " AND `hits` <= ",
        "",
    ];
    type SqlType = BigInt;
}

/// [`MYSQL_CAPTURED`].
pub struct MysqlCapturedText;
impl Text for MysqlCapturedText {
    const PIECES: &'static [&'static str] = &["SELECT LAST_INSERT_ID()"];
    type SqlType = Unsigned<BigInt>;
}

/// A fixed SQL text with `N` `BIGINT` binds and a static `QueryId`: diesel-async prepares it
/// once per connection and reuses it, as it does the library's statements.
pub struct Fixed<T: Text, const N: usize> {
    binds: [i64; N],
    text: PhantomData<T>,
}

impl<T: Text, const N: usize> Fixed<T, N> {
    pub fn new(binds: [i64; N]) -> Self {
        debug_assert_eq!(T::PIECES.len(), N + 1);
        Fixed {
            binds,
            text: PhantomData,
        }
    }
}

impl<T, DB, const N: usize> QueryFragment<DB> for Fixed<T, N>
where
    T: Text,
    DB: Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        for (i, piece) in T::PIECES.iter().enumerate() {
            out.push_sql(piece);
            if let Some(bind) = self.binds.get(i) {
                out.push_bind_param::<BigInt, _>(bind)?;
            }
        }
        Ok(())
    }
}

impl<T: Text, const N: usize> QueryId for Fixed<T, N> {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<T: Text, const N: usize> Query for Fixed<T, N> {
    type SqlType = T::SqlType;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_statements_render_the_sql_query_text() {
        let pg =
            diesel::debug_query::<diesel::pg::Pg, _>(&Fixed::<PgUpdateText, 3>::new([1, 7, GUARD]))
                .to_string();
        assert_eq!(pg, format!("{PG_UPDATE} -- binds: [1, 7, {GUARD}]"));
        let my =
            diesel::debug_query::<diesel::mysql::Mysql, _>(&Fixed::<MysqlUpdateText, 4>::new([
                1, 1, 7, GUARD,
            ]))
            .to_string();
        assert_eq!(my, format!("{MYSQL_UPDATE} -- binds: [1, 1, 7, {GUARD}]"));
        let captured =
            diesel::debug_query::<diesel::mysql::Mysql, _>(&Fixed::<MysqlCapturedText, 0>::new([]))
                .to_string();
        assert_eq!(captured, format!("{MYSQL_CAPTURED} -- binds: []"));
    }

    #[test]
    fn capture_decodes_negative_and_positive() {
        assert_eq!(decode_capture(5u64 ^ (1 << 63)), 5);
        assert_eq!(decode_capture((-5i64 as u64) ^ (1 << 63)), -5);
    }
}
