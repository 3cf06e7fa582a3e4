//! The statements of a several-column change ([`crate::change`]), one type per shape:
//!
//! - [`MultiUpdate`]: `UPDATE t SET c1 = c1 - ?, c2 = c2 + ? WHERE pk = ? AND c1 >= ? AND c2 <=
//!   ?`, answering `RETURNING c1, c2` ([`Returning`], PostgreSQL, SQLite) or, on MySQL
//!   ([`Captured`]), with each new value captured into a session variable, `c1 = (@__counter_0
//!   := c1 - ?)`;
//! - [`MultiCaptured`]: `SELECT @__counter_0, @__counter_1` on the same connection (MySQL).
//!   `LAST_INSERT_ID` holds one value; the variables hold one per column. They are only read
//!   after the `UPDATE` matched the row (`CLIENT_FOUND_ROWS`), so a stale value is never
//!   read. (MySQL 8 warns that assigning variables in expressions is deprecated; MariaDB does
//!   not.)
//! - [`MultiSelect`]: `SELECT c1, c2 FROM t WHERE pk = ? [lock clause]`, to tell a refusal
//!   from a race and for the locked fallback, and [`MultiWrite`]: `UPDATE t SET c1 = ?, c2 =
//!   ? WHERE pk = ?` under that lock.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::RunQueryDsl;

use super::delta::{Captured, Returning};
use super::lock::LockClause;
use super::StatementId;
use crate::backend::Dialect;
use crate::change::Changes;

/// The guarded `UPDATE` of every column, answering with `A` ([`Returning`] or [`Captured`]).
pub(crate) struct MultiUpdate<'a, M, Cs: Changes<M, DB>, DB: Backend, A> {
    table: Cs::Table,
    key: &'a Cs::Key,
    parts: &'a Cs::Parts,
    answer: PhantomData<fn() -> (M, A)>,
}

/// The values a [`MultiUpdate`] with [`Captured`] left in the session (MySQL).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) struct MultiCaptured<M, Cs, DB>(PhantomData<Types<M, Cs, DB>>);

/// A `'static`, `Send + Sync` stand-in for the three types, whatever they are.
type Types<M, Cs, DB> = fn() -> (M, Cs, DB);

/// The row's values, locked with clause `L`.
pub(crate) struct MultiSelect<'a, M, Cs: Changes<M, DB>, DB: Backend, L> {
    table: Cs::Table,
    key: &'a Cs::Key,
    lock: PhantomData<fn() -> (M, L)>,
}

/// Writes values computed under the lock.
pub(crate) struct MultiWrite<'a, M, Cs: Changes<M, DB>, DB: Backend> {
    table: Cs::Table,
    key: &'a Cs::Key,
    values: &'a Cs::Values,
    parts: &'a Cs::Parts,
    model: PhantomData<fn() -> M>,
}

impl<'a, M, Cs: Changes<M, DB>, DB: Backend, A> MultiUpdate<'a, M, Cs, DB, A> {
    /// The guarded update of `parts` on row `key`.
    pub fn new(key: &'a Cs::Key, parts: &'a Cs::Parts) -> Self {
        MultiUpdate {
            table: Cs::table(),
            key,
            parts,
            answer: PhantomData,
        }
    }
}

impl<M, Cs, DB> MultiCaptured<M, Cs, DB> {
    /// The read of the captured values.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub fn new() -> Self {
        MultiCaptured(PhantomData)
    }
}

impl<'a, M, Cs: Changes<M, DB>, DB: Backend, L> MultiSelect<'a, M, Cs, DB, L> {
    /// The read of row `key`.
    pub fn new(key: &'a Cs::Key) -> Self {
        MultiSelect {
            table: Cs::table(),
            key,
            lock: PhantomData,
        }
    }
}

impl<'a, M, Cs: Changes<M, DB>, DB: Backend> MultiWrite<'a, M, Cs, DB> {
    /// The write of `values`, the outcome of `parts`, to row `key`.
    pub fn new(key: &'a Cs::Key, values: &'a Cs::Values, parts: &'a Cs::Parts) -> Self {
        MultiWrite {
            table: Cs::table(),
            key,
            values,
            parts,
            model: PhantomData,
        }
    }
}

/// Whether a [`MultiUpdate`] captures (MySQL) or returns its values.
pub(crate) trait MultiAnswer: 'static {
    /// Assignments capture into `@__counter_<i>`.
    const CAPTURES: bool;
}

impl MultiAnswer for Returning {
    const CAPTURES: bool = false;
}

impl MultiAnswer for Captured {
    const CAPTURES: bool = true;
}

impl<M, Cs, DB, A> QueryFragment<DB> for MultiUpdate<'_, M, Cs, DB, A>
where
    DB: Backend,
    Cs: Changes<M, DB>,
    A: MultiAnswer,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        Cs::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" SET ");
        Cs::walk_set(self.parts, A::CAPTURES, &mut out)?;
        Cs::walk_touches(self.parts, &mut out)?;
        out.push_sql(" WHERE ");
        Cs::walk_key_eq(self.key, &mut out)?;
        Cs::walk_guards(self.parts, &mut out)?;
        if !A::CAPTURES {
            out.push_sql(" RETURNING ");
            Cs::walk_columns(false, &mut out)?;
        }
        Ok(())
    }
}

impl<M, Cs, DB> QueryFragment<DB> for MultiCaptured<M, Cs, DB>
where
    DB: Backend,
    Cs: Changes<M, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        Cs::walk_columns(true, &mut out)
    }
}

impl<M, Cs, DB, L> QueryFragment<DB> for MultiSelect<'_, M, Cs, DB, L>
where
    DB: Dialect,
    Cs: Changes<M, DB>,
    L: LockClause,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        Cs::walk_columns(false, &mut out)?;
        out.push_sql(" FROM ");
        Cs::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        Cs::walk_key_eq(self.key, &mut out)?;
        L::walk(&mut out)
    }
}

impl<M, Cs, DB> QueryFragment<DB> for MultiWrite<'_, M, Cs, DB>
where
    DB: Backend,
    Cs: Changes<M, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        Cs::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" SET ");
        Cs::walk_write(self.values, &mut out)?;
        Cs::walk_touches(self.parts, &mut out)?;
        out.push_sql(" WHERE ");
        Cs::walk_key_eq(self.key, &mut out)
    }
}

/// The statement-id markers of the shapes.
pub(crate) struct MultiUpdateShape<A>(A);
pub(crate) struct MultiCapturedShape;
pub(crate) struct MultiSelectShape<L>(L);
pub(crate) struct MultiWriteShape;

/// `QueryId` (per model, changes and shape), `Query` (the columns' values) and `RunQueryDsl` of
/// a shape. `static_id` says whether the type alone fixes the SQL: Diesel then caches the
/// prepared statement by type. It does not for [`MultiUpdate`] and [`MultiWrite`], which stamp
/// only the touched columns of fields whose amount is not 0. And one tuple type of changes is
/// `+`/`<=` or `-`/`>=` per column as the call says (`stock.increment(n)` and
/// `stock.decrement_if_at_least(n)` are both a `Change<stock, i32>`), so a static id let one
/// connection run the first direction's statement for the other (a sale that added stock). Its
/// statements are cached by their SQL text instead.
macro_rules! multi_statement {
    ($statement:ty, $shape:ty, [$($param:ident),*], static_id = $static_id:literal) => {
        impl<M: 'static, Cs, DB, $($param: 'static),*> QueryId for $statement
        where
            Cs: Changes<M, DB> + 'static,
            DB: Backend,
        {
            type QueryId = StatementId<M, Cs, $shape>;
            const HAS_STATIC_QUERY_ID: bool = $static_id;
        }

        impl<M, Cs: Changes<M, DB>, DB: Backend, $($param),*> Query for $statement {
            type SqlType = Cs::SqlTypes;
        }

        impl<M, Cs: Changes<M, DB>, DB: Backend, Conn, $($param),*> RunQueryDsl<Conn> for $statement {}
    };
}

multi_statement!(
    MultiUpdate<'_, M, Cs, DB, A>,
    MultiUpdateShape<A>,
    [A],
    static_id = false
);
multi_statement!(
    MultiSelect<'_, M, Cs, DB, L>,
    MultiSelectShape<L>,
    [L],
    static_id = true
);
multi_statement!(MultiCaptured<M, Cs, DB>, MultiCapturedShape, [], static_id = true);
// Not static: which columns it stamps depends on which amounts are 0.
multi_statement!(
    MultiWrite<'_, M, Cs, DB>,
    MultiWriteShape,
    [],
    static_id = false
);
