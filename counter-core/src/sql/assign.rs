//! `UPDATE t SET c = $value WHERE pk = $key AND c <cmp> $than`: the changes that set a value
//! rather than add to it, written only where the row's value calls for it:
//!
//! - [`Highest`] (`set_max`): `c = $v … AND c < $v`, a high-water mark;
//! - [`Lowest`] (`set_min`): `c = $v … AND c > $v`, a low-water mark;
//! - [`Swap`] (`compare_and_set`): `c = $new … AND c = $expected`.
//!
//! A matched row now holds `$value` exactly, so the answer is the count of rows matched, on
//! every backend: no `RETURNING` and, on MySQL, no capture in `LAST_INSERT_ID` (Diesel
//! connects with `CLIENT_FOUND_ROWS`: rows matched, also when `$value` was already there). A
//! row the condition leaves alone is not written at all, so a bid below the mark takes no row
//! lock and makes no row version. Each rule is a marker type, so each shape has its own
//! static id.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::Column;

use super::StatementId;
use crate::field::{AtomicField, AtomicFieldOn};

/// Which rows an [`Assign`] writes: those whose value compares so with `$than`.
pub(crate) trait Rule: 'static {
    /// ` < `, ` > ` or ` = `.
    const CMP: &'static str;
}

/// `c = $v WHERE … AND c < $v`: the row keeps the higher of the two.
pub(crate) struct Highest;

/// `c = $v WHERE … AND c > $v`: the row keeps the lower of the two.
pub(crate) struct Lowest;

/// `c = $new WHERE … AND c = $expected`: written only over the value the caller read.
pub(crate) struct Swap;

impl Rule for Highest {
    const CMP: &'static str = " < ";
}

impl Rule for Lowest {
    const CMP: &'static str = " > ";
}

impl Rule for Swap {
    const CMP: &'static str = " = ";
}

/// One row's column set to `value` by rule `Ru`, where it compares so with `than`.
pub(crate) struct Assign<'a, M: AtomicField<Col>, Col: Column, Ru> {
    pub table: Col::Table,
    pub key: &'a M::Key,
    pub value: M::Value,
    pub than: M::Value,
    pub rule: PhantomData<Ru>,
}

impl<'a, M: AtomicField<Col>, Col: Column, Ru> Assign<'a, M, Col, Ru> {
    /// Rule `Ru` on row `key` of `table`.
    pub fn new(table: Col::Table, key: &'a M::Key, value: M::Value, than: M::Value) -> Self {
        Assign {
            table,
            key,
            value,
            than,
            rule: PhantomData,
        }
    }
}

/// The statement-id marker of an [`Assign`] shape.
pub(crate) struct AssignShape<Ru>(Ru);

impl<M, Col, DB, Ru> QueryFragment<DB> for Assign<'_, M, Col, Ru>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    Ru: Rule,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let col = Col::NAME;
        out.push_sql("UPDATE ");
        M::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" SET ");
        out.push_identifier(col)?;
        out.push_sql(" = ");
        M::bind_value(&self.value, &mut out)?;
        M::walk_touch(&mut out)?;
        out.push_sql(" WHERE ");
        M::walk_key_eq(self.key, &mut out)?;
        out.push_sql(" AND ");
        out.push_identifier(col)?;
        out.push_sql(Ru::CMP);
        M::bind_value(&self.than, &mut out)
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static, Ru: Rule> QueryId for Assign<'_, M, Col, Ru> {
    type QueryId = StatementId<M, Col, AssignShape<Ru>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}
