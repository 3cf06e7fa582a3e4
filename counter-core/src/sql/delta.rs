//! `UPDATE t SET c = c ± $amount WHERE pk = $key AND c <=|>= $guard`, with the new value
//! returned ([`Returning`]) or captured for a following `SELECT LAST_INSERT_ID()`
//! ([`Captured`]). Each direction and each answer is a marker type, so each shape has its own
//! static id and is prepared once.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::{Column, RunQueryDsl};

use super::StatementId;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::plan::Delta;
use crate::value::AtomicValue;

/// Which way a guarded statement moves the value.
pub(crate) trait Sign: 'static {
    /// ` + ` or ` - `.
    const OP: &'static str;
    /// The guard's comparison: ` <= ` (up: not past the top) or ` >= ` (down).
    const GUARD: &'static str;
    /// A value with room left before a limit in this direction: ` < ` (up) or ` > ` (down).
    const SHORT_OF: &'static str;
    /// Does the value grow this way?
    const UP: bool;
}

/// `c + amount WHERE c <= guard`.
pub(crate) struct Up;

/// `c - amount WHERE c >= guard`.
pub(crate) struct Down;

impl Sign for Up {
    const OP: &'static str = " + ";
    const GUARD: &'static str = " <= ";
    const SHORT_OF: &'static str = " < ";
    const UP: bool = true;
}

impl Sign for Down {
    const OP: &'static str = " - ";
    const GUARD: &'static str = " >= ";
    const SHORT_OF: &'static str = " > ";
    const UP: bool = false;
}

/// How a guarded `UPDATE` gives back the value it wrote.
pub(crate) trait Answer: 'static {
    /// Appended to the assignment `c = c ± ?`; nothing unless the answer says otherwise.
    fn walk_set<'b, M, Col, S, DB>(
        amount: &'b M::Value,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>
    where
        DB: Backend,
        Col: Column,
        M: AtomicFieldOn<Col, DB>,
        S: Sign,
    {
        let _ = (amount, out);
        Ok(())
    }
    /// Appended after the `WHERE` clause; nothing unless the answer says otherwise.
    fn walk_end<Col: Column, DB: Backend>(out: &mut AstPass<'_, '_, DB>) -> QueryResult<()> {
        let _ = out;
        Ok(())
    }
}

/// `… RETURNING c` (PostgreSQL, SQLite).
pub(crate) struct Returning;

/// `c = c + ? + CAST(LAST_INSERT_ID((c + ?) ^ mask) & 0 AS SIGNED)` (MySQL): adds a signed
/// zero and captures the new value, in the one assignment (no reliance on assignment order,
/// so it also holds under MariaDB's SIMULTANEOUS_ASSIGNMENT); see `CAPTURE_MASK`.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) struct Captured;

/// No answer: the caller counts the rows the statement matched (MySQL, inside a transaction
/// that reads the new value later, under the row lock it holds).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) struct Unanswered;

impl Answer for Unanswered {}

impl Answer for Returning {
    fn walk_end<Col: Column, DB: Backend>(out: &mut AstPass<'_, '_, DB>) -> QueryResult<()> {
        out.push_sql(" RETURNING ");
        out.push_identifier(Col::NAME)
    }
}

impl Answer for Captured {
    fn walk_set<'b, M, Col, S, DB>(
        amount: &'b M::Value,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>
    where
        DB: Backend,
        Col: Column,
        M: AtomicFieldOn<Col, DB>,
        S: Sign,
    {
        out.push_sql(" + CAST(LAST_INSERT_ID(");
        M::walk_capture_open(out);
        out.push_sql("(");
        out.push_identifier(Col::NAME)?;
        out.push_sql(S::OP);
        M::bind_value(amount, out)?;
        out.push_sql(")");
        M::walk_capture_close(out);
        out.push_sql(" ^ ");
        out.push_sql(super::CAPTURE_MASK);
        out.push_sql(") & 0 AS SIGNED)");
        Ok(())
    }
}

/// A guarded change of one column of one row, moving it way `S`, answering with `A`.
pub(crate) struct DeltaUpdate<'a, M: AtomicField<Col>, Col: Column, S, A> {
    pub table: Col::Table,
    pub key: &'a M::Key,
    pub amount: M::Value,
    pub guard: M::Value,
    pub shape: PhantomData<(S, A)>,
}

impl<'a, M: AtomicField<Col>, Col: Column, S, A> DeltaUpdate<'a, M, Col, S, A> {
    /// The statement of `delta` on row `key` of `table`; `S` must be `delta`'s direction.
    pub fn new(table: Col::Table, key: &'a M::Key, delta: Delta<M::Value>) -> Self {
        DeltaUpdate {
            table,
            key,
            amount: delta.amount,
            guard: delta.guard,
            shape: PhantomData,
        }
    }
}

/// The statement-id marker of a [`DeltaUpdate`] shape.
pub(crate) struct DeltaShape<S, A>(S, A);

impl<M, Col, DB, S, A> QueryFragment<DB> for DeltaUpdate<'_, M, Col, S, A>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    S: Sign,
    A: Answer,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let col = Col::NAME;
        out.push_sql("UPDATE ");
        M::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" SET ");
        out.push_identifier(col)?;
        out.push_sql(" = ");
        M::walk_round_open(&mut out);
        out.push_identifier(col)?;
        out.push_sql(S::OP);
        M::bind_value(&self.amount, &mut out)?;
        M::walk_round_close(&mut out);
        A::walk_set::<M, Col, S, DB>(&self.amount, &mut out)?;
        M::walk_touch(&mut out)?;
        out.push_sql(" WHERE ");
        M::walk_key_eq(self.key, &mut out)?;
        out.push_sql(" AND ");
        out.push_identifier(col)?;
        out.push_sql(S::GUARD);
        M::bind_value(&self.guard, &mut out)?;
        A::walk_end::<Col, DB>(&mut out)
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static, S: Sign, A: Answer> QueryId
    for DeltaUpdate<'_, M, Col, S, A>
{
    type QueryId = StatementId<M, Col, DeltaShape<S, A>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M: AtomicField<Col>, Col: Column, S, A> Query for DeltaUpdate<'_, M, Col, S, A> {
    type SqlType = <M::Value as AtomicValue>::SqlType;
}

impl<M: AtomicField<Col>, Col: Column, Conn, S, A> RunQueryDsl<Conn>
    for DeltaUpdate<'_, M, Col, S, A>
{
}
