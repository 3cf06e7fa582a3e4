//! The `flush` workloads' table and what differs per backend: resetting it to the state every
//! run starts from, the library's buffer over it, and the hand-written multi-row upserts the
//! library's flush is held to.

use counter_core::{AtomicField, Buffer, FlushPolicy};
use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use diesel::sqlite::SqliteConnection;

use counter_bench::db::insert_sql;

diesel::table! {
    /// One counter per key, `n` added to by the flushes.
    flush_counters (id) {
        id -> BigInt,
        n -> BigInt,
    }
}

/// A row of `flush_counters`: what the buffer inserts for a key that has none.
#[derive(Debug, Clone, Copy, Queryable, Selectable, Identifiable, Insertable, AtomicField)]
#[diesel(table_name = flush_counters)]
pub struct FlushCounter {
    pub id: i64,
    #[atomic]
    pub n: i64,
}

/// What a row that exists before a run holds.
pub const SEED: i64 = 1_000;

/// Rows per statement of the seed: a literal `INSERT` of this many rows stays far below every
/// backend's statement size limit.
const SEED_ROWS_PER_STATEMENT: usize = 10_000;

/// The table, the buffer and the hand-written flush of one backend.
pub trait FlushSql: R2D2Connection + Sized + 'static {
    /// Rows per hand-written `VALUES` statement: the backend's limit of bound parameters
    /// (65,535 on PostgreSQL and MySQL, 32,766 on SQLite) over the two per row.
    const ROWS_PER_STATEMENT: usize;

    /// Drops and recreates `flush_counters`.
    fn create_flush_table(conn: &mut Self) -> QueryResult<()>;

    /// Empties `flush_counters` and inserts the rows of `existing`, each holding [`SEED`].
    fn reset_flush_table(conn: &mut Self, existing: &[i64]) -> QueryResult<()>;

    /// A buffer over `flush_counters.n` that inserts missing rows, flushed only when told.
    fn flush_buffer(pool: Pool<ConnectionManager<Self>>) -> Buffer<i64, i64>;

    /// The batch (keys distinct and sorted) as one multi-row upsert per
    /// [`ROWS_PER_STATEMENT`](Self::ROWS_PER_STATEMENT) rows, in one transaction.
    fn upsert_values(conn: &mut Self, batch: &[(i64, i64)]) -> QueryResult<()>;

    /// Does the backend have [`upsert_unnest`](Self::upsert_unnest)?
    const UNNEST: bool = false;

    /// The batch as one statement over two arrays (PostgreSQL only).
    fn upsert_unnest(_conn: &mut Self, _batch: &[(i64, i64)]) -> QueryResult<()> {
        Err(diesel::result::Error::QueryBuilderError(
            "unnest of arrays is PostgreSQL's".into(),
        ))
    }

    /// `(rows, Σ n)` of `flush_counters`.
    fn flush_totals(conn: &mut Self) -> QueryResult<(usize, i128)>;
}

/// `rows` as [`FlushCounter`]s, what Diesel's `insert_into(…).values(&…)` takes.
fn as_rows(batch: &[(i64, i64)]) -> Vec<FlushCounter> {
    batch
        .iter()
        .map(|&(id, n)| FlushCounter { id, n })
        .collect()
}

/// The `INSERT`s of the seed, `SEED_ROWS_PER_STATEMENT` rows each.
fn seed_sql(existing: &[i64]) -> String {
    existing
        .chunks(SEED_ROWS_PER_STATEMENT)
        .map(|chunk| {
            insert_sql(
                "flush_counters",
                "id, n",
                chunk.iter().map(|id| format!("{id}, {SEED}")),
            ) + ";"
        })
        .collect()
}

/// What is written the same way for every connection type (a macro: the generated methods
/// are called on concrete types, as an application would).
macro_rules! flush_common {
    () => {
        fn flush_buffer(pool: Pool<ConnectionManager<Self>>) -> Buffer<i64, i64> {
            Buffer::new(
                pool,
                FlushCounter::atomic_n(),
                |&id: &i64, n| FlushCounter { id, n },
                FlushPolicy::MANUAL,
            )
        }

        fn flush_totals(conn: &mut Self) -> QueryResult<(usize, i128)> {
            let n: Vec<i64> = flush_counters::table.select(flush_counters::n).load(conn)?;
            Ok((n.len(), n.iter().map(|&v| i128::from(v)).sum()))
        }
    };
}

/// `INSERT INTO flush_counters (id, n) VALUES ($1, $2), … ON CONFLICT (id) DO UPDATE SET n =
/// flush_counters.n + excluded.n`, with Diesel's query builder (PostgreSQL, SQLite).
macro_rules! upsert_excluded {
    ($rows:expr) => {
        diesel::insert_into(flush_counters::table)
            .values($rows)
            .on_conflict(flush_counters::id)
            .do_update()
            .set(
                flush_counters::n
                    .eq(flush_counters::n + diesel::upsert::excluded(flush_counters::n)),
            )
    };
}

impl FlushSql for PgConnection {
    const ROWS_PER_STATEMENT: usize = 65_535 / 2;

    fn create_flush_table(conn: &mut Self) -> QueryResult<()> {
        conn.batch_execute(
            "DROP TABLE IF EXISTS flush_counters; \
             CREATE TABLE flush_counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);",
        )
    }

    fn reset_flush_table(conn: &mut Self, existing: &[i64]) -> QueryResult<()> {
        conn.batch_execute(&format!(
            "BEGIN; TRUNCATE flush_counters; {} COMMIT; ANALYZE flush_counters;",
            seed_sql(existing)
        ))
    }

    fn upsert_values(conn: &mut Self, batch: &[(i64, i64)]) -> QueryResult<()> {
        conn.transaction(|c| {
            for chunk in batch.chunks(Self::ROWS_PER_STATEMENT) {
                upsert_excluded!(&as_rows(chunk)).execute(c)?;
            }
            Ok(())
        })
    }

    /// `INSERT INTO flush_counters (id, n) SELECT * FROM unnest($1::bigint[], $2::bigint[])
    /// ON CONFLICT (id) DO UPDATE SET n = flush_counters.n + EXCLUDED.n`: one statement,
    /// prepared once whatever the batch's size.
    const UNNEST: bool = true;

    fn upsert_unnest(conn: &mut Self, batch: &[(i64, i64)]) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt};
        let (ids, amounts): (Vec<i64>, Vec<i64>) = batch.iter().copied().unzip();
        diesel::sql_query(
            "INSERT INTO flush_counters (id, n) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[]) \
             ON CONFLICT (id) DO UPDATE SET n = flush_counters.n + EXCLUDED.n",
        )
        .bind::<Array<BigInt>, _>(ids)
        .bind::<Array<BigInt>, _>(amounts)
        .execute(conn)
        .map(drop)
    }

    flush_common!();
}

/// `INSERT INTO flush_counters (id, n) VALUES (?, ?), … ON CONFLICT (id) DO UPDATE SET n =
/// flush_counters.n + excluded.n`, `rows` tuples.
fn sqlite_upsert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(120 + rows * 8);
    sql += "INSERT INTO flush_counters (id, n) VALUES ";
    for i in 0..rows {
        sql += if i == 0 { "(?, ?)" } else { ", (?, ?)" };
    }
    sql + " ON CONFLICT (id) DO UPDATE SET n = flush_counters.n + excluded.n"
}

impl FlushSql for SqliteConnection {
    const ROWS_PER_STATEMENT: usize = 32_766 / 2;

    fn create_flush_table(conn: &mut Self) -> QueryResult<()> {
        conn.batch_execute(
            "DROP TABLE IF EXISTS flush_counters; \
             CREATE TABLE flush_counters (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);",
        )
    }

    fn reset_flush_table(conn: &mut Self, existing: &[i64]) -> QueryResult<()> {
        conn.batch_execute(&format!(
            "BEGIN; DELETE FROM flush_counters; {} COMMIT;",
            seed_sql(existing)
        ))
    }

    /// The same statement as on PostgreSQL, as SQL with bound parameters: Diesel's query
    /// builder has no multi-row insert with `ON CONFLICT` on SQLite.
    fn upsert_values(conn: &mut Self, batch: &[(i64, i64)]) -> QueryResult<()> {
        use diesel::sql_types::BigInt;
        conn.immediate_transaction(|c| {
            for chunk in batch.chunks(Self::ROWS_PER_STATEMENT) {
                let mut query = diesel::sql_query(sqlite_upsert_sql(chunk.len())).into_boxed();
                for &(id, n) in chunk {
                    query = query.bind::<BigInt, _>(id).bind::<BigInt, _>(n);
                }
                query.execute(c)?;
            }
            Ok(())
        })
    }

    flush_common!();
}

impl FlushSql for MysqlConnection {
    const ROWS_PER_STATEMENT: usize = 65_535 / 2;

    fn create_flush_table(conn: &mut Self) -> QueryResult<()> {
        conn.batch_execute(
            "DROP TABLE IF EXISTS flush_counters; \
             CREATE TABLE flush_counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL) \
             ENGINE = InnoDB;",
        )
    }

    fn reset_flush_table(conn: &mut Self, existing: &[i64]) -> QueryResult<()> {
        conn.batch_execute(&format!(
            "TRUNCATE TABLE flush_counters; BEGIN; {} COMMIT;",
            seed_sql(existing)
        ))
    }

    /// `INSERT INTO flush_counters (id, n) VALUES (?, ?), … ON DUPLICATE KEY UPDATE n = n +
    /// VALUES(n)`: Diesel has no `excluded()` on MySQL, so `VALUES(n)` is a literal.
    fn upsert_values(conn: &mut Self, batch: &[(i64, i64)]) -> QueryResult<()> {
        use diesel::dsl::sql;
        use diesel::sql_types::BigInt;
        conn.transaction(|c| {
            for chunk in batch.chunks(Self::ROWS_PER_STATEMENT) {
                diesel::insert_into(flush_counters::table)
                    .values(&as_rows(chunk))
                    .on_conflict(diesel::dsl::DuplicatedKeys)
                    .do_update()
                    .set(flush_counters::n.eq(flush_counters::n + sql::<BigInt>("VALUES(`n`)")))
                    .execute(c)?;
            }
            Ok(())
        })
    }

    flush_common!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_chunked_literal_inserts() {
        let existing: Vec<i64> = (1..=SEED_ROWS_PER_STATEMENT as i64 + 1).collect();
        let sql = seed_sql(&existing);
        assert_eq!(sql.matches("INSERT INTO flush_counters").count(), 2);
        assert!(sql.starts_with("INSERT INTO flush_counters (id, n) VALUES (1, 1000), (2, 1000)"));
        assert!(
            sql.ends_with("VALUES (10001, 1000);"),
            "{}",
            &sql[sql.len() - 40..]
        );
    }

    #[test]
    fn handwritten_statements_are_the_multi_row_upserts() {
        let rows = as_rows(&[(1, 2), (3, 4)]);
        let pg = diesel::debug_query::<diesel::pg::Pg, _>(&upsert_excluded!(&rows)).to_string();
        assert!(
            pg.starts_with(
                "INSERT INTO \"flush_counters\" (\"id\", \"n\") VALUES ($1, $2), ($3, $4) \
                 ON CONFLICT (\"id\") DO UPDATE SET \"n\" = (\"flush_counters\".\"n\" + \
                 excluded.\"n\")"
            ),
            "{pg}"
        );
        assert_eq!(
            sqlite_upsert_sql(2),
            "INSERT INTO flush_counters (id, n) VALUES (?, ?), (?, ?) \
             ON CONFLICT (id) DO UPDATE SET n = flush_counters.n + excluded.n"
        );
    }

    #[test]
    fn sqlite_handwritten_and_totals() {
        let mut conn = SqliteConnection::establish(":memory:").expect("in memory");
        SqliteConnection::create_flush_table(&mut conn).expect("table");
        SqliteConnection::reset_flush_table(&mut conn, &[2, 4]).expect("seed");
        let batch: Vec<(i64, i64)> = (1..=40_000).map(|k| (k, 1)).collect();
        SqliteConnection::upsert_values(&mut conn, &batch).expect("upsert");
        assert_eq!(
            SqliteConnection::flush_totals(&mut conn).expect("totals"),
            (40_000, 2 * i128::from(SEED) + 40_000)
        );
    }
}
