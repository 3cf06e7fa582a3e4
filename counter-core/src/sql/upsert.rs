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

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::{Column, RunQueryDsl};

use super::StatementId;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::key::KeyColumns;
use crate::value::AtomicValue;

/// `ON CONFLICT (pk) DO UPDATE … WHERE … RETURNING` (PostgreSQL, SQLite).
pub(crate) const UPSERT_ON_CONFLICT: u8 = 1;
/// `ON DUPLICATE KEY UPDATE c = IF(…) RETURNING` (MariaDB).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) const UPSERT_ON_DUPLICATE: u8 = 2;

/// The statement-id marker of an [`Upsert`]: the insert's own id, the style, and whether a
/// guard exists.
pub(crate) struct UpsertShape<I, const STYLE: u8, const GUARDED: bool>(I);

/// `insert` plus the clause that adds `amount` to an existing row whose value is at most
/// `guard`. Without `GUARDED`, no existing row can take `amount` (it only inserts) and
/// `guard` is ignored.
pub(crate) struct Upsert<
    'a,
    M: AtomicField<Col>,
    Col: Column,
    I,
    const STYLE: u8,
    const GUARDED: bool,
> {
    pub table: Col::Table,
    pub insert: &'a I,
    pub amount: M::Value,
    pub guard: M::Value,
}

impl<M, Col, I, DB, const STYLE: u8, const GUARDED: bool> QueryFragment<DB>
    for Upsert<'_, M, Col, I, STYLE, GUARDED>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    I: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let col = Col::NAME;
        self.insert.walk_ast(out.reborrow())?;
        if STYLE == UPSERT_ON_CONFLICT {
            // `t.c`: PostgreSQL finds a bare `c` ambiguous between the row and `excluded`.
            let existing = |out: &mut AstPass<'_, 'b, DB>| -> QueryResult<()> {
                M::walk_table(&self.table, out.reborrow())?;
                out.push_sql(".");
                out.push_identifier(col)
            };
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
            existing(&mut out)?;
            out.push_sql(" + ");
            M::bind_value(&self.amount, &mut out)?;
            out.push_sql(" WHERE ");
            if GUARDED {
                existing(&mut out)?;
                out.push_sql(" <= ");
                M::bind_value(&self.guard, &mut out)?;
            } else {
                out.push_sql("1 = 0");
            }
        } else {
            out.push_sql(" ON DUPLICATE KEY UPDATE ");
            out.push_identifier(col)?;
            out.push_sql(" = IF(");
            if GUARDED {
                out.push_identifier(col)?;
                out.push_sql(" <= ");
                M::bind_value(&self.guard, &mut out)?;
            } else {
                out.push_sql("1 = 0");
            }
            out.push_sql(", ");
            out.push_identifier(col)?;
            out.push_sql(" + ");
            M::bind_value(&self.amount, &mut out)?;
            out.push_sql(", (SELECT 0 UNION ALL SELECT 0))");
            return Ok(());
        }
        out.push_sql(" RETURNING ");
        out.push_identifier(col)
    }
}

impl<M, Col, I, const STYLE: u8, const GUARDED: bool> QueryId
    for Upsert<'_, M, Col, I, STYLE, GUARDED>
where
    M: AtomicField<Col>,
    Col: Column + 'static,
    I: QueryId,
{
    type QueryId = StatementId<M, Col, UpsertShape<I::QueryId, STYLE, GUARDED>>;
    // Static exactly when Diesel's insert of this row type is.
    const HAS_STATIC_QUERY_ID: bool = I::HAS_STATIC_QUERY_ID;
}

impl<M: AtomicField<Col>, Col: Column, I, const STYLE: u8, const GUARDED: bool> Query
    for Upsert<'_, M, Col, I, STYLE, GUARDED>
{
    type SqlType = <M::Value as AtomicValue>::SqlType;
}

impl<M: AtomicField<Col>, Col: Column, I, Conn, const STYLE: u8, const GUARDED: bool>
    RunQueryDsl<Conn> for Upsert<'_, M, Col, I, STYLE, GUARDED>
{
}
