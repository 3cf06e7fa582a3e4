//! The statements of a several-column change ([`crate::change`]), one node for every shape:
//!
//! - `UPDATE t SET c1 = c1 - ?, c2 = c2 + ? WHERE pk = ? AND c1 >= ? AND c2 <= ? RETURNING
//!   c1, c2` (PostgreSQL, SQLite);
//! - on MySQL the same `UPDATE` with each new value captured into a session variable,
//!   `c1 = (@__counter_0 := c1 - ?)`, then `SELECT @__counter_0, @__counter_1` on the same
//!   connection. `LAST_INSERT_ID` holds one value; the variables hold one per column. They
//!   are only read after the `UPDATE` matched the row (`CLIENT_FOUND_ROWS`), so a stale value
//!   is never read. (MySQL 8 warns that assigning variables in expressions is deprecated;
//!   MariaDB does not.)
//! - `SELECT c1, c2 FROM t WHERE pk = ? [lock]`, to tell a refusal from a race and for the
//!   locked fallback, and `UPDATE t SET c1 = ?, c2 = ? WHERE pk = ?` under that lock.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::RunQueryDsl;

use super::StatementId;
use crate::change::Changes;

/// `UPDATE … RETURNING c1, c2`.
pub(crate) const MULTI_RETURNING: u8 = 1;
/// `UPDATE …` capturing into `@__counter_<i>` (MySQL).
pub(crate) const MULTI_CAPTURE: u8 = 2;
/// `SELECT @__counter_0, @__counter_1` (MySQL).
pub(crate) const MULTI_CAPTURED: u8 = 3;
/// `SELECT c1, c2 FROM t WHERE pk = ?`.
pub(crate) const MULTI_READ: u8 = 4;
/// `SELECT c1, c2 FROM t WHERE pk = ?` plus the backend's lock clause.
pub(crate) const MULTI_LOCK: u8 = 5;
/// `UPDATE t SET c1 = ?, c2 = ? WHERE pk = ?`.
pub(crate) const MULTI_WRITE: u8 = 6;

/// The statement-id marker of a [`MultiStatement`] kind.
pub(crate) struct MultiShape<const KIND: u8>;

/// One statement of a several-column change; `KIND` is one of the constants above, and only
/// the fields that kind uses are set.
pub(crate) struct MultiStatement<'a, M, Cs: Changes<M, DB>, DB: Backend, const KIND: u8> {
    pub table: Cs::Table,
    pub key: &'a Cs::Key,
    pub parts: Option<&'a Cs::Parts>,
    pub values: Option<&'a Cs::Values>,
    pub lock_sql: &'static str,
    pub marker: PhantomData<fn() -> M>,
}

impl<'a, M, Cs: Changes<M, DB>, DB: Backend, const KIND: u8> MultiStatement<'a, M, Cs, DB, KIND> {
    /// A statement of this kind on row `key`.
    pub fn new(key: &'a Cs::Key) -> Self {
        MultiStatement {
            table: Cs::table(),
            key,
            parts: None,
            values: None,
            lock_sql: "",
            marker: PhantomData,
        }
    }
}

impl<M, Cs, DB, const KIND: u8> QueryFragment<DB> for MultiStatement<'_, M, Cs, DB, KIND>
where
    DB: Backend,
    Cs: Changes<M, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let parts = || self.parts.expect("this kind needs the planned parts");
        match KIND {
            MULTI_RETURNING | MULTI_CAPTURE => {
                out.push_sql("UPDATE ");
                Cs::walk_table(&self.table, out.reborrow())?;
                out.push_sql(" SET ");
                Cs::walk_set(parts(), KIND == MULTI_CAPTURE, &mut out)?;
                out.push_sql(" WHERE ");
                Cs::walk_key_eq(self.key, &mut out)?;
                Cs::walk_guards(parts(), &mut out)?;
                if KIND == MULTI_RETURNING {
                    out.push_sql(" RETURNING ");
                    Cs::walk_columns(false, &mut out)?;
                }
            }
            MULTI_CAPTURED => {
                out.push_sql("SELECT ");
                Cs::walk_columns(true, &mut out)?;
            }
            MULTI_READ | MULTI_LOCK => {
                out.push_sql("SELECT ");
                Cs::walk_columns(false, &mut out)?;
                out.push_sql(" FROM ");
                Cs::walk_table(&self.table, out.reborrow())?;
                out.push_sql(" WHERE ");
                Cs::walk_key_eq(self.key, &mut out)?;
                out.push_sql(self.lock_sql);
            }
            _ => {
                out.push_sql("UPDATE ");
                Cs::walk_table(&self.table, out.reborrow())?;
                out.push_sql(" SET ");
                Cs::walk_write(self.values.expect("a write has values"), &mut out)?;
                out.push_sql(" WHERE ");
                Cs::walk_key_eq(self.key, &mut out)?;
            }
        }
        Ok(())
    }
}

impl<M: 'static, Cs, DB, const KIND: u8> QueryId for MultiStatement<'_, M, Cs, DB, KIND>
where
    Cs: Changes<M, DB> + 'static,
    DB: Backend,
{
    type QueryId = StatementId<M, Cs, MultiShape<KIND>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M, Cs: Changes<M, DB>, DB: Backend, const KIND: u8> Query
    for MultiStatement<'_, M, Cs, DB, KIND>
{
    type SqlType = Cs::SqlTypes;
}

impl<M, Cs: Changes<M, DB>, DB: Backend, Conn, const KIND: u8> RunQueryDsl<Conn>
    for MultiStatement<'_, M, Cs, DB, KIND>
{
}
