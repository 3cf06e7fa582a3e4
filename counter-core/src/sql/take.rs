//! `take_up_to` in one statement: take `min(n, c - floor)` and report how much was taken; and
//! its mirror `increment_up_to`, add `min(n, ceiling - c)` (the same shapes moving [`Up`]
//! instead of [`Down`]: `c <= ceiling - n`, `c + n`, `c < ceiling`, `__t.c - __old.c`). Two
//! shapes, one per way a backend can give back what it moved:
//!
//! - [`TakeFromLocked`] (PostgreSQL): `UPDATE t AS __t SET c = CASE .. END FROM (SELECT pk, c
//!   FROM t WHERE pk = $key FOR NO KEY UPDATE) AS __old WHERE __t.pk = __old.pk AND __t.c >
//!   $floor RETURNING __old.c - __t.c`. The locked subquery yields the latest committed value
//!   (it waits for and then re-reads a row another writer holds), and `RETURNING` can
//!   subtract the new value from it: the amount taken, in one round trip.
//! - [`TakeCaptured`] (MySQL): `UPDATE t SET c = CASE .. END + CAST(LAST_INSERT_ID(c ^ mask) &
//!   0 AS SIGNED) WHERE pk = ? AND c > ?`: captures the value before the change, from which
//!   the caller computes the amount taken; then `SELECT LAST_INSERT_ID()`.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::{Column, RunQueryDsl};

use std::marker::PhantomData;

use super::delta::Sign;
use super::StatementId;
use crate::field::{AtomicField, AtomicFieldOn};
#[cfg(feature = "postgres")]
use crate::key::KeyColumns;
use crate::plan::Take;
use crate::value::AtomicValue;

/// `CASE WHEN c >= $threshold THEN c - $n ELSE $floor END` (down; up: `<=`, `+`, the
/// ceiling), with `c` as `current` writes it.
fn walk_case<'b, M, Col, S, DB>(
    take: &'b Take<M::Value>,
    out: &mut AstPass<'_, 'b, DB>,
    current: impl Fn(&mut AstPass<'_, 'b, DB>) -> QueryResult<()>,
) -> QueryResult<()>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    S: Sign,
{
    out.push_sql("CASE WHEN ");
    current(out)?;
    out.push_sql(S::GUARD);
    M::bind_value(&take.threshold, out)?;
    out.push_sql(" THEN ");
    M::walk_round_open(out);
    current(out)?;
    out.push_sql(S::OP);
    M::bind_value(&take.n, out)?;
    M::walk_round_close(out);
    out.push_sql(" ELSE ");
    M::bind_value(&take.limit, out)?;
    out.push_sql(" END");
    Ok(())
}

/// `alias.name`, both quoted.
#[cfg(feature = "postgres")]
fn qualified<DB: Backend>(
    out: &mut AstPass<'_, '_, DB>,
    alias: &str,
    name: &str,
) -> QueryResult<()> {
    out.push_identifier(alias)?;
    out.push_sql(".");
    out.push_identifier(name)
}

/// The PostgreSQL shape, moving way `S`; see the module documentation.
#[cfg(feature = "postgres")]
pub(crate) struct TakeFromLocked<'a, M: AtomicField<Col>, Col: Column, S> {
    pub table: Col::Table,
    pub key: &'a M::Key,
    pub take: Take<M::Value>,
    pub sign: PhantomData<S>,
}

/// The MySQL shape, moving way `S`; see the module documentation.
#[cfg(feature = "mysql")]
pub(crate) struct TakeCaptured<'a, M: AtomicField<Col>, Col: Column, S> {
    pub table: Col::Table,
    pub key: &'a M::Key,
    pub take: Take<M::Value>,
    pub sign: PhantomData<S>,
}

#[cfg(feature = "postgres")]
impl<M, Col, S, DB> QueryFragment<DB> for TakeFromLocked<'_, M, Col, S>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    S: Sign,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let col = Col::NAME;
        let pk = <M::KeyColumns as KeyColumns>::NAMES;
        let (t, old) = ("__t", "__old");
        let current = |out: &mut AstPass<'_, 'b, DB>| qualified(out, t, col);
        out.push_sql("UPDATE ");
        M::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" AS ");
        out.push_identifier(t)?;
        out.push_sql(" SET ");
        out.push_identifier(col)?;
        out.push_sql(" = ");
        walk_case::<M, Col, S, DB>(&self.take, &mut out, current)?;
        M::walk_touch(&mut out)?;
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
            qualified(&mut out, old, name)?;
        }
        out.push_sql(" AND ");
        current(&mut out)?;
        out.push_sql(S::SHORT_OF);
        M::bind_value(&self.take.limit, &mut out)?;
        // What moved: the old value less the new one going down, the reverse going up.
        let (from, to) = if S::UP { (t, old) } else { (old, t) };
        out.push_sql(" RETURNING ");
        qualified(&mut out, from, col)?;
        out.push_sql(" - ");
        qualified(&mut out, to, col)
    }
}

#[cfg(feature = "mysql")]
impl<M, Col, S, DB> QueryFragment<DB> for TakeCaptured<'_, M, Col, S>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    S: Sign,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let col = Col::NAME;
        let current = |out: &mut AstPass<'_, 'b, DB>| out.push_identifier(col);
        out.push_sql("UPDATE ");
        M::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" SET ");
        out.push_identifier(col)?;
        out.push_sql(" = ");
        walk_case::<M, Col, S, DB>(&self.take, &mut out, current)?;
        // Captures the value before the change; see `DeltaUpdate`'s capture.
        out.push_sql(" + CAST(LAST_INSERT_ID(");
        M::walk_capture_open(&mut out);
        out.push_identifier(col)?;
        M::walk_capture_close(&mut out);
        out.push_sql(" ^ ");
        out.push_sql(super::CAPTURE_MASK);
        out.push_sql(") & 0 AS SIGNED)");
        M::walk_touch(&mut out)?;
        out.push_sql(" WHERE ");
        M::walk_key_eq(self.key, &mut out)?;
        out.push_sql(" AND ");
        current(&mut out)?;
        out.push_sql(S::SHORT_OF);
        M::bind_value(&self.take.limit, &mut out)
    }
}

/// `QueryId`, `Query` and `RunQueryDsl` of a take shape.
macro_rules! take_statement {
    ($statement:ident, $shape:ident) => {
        /// The statement-id marker of the statement of the same name.

        pub(crate) struct $shape<S>(S);

        impl<M: AtomicField<Col>, Col: Column + 'static, S: Sign> QueryId
            for $statement<'_, M, Col, S>
        {
            type QueryId = StatementId<M, Col, $shape<S>>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl<M: AtomicField<Col>, Col: Column, S> Query for $statement<'_, M, Col, S> {
            type SqlType = <M::Value as AtomicValue>::SqlType;
        }

        impl<M: AtomicField<Col>, Col: Column, Conn, S> RunQueryDsl<Conn>
            for $statement<'_, M, Col, S>
        {
        }
    };
}

#[cfg(feature = "postgres")]
take_statement!(TakeFromLocked, TakeFromLockedShape);
#[cfg(feature = "mysql")]
take_statement!(TakeCaptured, TakeCapturedShape);
