//! What the runtime needs to know about a *child* row whose rows count into a parent's counter
//! (a counter cache): the row's table, key and values ([`ChildRow`], [`ChildRowOn`]), and how
//! each row changes one parent column ([`CounterCache`]).
//!
//! `#[derive(CounterCache)]` implements all three on the struct a child row is inserted from;
//! they are public so that a cache can be declared by hand and tested without the macro.

use std::fmt::Debug;
use std::future::Future;

use diesel::backend::Backend;
use diesel::deserialize::FromSqlRow;
use diesel::expression::QueryMetadata;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, SingleValue};
use diesel::{Column, Expression, Table};

use super::{AtomicField, AtomicFieldOn, Slotted, SlottedOn};
use crate::backend::{Dialect, RawConnection};
use crate::error::{AtomicError, Limit};
use crate::value::AtomicValue;

/// A struct a child row is inserted from: its table, its key and the columns it sets.
///
/// ```
/// use counter_core::ChildRow;
/// diesel::table! { views (id) { id -> BigInt, article_id -> BigInt, } }
/// struct NewView { article_id: i64 }
/// impl ChildRow for NewView {
///     type Table = views::table;
///     type KeyColumn = views::id;
///     type Key = i64;
///     const COLUMNS: &'static [&'static str] = &["article_id"];
///     fn key(&self) -> Option<i64> { None } // the database generates it
/// }
/// ```
pub trait ChildRow: Sized + 'static {
    /// The child's table.
    type Table: Table + Default;
    /// The child's primary key column (one column).
    type KeyColumn: Column<Table = Self::Table>;
    /// The Rust type of that key.
    type Key;
    /// The columns this struct sets; [`ChildRowOn::walk_value`] binds each by its index here.
    const COLUMNS: &'static [&'static str];
    /// The key, when the struct carries it; `None` when the database generates it (a serial
    /// or `AUTO_INCREMENT` column), and the insert reads it back.
    fn key(&self) -> Option<Self::Key>;
}

/// [`ChildRow`] on backend `DB`: binds the row's values.
pub trait ChildRowOn<DB: Backend>: ChildRow {
    /// Writes `?`: the value of column `ChildRow::COLUMNS[column]`, bound as that column's SQL
    /// type. One value at a time, so that an insert writes them as `VALUES (?, …)` and an
    /// update as `SET a = ?, …` from the same binds.
    fn walk_value<'b>(&'b self, column: usize, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
}

/// How a child row changes its parent's counter while it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheChange {
    /// Adds the row's amount (a count of views, a sum of sold units); refused past the
    /// parent's declared maximum.
    Increment,
    /// Subtracts it; refused past the parent's declared minimum.
    Decrement,
    /// Subtracts it only when the parent holds at least that much (stock): the child row
    /// is not inserted otherwise, and the call fails with `Insufficient`.
    DecrementIfAtLeast,
}

/// What one child row is worth to its parent: one ([`CountRows`]) or a column of it
/// ([`SumOf`]).
pub trait CacheAmount: 'static {
    /// The summed column's name; `None` for a count.
    const COLUMN: Option<&'static str>;
}

/// Each child row counts one.
pub struct CountRows;

/// Each child row counts the value of its column `Col`.
pub struct SumOf<Col>(Col);

impl CacheAmount for CountRows {
    const COLUMN: Option<&'static str> = None;
}

impl<Col: Column + 'static> CacheAmount for SumOf<Col> {
    const COLUMN: Option<&'static str> = Some(Col::NAME);
}

/// The key type of the parent of child `C`'s cache into column `PCol`.
pub type ParentKey<C, PCol> = <C as CacheLink<PCol>>::ParentKey;

/// The value type of parent column `PCol` of child `C`'s cache.
pub type ParentValue<C, PCol> = <<C as CounterCache<PCol>>::Parent as AtomicField<PCol>>::Value;

/// How a child row links to the parent whose column `PCol` holds its amount: the foreign key,
/// what a row is worth, which rows count. What every counter cache has, whether the parent's
/// column is one value ([`CounterCache`]) or a slotted counter ([`SlottedCounterCache`]); the
/// child's statements need only this.
pub trait CacheLink<PCol: Column>: ChildRow {
    /// The child column holding the parent's key (one column).
    type ForeignKey: Column<Table = Self::Table>;
    /// One per row, or the sum of a column.
    type Amount: CacheAmount;
    /// The parent's key: the bare value (its key is one column).
    type ParentKey;
    /// The parent this row points at.
    fn parent_key(&self) -> Self::ParentKey;
    /// The child's boolean column that decides whether a row counts at all (only published
    /// comments, only paid orders); `None`: every row counts. SQL reads it as the predicate
    /// `"col"`, so `NULL` does not count.
    const WHEN: Option<&'static str> = None;
    /// Whether this row counts: the value of the [`WHEN`](Self::WHEN) column, which it must
    /// agree with.
    fn counts(&self) -> bool {
        true
    }
}

/// A counter cache: while a row of `Self` exists, the parent row it points at holds its
/// amount in column `PCol`.
///
/// `#[derive(CounterCache)]` implements it (and [`CacheLink`]) from `#[counter_cache(..)]`;
/// the operations are on [`CounterCached`](crate::CounterCached).
///
/// ```
/// use counter_core::{AtomicError, AtomicField, CacheChange, CacheLink, ChildRow, CounterCache, CountRows};
/// diesel::table! { articles (id) { id -> BigInt, views -> BigInt, } }
/// diesel::table! { views (id) { id -> BigInt, article_id -> BigInt, } }
/// # struct Article;
/// # impl AtomicField<articles::views> for Article {
/// #     type Key = i64; type KeyColumns = (articles::id,); type Value = i64;
/// #     const MIN: Option<i64> = Some(0); const MAX: Option<i64> = None; const NAME: &'static str = "views";
/// # }
/// # struct NewView { article_id: i64 }
/// # impl ChildRow for NewView {
/// #     type Table = views::table; type KeyColumn = views::id; type Key = i64;
/// #     const COLUMNS: &'static [&'static str] = &["article_id"];
/// #     fn key(&self) -> Option<i64> { None }
/// # }
/// impl CacheLink<articles::views> for NewView {
///     type ForeignKey = views::article_id;
///     type Amount = CountRows;
///     type ParentKey = i64;
///     fn parent_key(&self) -> i64 { self.article_id }
/// }
/// impl CounterCache<articles::views> for NewView {
///     type Parent = Article;
///     const CHANGE: CacheChange = CacheChange::Increment;
///     fn amount(&self) -> Result<i64, AtomicError> { Ok(1) }
/// }
/// ```
pub trait CounterCache<PCol: Column>: CacheLink<PCol> {
    /// The parent model, with its atomic column `PCol`.
    type Parent: AtomicField<PCol, Key = <Self as CacheLink<PCol>>::ParentKey>;
    /// Which way a row moves the parent, and whether it is refused when the parent has too
    /// little.
    const CHANGE: CacheChange;
    /// What this row is worth, in the parent column's type: one, or its summed column
    /// (`OutOfRange` when it does not fit).
    fn amount(&self) -> Result<ParentValue<Self, PCol>, AtomicError>;
    /// What this row adds to its parent while it exists: its [`amount`](Self::amount) when it
    /// [`counts`](CacheLink::counts), else zero.
    fn counted_amount(&self) -> Result<ParentValue<Self, PCol>, AtomicError> {
        if self.counts() {
            self.amount()
        } else {
            Ok(<ParentValue<Self, PCol> as AtomicValue>::ZERO)
        }
    }
}

/// A counter cache into a slotted counter: while a row of `Self` exists, its amount is in one
/// of the slots of the parent's slotted column `PCol` (see [`SlottedField`](crate::SlottedField)),
/// so that children of one hot parent mostly write different rows.
///
/// `#[derive(CounterCache)]` implements it (and [`CacheLink`]) from
/// `#[counter_cache(.., slotted)]`; the operations are on
/// [`SlottedCounterCached`](crate::SlottedCounterCached). A slotted counter has no bounds, so
/// the change is always an increment by the row's amount (a count, or a sum).
pub trait SlottedCounterCache<PCol: Column>: CacheLink<PCol> {
    /// The parent model, with its slotted column `PCol`.
    type Parent: Slotted<PCol, Key = <Self as CacheLink<PCol>>::ParentKey>;
    /// What this row is worth: one, or its summed column.
    fn amount(&self) -> Result<i64, AtomicError>;
    /// What this row adds to its parent while it exists: its [`amount`](Self::amount) when it
    /// [`counts`](CacheLink::counts), else zero.
    fn counted_amount(&self) -> Result<i64, AtomicError> {
        if self.counts() {
            self.amount()
        } else {
            Ok(0)
        }
    }
}

/// A child's summed value in the parent column's type `V`: what the derive's
/// [`CounterCache::amount`] returns for `sum = column`.
#[doc(hidden)]
pub fn cache_amount<V: AtomicValue, T: AtomicValue>(value: T) -> Result<V, AtomicError> {
    // Counts and sums are integers (the recount reads `CAST(SUM(c) AS BIGINT)`); a decimal's
    // `i128` counts `10^-S` units, so one child would count as 0.01. Refused when compiled.
    const {
        assert!(
            V::SCALE == 0 && T::SCALE == 0,
            "a counter cache counts or sums into an integer column; a Decimal parent or summed \
             column is not supported"
        )
    };
    let v = value.to_i128();
    V::from_i128(v).ok_or(AtomicError::OutOfRange {
        current: 0,
        attempted: v,
        limit: if v < 0 {
            Limit::Min(V::MIN.to_i128())
        } else {
            Limit::Max(V::MAX.to_i128())
        },
    })
}

/// [`CacheLink`] plus everything backend `DB` needs to run the child's statements (insert,
/// delete, update, aggregate).
///
/// Implemented automatically; generated code names it in `where` clauses, you never
/// implement it.
#[diagnostic::on_unimplemented(
    message = "the child rows of `{Self}` (the cache into `{PCol}`) cannot be used on backend `{DB}`",
    note = "a key or value type has no Diesel mapping on this backend, the backend's cargo feature of counter-core is off, or the foreign key column's type is not the parent key's"
)]
pub trait ChildLinkOn<PCol: Column, DB: Backend>: CacheLink<PCol> + ChildRowOn<DB> {
    #[doc(hidden)]
    fn walk_child_table<'b>(table: &'b Self::Table, out: AstPass<'_, 'b, DB>) -> QueryResult<()>;
    /// `"id" = ?`: the child's key.
    #[doc(hidden)]
    fn walk_child_key_eq<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    /// `?`: a parent key, bound as the foreign key column's type.
    #[doc(hidden)]
    fn bind_parent_key<'b>(
        key: &'b ParentKey<Self, PCol>,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>;
    /// Runs a statement answering the child's key.
    #[doc(hidden)]
    fn load_child_key<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> impl Future<Output = QueryResult<Option<Self::Key>>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = <Self::KeyColumn as Expression>::SqlType> + QueryFragment<DB> + QueryId;
    /// Runs a statement answering a child's link: its parent's key and its amount.
    #[doc(hidden)]
    fn load_links<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> impl Future<Output = QueryResult<Vec<(ParentKey<Self, PCol>, i64)>>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = (<Self::ForeignKey as Expression>::SqlType, BigInt)>
            + QueryFragment<DB>
            + QueryId;
    /// Runs a statement answering parent keys (read as the foreign key column's type).
    #[doc(hidden)]
    fn load_parent_keys<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> impl Future<Output = QueryResult<Vec<ParentKey<Self, PCol>>>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = <Self::ForeignKey as Expression>::SqlType> + QueryFragment<DB> + QueryId;
}

impl<C, PCol, DB> ChildLinkOn<PCol, DB> for C
where
    PCol: Column,
    DB: Dialect
        + HasSqlType<<C::KeyColumn as Expression>::SqlType>
        + HasSqlType<<C::ForeignKey as Expression>::SqlType>
        + QueryMetadata<<C::KeyColumn as Expression>::SqlType>
        + QueryMetadata<<C::ForeignKey as Expression>::SqlType>
        + QueryMetadata<(<C::ForeignKey as Expression>::SqlType, BigInt)>,
    C: CacheLink<PCol> + ChildRowOn<DB>,
    C::Table: QueryFragment<DB>,
    <C::ForeignKey as Expression>::SqlType: SingleValue,
    <C::KeyColumn as Expression>::SqlType: SingleValue,
    C::Key: ToSql<<C::KeyColumn as Expression>::SqlType, DB>
        + FromSqlRow<<C::KeyColumn as Expression>::SqlType, DB>
        + Debug
        + 'static,
    ParentKey<C, PCol>: ToSql<<C::ForeignKey as Expression>::SqlType, DB>
        + FromSqlRow<<C::ForeignKey as Expression>::SqlType, DB>
        + 'static,
    (ParentKey<C, PCol>, i64):
        FromSqlRow<(<C::ForeignKey as Expression>::SqlType, BigInt), DB> + 'static,
{
    fn walk_child_table<'b>(table: &'b Self::Table, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        table.walk_ast(out)
    }

    fn walk_child_key_eq<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_identifier(C::KeyColumn::NAME)?;
        out.push_sql(" = ");
        out.push_bind_param::<<C::KeyColumn as Expression>::SqlType, _>(key)
    }

    fn bind_parent_key<'b>(
        key: &'b ParentKey<Self, PCol>,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_bind_param::<<C::ForeignKey as Expression>::SqlType, _>(key)
    }

    async fn load_child_key<R, Q>(conn: &mut R, query: Q) -> QueryResult<Option<Self::Key>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = <Self::KeyColumn as Expression>::SqlType> + QueryFragment<DB> + QueryId,
    {
        // Every row to the end (see `AtomicFieldOn::load_value`: SQLite's commit error).
        let mut rows = conn.query_rows::<Q, C::Key>(query).await?;
        debug_assert!(rows.len() <= 1, "one row per key");
        Ok(rows.pop())
    }

    async fn load_links<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> QueryResult<Vec<(ParentKey<Self, PCol>, i64)>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = (<Self::ForeignKey as Expression>::SqlType, BigInt)>
            + QueryFragment<DB>
            + QueryId,
    {
        conn.query_rows(query).await
    }

    async fn load_parent_keys<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> QueryResult<Vec<ParentKey<Self, PCol>>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = <Self::ForeignKey as Expression>::SqlType> + QueryFragment<DB> + QueryId,
    {
        conn.query_rows(query).await
    }
}

/// [`CounterCache`] plus everything backend `DB` needs to run its statements.
///
/// Implemented automatically for every cache whose child and parent types Diesel can send to
/// and read from `DB`; generated code names it in `where` clauses, you never implement it.
#[diagnostic::on_unimplemented(
    message = "the counter cache of `{Self}` into `{PCol}` cannot be used on backend `{DB}`",
    note = "a key or value type has no Diesel mapping on this backend, the backend's cargo feature of counter-core is off, or the foreign key column's type is not the parent key's"
)]
pub trait CounterCacheOn<PCol: Column, DB: Backend>:
    CounterCache<PCol> + ChildLinkOn<PCol, DB>
{
    /// The parent, as [`AtomicFieldOn`] for `DB` (it is [`CounterCache::Parent`]).
    #[doc(hidden)]
    type On: AtomicFieldOn<PCol, DB>
        + AtomicField<PCol, Key = ParentKey<Self, PCol>, Value = ParentValue<Self, PCol>>;
    /// Runs a statement answering an inserted child's key and its parent's new value.
    #[allow(clippy::type_complexity)]
    #[doc(hidden)]
    fn load_counted<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> impl Future<Output = QueryResult<Option<(Self::Key, ParentValue<Self, PCol>)>>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<
                SqlType = (
                    <Self::KeyColumn as Expression>::SqlType,
                    <ParentValue<Self, PCol> as AtomicValue>::SqlType,
                ),
            > + QueryFragment<DB>
            + QueryId;
}

impl<C, PCol, DB> CounterCacheOn<PCol, DB> for C
where
    PCol: Column,
    DB: Dialect
        + QueryMetadata<(
            <C::KeyColumn as Expression>::SqlType,
            <ParentValue<C, PCol> as AtomicValue>::SqlType,
        )>,
    (C::Key, ParentValue<C, PCol>): FromSqlRow<
            (
                <C::KeyColumn as Expression>::SqlType,
                <ParentValue<C, PCol> as AtomicValue>::SqlType,
            ),
            DB,
        > + 'static,
    C: CounterCache<PCol> + ChildLinkOn<PCol, DB>,
    C::Parent: AtomicFieldOn<PCol, DB>,
{
    type On = C::Parent;

    async fn load_counted<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> QueryResult<Option<(Self::Key, ParentValue<Self, PCol>)>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<
                SqlType = (
                    <Self::KeyColumn as Expression>::SqlType,
                    <ParentValue<Self, PCol> as AtomicValue>::SqlType,
                ),
            > + QueryFragment<DB>
            + QueryId,
    {
        let mut rows = conn
            .query_rows::<Q, (C::Key, ParentValue<C, PCol>)>(query)
            .await?;
        debug_assert!(rows.len() <= 1, "one row per insert");
        Ok(rows.pop())
    }
}

/// [`SlottedCounterCache`] plus everything backend `DB` needs to run its statements.
///
/// Implemented automatically; generated code names it in `where` clauses, you never
/// implement it.
#[diagnostic::on_unimplemented(
    message = "the slotted counter cache of `{Self}` into `{PCol}` cannot be used on backend `{DB}`",
    note = "a key type has no Diesel mapping on this backend, the backend's cargo feature of counter-core is off, or the foreign key column's type is not the parent key's"
)]
pub trait SlottedCounterCacheOn<PCol: Column, DB: Backend>:
    SlottedCounterCache<PCol> + ChildLinkOn<PCol, DB>
{
    /// The parent, as [`SlottedOn`] for `DB` (it is [`SlottedCounterCache::Parent`]).
    #[doc(hidden)]
    type On: SlottedOn<PCol, DB> + Slotted<PCol, Key = ParentKey<Self, PCol>>;
    /// The parent's table.
    #[doc(hidden)]
    fn parent_table() -> PCol::Table;
    #[doc(hidden)]
    fn walk_parent_table<'b>(table: &'b PCol::Table, out: AstPass<'_, 'b, DB>) -> QueryResult<()>;
}

impl<C, PCol, DB> SlottedCounterCacheOn<PCol, DB> for C
where
    PCol: Column,
    PCol::Table: QueryFragment<DB> + Default,
    DB: Dialect,
    C: SlottedCounterCache<PCol> + ChildLinkOn<PCol, DB>,
    C::Parent: SlottedOn<PCol, DB>,
{
    type On = C::Parent;

    fn parent_table() -> PCol::Table {
        PCol::Table::default()
    }

    fn walk_parent_table<'b>(table: &'b PCol::Table, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        table.walk_ast(out)
    }
}
