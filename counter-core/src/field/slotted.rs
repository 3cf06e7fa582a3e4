//! What the runtime needs to know about a slotted counter column: its slot table
//! ([`Slotted`], implemented by the derive), what a backend needs to run statements on it
//! ([`SlottedOn`], automatic), and the bounds the derive emits to refuse what a slotted
//! counter cannot do. The operations are [`SlottedField`](crate::SlottedField)'s.

use std::future::Future;

use diesel::backend::Backend;
use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::QueryMetadata;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Integer};
use diesel::{Column, Expression};

use crate::backend::{Dialect, RawConnection};
use crate::key::{KeyColumns, KeyValue};
use crate::retry::RetryPolicy;

/// Describes the slotted counter `Col` of model `Self`: its slot table and how many slots.
/// `#[derive(AtomicField)]` implements it for `#[atomic(slots = N, table = t)]` fields.
#[diagnostic::on_unimplemented(
    message = "`{Col}` is not a slotted counter of `{Self}`",
    note = "a slotted counter is a field with #[atomic(slots = N, table = t)]; a counter cache into a plain #[atomic] column leaves out `slotted`"
)]
pub trait Slotted<Col: Column>: Sized + 'static {
    /// The model's key: the bare value for one column, a tuple for several.
    type Key;
    /// The slot table's key columns, named like the model's, without `slot`.
    type SlotKeyColumns: KeyColumns<Table = <Self::SlotColumn as Column>::Table>;
    /// The slot table's `slot` column (`INTEGER`).
    type SlotColumn: Column<Table: Default> + Expression<SqlType = Integer> + 'static;
    /// The slot table's `count` column (`BIGINT`).
    type CountColumn: Column<Table = <Self::SlotColumn as Column>::Table>
        + Expression<SqlType = BigInt>
        + 'static;
    /// How many slots an increment chooses from (`0..SLOTS`).
    const SLOTS: i32;
    /// The field's name, for messages.
    const NAME: &'static str;
    /// The retry policy unless a call overrides it.
    const RETRY: RetryPolicy = RetryPolicy::DEFAULT;
}

/// A slotted field whose decrements the model allows (`allow_decrement`); implemented by the
/// derive.
#[diagnostic::on_unimplemented(
    message = "the slotted counter `{Col}` of `{Self}` does not allow decrements",
    note = "a slotted counter has no bounds, so a decrement can take it below zero; say #[atomic(.., allow_decrement)] on the field if that is what you want"
)]
pub trait SlottedDecrement<Col: Column>: Slotted<Col> {}

/// `Slotted` plus everything backend `DB` needs; implemented automatically.
#[diagnostic::on_unimplemented(
    message = "the slotted counter `{Col}` of `{Self}` cannot be used on backend `{DB}`",
    note = "the key type has no Diesel mapping on this backend, or the backend's cargo feature of counter-core is off"
)]
pub trait SlottedOn<Col: Column, DB: Backend>: Slotted<Col> {
    #[doc(hidden)]
    fn walk_slot_table<'b>(
        table: &'b <Self::SlotColumn as Column>::Table,
        out: AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>;
    #[doc(hidden)]
    fn walk_key_eq<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    #[doc(hidden)]
    fn walk_key_values<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    #[doc(hidden)]
    fn bind_slot<'b>(slot: &'b i32, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    #[doc(hidden)]
    fn bind_count<'b>(n: &'b i64, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    #[doc(hidden)]
    fn load_sum<R, Q>(conn: &mut R, query: Q) -> impl Future<Output = QueryResult<i64>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = BigInt> + QueryFragment<DB> + QueryId;
    #[doc(hidden)]
    fn load_slots<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> impl Future<Output = QueryResult<Vec<(i32, i64)>>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = (Integer, BigInt)> + QueryFragment<DB> + QueryId;
}

impl<M, Col, DB> SlottedOn<Col, DB> for M
where
    M: Slotted<Col>,
    Col: Column,
    DB: Dialect
        + HasSqlType<Integer>
        + HasSqlType<BigInt>
        + QueryMetadata<(Integer, BigInt)>
        + QueryMetadata<BigInt>,
    <M::SlotColumn as Column>::Table: QueryFragment<DB>,
    M::Key: KeyValue<M::SlotKeyColumns, DB>,
    i32: ToSql<Integer, DB> + FromSql<Integer, DB>,
    i64: ToSql<BigInt, DB> + FromSql<BigInt, DB> + FromSqlRow<BigInt, DB>,
    (i32, i64): FromSqlRow<(Integer, BigInt), DB>,
{
    fn walk_slot_table<'b>(
        table: &'b <Self::SlotColumn as Column>::Table,
        out: AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        table.walk_ast(out)
    }

    fn walk_key_eq<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        key.walk_eq(out)
    }

    fn walk_key_values<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        key.walk_values(out)
    }

    fn bind_slot<'b>(slot: &'b i32, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_bind_param::<Integer, _>(slot)
    }

    fn bind_count<'b>(n: &'b i64, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_bind_param::<BigInt, _>(n)
    }

    async fn load_sum<R, Q>(conn: &mut R, query: Q) -> QueryResult<i64>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = BigInt> + QueryFragment<DB> + QueryId,
    {
        // Every row, as everywhere (a SQLite statement's errors come at its end).
        Ok(conn.query_rows::<Q, i64>(query).await?.pop().unwrap_or(0))
    }

    async fn load_slots<R, Q>(conn: &mut R, query: Q) -> QueryResult<Vec<(i32, i64)>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = (Integer, BigInt)> + QueryFragment<DB> + QueryId,
    {
        conn.query_rows(query).await
    }
}

/// Emitted by the derive as a bound of the operations a slotted field cannot have; never
/// implemented, so a call fails to compile with this message.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a slotted counter has no guarded operations (`*_if_at_least`, `take_*_up_to`, `increment_*_up_to`, `set_*_max`, `set_*_min`, `compare_and_set_*`, `update_*_locked`, `transfer_*`)",
    label = "not available on a slotted counter",
    note = "they need the counter's value under a bound, and a slotted counter's value is the sum of every slot, which is only stable with all of them locked (the one-row bottleneck slots exist to avoid)",
    note = "use increment_*/current_*/compact_* (and decrement_* with allow_decrement) on a slotted field, or a plain #[atomic] field where bounds matter (stock, balances)"
)]
pub trait NotOnSlotted<Op> {}

/// Names the refused operation in [`NotOnSlotted`]'s message.
#[doc(hidden)]
pub mod refused {
    /// `decrement_*_if_at_least`.
    pub struct DecrementIfAtLeast;
    /// `take_*_up_to`.
    pub struct TakeUpTo;
    /// `update_*_locked`.
    pub struct UpdateLocked;
    /// `transfer_*`.
    pub struct Transfer;
    /// `increment_*_up_to`.
    pub struct IncrementUpTo;
    /// `set_*_max` and `set_*_min`.
    pub struct SetMaxMin;
    /// `compare_and_set_*`.
    pub struct CompareAndSet;
}
