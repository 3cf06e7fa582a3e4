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

/// The ledger statements on a connection; a supertrait of every backend's connection, so the
/// Redis counter needs no bound of its own. Written once for the three Diesel connections.
#[doc(hidden)]
pub trait LedgerConnection {
    /// Records batch `flush_id` as applied at `at` (fails on the primary key when it is).
    fn ledger_record(&mut self, table: &'static str, flush_id: &str, at: i64) -> QueryResult<()>;
    /// Sets the keys batch `flush_id` left in Redis.
    fn ledger_keep(&mut self, table: &'static str, flush_id: &str, kept: &str) -> QueryResult<()>;
    /// The kept keys of batch `flush_id`, or `None` when the batch is not in the database.
    fn ledger_look_up(
        &mut self,
        table: &'static str,
        flush_id: &str,
    ) -> QueryResult<Option<String>>;
    /// Deletes the rows of batches applied before `before`; how many.
    fn ledger_prune(&mut self, table: &'static str, before: i64) -> QueryResult<usize>;
}

macro_rules! ledger_connection {
    ($($feature:literal => $conn:ty),*) => {$(
        #[cfg(feature = $feature)]
        impl LedgerConnection for $conn {
            fn ledger_record(&mut self, table: &'static str, flush_id: &str, at: i64)
                -> QueryResult<()> {
                let s = LedgerStatement::<LEDGER_RECORD> { table, flush_id, kept: "", at };
                s.execute(self).map(drop)
            }
            fn ledger_keep(&mut self, table: &'static str, flush_id: &str, kept: &str)
                -> QueryResult<()> {
                let s = LedgerStatement::<LEDGER_KEEP> { table, flush_id, kept, at: 0 };
                s.execute(self).map(drop)
            }
            fn ledger_look_up(&mut self, table: &'static str, flush_id: &str)
                -> QueryResult<Option<String>> {
                use diesel::OptionalExtension;
                let s = LedgerStatement::<LEDGER_LOOK_UP> { table, flush_id, kept: "", at: 0 };
                s.get_result::<String>(self).optional()
            }
            fn ledger_prune(&mut self, table: &'static str, before: i64) -> QueryResult<usize> {
                let s = LedgerStatement::<LEDGER_PRUNE> { table, flush_id: "", kept: "", at: before };
                s.execute(self)
            }
        }
    )*};
}

ledger_connection!(
    "postgres" => diesel::PgConnection,
    "mysql" => diesel::MysqlConnection,
    "sqlite" => diesel::SqliteConnection
);
