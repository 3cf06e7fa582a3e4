//! The statements on the flush ledger of [`RedisCounter`](crate::RedisCounter): one row per
//! batch of counts moved from Redis into the database, written in the transaction that applies
//! the batch, so "this batch is in the database" and the row are one fact.
//!
//! - record: `INSERT INTO l (flush_id, kept, flushed_at) VALUES (?, '', ?)` (a second
//!   transaction applying the same batch fails here on the primary key, before any count);
//! - keep: `UPDATE l SET kept = ? WHERE flush_id = ?` (the keys the batch left in Redis);
//! - look up: `SELECT kept FROM l WHERE flush_id = ?`;
//! - prune: `DELETE FROM l WHERE flushed_at < ?`.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Text};
use diesel::RunQueryDsl;
use std::future::Future;

use crate::backend::RawConnection;

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

/// The statements' one `QueryFragment` impl per shape, for every backend that binds text and
/// 64-bit integers, and their ids: the table name is a runtime value, so they have no static
/// id (Diesel caches them by their SQL text).
macro_rules! ledger_statement {
    ($statement:ty, |$s:ident, $out:ident| $walk:block) => {
        impl<DB> QueryFragment<DB> for $statement
        where
            DB: Backend + HasSqlType<Text> + HasSqlType<BigInt>,
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

impl Query for LedgerLookUp<'_> {
    type SqlType = Text;
}

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
        }
    )*};
}

ledger_dialect!(
    "postgres" => diesel::pg::Pg,
    "mysql" => diesel::mysql::Mysql,
    "sqlite" => diesel::sqlite::Sqlite
);
