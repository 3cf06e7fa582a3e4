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

pub(crate) const LEDGER_RECORD: u8 = 1;
pub(crate) const LEDGER_KEEP: u8 = 2;
pub(crate) const LEDGER_LOOK_UP: u8 = 3;
pub(crate) const LEDGER_PRUNE: u8 = 4;

/// One statement on the ledger table `table`; only the fields the kind uses matter.
pub(crate) struct LedgerStatement<'a, const KIND: u8> {
    pub table: &'static str,
    pub flush_id: &'a str,
    pub kept: &'a str,
    /// Unix seconds: the flush's time, or the prune's cut-off.
    pub at: i64,
}

impl<DB, const KIND: u8> QueryFragment<DB> for LedgerStatement<'_, KIND>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        match KIND {
            LEDGER_RECORD => {
                out.push_sql("INSERT INTO ");
                out.push_identifier(self.table)?;
                out.push_sql(" (flush_id, kept, flushed_at) VALUES (");
                out.push_bind_param::<Text, str>(self.flush_id)?;
                out.push_sql(", '', ");
                out.push_bind_param::<BigInt, i64>(&self.at)?;
                out.push_sql(")");
            }
            LEDGER_KEEP => {
                out.push_sql("UPDATE ");
                out.push_identifier(self.table)?;
                out.push_sql(" SET kept = ");
                out.push_bind_param::<Text, str>(self.kept)?;
                out.push_sql(" WHERE flush_id = ");
                out.push_bind_param::<Text, str>(self.flush_id)?;
            }
            LEDGER_LOOK_UP => {
                out.push_sql("SELECT kept FROM ");
                out.push_identifier(self.table)?;
                out.push_sql(" WHERE flush_id = ");
                out.push_bind_param::<Text, str>(self.flush_id)?;
            }
            _ => {
                out.push_sql("DELETE FROM ");
                out.push_identifier(self.table)?;
                out.push_sql(" WHERE flushed_at < ");
                out.push_bind_param::<BigInt, i64>(&self.at)?;
            }
        }
        Ok(())
    }
}

// The table name is a runtime value, so the statements have no static id: Diesel caches them
// by their SQL text.
impl<const KIND: u8> QueryId for LedgerStatement<'_, KIND> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for LedgerStatement<'_, LEDGER_LOOK_UP> {
    type SqlType = Text;
}

impl<Conn, const KIND: u8> RunQueryDsl<Conn> for LedgerStatement<'_, KIND> {}

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
                let s = LedgerStatement::<LEDGER_RECORD> { table, flush_id, kept: "", at };
                conn.query_count(s).await.map(drop)
            }
            async fn ledger_keep<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, flush_id: &str, kept: &str,
            ) -> QueryResult<()> {
                let s = LedgerStatement::<LEDGER_KEEP> { table, flush_id, kept, at: 0 };
                conn.query_count(s).await.map(drop)
            }
            async fn ledger_look_up<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, flush_id: &str,
            ) -> QueryResult<Option<String>> {
                let s = LedgerStatement::<LEDGER_LOOK_UP> { table, flush_id, kept: "", at: 0 };
                Ok(conn.query_rows::<_, String>(s).await?.pop())
            }
            async fn ledger_prune<R: RawConnection<Db = Self>>(
                conn: &mut R, table: &'static str, before: i64,
            ) -> QueryResult<usize> {
                let s = LedgerStatement::<LEDGER_PRUNE> { table, flush_id: "", kept: "", at: before };
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
