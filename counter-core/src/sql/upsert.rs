//! Increment-or-insert in one statement: Diesel's own `INSERT` of the caller's row, followed by
//! the clause that adds to the row already there, under the field's upper bound.
//!
//! - PostgreSQL, SQLite: `INSERT … ON CONFLICT (pk) DO UPDATE SET c = t.c + $by WHERE t.c <=
//!   $guard RETURNING c`. No row back means the existing row refused.
//! - MySQL: first the guarded `UPDATE` with capture that `increment` runs (two round trips, no
//!   transaction), which settles every call on a row that exists and takes the amount. When it
//!   matches no row: `INSERT … ON DUPLICATE KEY UPDATE c = IF(c <= $guard, c + $by, (SELECT 0
//!   UNION ALL SELECT 0))`, then `SELECT c FROM t WHERE pk = ?`, in one transaction.
//!   `ON DUPLICATE KEY UPDATE` has no `WHERE`, and a refused update that leaves the row as it
//!   is reports the same affected-row count as an insert under `CLIENT_FOUND_ROWS`, so a
//!   refusal is made an error instead: the subquery that returns two rows fails with 1242
//!   whatever the `sql_mode`, the statement writes nothing, and only the refused branch
//!   evaluates it. The value is read back under the row lock the statement took: an insert
//!   does not set `LAST_INSERT_ID`, so the capture of the other operations cannot report an
//!   inserted value, and MariaDB's `INSERT … RETURNING` has no result metadata as a prepared
//!   statement ("No metadata exists", seen on 10.11).

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::{Column, RunQueryDsl};

use super::StatementId;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::key::KeyColumns;
use crate::value::AtomicValue;

/// `… ON CONFLICT (pk) DO UPDATE SET c = t.c + $by WHERE <guard> RETURNING c` (PostgreSQL,
/// SQLite).
pub(crate) struct OnConflict;

/// `… ON DUPLICATE KEY UPDATE c = IF(<guard>, c + $by, <error>)` (MySQL), read back apart.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) struct OnDuplicateKey;

/// An existing row takes the amount while its value is at most this.
pub(crate) struct Guarded<V>(pub V);

/// No existing row can take the amount (it would pass every bound): the statement only
/// inserts, and refuses a row that is there.
pub(crate) struct Unguarded;

/// The condition under which the row already there takes the amount.
pub(crate) trait UpsertGuard<M: AtomicField<Col>, Col: Column>: 'static {
    /// `<existing> <= ?`, or a condition no row meets.
    fn walk<'b, DB, F>(&'b self, existing: F, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>
    where
        DB: Backend,
        M: AtomicFieldOn<Col, DB>,
        F: Fn(&mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
}

impl<M: AtomicField<Col>, Col: Column> UpsertGuard<M, Col> for Guarded<M::Value> {
    fn walk<'b, DB, F>(&'b self, existing: F, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>
    where
        DB: Backend,
        M: AtomicFieldOn<Col, DB>,
        F: Fn(&mut AstPass<'_, 'b, DB>) -> QueryResult<()>,
    {
        existing(out)?;
        out.push_sql(" <= ");
        M::bind_value(&self.0, out)
    }
}

impl<M: AtomicField<Col>, Col: Column> UpsertGuard<M, Col> for Unguarded {
    fn walk<'b, DB, F>(&'b self, _: F, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>
    where
        DB: Backend,
        M: AtomicFieldOn<Col, DB>,
        F: Fn(&mut AstPass<'_, 'b, DB>) -> QueryResult<()>,
    {
        out.push_sql("1 = 0");
        Ok(())
    }
}

/// Diesel's `insert` of a row, plus the clause `C` that adds `amount` to the row already
/// there when guard `G` admits it.
pub(crate) struct Upsert<'a, M: AtomicField<Col>, Col: Column, I, C, G> {
    pub table: Col::Table,
    pub insert: &'a I,
    pub amount: M::Value,
    pub guard: G,
    pub clause: PhantomData<C>,
}

impl<'a, M: AtomicField<Col>, Col: Column, I, C, G> Upsert<'a, M, Col, I, C, G> {
    /// `insert`, adding `amount` to an existing row of `table` that `guard` admits.
    pub fn new(table: Col::Table, insert: &'a I, amount: M::Value, guard: G) -> Self {
        Upsert {
            table,
            insert,
            amount,
            guard,
            clause: PhantomData,
        }
    }
}

impl<M, Col, I, DB, G> QueryFragment<DB> for Upsert<'_, M, Col, I, OnConflict, G>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    I: QueryFragment<DB>,
    G: UpsertGuard<M, Col>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let col = Col::NAME;
        // `t.c`: PostgreSQL finds a bare `c` ambiguous between the row and `excluded`.
        let existing = |out: &mut AstPass<'_, 'b, DB>| -> QueryResult<()> {
            M::walk_table(&self.table, out.reborrow())?;
            out.push_sql(".");
            out.push_identifier(col)
        };
        self.insert.walk_ast(out.reborrow())?;
        out.push_sql(" ON CONFLICT (");
        for (i, name) in <M::KeyColumns as KeyColumns>::NAMES.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_identifier(name)?;
        }
        out.push_sql(") DO UPDATE SET ");
        out.push_identifier(col)?;
        out.push_sql(" = ");
        M::walk_round_open(&mut out);
        existing(&mut out)?;
        out.push_sql(" + ");
        M::bind_value(&self.amount, &mut out)?;
        M::walk_round_close(&mut out);
        M::walk_touch(&mut out)?;
        out.push_sql(" WHERE ");
        self.guard.walk(existing, &mut out)?;
        out.push_sql(" RETURNING ");
        out.push_identifier(col)
    }
}

impl<M, Col, I, DB, G> QueryFragment<DB> for Upsert<'_, M, Col, I, OnDuplicateKey, G>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    I: QueryFragment<DB>,
    G: UpsertGuard<M, Col>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let col = Col::NAME;
        self.insert.walk_ast(out.reborrow())?;
        out.push_sql(" ON DUPLICATE KEY UPDATE ");
        out.push_identifier(col)?;
        out.push_sql(" = IF(");
        self.guard.walk(
            |out: &mut AstPass<'_, 'b, DB>| out.push_identifier(col),
            &mut out,
        )?;
        out.push_sql(", ");
        out.push_identifier(col)?;
        out.push_sql(" + ");
        M::bind_value(&self.amount, &mut out)?;
        out.push_sql(", (SELECT 0 UNION ALL SELECT 0))");
        M::walk_touch(&mut out)
    }
}

/// The statement-id marker of an [`Upsert`]: the insert's own id, the clause and the guard.
pub(crate) struct UpsertShape<I, C, G>(I, C, G);

impl<M, Col, I, C, G> QueryId for Upsert<'_, M, Col, I, C, G>
where
    M: AtomicField<Col>,
    Col: Column + 'static,
    I: QueryId,
    C: 'static,
    G: 'static,
{
    type QueryId = StatementId<M, Col, UpsertShape<I::QueryId, C, G>>;
    // Static exactly when Diesel's insert of this row type is.
    const HAS_STATIC_QUERY_ID: bool = I::HAS_STATIC_QUERY_ID;
}

impl<M: AtomicField<Col>, Col: Column, I, C, G> Query for Upsert<'_, M, Col, I, C, G> {
    type SqlType = <M::Value as AtomicValue>::SqlType;
}

impl<M: AtomicField<Col>, Col: Column, I, Conn, C, G> RunQueryDsl<Conn>
    for Upsert<'_, M, Col, I, C, G>
{
}
