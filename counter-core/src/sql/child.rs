//! The statements of a counter cache ([`crate::CounterCached`]): a child row inserted, deleted
//! or counted, alone or with its parent's change.
//!
//! - [`InsertChild`]: `INSERT INTO child (cols) VALUES (?, …) [RETURNING key]`.
//! - [`InsertCounted`] (PostgreSQL): the parent's guarded `UPDATE … RETURNING` as a CTE
//!   feeding `INSERT … SELECT … FROM` it, so a refused guard inserts nothing; one statement.
//! - [`DeleteChild`]: `DELETE FROM child WHERE key = ? RETURNING fk, amount`, and for MySQL,
//!   which has no `RETURNING`, [`LinkOf`] (the same two values, read under the row lock)
//!   before it.
//! - [`UpdateChild`]: `UPDATE child SET "a" = ?, … WHERE key = ?`, after [`LinkOf`] locked
//!   the row and read its old link.
//! - [`ChildKeyBack`] (MySQL): the key the insert generated, `SELECT key FROM child WHERE
//!   key = LAST_INSERT_ID()`.
//! - [`Aggregate`]: `SELECT COUNT(*)` or `SUM(col)` of one parent's children, for a recount.
//! - [`ParentKeys`]: one page of parent keys in key order, for a recount of every parent.

use std::marker::PhantomData;

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::BigInt;
use diesel::{Column, Expression, RunQueryDsl};

use super::delta::{DeltaUpdate, Returning, Sign};
use super::lock::{uncached_multi_row_lock, LockClause};
use super::StatementId;
use crate::backend::Dialect;
use crate::field::{
    AtomicField, AtomicFieldOn, CacheAmount, CacheLink, ChildLinkOn, ChildRow, ChildRowOn,
    CounterCache, CounterCacheOn, ParentKey, ParentValue,
};
use crate::key::KeyColumns;
use crate::plan::Delta;
use crate::value::AtomicValue;

/// The statement-id marker of a counter cache's statement `Shape`, for child `C` and parent
/// column `PCol`.
pub(crate) type CacheId<C, PCol, Shape> = StatementId<C, PCol, Shape>;

/// Writes `"a", "b", …`: the columns a child row sets.
fn walk_columns<C: ChildRow, DB: Dialect>(out: &mut AstPass<'_, '_, DB>) -> QueryResult<()> {
    for (i, name) in C::COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push_sql(", ");
        }
        out.push_identifier(name)?;
    }
    Ok(())
}

/// Writes `?, ?, …`: the child's value of each of its columns.
fn walk_values<'b, C, DB>(child: &'b C, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>
where
    DB: Dialect,
    C: ChildRowOn<DB>,
{
    for i in 0..C::COLUMNS.len() {
        if i > 0 {
            out.push_sql(", ");
        }
        child.walk_value(i, out)?;
    }
    Ok(())
}

/// Writes `"a" = ?, "b" = ?, …`: the child's columns set to its values, all but the key
/// column (the row keeps the key it is found by).
fn walk_assignments<'b, C, DB>(child: &'b C, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>
where
    DB: Dialect,
    C: ChildRowOn<DB>,
{
    let mut first = true;
    for (i, name) in C::COLUMNS.iter().enumerate() {
        if *name == C::KeyColumn::NAME {
            continue;
        }
        if !first {
            out.push_sql(", ");
        }
        first = false;
        out.push_identifier(name)?;
        out.push_sql(" = ");
        child.walk_value(i, out)?;
    }
    if first {
        return Err(diesel::result::Error::QueryBuilderError(
            "a counted update needs a column besides the key".into(),
        ));
    }
    Ok(())
}

/// Writes `CAST(<amount> AS BIGINT)`: the child's summed column, or `1` for a count; with a
/// `WHEN` column, `CASE WHEN "when" THEN <amount> ELSE 0 END` (a `NULL` does not count).
fn walk_amount<C, PCol, DB>(out: &mut AstPass<'_, '_, DB>) -> QueryResult<()>
where
    DB: Dialect,
    PCol: Column,
    C: CacheLink<PCol>,
{
    out.push_sql("CAST(");
    if let Some(when) = C::WHEN {
        out.push_sql("CASE WHEN ");
        out.push_identifier(when)?;
        out.push_sql(" THEN ");
    }
    match <C::Amount as CacheAmount>::COLUMN {
        Some(column) => out.push_identifier(column)?,
        None => out.push_sql("1"),
    }
    if C::WHEN.is_some() {
        out.push_sql(" ELSE 0 END");
    }
    out.push_sql(" AS ");
    out.push_sql(DB::BIGINT);
    out.push_sql(")");
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// Whether an [`InsertChild`] answers the key it inserted (`RETURNING key`).
pub(crate) trait KeyAnswer: 'static {
    const RETURNING: bool;
}

/// `… RETURNING key` (PostgreSQL, SQLite).
pub(crate) struct ReturnKey;

/// No answer (MySQL: [`ChildKeyBack`] reads it, or the struct carries it; a delete whose
/// links were read first).
pub(crate) struct NoAnswer;

impl KeyAnswer for ReturnKey {
    const RETURNING: bool = true;
}

impl KeyAnswer for NoAnswer {
    const RETURNING: bool = false;
}

/// The statement-id marker of an [`InsertChild`].
pub(crate) struct InsertShape<A>(A);

/// `INSERT INTO child (cols) VALUES (?, …)`, answering its key with `A`.
pub(crate) struct InsertChild<'a, C: ChildRow, PCol, A> {
    table: C::Table,
    child: &'a C,
    shape: PhantomData<fn() -> (PCol, A)>,
}

impl<'a, C: ChildRow, PCol, A> InsertChild<'a, C, PCol, A> {
    pub fn new(child: &'a C) -> Self {
        InsertChild {
            table: C::Table::default(),
            child,
            shape: PhantomData,
        }
    }
}

impl<C, PCol, DB, A> QueryFragment<DB> for InsertChild<'_, C, PCol, A>
where
    DB: Dialect,
    PCol: Column,
    C: ChildLinkOn<PCol, DB>,
    A: KeyAnswer,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("INSERT INTO ");
        C::walk_child_table(&self.table, out.reborrow())?;
        out.push_sql(" (");
        walk_columns::<C, DB>(&mut out)?;
        out.push_sql(") VALUES (");
        walk_values(self.child, &mut out)?;
        out.push_sql(")");
        if A::RETURNING {
            out.push_sql(" RETURNING ");
            out.push_identifier(C::KeyColumn::NAME)?;
        }
        Ok(())
    }
}

impl<C: ChildRow, PCol: 'static, A: 'static> QueryId for InsertChild<'_, C, PCol, A> {
    type QueryId = CacheId<C, PCol, InsertShape<A>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C: ChildRow, PCol, A> Query for InsertChild<'_, C, PCol, A> {
    type SqlType = <C::KeyColumn as Expression>::SqlType;
}

impl<C: ChildRow, PCol, A, Conn> RunQueryDsl<Conn> for InsertChild<'_, C, PCol, A> {}

// ---------------------------------------------------------------------------------------------

/// The statement-id marker of an [`InsertCounted`] moving the parent way `S`.
pub(crate) struct InsertCountedShape<S>(S);

/// The parent's guarded change and the child's insert in one statement (PostgreSQL):
///
/// ```sql
/// WITH "__p" AS (UPDATE parent SET c = c ± $1 WHERE pk = $2 AND c >= $3 RETURNING c),
///      "__i" AS (INSERT INTO child (cols) SELECT $4, … FROM "__p" RETURNING key)
/// SELECT "__i".key, "__p".c FROM "__i", "__p"
/// ```
///
/// No row answers when the parent is missing or its guard refused, and then no child row was
/// inserted: the insert selects from the parent's answer. The `UPDATE` takes the parent's row
/// lock before the insert runs (its rows feed the insert), and re-checks its guard against the
/// latest version after a wait, as a lone `UPDATE` does.
pub(crate) struct InsertCounted<'a, C, PCol, DB, S>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column,
    DB: Dialect,
{
    parent: DeltaUpdate<'a, C::On, PCol, S, Returning>,
    table: C::Table,
    child: &'a C,
}

impl<'a, C, PCol, DB, S> InsertCounted<'a, C, PCol, DB, S>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column,
    DB: Dialect,
{
    /// `child`'s insert with `delta` on its parent `key`; `S` must be `delta`'s direction.
    pub fn new(
        child: &'a C,
        key: &'a ParentKey<C, PCol>,
        delta: Delta<ParentValue<C, PCol>>,
    ) -> Self {
        InsertCounted {
            parent: DeltaUpdate::new(<C::On as AtomicFieldOn<PCol, DB>>::table(), key, delta),
            table: C::Table::default(),
            child,
        }
    }
}

impl<C, PCol, DB, S> QueryFragment<DB> for InsertCounted<'_, C, PCol, DB, S>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column,
    DB: Dialect,
    S: Sign,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let key = C::KeyColumn::NAME;
        out.push_sql("WITH \"__p\" AS (");
        self.parent.walk_ast(out.reborrow())?;
        out.push_sql("), \"__i\" AS (INSERT INTO ");
        C::walk_child_table(&self.table, out.reborrow())?;
        out.push_sql(" (");
        walk_columns::<C, DB>(&mut out)?;
        out.push_sql(") SELECT ");
        walk_values(self.child, &mut out)?;
        out.push_sql(" FROM \"__p\" RETURNING ");
        out.push_identifier(key)?;
        out.push_sql(") SELECT \"__i\".");
        out.push_identifier(key)?;
        out.push_sql(", \"__p\".");
        out.push_identifier(PCol::NAME)?;
        out.push_sql(" FROM \"__i\", \"__p\"");
        Ok(())
    }
}

impl<C, PCol, DB, S> QueryId for InsertCounted<'_, C, PCol, DB, S>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column + 'static,
    DB: Dialect,
    S: 'static,
{
    type QueryId = CacheId<C, PCol, InsertCountedShape<S>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C, PCol, DB, S> Query for InsertCounted<'_, C, PCol, DB, S>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column,
    DB: Dialect,
{
    type SqlType = (
        <C::KeyColumn as Expression>::SqlType,
        <ParentValue<C, PCol> as AtomicValue>::SqlType,
    );
}

impl<C, PCol, DB, S, Conn> RunQueryDsl<Conn> for InsertCounted<'_, C, PCol, DB, S>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column,
    DB: Dialect,
{
}

// ---------------------------------------------------------------------------------------------

/// The statement-id marker of a [`DeleteChild`].
pub(crate) struct DeleteShape<A>(A);

/// `DELETE FROM child WHERE key = ?`, with `RETURNING fk, CAST(amount AS BIGINT)` when `A`
/// answers ([`ReturnKey`]): the row's link to its parent, read by the delete itself, so a
/// second concurrent delete of the row (which waits, then finds nothing) answers nothing.
pub(crate) struct DeleteChild<'a, C: ChildRow, PCol, A> {
    table: C::Table,
    key: &'a C::Key,
    shape: PhantomData<fn() -> (PCol, A)>,
}

impl<'a, C: ChildRow, PCol, A> DeleteChild<'a, C, PCol, A> {
    pub fn new(key: &'a C::Key) -> Self {
        DeleteChild {
            table: C::Table::default(),
            key,
            shape: PhantomData,
        }
    }
}

impl<C, PCol, DB, A> QueryFragment<DB> for DeleteChild<'_, C, PCol, A>
where
    DB: Dialect,
    PCol: Column,
    C: ChildLinkOn<PCol, DB>,
    A: KeyAnswer,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("DELETE FROM ");
        C::walk_child_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        C::walk_child_key_eq(self.key, &mut out)?;
        if A::RETURNING {
            out.push_sql(" RETURNING ");
            out.push_identifier(C::ForeignKey::NAME)?;
            out.push_sql(", ");
            walk_amount::<C, PCol, DB>(&mut out)?;
        }
        Ok(())
    }
}

impl<C: ChildRow, PCol: 'static, A: 'static> QueryId for DeleteChild<'_, C, PCol, A> {
    type QueryId = CacheId<C, PCol, DeleteShape<A>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C: CacheLink<PCol>, PCol: Column, A> Query for DeleteChild<'_, C, PCol, A> {
    type SqlType = (<C::ForeignKey as Expression>::SqlType, BigInt);
}

impl<C: ChildRow, PCol, A, Conn> RunQueryDsl<Conn> for DeleteChild<'_, C, PCol, A> {}

// ---------------------------------------------------------------------------------------------

/// The statement-id marker of a [`LinkOf`].
pub(crate) struct LinkShape<L>(L);

/// `SELECT fk, CAST(amount AS BIGINT) FROM child WHERE key = ?` with lock clause `L`: a child
/// row's link to its parent, read under the row lock before a counted update (and before a
/// delete on MySQL, which has no `RETURNING`).
pub(crate) struct LinkOf<'a, C: ChildRow, PCol, L> {
    table: C::Table,
    key: &'a C::Key,
    shape: PhantomData<fn() -> (PCol, L)>,
}

impl<'a, C: ChildRow, PCol, L> LinkOf<'a, C, PCol, L> {
    pub fn new(key: &'a C::Key) -> Self {
        LinkOf {
            table: C::Table::default(),
            key,
            shape: PhantomData,
        }
    }
}

impl<C, PCol, DB, L> QueryFragment<DB> for LinkOf<'_, C, PCol, L>
where
    DB: Dialect,
    PCol: Column,
    C: ChildLinkOn<PCol, DB>,
    L: LockClause,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        out.push_identifier(C::ForeignKey::NAME)?;
        out.push_sql(", ");
        walk_amount::<C, PCol, DB>(&mut out)?;
        out.push_sql(" FROM ");
        C::walk_child_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        C::walk_child_key_eq(self.key, &mut out)?;
        L::walk(&mut out)
    }
}

impl<C: ChildRow, PCol: 'static, L: 'static> QueryId for LinkOf<'_, C, PCol, L> {
    type QueryId = CacheId<C, PCol, LinkShape<L>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C: CacheLink<PCol>, PCol: Column, L> Query for LinkOf<'_, C, PCol, L> {
    type SqlType = (<C::ForeignKey as Expression>::SqlType, BigInt);
}

impl<C: ChildRow, PCol, L, Conn> RunQueryDsl<Conn> for LinkOf<'_, C, PCol, L> {}

// ---------------------------------------------------------------------------------------------

/// The statement-id marker of an [`UpdateChild`].
pub(crate) struct UpdateShape;

/// `UPDATE child SET "a" = ?, … WHERE key = ?`: a child row set to a struct's values (its
/// key column left as it is), after [`LinkOf`] read and locked its old link.
pub(crate) struct UpdateChild<'a, C: ChildRow, PCol> {
    table: C::Table,
    key: &'a C::Key,
    child: &'a C,
    shape: PhantomData<fn() -> PCol>,
}

impl<'a, C: ChildRow, PCol> UpdateChild<'a, C, PCol> {
    pub fn new(key: &'a C::Key, child: &'a C) -> Self {
        UpdateChild {
            table: C::Table::default(),
            key,
            child,
            shape: PhantomData,
        }
    }
}

impl<C, PCol, DB> QueryFragment<DB> for UpdateChild<'_, C, PCol>
where
    DB: Dialect,
    PCol: Column,
    C: ChildLinkOn<PCol, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        C::walk_child_table(&self.table, out.reborrow())?;
        out.push_sql(" SET ");
        walk_assignments(self.child, &mut out)?;
        out.push_sql(" WHERE ");
        C::walk_child_key_eq(self.key, &mut out)
    }
}

impl<C: ChildRow, PCol: 'static> QueryId for UpdateChild<'_, C, PCol> {
    type QueryId = CacheId<C, PCol, UpdateShape>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C: ChildRow, PCol, Conn> RunQueryDsl<Conn> for UpdateChild<'_, C, PCol> {}

// ---------------------------------------------------------------------------------------------

/// The statement-id marker of a [`ChildKeyBack`].
pub(crate) struct KeyBackShape;

/// `SELECT key FROM child WHERE key = LAST_INSERT_ID()` (MySQL): the key an `AUTO_INCREMENT`
/// column generated for this connection's last insert, typed as the key column.
pub(crate) struct ChildKeyBack<C: ChildRow, PCol> {
    table: C::Table,
    shape: PhantomData<fn() -> PCol>,
}

impl<C: ChildRow, PCol> ChildKeyBack<C, PCol> {
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub fn new() -> Self {
        ChildKeyBack {
            table: C::Table::default(),
            shape: PhantomData,
        }
    }
}

impl<C, PCol, DB> QueryFragment<DB> for ChildKeyBack<C, PCol>
where
    DB: Dialect,
    PCol: Column,
    C: ChildLinkOn<PCol, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        out.push_identifier(C::KeyColumn::NAME)?;
        out.push_sql(" FROM ");
        C::walk_child_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        out.push_identifier(C::KeyColumn::NAME)?;
        out.push_sql(" = LAST_INSERT_ID()");
        Ok(())
    }
}

impl<C: ChildRow, PCol: 'static> QueryId for ChildKeyBack<C, PCol> {
    type QueryId = CacheId<C, PCol, KeyBackShape>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C: ChildRow, PCol> Query for ChildKeyBack<C, PCol> {
    type SqlType = <C::KeyColumn as Expression>::SqlType;
}

impl<C: ChildRow, PCol, Conn> RunQueryDsl<Conn> for ChildKeyBack<C, PCol> {}

// ---------------------------------------------------------------------------------------------

/// The statement-id marker of a [`CountedBack`].
pub(crate) struct CountedBackShape;

/// `SELECT (SELECT key FROM child WHERE key = LAST_INSERT_ID()), (SELECT c FROM parent WHERE
/// pk = ?)` (MySQL): after a counted insert, in its transaction, the key the insert generated
/// and the parent's new value (the transaction's own write, under the row lock it holds), in
/// one round trip.
pub(crate) struct CountedBack<'a, C, PCol, DB>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column,
    DB: Dialect,
{
    child: C::Table,
    parent: PCol::Table,
    key: &'a ParentKey<C, PCol>,
    backend: PhantomData<DB>,
}

impl<'a, C, PCol, DB> CountedBack<'a, C, PCol, DB>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column,
    DB: Dialect,
{
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub fn new(key: &'a ParentKey<C, PCol>) -> Self {
        CountedBack {
            child: C::Table::default(),
            parent: <C::On as AtomicFieldOn<PCol, DB>>::table(),
            key,
            backend: PhantomData,
        }
    }
}

impl<C, PCol, DB> QueryFragment<DB> for CountedBack<'_, C, PCol, DB>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column,
    DB: Dialect,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let key = C::KeyColumn::NAME;
        out.push_sql("SELECT (SELECT ");
        out.push_identifier(key)?;
        out.push_sql(" FROM ");
        C::walk_child_table(&self.child, out.reborrow())?;
        out.push_sql(" WHERE ");
        out.push_identifier(key)?;
        out.push_sql(" = LAST_INSERT_ID()), (SELECT ");
        out.push_identifier(PCol::NAME)?;
        out.push_sql(" FROM ");
        <C::On as AtomicFieldOn<PCol, DB>>::walk_table(&self.parent, out.reborrow())?;
        out.push_sql(" WHERE ");
        <C::On as AtomicFieldOn<PCol, DB>>::walk_key_eq(self.key, &mut out)?;
        out.push_sql(")");
        Ok(())
    }
}

impl<C, PCol, DB> QueryId for CountedBack<'_, C, PCol, DB>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column + 'static,
    DB: Dialect,
{
    type QueryId = CacheId<C, PCol, CountedBackShape>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C, PCol, DB> Query for CountedBack<'_, C, PCol, DB>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column,
    DB: Dialect,
{
    type SqlType = (
        <C::KeyColumn as Expression>::SqlType,
        <ParentValue<C, PCol> as AtomicValue>::SqlType,
    );
}

impl<C, PCol, DB, Conn> RunQueryDsl<Conn> for CountedBack<'_, C, PCol, DB>
where
    C: CounterCacheOn<PCol, DB>,
    PCol: Column,
    DB: Dialect,
{
}

// ---------------------------------------------------------------------------------------------

/// The statement-id marker of an [`Aggregate`].
pub(crate) struct AggregateShape;

/// `SELECT CAST(COUNT(*) AS BIGINT) FROM child WHERE fk = ?` (or `COALESCE(SUM(col), 0)`):
/// what one parent's counter should hold.
pub(crate) struct Aggregate<'a, C: CacheLink<PCol>, PCol: Column> {
    table: C::Table,
    key: &'a ParentKey<C, PCol>,
}

impl<'a, C: CacheLink<PCol>, PCol: Column> Aggregate<'a, C, PCol> {
    pub fn new(key: &'a ParentKey<C, PCol>) -> Self {
        Aggregate {
            table: C::Table::default(),
            key,
        }
    }
}

impl<C, PCol, DB> QueryFragment<DB> for Aggregate<'_, C, PCol>
where
    DB: Dialect,
    PCol: Column,
    C: ChildLinkOn<PCol, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        // Under MySQL's SERIALIZABLE this plain read takes shared locks on every child row it
        // counts, and can meet a deadlock after the result's metadata went out: a cached
        // statement would then hang its connection's next run (seen in the checker, see
        // `uncached_multi_row_lock`).
        uncached_multi_row_lock(&mut out);
        out.push_sql("SELECT CAST(");
        match <C::Amount as CacheAmount>::COLUMN {
            Some(column) => {
                out.push_sql("COALESCE(SUM(");
                out.push_identifier(column)?;
                out.push_sql("), 0)");
            }
            None => out.push_sql("COUNT(*)"),
        }
        out.push_sql(" AS ");
        out.push_sql(DB::BIGINT);
        out.push_sql(") FROM ");
        C::walk_child_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        out.push_identifier(C::ForeignKey::NAME)?;
        out.push_sql(" = ");
        C::bind_parent_key(self.key, &mut out)?;
        if let Some(when) = C::WHEN {
            out.push_sql(" AND ");
            out.push_identifier(when)?;
        }
        Ok(())
    }
}

impl<C: CacheLink<PCol>, PCol: Column + 'static> QueryId for Aggregate<'_, C, PCol> {
    type QueryId = CacheId<C, PCol, AggregateShape>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C: CacheLink<PCol>, PCol: Column> Query for Aggregate<'_, C, PCol> {
    type SqlType = BigInt;
}

impl<C: CacheLink<PCol>, PCol: Column, Conn> RunQueryDsl<Conn> for Aggregate<'_, C, PCol> {}

// ---------------------------------------------------------------------------------------------

/// How many parent keys one page of a recount of every parent carries (and locks at once).
pub(crate) const PARENT_PAGE: usize = 500;

/// [`PARENT_PAGE`] as SQL.
pub(super) const PAGE_SQL: &str = "500";

/// The statement-id marker of a [`ParentKeys`]: first page, or a page after a key.
pub(crate) struct ParentKeysShape<const AFTER: bool>;

/// `SELECT pk FROM parent [WHERE pk > ?] ORDER BY pk LIMIT 500`: one page of parent keys, in
/// key order, read as the foreign key column's type.
pub(crate) struct ParentKeys<'a, C: CounterCache<PCol>, PCol: Column, const AFTER: bool> {
    table: PCol::Table,
    after: Option<&'a ParentKey<C, PCol>>,
}

impl<'a, C: CounterCache<PCol>, PCol: Column, const AFTER: bool> ParentKeys<'a, C, PCol, AFTER> {
    pub fn new(table: PCol::Table, after: Option<&'a ParentKey<C, PCol>>) -> Self {
        debug_assert_eq!(after.is_some(), AFTER);
        ParentKeys { table, after }
    }
}

impl<C, PCol, DB, const AFTER: bool> QueryFragment<DB> for ParentKeys<'_, C, PCol, AFTER>
where
    DB: Dialect,
    PCol: Column,
    C: CounterCacheOn<PCol, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let [key] = <<C::On as AtomicField<PCol>>::KeyColumns as KeyColumns>::NAMES else {
            return Err(diesel::result::Error::QueryBuilderError(
                "a counter cache's parent has a one-column key".into(),
            ));
        };
        out.push_sql("SELECT ");
        out.push_identifier(key)?;
        out.push_sql(" FROM ");
        <C::On as AtomicFieldOn<PCol, DB>>::walk_table(&self.table, out.reborrow())?;
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
        out.push_sql(PAGE_SQL);
        Ok(())
    }
}

impl<C: CounterCache<PCol>, PCol: Column + 'static, const AFTER: bool> QueryId
    for ParentKeys<'_, C, PCol, AFTER>
{
    type QueryId = CacheId<C, PCol, ParentKeysShape<AFTER>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<C: CounterCache<PCol>, PCol: Column, const AFTER: bool> Query
    for ParentKeys<'_, C, PCol, AFTER>
{
    type SqlType = <C::ForeignKey as Expression>::SqlType;
}

impl<C: CounterCache<PCol>, PCol: Column, Conn, const AFTER: bool> RunQueryDsl<Conn>
    for ParentKeys<'_, C, PCol, AFTER>
{
}
