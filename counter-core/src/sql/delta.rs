//! `UPDATE t SET c = c ± $amount WHERE pk = $key AND c <=|>= $guard`, returning the new value.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::{Column, RunQueryDsl};

use super::StatementId;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::value::AtomicValue;

/// Returns the new value with `RETURNING` (PostgreSQL, SQLite).
pub(crate) const DELTA_RETURNING: u8 = 1;
/// Captures the new value with `LAST_INSERT_ID` for a following `SELECT LAST_INSERT_ID()`
/// (MySQL): `SET c = c + ? + CAST(LAST_INSERT_ID((c + ?) ^ mask) & 0 AS SIGNED)`; see
/// `CAPTURE_MASK`.
pub(crate) const DELTA_CAPTURE: u8 = 2;

/// A guarded change of one column of one row. `STYLE` is one of the constants above; the
/// direction is part of the statement id so each shape is prepared once.
pub(crate) struct DeltaUpdate<'a, M: AtomicField<Col>, Col: Column, const STYLE: u8, const UP: bool>
{
    pub table: Col::Table,
    pub key: &'a M::Key,
    pub amount: M::Value,
    pub guard: M::Value,
}

/// The statement-id marker of a [`DeltaUpdate`] shape.
pub(crate) struct DeltaShape<const STYLE: u8, const UP: bool>;

impl<M, Col, DB, const STYLE: u8, const UP: bool> QueryFragment<DB>
    for DeltaUpdate<'_, M, Col, STYLE, UP>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let col = Col::NAME;
        out.push_sql("UPDATE ");
        M::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" SET ");
        out.push_identifier(col)?;
        out.push_sql(" = ");
        out.push_identifier(col)?;
        out.push_sql(if UP { " + " } else { " - " });
        M::bind_value(&self.amount, &mut out)?;
        if STYLE == DELTA_CAPTURE {
            // `+ CAST(LAST_INSERT_ID(new ^ mask) & 0 AS SIGNED)`: adds a signed zero and
            // captures the new value, in the one assignment (no reliance on assignment order,
            // so it also holds under MariaDB's SIMULTANEOUS_ASSIGNMENT).
            out.push_sql(" + CAST(LAST_INSERT_ID((");
            out.push_identifier(col)?;
            out.push_sql(if UP { " + " } else { " - " });
            M::bind_value(&self.amount, &mut out)?;
            out.push_sql(") ^ ");
            out.push_sql(super::CAPTURE_MASK);
            out.push_sql(") & 0 AS SIGNED)");
        }
        out.push_sql(" WHERE ");
        M::walk_key_eq(self.key, &mut out)?;
        out.push_sql(" AND ");
        out.push_identifier(col)?;
        out.push_sql(if UP { " <= " } else { " >= " });
        M::bind_value(&self.guard, &mut out)?;
        if STYLE == DELTA_RETURNING {
            out.push_sql(" RETURNING ");
            out.push_identifier(col)?;
        }
        Ok(())
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static, const STYLE: u8, const UP: bool> QueryId
    for DeltaUpdate<'_, M, Col, STYLE, UP>
{
    type QueryId = StatementId<M, Col, DeltaShape<STYLE, UP>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M: AtomicField<Col>, Col: Column, const STYLE: u8, const UP: bool> Query
    for DeltaUpdate<'_, M, Col, STYLE, UP>
{
    type SqlType = <M::Value as AtomicValue>::SqlType;
}

impl<M: AtomicField<Col>, Col: Column, Conn, const STYLE: u8, const UP: bool> RunQueryDsl<Conn>
    for DeltaUpdate<'_, M, Col, STYLE, UP>
{
}
