//! `take_up_to` in one statement: take `min(n, c - floor)` and report how much was taken.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::{Column, RunQueryDsl};

use super::StatementId;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::key::KeyColumns;
use crate::plan::Take;
use crate::value::AtomicValue;

/// PostgreSQL: `UPDATE t AS __t SET c = CASE .. END FROM (SELECT pk, c FROM t WHERE pk = $key
/// FOR NO KEY UPDATE) AS __old WHERE __t.pk = __old.pk AND __t.c > $floor
/// RETURNING __old.c - __t.c`. The locked subquery yields the latest committed value (it waits
/// for and then re-reads a row another writer holds), and `RETURNING` can subtract the new
/// value from it: the amount taken, in one round trip.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const TAKE_FROM_LOCKED: u8 = 1;
/// MySQL: `UPDATE t SET c = CASE .. END + CAST(LAST_INSERT_ID(c ^ mask) & 0 AS SIGNED)
/// WHERE pk = ? AND c > ?`: captures the value before the change, from which the caller
/// computes the amount taken; then `SELECT LAST_INSERT_ID()`.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) const TAKE_CAPTURE: u8 = 2;

/// The statement-id marker of a [`TakeUpdate`] shape.
pub(crate) struct TakeShape<const STYLE: u8>;

pub(crate) struct TakeUpdate<'a, M: AtomicField<Col>, Col: Column, const STYLE: u8> {
    pub table: Col::Table,
    pub key: &'a M::Key,
    pub take: Take<M::Value>,
}

impl<M, Col, DB, const STYLE: u8> QueryFragment<DB> for TakeUpdate<'_, M, Col, STYLE>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let col = Col::NAME;
        let pk = <M::KeyColumns as KeyColumns>::NAMES;
        let qualified = |out: &mut AstPass<'_, 'b, DB>, alias: &str, name: &str| {
            out.push_identifier(alias)?;
            out.push_sql(".");
            out.push_identifier(name)
        };
        let t = if STYLE == TAKE_FROM_LOCKED { "__t" } else { "" };
        // `c` as the CASE sees it: the alias-qualified column on PostgreSQL, plain on MySQL.
        let current = |out: &mut AstPass<'_, 'b, DB>| {
            if t.is_empty() {
                out.push_identifier(col)
            } else {
                qualified(out, t, col)
            }
        };
        out.push_sql("UPDATE ");
        M::walk_table(&self.table, out.reborrow())?;
        if STYLE == TAKE_FROM_LOCKED {
            out.push_sql(" AS ");
            out.push_identifier(t)?;
        }
        out.push_sql(" SET ");
        out.push_identifier(col)?;
        out.push_sql(" = ");
        out.push_sql("CASE WHEN ");
        current(&mut out)?;
        out.push_sql(" >= ");
        M::bind_value(&self.take.threshold, &mut out)?;
        out.push_sql(" THEN ");
        current(&mut out)?;
        out.push_sql(" - ");
        M::bind_value(&self.take.n, &mut out)?;
        out.push_sql(" ELSE ");
        M::bind_value(&self.take.floor, &mut out)?;
        out.push_sql(" END");
        if STYLE == TAKE_CAPTURE {
            // Captures the value before the change; see `DeltaUpdate`'s capture.
            out.push_sql(" + CAST(LAST_INSERT_ID(");
            out.push_identifier(col)?;
            out.push_sql(" ^ ");
            out.push_sql(super::CAPTURE_MASK);
            out.push_sql(") & 0 AS SIGNED)");
        }
        if STYLE == TAKE_FROM_LOCKED {
            out.push_sql(" FROM (SELECT ");
            for name in pk {
                out.push_identifier(name)?;
                out.push_sql(", ");
            }
            out.push_identifier(col)?;
            out.push_sql(" FROM ");
            M::walk_table(&self.table, out.reborrow())?;
            out.push_sql(" WHERE ");
            M::walk_key_eq(self.key, &mut out)?;
            out.push_sql(" FOR NO KEY UPDATE) AS \"__old\" WHERE ");
            for (i, name) in pk.iter().enumerate() {
                if i > 0 {
                    out.push_sql(" AND ");
                }
                qualified(&mut out, t, name)?;
                out.push_sql(" = ");
                qualified(&mut out, "__old", name)?;
            }
        } else {
            out.push_sql(" WHERE ");
            M::walk_key_eq(self.key, &mut out)?;
        }
        out.push_sql(" AND ");
        current(&mut out)?;
        out.push_sql(" > ");
        M::bind_value(&self.take.floor, &mut out)?;
        if STYLE == TAKE_FROM_LOCKED {
            out.push_sql(" RETURNING ");
            qualified(&mut out, "__old", col)?;
            out.push_sql(" - ");
            qualified(&mut out, t, col)?;
        }
        Ok(())
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static, const STYLE: u8> QueryId
    for TakeUpdate<'_, M, Col, STYLE>
{
    type QueryId = StatementId<M, Col, TakeShape<STYLE>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M: AtomicField<Col>, Col: Column, const STYLE: u8> Query for TakeUpdate<'_, M, Col, STYLE> {
    type SqlType = <M::Value as AtomicValue>::SqlType;
}

impl<M: AtomicField<Col>, Col: Column, Conn, const STYLE: u8> RunQueryDsl<Conn>
    for TakeUpdate<'_, M, Col, STYLE>
{
}
