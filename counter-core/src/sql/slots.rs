//! The statements of a slotted counter ([`crate::SlottedField`]), on its slot table
//! `(key columns…, slot, count)`, one type per shape:
//!
//! - add: `INSERT INTO s (k…, slot, count) VALUES (?…, $slot, $n) ON CONFLICT (k…, slot) DO
//!   UPDATE SET count = s.count + $n` (PostgreSQL, SQLite), `… ON DUPLICATE KEY UPDATE count =
//!   count + $n` (MySQL);
//! - sum: `SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM s WHERE k = ?…`;
//! - the slots, in slot order, locked for a compaction: `SELECT slot, count FROM s WHERE k = ?…
//!   ORDER BY slot [lock]`, prepared afresh each time (see [`SlotsLocked`]);
//! - drop one slot: `DELETE FROM s WHERE k = ?… AND slot = ?`;
//! - the parent row of a slotted counter cache, locked ([`ParentRow`]): `SELECT CAST(1 AS
//!   BIGINT) FROM parent WHERE k = ?… FOR KEY SHARE` (a counted change: the parent must exist
//!   and stay), or `FOR UPDATE` (a recount: no counted change meanwhile).

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Integer};
use diesel::{Column, Expression, RunQueryDsl};

use super::lock::{uncached_multi_row_lock, ForUpdate, LockClause};
use super::StatementId;
use crate::backend::{Dialect, UpsertClause};
use crate::field::{CacheLink, Slotted, SlottedCounterCacheOn, SlottedOn};
use crate::key::KeyColumns;

/// The slot table of `M`'s slotted column `Col`.
type SlotTable<M, Col> = <<M as Slotted<Col>>::SlotColumn as Column>::Table;

/// Adds `amount` to slot `slot` of `key`, creating it (the clause is the backend's upsert).
pub(crate) struct SlotAdd<'a, M: Slotted<Col>, Col: Column> {
    pub table: SlotTable<M, Col>,
    pub key: &'a M::Key,
    pub slot: i32,
    pub amount: i64,
}

/// The sum of every slot of `key`.
pub(crate) struct SlotSum<'a, M: Slotted<Col>, Col: Column> {
    pub table: SlotTable<M, Col>,
    pub key: &'a M::Key,
}

/// The slots of `key` in slot order, each locked.
pub(crate) struct SlotsLocked<'a, M: Slotted<Col>, Col: Column> {
    pub table: SlotTable<M, Col>,
    pub key: &'a M::Key,
}

/// Drops slot `slot` of `key`.
pub(crate) struct SlotDelete<'a, M: Slotted<Col>, Col: Column> {
    pub table: SlotTable<M, Col>,
    pub key: &'a M::Key,
    pub slot: i32,
}

/// The parent row of `key` in the model's own table, locked by a counted change of a slotted
/// counter cache (`EXCLUSIVE` false: [`Dialect::KEY_SHARE_LOCK`]) or by its recount (true:
/// [`Dialect::EXCLUSIVE_LOCK`]). The key columns are named as the slot table's, which the
/// derive names after the model's.
pub(crate) struct ParentRow<'a, C: CacheLink<Col>, Col: Column, const EXCLUSIVE: bool> {
    pub table: Col::Table,
    pub key: &'a C::ParentKey,
}

/// `SELECT k FROM parent [WHERE k > ?] ORDER BY k LIMIT 500`: one page of a slotted cache's
/// parent keys, in key order, read as the foreign key column's type (the key is one column,
/// named as the slot table's).
pub(crate) struct SlottedParentKeys<'a, C: CacheLink<Col>, Col: Column, const AFTER: bool> {
    pub table: Col::Table,
    pub after: Option<&'a C::ParentKey>,
}

/// The names of the slot table's columns: `(key columns, slot, count)`.
fn names<M: Slotted<Col>, Col: Column>() -> (&'static [&'static str], &'static str, &'static str) {
    (
        <M::SlotKeyColumns as KeyColumns>::NAMES,
        <M::SlotColumn as Column>::NAME,
        <M::CountColumn as Column>::NAME,
    )
}

impl<M, Col, DB> QueryFragment<DB> for SlotAdd<'_, M, Col>
where
    DB: Dialect,
    Col: Column,
    M: SlottedOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let (keys, slot, count) = names::<M, Col>();
        let table = &self.table;
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
        match DB::UPSERT {
            UpsertClause::OnDuplicateKey => {
                out.push_sql(") ON DUPLICATE KEY UPDATE ");
                out.push_identifier(count)?;
                out.push_sql(" = ");
            }
            UpsertClause::OnConflict => {
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
        }
        out.push_identifier(count)?;
        out.push_sql(" + ");
        M::bind_count(&self.amount, &mut out)
    }
}

impl<M, Col, DB> QueryFragment<DB> for SlotSum<'_, M, Col>
where
    DB: Dialect,
    Col: Column,
    M: SlottedOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let (_, _, count) = names::<M, Col>();
        out.push_sql("SELECT CAST(COALESCE(SUM(");
        out.push_identifier(count)?;
        out.push_sql("), 0) AS ");
        out.push_sql(DB::BIGINT);
        out.push_sql(") FROM ");
        M::walk_slot_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        M::walk_key_eq(self.key, &mut out)
    }
}

impl<M, Col, DB> QueryFragment<DB> for SlotsLocked<'_, M, Col>
where
    DB: Dialect,
    Col: Column,
    M: SlottedOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let (_, slot, count) = names::<M, Col>();
        // Compactions are rare: a fresh statement each costs little.
        uncached_multi_row_lock(&mut out);
        out.push_sql("SELECT ");
        out.push_identifier(slot)?;
        out.push_sql(", ");
        out.push_identifier(count)?;
        out.push_sql(" FROM ");
        M::walk_slot_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        M::walk_key_eq(self.key, &mut out)?;
        out.push_sql(" ORDER BY ");
        out.push_identifier(slot)?;
        ForUpdate::walk(&mut out)
    }
}

impl<M, Col, DB> QueryFragment<DB> for SlotDelete<'_, M, Col>
where
    DB: Dialect,
    Col: Column,
    M: SlottedOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let (_, slot, _) = names::<M, Col>();
        out.push_sql("DELETE FROM ");
        M::walk_slot_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        M::walk_key_eq(self.key, &mut out)?;
        out.push_sql(" AND ");
        out.push_identifier(slot)?;
        out.push_sql(" = ");
        M::bind_slot(&self.slot, &mut out)
    }
}

impl<C, Col, DB, const EXCLUSIVE: bool> QueryFragment<DB> for ParentRow<'_, C, Col, EXCLUSIVE>
where
    DB: Dialect,
    Col: Column,
    C: SlottedCounterCacheOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT CAST(1 AS ");
        out.push_sql(DB::BIGINT);
        out.push_sql(") FROM ");
        C::walk_parent_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        <C::On as SlottedOn<Col, DB>>::walk_key_eq(self.key, &mut out)?;
        out.push_sql(if EXCLUSIVE {
            DB::EXCLUSIVE_LOCK
        } else {
            DB::KEY_SHARE_LOCK
        });
        Ok(())
    }
}

impl<C, Col, DB, const AFTER: bool> QueryFragment<DB> for SlottedParentKeys<'_, C, Col, AFTER>
where
    DB: Dialect,
    Col: Column,
    C: SlottedCounterCacheOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let [key] = <<C::On as Slotted<Col>>::SlotKeyColumns as KeyColumns>::NAMES else {
            return Err(diesel::result::Error::QueryBuilderError(
                "a recount of every parent needs a parent key of one column".into(),
            ));
        };
        out.push_sql("SELECT ");
        out.push_identifier(key)?;
        out.push_sql(" FROM ");
        C::walk_parent_table(&self.table, out.reborrow())?;
        if let Some(after) = self.after {
            out.push_sql(" WHERE ");
            out.push_identifier(key)?;
            out.push_sql(" > ");
            C::bind_parent_key(after, &mut out)?;
        }
        out.push_sql(" ORDER BY ");
        out.push_identifier(key)?;
        // A constant, not a bind: the statement's text is its static id's.
        out.push_sql(" LIMIT ");
        out.push_sql(super::child::PAGE_SQL);
        Ok(())
    }
}

/// The statement-id marker of a [`SlottedParentKeys`].
pub(crate) struct SlottedParentKeysShape<const AFTER: bool>;

impl<C: CacheLink<Col>, Col: Column + 'static, const AFTER: bool> QueryId
    for SlottedParentKeys<'_, C, Col, AFTER>
{
    type QueryId = StatementId<C, Col, SlottedParentKeysShape<AFTER>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C: CacheLink<Col>, Col: Column, const AFTER: bool> Query
    for SlottedParentKeys<'_, C, Col, AFTER>
{
    type SqlType = <C::ForeignKey as Expression>::SqlType;
}

impl<C: CacheLink<Col>, Col: Column, Conn, const AFTER: bool> RunQueryDsl<Conn>
    for SlottedParentKeys<'_, C, Col, AFTER>
{
}

/// The statement-id marker of a [`ParentRow`].
pub(crate) struct ParentRowShape<const EXCLUSIVE: bool>;

impl<C: CacheLink<Col>, Col: Column + 'static, const EXCLUSIVE: bool> QueryId
    for ParentRow<'_, C, Col, EXCLUSIVE>
{
    type QueryId = StatementId<C, Col, ParentRowShape<EXCLUSIVE>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C: CacheLink<Col>, Col: Column, const EXCLUSIVE: bool> Query
    for ParentRow<'_, C, Col, EXCLUSIVE>
{
    type SqlType = BigInt;
}

impl<C: CacheLink<Col>, Col: Column, Conn, const EXCLUSIVE: bool> RunQueryDsl<Conn>
    for ParentRow<'_, C, Col, EXCLUSIVE>
{
}

/// `QueryId` (static, with a marker per shape) and `RunQueryDsl` of a slot statement.
macro_rules! slot_statement {
    ($($statement:ident => $shape:ident),*) => {$(
        /// The statement-id marker of the statement of the same name.
        pub(crate) struct $shape;

        impl<M: Slotted<Col>, Col: Column + 'static> QueryId for $statement<'_, M, Col> {
            type QueryId = StatementId<M, Col, $shape>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl<M: Slotted<Col>, Col: Column, Conn> RunQueryDsl<Conn> for $statement<'_, M, Col> {}
    )*};
}

slot_statement!(
    SlotAdd => SlotAddShape,
    SlotSum => SlotSumShape,
    SlotsLocked => SlotsLockedShape,
    SlotDelete => SlotDeleteShape
);

impl<M: Slotted<Col>, Col: Column> Query for SlotSum<'_, M, Col> {
    type SqlType = BigInt;
}

impl<M: Slotted<Col>, Col: Column> Query for SlotsLocked<'_, M, Col> {
    type SqlType = (Integer, BigInt);
}
