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

use super::{AtomicField, AtomicFieldOn};
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

/// The key type of parent column `PCol` of child `C`'s cache.
pub type ParentKey<C, PCol> = <<C as CounterCache<PCol>>::Parent as AtomicField<PCol>>::Key;

/// The value type of parent column `PCol` of child `C`'s cache.
pub type ParentValue<C, PCol> = <<C as CounterCache<PCol>>::Parent as AtomicField<PCol>>::Value;

/// A counter cache: while a row of `Self` exists, the parent row it points at holds its
/// amount in column `PCol`.
///
/// `#[derive(CounterCache)]` implements it from `#[counter_cache(..)]`; the operations are on
/// [`CounterCached`](crate::CounterCached).
///
/// ```
/// use counter_core::{AtomicError, AtomicField, CacheChange, ChildRow, CounterCache, CountRows};
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
/// impl CounterCache<articles::views> for NewView {
///     type Parent = Article;
///     type ForeignKey = views::article_id;
///     type Amount = CountRows;
///     const CHANGE: CacheChange = CacheChange::Increment;
///     fn parent_key(&self) -> i64 { self.article_id }
///     fn amount(&self) -> Result<i64, AtomicError> { Ok(1) }
/// }
/// ```
pub trait CounterCache<PCol: Column>: ChildRow {
    /// The parent model, with its atomic column `PCol`.
    type Parent: AtomicField<PCol>;
    /// The child column holding the parent's key (one column).
    type ForeignKey: Column<Table = Self::Table>;
    /// One per row, or the sum of a column.
    type Amount: CacheAmount;
    /// Which way a row moves the parent, and whether it is refused when the parent has too
    /// little.
    const CHANGE: CacheChange;
    /// The parent this row points at.
    fn parent_key(&self) -> ParentKey<Self, PCol>;
    /// What this row is worth, in the parent column's type: one, or its summed column
    /// (`OutOfRange` when it does not fit).
    fn amount(&self) -> Result<ParentValue<Self, PCol>, AtomicError>;
    /// The child's boolean column that decides whether a row counts at all (only published
    /// comments, only paid orders); `None`: every row counts. SQL reads it as the predicate
    /// `"col"`, so `NULL` does not count.
    const WHEN: Option<&'static str> = None;
    /// Whether this row counts: the value of the [`WHEN`](Self::WHEN) column, which it must
    /// agree with.
    fn counts(&self) -> bool {
        true
    }
    /// What this row adds to its parent while it exists: its [`amount`](Self::amount) when it
    /// [`counts`](Self::counts), else zero.
    fn counted_amount(&self) -> Result<ParentValue<Self, PCol>, AtomicError> {
        if self.counts() {
            self.amount()
        } else {
            Ok(<ParentValue<Self, PCol> as AtomicValue>::ZERO)
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

/// [`CounterCache`] plus everything backend `DB` needs to run its statements.
///
/// Implemented automatically for every cache whose child and parent types Diesel can send to
/// and read from `DB`; generated code names it in `where` clauses, you never implement it.
#[diagnostic::on_unimplemented(
    message = "the counter cache of `{Self}` into `{PCol}` cannot be used on backend `{DB}`",
    note = "a key or value type has no Diesel mapping on this backend, the backend's cargo feature of counter-core is off, or the foreign key column's type is not the parent key's"
)]
pub trait CounterCacheOn<PCol: Column, DB: Backend>: CounterCache<PCol> + ChildRowOn<DB> {
    /// The parent, as [`AtomicFieldOn`] for `DB` (it is [`CounterCache::Parent`]).
    #[doc(hidden)]
    type On: AtomicFieldOn<PCol, DB>
        + AtomicField<PCol, Key = ParentKey<Self, PCol>, Value = ParentValue<Self, PCol>>;
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

impl<C, PCol, DB> CounterCacheOn<PCol, DB> for C
where
    PCol: Column,
    DB: Dialect
        + HasSqlType<<C::KeyColumn as Expression>::SqlType>
        + HasSqlType<<C::ForeignKey as Expression>::SqlType>
        + QueryMetadata<<C::KeyColumn as Expression>::SqlType>
        + QueryMetadata<<C::ForeignKey as Expression>::SqlType>
        + QueryMetadata<(<C::ForeignKey as Expression>::SqlType, BigInt)>
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
    C: CounterCache<PCol> + ChildRowOn<DB>,
    C::Parent: AtomicFieldOn<PCol, DB>,
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
    type On = C::Parent;

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
