//! What the runtime needs to know about one atomic column of one model (here), and about a
//! slotted counter column (`slotted`).

mod child;
mod slotted;
mod touch;

pub use child::{
    cache_amount, CacheAmount, CacheChange, CacheLink, ChildLinkOn, ChildRow, ChildRowOn,
    CountRows, CounterCache, CounterCacheOn, ParentKey, ParentValue, SlottedCounterCache,
    SlottedCounterCacheOn, SumOf,
};
pub use slotted::{refused, NotOnSlotted, Slotted, SlottedDecrement, SlottedOn};
pub use touch::TimestampColumn;

use std::future::Future;

use diesel::backend::Backend;
use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::QueryMetadata;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Nullable};
use diesel::{Column, Queryable, Table};

use crate::backend::{Dialect, RawConnection};
use crate::key::{KeyColumns, KeyValue};

use crate::retry::RetryPolicy;
use crate::value::AtomicValue;

/// Describes the atomic column `Col` of the model `Self`.
///
/// `#[derive(AtomicField)]` implements it for every `#[atomic]` field; implement it by hand
/// to use [`Field`](crate::Field) without the macro. The trait is implemented on the model,
/// with the Diesel column type as parameter, so one column may appear in several models with
/// different bounds.
///
/// ```
/// use counter_core::{AtomicField, Field};
/// diesel::table! { counters (id) { id -> BigInt, hits -> BigInt, } }
///
/// struct Counter;
/// impl AtomicField<counters::hits> for Counter {
///     type Key = i64;
///     type KeyColumns = (counters::id,);
///     type Value = i64;
///     const MIN: Option<i64> = Some(0);
///     const MAX: Option<i64> = None;
///     const NAME: &'static str = "hits";
/// }
/// let hits = Field::<Counter, counters::hits>::new();
/// # let _ = hits;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Col}` is not an atomic column of `{Self}`",
    note = "an atomic column is a field with #[atomic] in a #[derive(AtomicField)] struct; a counter cache into a slotted counter (#[atomic(slots = N, table = t)]) says `slotted` in its #[counter_cache]"
)]
pub trait AtomicField<Col: Column>: Sized + 'static {
    /// The Rust type of the primary key: the bare value for a one-column key (`i64`), a tuple
    /// in column order for a composite one (`(i64, i64)`).
    type Key;
    /// The primary key columns as a tuple, `(products::id,)` or `(lines::cart_id,
    /// lines::product_id)`; they must be exactly the primary key the table declares.
    type KeyColumns: KeyColumns<Table = Col::Table>;
    /// The Rust type of the column.
    type Value: AtomicValue;
    /// The declared lower bound (`#[atomic(min = ..)]`), if any.
    const MIN: Option<Self::Value>;
    /// The declared upper bound (`#[atomic(max = ..)]`), if any.
    const MAX: Option<Self::Value>;
    /// The retry policy used unless a call overrides it (`#[atomic(retries = ..)]`).
    const RETRY: RetryPolicy = RetryPolicy::DEFAULT;
    /// The field's name, for messages.
    const NAME: &'static str;
    /// A timestamp column (`#[atomic(touch = updated_at)]`) that every statement changing this
    /// field also sets to the database's current time, so whatever is keyed on it (a cache,
    /// an `If-Modified-Since`, a sync cursor) sees the change with it. `None`: nothing else
    /// is written.
    const TOUCH: Option<&'static str> = None;
}

/// `AtomicField` plus everything backend `DB` needs to run statements on it.
///
/// Implemented automatically for every `AtomicField` whose key and value types Diesel can
/// send to and read from `DB`. Generated code names it in `where` clauses; you never
/// implement it. A missing impl means the column's Rust type does not exist on that backend
/// (for example `u32`, which is MySQL's `INT UNSIGNED`, on PostgreSQL).
#[diagnostic::on_unimplemented(
    message = "`{Self}`'s atomic column `{Col}` cannot be used on backend `{DB}`",
    note = "the key or value type has no Diesel mapping on this backend (u32/u64 exist only on MySQL), the backend's cargo feature of counter-core is off, or `KeyColumns` is not the primary key the table declares"
)]
pub trait AtomicFieldOn<Col: Column, DB: Backend>: AtomicField<Col> {
    #[doc(hidden)]
    fn table() -> Col::Table;
    #[doc(hidden)]
    fn walk_table<'b>(table: &'b Col::Table, out: AstPass<'_, 'b, DB>) -> QueryResult<()>;
    #[doc(hidden)]
    fn walk_key_eq<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    #[doc(hidden)]
    fn bind_value<'b>(value: &'b Self::Value, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    /// `, "updated_at" = <now>` when the field declares [`AtomicField::TOUCH`], else nothing:
    /// appended to the `SET` list of every statement that changes the column.
    #[doc(hidden)]
    fn walk_touch(out: &mut AstPass<'_, '_, DB>) -> QueryResult<()>;
    /// `ROUND(` before a value a statement computes for a decimal field on a backend that
    /// holds decimals as doubles (SQLite), so the stored value is the scale's nearest double
    /// again and no float error accumulates; nothing otherwise.
    #[doc(hidden)]
    fn walk_round_open(out: &mut AstPass<'_, '_, DB>);
    /// `, S)` closing [`walk_round_open`](Self::walk_round_open).
    #[doc(hidden)]
    fn walk_round_close(out: &mut AstPass<'_, '_, DB>);
    /// `CAST((` before a value captured in `LAST_INSERT_ID` (MySQL) of a decimal field,
    /// closed by [`walk_capture_close`](Self::walk_capture_close): the capture holds a
    /// 64-bit integer, so a decimal travels as its count of `10^-S` units.
    #[doc(hidden)]
    fn walk_capture_open(out: &mut AstPass<'_, '_, DB>);
    /// `) * 10^S AS SIGNED)`.
    #[doc(hidden)]
    fn walk_capture_close(out: &mut AstPass<'_, '_, DB>);
    #[doc(hidden)]
    fn load_value<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> impl Future<Output = QueryResult<Option<Self::Value>>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = <Self::Value as AtomicValue>::SqlType> + QueryFragment<DB> + QueryId;
    #[doc(hidden)]
    fn load_roles<R, Q>(conn: &mut R, query: Q) -> impl Future<Output = QueryResult<Vec<i64>>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = BigInt> + QueryFragment<DB> + QueryId;
    /// The keys of a set, one array per key column (see [`KeyValue::Arrays`]).
    #[doc(hidden)]
    type KeyArrays: Default;
    #[doc(hidden)]
    fn push_key(key: &Self::Key, arrays: &mut Self::KeyArrays);
    #[doc(hidden)]
    fn walk_key_arrays<'b>(
        arrays: &'b Self::KeyArrays,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>;
    #[doc(hidden)]
    fn walk_key_values<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    #[doc(hidden)]
    fn bind_values<'b>(values: &'b [Self::Value], out: &mut AstPass<'_, 'b, DB>)
        -> QueryResult<()>;
    /// Runs a set's statement: per row of the set, in order, whether it changed and its value
    /// (the new one, or the current one of a row that refused; `None` for a missing row).
    #[doc(hidden)]
    fn load_outcomes<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> impl Future<Output = QueryResult<Vec<(bool, Option<Self::Value>)>>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = (Bool, Nullable<<Self::Value as AtomicValue>::SqlType>)>
            + QueryFragment<DB>
            + QueryId;
}

impl<M, Col, DB> AtomicFieldOn<Col, DB> for M
where
    M: AtomicField<Col>,
    Col: Column,
    DB: Dialect
        + HasSqlType<<M::Value as AtomicValue>::SqlType>
        + HasSqlType<BigInt>
        + QueryMetadata<<M::Value as AtomicValue>::SqlType>
        + QueryMetadata<BigInt>,
    Col::Table:
        QueryFragment<DB> + Default + Table<PrimaryKey = <M::KeyColumns as KeyColumns>::PrimaryKey>,
    M::Key: KeyValue<M::KeyColumns, DB>,
    M::Value: ToSql<<M::Value as AtomicValue>::SqlType, DB>
        + FromSql<<M::Value as AtomicValue>::SqlType, DB>
        + Queryable<<M::Value as AtomicValue>::SqlType, DB>
        + FromSqlRow<<M::Value as AtomicValue>::SqlType, DB>,
    i64: FromSqlRow<BigInt, DB>,
    DB: HasSqlType<Bool> + QueryMetadata<(Bool, Nullable<<M::Value as AtomicValue>::SqlType>)>,
    (bool, Option<M::Value>):
        FromSqlRow<(Bool, Nullable<<M::Value as AtomicValue>::SqlType>), DB> + 'static,
{
    type KeyArrays = <M::Key as KeyValue<M::KeyColumns, DB>>::Arrays;

    fn push_key(key: &Self::Key, arrays: &mut Self::KeyArrays) {
        key.push_to(arrays)
    }

    fn walk_key_arrays<'b>(
        arrays: &'b Self::KeyArrays,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        <M::Key as KeyValue<M::KeyColumns, DB>>::walk_arrays(arrays, out)
    }

    fn walk_key_values<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        key.walk_values(out)
    }

    fn bind_values<'b>(
        values: &'b [Self::Value],
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        DB::bind_array::<<M::Value as AtomicValue>::SqlType, M::Value>(values, out)
    }

    async fn load_outcomes<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> QueryResult<Vec<(bool, Option<Self::Value>)>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = (Bool, Nullable<<Self::Value as AtomicValue>::SqlType>)>
            + QueryFragment<DB>
            + QueryId,
    {
        conn.query_rows(query).await
    }

    fn table() -> Col::Table {
        Default::default()
    }

    fn walk_table<'b>(table: &'b Col::Table, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        table.walk_ast(out)
    }

    fn walk_key_eq<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        key.walk_eq(out)
    }

    fn bind_value<'b>(value: &'b Self::Value, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        match (M::Value::PRECISION, DB::DECIMAL_CAST) {
            (Some(precision), Some(cast)) => {
                out.push_sql("CAST(");
                out.push_bind_param::<<M::Value as AtomicValue>::SqlType, _>(value)?;
                out.push_sql(&format!(" AS {cast}({precision}, {}))", M::Value::SCALE));
                Ok(())
            }
            _ => out.push_bind_param::<<M::Value as AtomicValue>::SqlType, _>(value),
        }
    }

    fn walk_touch(out: &mut AstPass<'_, '_, DB>) -> QueryResult<()> {
        crate::sql::walk_touches::<DB>(&[M::TOUCH], &[Col::NAME], out)
    }

    fn walk_round_open(out: &mut AstPass<'_, '_, DB>) {
        if DB::FLOAT_NUMERIC && M::Value::SCALE > 0 {
            out.push_sql("ROUND(");
        }
    }

    fn walk_round_close(out: &mut AstPass<'_, '_, DB>) {
        if DB::FLOAT_NUMERIC && M::Value::SCALE > 0 {
            out.push_sql(&format!(", {})", M::Value::SCALE));
        }
    }

    fn walk_capture_open(out: &mut AstPass<'_, '_, DB>) {
        if M::Value::SCALE > 0 {
            out.push_sql("CAST((");
        }
    }

    fn walk_capture_close(out: &mut AstPass<'_, '_, DB>) {
        if M::Value::SCALE > 0 {
            out.push_sql(&format!(
                ") * 1{:0<width$} AS SIGNED)",
                "",
                width = M::Value::SCALE as usize
            ));
        }
    }

    async fn load_value<R, Q>(conn: &mut R, query: Q) -> QueryResult<Option<Self::Value>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = <Self::Value as AtomicValue>::SqlType> + QueryFragment<DB> + QueryId,
    {
        // Every row to the end, not the first: on SQLite a `RETURNING` statement in autocommit
        // commits when it is stepped to its end, and that commit can fail (SQLITE_BUSY) and
        // roll the write back after the row was handed out. Diesel's `get_result` steps once
        // and ignores the error of the reset that finishes the statement, so it can report a
        // write that never happened; reading to SQLITE_DONE gives the commit's error to the
        // retry loop.
        let mut rows = conn.query_rows::<Q, M::Value>(query).await?;
        debug_assert!(rows.len() <= 1, "one row per primary key");
        Ok(rows.pop())
    }

    async fn load_roles<R, Q>(conn: &mut R, query: Q) -> QueryResult<Vec<i64>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = BigInt> + QueryFragment<DB> + QueryId,
    {
        conn.query_rows(query).await
    }
}
