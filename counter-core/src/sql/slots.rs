//! The statements of a slotted counter ([`crate::slotted`]), on its slot table
//! `(key columns…, slot, count)`:
//!
//! - add: `INSERT INTO s (k…, slot, count) VALUES (?…, $slot, $n) ON CONFLICT (k…, slot) DO
//!   UPDATE SET count = s.count + $n` (PostgreSQL, SQLite), `… ON DUPLICATE KEY UPDATE count =
//!   count + $n` (MySQL);
//! - sum: `SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM s WHERE k = ?…`;
//! - the slots, in slot order, locked for a compaction: `SELECT slot, count FROM s WHERE k = ?…
//!   ORDER BY slot [lock]`, prepared afresh each time (see `SLOT_LOCK` in `walk_ast`);
//! - drop one slot: `DELETE FROM s WHERE k = ?… AND slot = ?`.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Integer};
use diesel::{Column, RunQueryDsl};

use super::StatementId;
use crate::key::KeyColumns;
use crate::slotted::{Slotted, SlottedOn};

/// Adds to one slot, creating it.
pub(crate) const SLOT_ADD: u8 = 1;
/// The sum of every slot of a key.
pub(crate) const SLOT_SUM: u8 = 2;
/// The slots of a key in slot order, with the backend's lock clause.
pub(crate) const SLOT_LOCK: u8 = 3;
/// Drops one slot.
pub(crate) const SLOT_DELETE: u8 = 4;

/// The statement-id marker of a [`SlotStatement`] kind.
pub(crate) struct SlotShape<const KIND: u8>;

/// One statement on the slot table of column `Col` of model `M`; see the module
/// documentation. Only the fields the kind uses matter.
pub(crate) struct SlotStatement<'a, M: Slotted<Col>, Col: Column, const KIND: u8> {
    pub table: <M::SlotColumn as Column>::Table,
    pub key: &'a M::Key,
    pub slot: i32,
    pub amount: i64,
    /// `SLOT_ADD`: MySQL's `ON DUPLICATE KEY UPDATE` instead of `ON CONFLICT`.
    pub on_duplicate: bool,
    /// `SLOT_SUM`: the backend's name of a signed 64-bit integer in `CAST`.
    pub bigint: &'static str,
    /// `SLOT_LOCK`: the lock clause.
    pub lock_sql: &'static str,
}

impl<M, Col, DB, const KIND: u8> QueryFragment<DB> for SlotStatement<'_, M, Col, KIND>
where
    DB: Backend,
    Col: Column,
    M: SlottedOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let slot = <M::SlotColumn as Column>::NAME;
        let count = <M::CountColumn as Column>::NAME;
        let keys = <M::SlotKeyColumns as KeyColumns>::NAMES;
        let table = &self.table;
        match KIND {
            SLOT_ADD => {
                out.push_sql("INSERT INTO ");
                M::walk_slot_table(table, out.reborrow())?;
                out.push_sql(" (");
                for name in keys {
                    out.push_identifier(name)?;
                    out.push_sql(", ");
                }
                out.push_identifier(slot)?;
                out.push_sql(", ");
                out.push_identifier(count)?;
                out.push_sql(") VALUES (");
                M::walk_key_values(self.key, &mut out)?;
                out.push_sql(", ");
                M::bind_slot(&self.slot, &mut out)?;
                out.push_sql(", ");
                M::bind_count(&self.amount, &mut out)?;
                if self.on_duplicate {
                    out.push_sql(") ON DUPLICATE KEY UPDATE ");
                    out.push_identifier(count)?;
                    out.push_sql(" = ");
                } else {
                    out.push_sql(") ON CONFLICT (");
                    for name in keys {
                        out.push_identifier(name)?;
                        out.push_sql(", ");
                    }
                    out.push_identifier(slot)?;
                    out.push_sql(") DO UPDATE SET ");
                    out.push_identifier(count)?;
                    out.push_sql(" = ");
                    M::walk_slot_table(table, out.reborrow())?;
                    out.push_sql(".");
                }
                out.push_identifier(count)?;
                out.push_sql(" + ");
                M::bind_count(&self.amount, &mut out)?;
            }
            SLOT_SUM => {
                out.push_sql("SELECT CAST(COALESCE(SUM(");
                out.push_identifier(count)?;
                out.push_sql("), 0) AS ");
                out.push_sql(self.bigint);
                out.push_sql(") FROM ");
                M::walk_slot_table(table, out.reborrow())?;
                out.push_sql(" WHERE ");
                M::walk_key_eq(self.key, &mut out)?;
            }
            SLOT_LOCK => {
                // Never a cached prepared statement: this read locks several rows, so a lock
                // wait or deadlock can fail it after its result set began, and MariaDB
                // Connector/C leaves such a statement waiting forever for rows on its next
                // execution (`tests/mysql.rs`, a compaction that timed out). A fresh statement
                // per compaction costs one prepare; compactions are rare.
                out.unsafe_to_cache_prepared();
                out.push_sql("SELECT ");
                out.push_identifier(slot)?;
                out.push_sql(", ");
                out.push_identifier(count)?;
                out.push_sql(" FROM ");
                M::walk_slot_table(table, out.reborrow())?;
                out.push_sql(" WHERE ");
                M::walk_key_eq(self.key, &mut out)?;
                out.push_sql(" ORDER BY ");
                out.push_identifier(slot)?;
                out.push_sql(self.lock_sql);
            }
            _ => {
                out.push_sql("DELETE FROM ");
                M::walk_slot_table(table, out.reborrow())?;
                out.push_sql(" WHERE ");
                M::walk_key_eq(self.key, &mut out)?;
                out.push_sql(" AND ");
                out.push_identifier(slot)?;
                out.push_sql(" = ");
                M::bind_slot(&self.slot, &mut out)?;
            }
        }
        Ok(())
    }
}

impl<M: Slotted<Col>, Col: Column + 'static, const KIND: u8> QueryId
    for SlotStatement<'_, M, Col, KIND>
{
    type QueryId = StatementId<M, Col, SlotShape<KIND>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M: Slotted<Col>, Col: Column> Query for SlotStatement<'_, M, Col, SLOT_SUM> {
    type SqlType = BigInt;
}

impl<M: Slotted<Col>, Col: Column> Query for SlotStatement<'_, M, Col, SLOT_LOCK> {
    type SqlType = (Integer, BigInt);
}

impl<M: Slotted<Col>, Col: Column, Conn, const KIND: u8> RunQueryDsl<Conn>
    for SlotStatement<'_, M, Col, KIND>
{
}
