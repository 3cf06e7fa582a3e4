//! The statements on the flush ledger of [`RedisCounter`](crate::RedisCounter): one row per
//! batch of counts moved from Redis into the database, written in the transaction that applies
//! the batch, so "this batch is in the database" and the row are one fact.
//!
//! - record: `INSERT INTO l (flush_id, kept, flushed_at) VALUES (?, '', ?)` (a second
//!   transaction applying the same batch fails here on the primary key, before any count);
//! - keep: `UPDATE l SET kept = ? WHERE flush_id = ?` (the keys the batch left in Redis);
//! - look up: `SELECT kept FROM l WHERE flush_id = ?`;
//! - prune: `DELETE FROM l WHERE flushed_at < ?`.
//!
//! And the statements on the ledger of idempotency keys ([`Idempotent`](crate::Idempotent)):
//! one row per key, claimed by the transaction that runs the call and holding its outcome.
//!
//! - claim: `INSERT INTO k (op_key, request, outcome, done_at) VALUES (?, ?, ?, ?)`, with
//!   `ON CONFLICT DO NOTHING` (PostgreSQL, SQLite) or `INSERT IGNORE` (MySQL): no row when the
//!   key is there, after waiting for a transaction that holds it uncommitted;
//! - settle: `UPDATE k SET outcome = ? WHERE op_key = ?`;
//! - recall: `SELECT op_key, request, outcome FROM k WHERE op_key = ?` with a shared lock on
//!   the servers (a locking read returns the latest committed row);
//! - prune: `DELETE FROM k WHERE done_at < ?`.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Text};
use diesel::RunQueryDsl;
use std::future::Future;

use crate::backend::{Dialect, RawConnection, UpsertClause};

/// The flush ledger's default name: one table for every buffer and Redis counter.
pub const FLUSH_LEDGER: &str = "counter_flushes";

/// `INSERT INTO l (flush_id, kept, flushed_at) VALUES (?, '', ?)`.
pub(crate) struct LedgerRecord<'a> {
    pub table: &'static str,
    pub flush_id: &'a str,
    /// Unix seconds.
    pub at: i64,
}

/// `UPDATE l SET kept = ? WHERE flush_id = ?`.
pub(crate) struct LedgerKeep<'a> {
    pub table: &'static str,
    pub flush_id: &'a str,
    pub kept: &'a str,
}

/// `SELECT kept FROM l WHERE flush_id = ?`.
pub(crate) struct LedgerLookUp<'a> {
    pub table: &'static str,
    pub flush_id: &'a str,
}

/// `DELETE FROM l WHERE flushed_at < ?`.
pub(crate) struct LedgerPrune {
    pub table: &'static str,
    /// Unix seconds.
    pub before: i64,
}

/// `INSERT INTO k (op_key, request, outcome, done_at) VALUES (?, ?, ?, ?)`, doing nothing
/// when the key is there.
#[doc(hidden)]
pub struct KeyClaim<'a> {
    /// The ledger table.
    pub table: &'static str,
    /// The idempotency key.
    pub key: &'a str,
    /// What the call asks for, or `""`.
    pub request: &'a str,
    /// The outcome's text, `""` while the call runs.
    pub outcome: &'a str,
    /// Unix seconds.
    pub at: i64,
}

/// `UPDATE k SET outcome = ? WHERE op_key = ?`.
#[doc(hidden)]
pub struct KeySettle<'a> {
    /// The ledger table.
    pub table: &'static str,
    /// The idempotency key.
    pub key: &'a str,
    /// The outcome's text.
    pub outcome: &'a str,
}

/// `SELECT op_key, request, outcome FROM k WHERE op_key = ?`, share-locked on the servers.
pub(crate) struct KeyRecall<'a> {
    pub table: &'static str,
    pub key: &'a str,
}

/// `DELETE FROM k WHERE done_at < ?`.
pub(crate) struct KeyPrune {
    pub table: &'static str,
    /// Unix seconds.
    pub before: i64,
}

/// The statements' one `QueryFragment` impl per shape, for every backend that binds text and
/// 64-bit integers, and their ids: the table name is a runtime value, so they have no static
/// id (Diesel caches them by their SQL text).
macro_rules! ledger_statement {
    ($statement:ty, |$s:ident, $out:ident| $walk:block) => {
        impl<DB> QueryFragment<DB> for $statement
        where
            DB: Dialect + HasSqlType<Text> + HasSqlType<BigInt>,
            str: ToSql<Text, DB>,
            i64: ToSql<BigInt, DB>,
        {
            fn walk_ast<'b>(&'b self, mut $out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
                let $s = self;
                $walk
                Ok(())
            }
        }

        impl QueryId for $statement {
            type QueryId = ();
            const HAS_STATIC_QUERY_ID: bool = false;
        }

        impl<Conn> RunQueryDsl<Conn> for $statement {}
    };
}
pub(super) use ledger_statement;

ledger_statement!(LedgerRecord<'_>, |s, out| {
    out.push_sql("INSERT INTO ");
    out.push_identifier(s.table)?;
    out.push_sql(" (flush_id, kept, flushed_at) VALUES (");
    out.push_bind_param::<Text, str>(s.flush_id)?;
    out.push_sql(", '', ");
    out.push_bind_param::<BigInt, i64>(&s.at)?;
    out.push_sql(")");
});

ledger_statement!(LedgerKeep<'_>, |s, out| {
    out.push_sql("UPDATE ");
    out.push_identifier(s.table)?;
    out.push_sql(" SET kept = ");
    out.push_bind_param::<Text, str>(s.kept)?;
    out.push_sql(" WHERE flush_id = ");
    out.push_bind_param::<Text, str>(s.flush_id)?;
});

ledger_statement!(LedgerLookUp<'_>, |s, out| {
    out.push_sql("SELECT kept FROM ");
    out.push_identifier(s.table)?;
    out.push_sql(" WHERE flush_id = ");
    out.push_bind_param::<Text, str>(s.flush_id)?;
});

ledger_statement!(LedgerPrune, |s, out| {
    out.push_sql("DELETE FROM ");
    out.push_identifier(s.table)?;
    out.push_sql(" WHERE flushed_at < ");
    out.push_bind_param::<BigInt, i64>(&s.before)?;
});

ledger_statement!(KeyClaim<'_>, |s, out| {
    out.push_sql(match DB::UPSERT {
        UpsertClause::OnConflict => "INSERT INTO ",
        UpsertClause::OnDuplicateKey => "INSERT IGNORE INTO ",
    });
    out.push_identifier(s.table)?;
    out.push_sql(" (op_key, request, outcome, done_at) VALUES (");
    out.push_bind_param::<Text, str>(s.key)?;
    out.push_sql(", ");
    out.push_bind_param::<Text, str>(s.request)?;
    out.push_sql(", ");
    out.push_bind_param::<Text, str>(s.outcome)?;
    out.push_sql(", ");
    out.push_bind_param::<BigInt, i64>(&s.at)?;
    out.push_sql(")");
    if DB::UPSERT == UpsertClause::OnConflict {
        out.push_sql(" ON CONFLICT DO NOTHING");
    }
});

ledger_statement!(KeySettle<'_>, |s, out| {
    out.push_sql("UPDATE ");
    out.push_identifier(s.table)?;
    out.push_sql(" SET outcome = ");
    out.push_bind_param::<Text, str>(s.outcome)?;
    out.push_sql(" WHERE op_key = ");
    out.push_bind_param::<Text, str>(s.key)?;
});

ledger_statement!(KeyRecall<'_>, |s, out| {
    out.push_sql("SELECT op_key, request, outcome FROM ");
    out.push_identifier(s.table)?;
    out.push_sql(" WHERE op_key = ");
    out.push_bind_param::<Text, str>(s.key)?;
    out.push_sql(DB::SHARE_LOCK);
});

ledger_statement!(KeyPrune, |s, out| {
    out.push_sql("DELETE FROM ");
    out.push_identifier(s.table)?;
    out.push_sql(" WHERE done_at < ");
    out.push_bind_param::<BigInt, i64>(&s.before)?;
});

impl Query for LedgerLookUp<'_> {
    type SqlType = Text;
}

impl Query for KeyRecall<'_> {
    type SqlType = (Text, Text, Text);
}

/// A key's row in the ledger of idempotency keys: the key as stored, the request and the
/// outcome recorded.
pub(crate) type KeyRow = (String, String, String);

/// The ledger statements, per backend; a supertrait of every [`Strategy`](crate::strategy::Strategy),
/// so the Redis counter needs no bound of its own. Written once for the three backends.
#[doc(hidden)]
pub trait LedgerDialect: Backend + Sized {
    /// Records batch `flush_id` as applied at `at` (fails on the primary key when it is).
    fn ledger_record<R: RawConnection<Db = Self>>(
        conn: &mut R,
        table: &'static str,
        flush_id: &str,
        at: i64,
    ) -> impl Future<Output = QueryResult<()>>;
    /// Sets the keys batch `flush_id` left in Redis.
    fn ledger_keep<R: RawConnection<Db = Self>>(
        conn: &mut R,
        table: &'static str,
        flush_id: &str,
        kept: &str,
    ) -> impl Future<Output = QueryResult<()>>;
    /// The kept keys of batch `flush_id`, or `None` when the batch is not in the database.
    fn ledger_look_up<R: RawConnection<Db = Self>>(
        conn: &mut R,
        table: &'static str,
        flush_id: &str,
    ) -> impl Future<Output = QueryResult<Option<String>>>;
    /// Deletes the rows of batches applied before `before`; how many.
    fn ledger_prune<R: RawConnection<Db = Self>>(
        conn: &mut R,
        table: &'static str,
        before: i64,
    ) -> impl Future<Output = QueryResult<usize>>;
    /// Claims idempotency key `key` with `outcome` (`""` while the call runs): 1 row, or 0
    /// when the key is there (after waiting for a transaction holding it to end).
    fn key_claim<R: RawConnection<Db = Self>>(
        conn: &mut R,
        claim: KeyClaim<'_>,
    ) -> impl Future<Output = QueryResult<usize>>;
    /// Sets the outcome of claimed key `key`; how many rows took it (1, unless the column
    /// altered the key as it stored it).
    fn key_settle<R: RawConnection<Db = Self>>(
        conn: &mut R,
        settle: KeySettle<'_>,
    ) -> impl Future<Output = QueryResult<usize>>;
    /// The rows of key `key`: none or one, where `op_key` is the primary key.
    fn key_recall<R: RawConnection<Db = Self>>(
        conn: &mut R,
        table: &'static str,
        key: &str,
    ) -> impl Future<Output = QueryResult<Vec<KeyRow>>>;
    /// Deletes the keys settled before `before`; how many.
    fn key_prune<R: RawConnection<Db = Self>>(
        conn: &mut R,
        table: &'static str,
        before: i64,
    ) -> impl Future<Output = QueryResult<usize>>;
}

macro_rules! ledger_dialect {
    ($($feature:literal => $db:ty),*) => {$(
        #[cfg(feature = $feature)]
        impl LedgerDialect for $db {
            async fn ledger_record<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, flush_id: &str, at: i64,
            ) -> QueryResult<()> {
                let s = LedgerRecord { table, flush_id, at };
                conn.query_count(s).await.map(drop)
            }
            async fn ledger_keep<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, flush_id: &str, kept: &str,
            ) -> QueryResult<()> {
                let s = LedgerKeep { table, flush_id, kept };
                conn.query_count(s).await.map(drop)
            }
            async fn ledger_look_up<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, flush_id: &str,
            ) -> QueryResult<Option<String>> {
                let s = LedgerLookUp { table, flush_id };
                Ok(conn.query_rows::<_, String>(s).await?.pop())
            }
            async fn ledger_prune<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, before: i64,
            ) -> QueryResult<usize> {
                let s = LedgerPrune { table, before };
                conn.query_count(s).await
            }
            async fn key_claim<R: RawConnection<Db = Self>>(
                conn: &mut R, claim: KeyClaim<'_>,
            ) -> QueryResult<usize> {
                conn.query_count(claim).await
            }
            async fn key_settle<R: RawConnection<Db = Self>>(
                conn: &mut R, settle: KeySettle<'_>,
            ) -> QueryResult<usize> {
                conn.query_count(settle).await
            }
            async fn key_recall<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, key: &str,
            ) -> QueryResult<Vec<KeyRow>> {
                conn.query_rows::<_, KeyRow>(KeyRecall { table, key }).await
            }
            async fn key_prune<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, before: i64,
            ) -> QueryResult<usize> {
                conn.query_count(KeyPrune { table, before }).await
            }
        }
    )*};
}

ledger_dialect!(
    "postgres" => diesel::pg::Pg,
    "mysql" => diesel::mysql::Mysql,
    "sqlite" => diesel::sqlite::Sqlite
);
