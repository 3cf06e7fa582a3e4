//! The statements on the ledger of [`MemcachedCounter`](crate::MemcachedCounter): one row per
//! key of each counter, saying how much of the key's Memcached item (the one whose nonce it
//! names) the database has taken. A flush reads and writes these rows in the transaction that
//! applies the counts, so "applied to the row" and "recorded as applied" are one fact.
//!
//! - ensure: `INSERT INTO l (counter, field, nonce, applied) VALUES (?, ?, 0, 0), …` doing
//!   nothing for a row that is there (`ON CONFLICT DO NOTHING`; MySQL `INSERT IGNORE`);
//! - lock: `SELECT field, nonce, applied FROM l WHERE counter = ? [AND field IN (…)]
//!   ORDER BY field FOR UPDATE` (no lock clause on SQLite, whose write transaction is
//!   already exclusive);
//! - settle: `UPDATE l SET nonce = ?, applied = ? WHERE counter = ? AND field = ?`;
//! - read: `SELECT nonce, applied FROM l WHERE counter = ? AND field = ?` (unlocked, for
//!   `current`).

use std::future::Future;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Text};
use diesel::RunQueryDsl;

use super::ledger::ledger_statement;
use super::lock::uncached_multi_row_lock;
use crate::backend::{Dialect, RawConnection, UpsertClause};

/// The Memcached ledger's default name: one table for every Memcached counter.
pub const MEMCACHED_LEDGER: &str = "counter_memcached";

/// `INSERT INTO l (counter, field, nonce, applied) VALUES (?, ?, 0, 0), …`, doing nothing
/// for rows that are there.
pub(crate) struct McEnsure<'a> {
    pub table: &'static str,
    pub counter: &'a str,
    pub fields: &'a [String],
}

/// `SELECT field, nonce, applied FROM l WHERE counter = ? [AND field IN (…)] ORDER BY field`,
/// row-locked on the servers.
pub(crate) struct McLock<'a> {
    pub table: &'static str,
    pub counter: &'a str,
    /// `None`: every row of the counter.
    pub fields: Option<&'a [String]>,
}

/// `UPDATE l SET nonce = ?, applied = ? WHERE counter = ? AND field = ?`.
pub(crate) struct McSettle<'a> {
    pub table: &'static str,
    pub counter: &'a str,
    pub field: &'a str,
    pub nonce: i64,
    pub applied: i64,
}

/// `SELECT nonce, applied FROM l WHERE counter = ? AND field = ?`.
pub(crate) struct McRead<'a> {
    pub table: &'static str,
    pub counter: &'a str,
    pub field: &'a str,
}

ledger_statement!(McEnsure<'_>, |s, out| {
    out.push_sql(match DB::UPSERT {
        UpsertClause::OnConflict => "INSERT INTO ",
        UpsertClause::OnDuplicateKey => "INSERT IGNORE INTO ",
    });
    out.push_identifier(s.table)?;
    out.push_sql(" (counter, field, nonce, applied) VALUES ");
    for (i, field) in s.fields.iter().enumerate() {
        out.push_sql(if i == 0 { "(" } else { ", (" });
        out.push_bind_param::<Text, str>(s.counter)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, str>(field.as_str())?;
        out.push_sql(", 0, 0)");
    }
    if DB::UPSERT == UpsertClause::OnConflict {
        out.push_sql(" ON CONFLICT DO NOTHING");
    }
});

ledger_statement!(McLock<'_>, |s, out| {
    out.push_sql("SELECT field, nonce, applied FROM ");
    out.push_identifier(s.table)?;
    out.push_sql(" WHERE counter = ");
    out.push_bind_param::<Text, str>(s.counter)?;
    if let Some(fields) = s.fields {
        out.push_sql(" AND field IN (");
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Text, str>(field.as_str())?;
        }
        out.push_sql(")");
    }
    out.push_sql(" ORDER BY field");
    out.push_sql(DB::EXCLUSIVE_LOCK);
    // Several rows, locked as they are sent: a deadlock or lock wait timeout met on a later
    // row fails it after its result set began, and MariaDB Connector/C then waits forever on
    // the cached statement's next execution (seen: two concurrent flushes, one the deadlock's
    // victim, its retry hung with the server idle).
    uncached_multi_row_lock(&mut out);
});

ledger_statement!(McSettle<'_>, |s, out| {
    out.push_sql("UPDATE ");
    out.push_identifier(s.table)?;
    out.push_sql(" SET nonce = ");
    out.push_bind_param::<BigInt, i64>(&s.nonce)?;
    out.push_sql(", applied = ");
    out.push_bind_param::<BigInt, i64>(&s.applied)?;
    out.push_sql(" WHERE counter = ");
    out.push_bind_param::<Text, str>(s.counter)?;
    out.push_sql(" AND field = ");
    out.push_bind_param::<Text, str>(s.field)?;
});

ledger_statement!(McRead<'_>, |s, out| {
    out.push_sql("SELECT nonce, applied FROM ");
    out.push_identifier(s.table)?;
    out.push_sql(" WHERE counter = ");
    out.push_bind_param::<Text, str>(s.counter)?;
    out.push_sql(" AND field = ");
    out.push_bind_param::<Text, str>(s.field)?;
});

impl Query for McLock<'_> {
    type SqlType = (Text, BigInt, BigInt);
}

impl Query for McRead<'_> {
    type SqlType = (BigInt, BigInt);
}

/// A key's ledger row: its field, the nonce of the item it was last applied from, and how
/// much of that item was applied (a `u64` as its `i64` bit pattern).
pub(crate) type McRow = (String, i64, i64);

/// How many rows one `INSERT` or `IN (…)` list carries: far within every backend's limit on
/// bound parameters.
const CHUNK: usize = 500;

/// The Memcached ledger's statements, per backend; a supertrait of every
/// [`Strategy`](crate::strategy::Strategy), so the Memcached counter needs no bound of its
/// own. Written once for the three backends.
#[doc(hidden)]
pub trait MemcachedLedger: Backend + Sized {
    /// Inserts a row (nonce 0, applied 0) for each of `fields` that has none.
    fn mc_ensure<R: RawConnection<Db = Self>>(
        conn: &mut R,
        table: &'static str,
        counter: &str,
        fields: &[String],
    ) -> impl Future<Output = QueryResult<()>>;
    /// Locks and reads the rows of `counter` (all, or those of `fields`), in field order
    /// within each chunk of `fields`.
    fn mc_lock<R: RawConnection<Db = Self>>(
        conn: &mut R,
        table: &'static str,
        counter: &str,
        fields: Option<&[String]>,
    ) -> impl Future<Output = QueryResult<Vec<(String, i64, i64)>>>;
    /// Records that `applied` of the item with `nonce` is in the database.
    fn mc_settle<R: RawConnection<Db = Self>>(
        conn: &mut R,
        table: &'static str,
        counter: &str,
        field: &str,
        nonce: i64,
        applied: i64,
    ) -> impl Future<Output = QueryResult<usize>>;
    /// The row of `field`: `(nonce, applied)`, or `None`.
    fn mc_read<R: RawConnection<Db = Self>>(
        conn: &mut R,
        table: &'static str,
        counter: &str,
        field: &str,
    ) -> impl Future<Output = QueryResult<Option<(i64, i64)>>>;
}

macro_rules! memcached_ledger {
    ($($feature:literal => $db:ty),*) => {$(
        #[cfg(feature = $feature)]
        impl MemcachedLedger for $db {
            async fn mc_ensure<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, counter: &str, fields: &[String],
            ) -> QueryResult<()> {
                for fields in fields.chunks(CHUNK) {
                    conn.query_count(McEnsure { table, counter, fields }).await?;
                }
                Ok(())
            }
            async fn mc_lock<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, counter: &str, fields: Option<&[String]>,
            ) -> QueryResult<Vec<McRow>> {
                let Some(fields) = fields else {
                    let all = McLock { table, counter, fields: None };
                    return conn.query_rows::<_, McRow>(all).await;
                };
                let mut rows = Vec::with_capacity(fields.len());
                for fields in fields.chunks(CHUNK) {
                    let some = McLock { table, counter, fields: Some(fields) };
                    rows.extend(conn.query_rows::<_, McRow>(some).await?);
                }
                Ok(rows)
            }
            async fn mc_settle<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, counter: &str, field: &str, nonce: i64,
                applied: i64,
            ) -> QueryResult<usize> {
                conn.query_count(McSettle { table, counter, field, nonce, applied }).await
            }
            async fn mc_read<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, counter: &str, field: &str,
            ) -> QueryResult<Option<(i64, i64)>> {
                let read = McRead { table, counter, field };
                Ok(conn.query_rows::<_, (i64, i64)>(read).await?.pop())
            }
        }
    )*};
}

memcached_ledger!(
    "postgres" => diesel::pg::Pg,
    "mysql" => diesel::mysql::Mysql,
    "sqlite" => diesel::sqlite::Sqlite
);
