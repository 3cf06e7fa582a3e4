//! Slotted counters: one counter spread over N rows of a slot table, past the one-row commit
//! limit.
//!
//! Every increment of one row waits for the previous writer's commit. A slotted counter keeps
//! `(key…, slot, count)` rows in a table of its own; an increment adds to a random slot (one
//! upsert), so concurrent increments of one key mostly touch different rows, and a read sums
//! the slots. PlanetScale calls it the "slotted counter pattern".
//!
//! The price: **no bounds**. A `min`, a `max`, `*_if_at_least`, `take_*_up_to`, `transfer_*`
//! and `update_*_locked` would need the sum, and the sum is only stable with every slot
//! locked, which is the single-row bottleneck again; the derive refuses them on a slotted
//! field. A decrement (which can take the sum below zero) is only generated where the field
//! says `allow_decrement`.
//!
//! `compact_*` folds every slot of a key into slot 0, the slots locked in slot order, so that
//! the table stays at one row per key between bursts. The model's own column is left alone:
//! the slots are the counter.
//!
//! The slot table, for a model keyed `id` (the key columns keep the model's names):
//!
//! ```sql
//! -- PostgreSQL, SQLite
//! CREATE TABLE article_view_slots (id BIGINT NOT NULL, slot INTEGER NOT NULL,
//!     count BIGINT NOT NULL, PRIMARY KEY (id, slot));
//! -- MySQL / MariaDB
//! CREATE TABLE article_view_slots (id BIGINT NOT NULL, slot INT NOT NULL,
//!     count BIGINT NOT NULL, PRIMARY KEY (id, slot)) ENGINE = InnoDB;
//! ```

use std::future::Future;
use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::QueryMetadata;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Integer};
use diesel::{Column, Expression};

use crate::backend::{
    guarded, AtomicConnection, BackendOf, CallMode, Dialect, Out, RawConnection, UpsertClause,
};
use crate::error::AtomicError;
use crate::key::{KeyColumns, KeyValue};
use crate::lock::LockMode;
use crate::plan::non_negative;
use crate::retry::{retrying, RetryPolicy};
use crate::sql::{SlotStatement, SLOT_ADD, SLOT_DELETE, SLOT_LOCK, SLOT_SUM};

/// Describes the slotted counter `Col` of model `Self`: its slot table and how many slots.
/// `#[derive(AtomicField)]` implements it for `#[atomic(slots = N, table = t)]` fields.
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

/// The operations on slotted column `Col` of model `M`; the derive's `atomic_f()` returns it.
pub struct SlottedField<M, Col> {
    retry: RetryPolicy,
    marker: PhantomData<fn() -> (M, Col)>,
}

impl<M, Col> Clone for SlottedField<M, Col> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, Col> Copy for SlottedField<M, Col> {}

impl<M, Col> std::fmt::Debug for SlottedField<M, Col> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlottedField")
            .field("retry", &self.retry)
            .finish()
    }
}

impl<M: Slotted<Col>, Col: Column + 'static> Default for SlottedField<M, Col> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Slotted<Col>, Col: Column + 'static> SlottedField<M, Col> {
    /// The handle with the model's retry policy.
    pub fn new() -> Self {
        SlottedField {
            retry: M::RETRY,
            marker: PhantomData,
        }
    }

    /// The same handle with another retry policy.
    pub fn retry(self, policy: RetryPolicy) -> Self {
        SlottedField {
            retry: policy,
            ..self
        }
    }

    /// Adds `by` to a random slot of `key`, creating the slot: one statement, no lock on the
    /// other slots. The key need not exist in the model's table. Errors: `NegativeAmount`.
    pub fn increment<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
        by: i64,
    ) -> Out<C, impl Future<Output = Result<(), AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: SlottedOn<Col, BackendOf<C>>,
    {
        let this = *self;
        C::Mode::drive(async move {
            non_negative(by)?;
            this.add(conn.raw(), &key, by).await
        })
    }

    /// Subtracts `by` from a random slot of `key`; the sum may go below zero. Only for fields
    /// that say `allow_decrement`. Errors: `NegativeAmount`.
    pub fn decrement<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
        by: i64,
    ) -> Out<C, impl Future<Output = Result<(), AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: SlottedOn<Col, BackendOf<C>> + SlottedDecrement<Col>,
    {
        let this = *self;
        C::Mode::drive(async move {
            non_negative(by)?;
            this.add(conn.raw(), &key, -by).await
        })
    }

    /// The counter: the sum of `key`'s slots, 0 when it has none. One `SELECT SUM(..)`.
    pub fn current<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
    ) -> Out<C, impl Future<Output = Result<i64, AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: SlottedOn<Col, BackendOf<C>>,
    {
        let retry = self.retry;
        C::Mode::drive(async move {
            retrying!(conn.raw(), retry, LockMode::Wait, |c| {
                let sum = SlotStatement::<M, Col, SLOT_SUM> {
                    table: Default::default(),
                    key: &key,
                    slot: 0,
                    amount: 0,
                    on_duplicate: false,
                    bigint: <BackendOf<C> as Dialect>::BIGINT,
                    lock_sql: "",
                };
                Ok(M::load_sum(c, sum).await?)
            })
        })
    }

    /// Folds every slot of `key` into slot 0, in one transaction with the slots locked in slot
    /// order (so two compactions cannot deadlock, and an increment of a slot waits for it);
    /// returns the counter. Increments that arrive meanwhile are kept: they either wait for
    /// their slot's lock and land after the fold, or create a slot the fold did not lock.
    /// On PostgreSQL the transaction is `READ COMMITTED` even where the session default is
    /// `SERIALIZABLE`: there a fold that waits for a slot finds it changed since its snapshot
    /// and fails, so beside steady increments it would fail every try. It needs no snapshot:
    /// it reads only rows it locks, and the sum readers see is the same before and after.
    pub fn compact<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
    ) -> Out<C, impl Future<Output = Result<i64, AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: SlottedOn<Col, BackendOf<C>>,
    {
        let this = *self;
        C::Mode::drive(async move {
            let lock_sql = <BackendOf<C> as Dialect>::lock_sql(LockMode::Wait)?;
            let begin = <BackendOf<C> as Dialect>::BEGIN_COMPACT;
            retrying!(conn.raw(), this.retry, LockMode::Wait, |c| {
                guarded!(c, begin, |c| {
                    let lock = SlotStatement::<M, Col, SLOT_LOCK> {
                        table: Default::default(),
                        key: &key,
                        slot: 0,
                        amount: 0,
                        on_duplicate: false,
                        bigint: "",
                        lock_sql,
                    };
                    let slots = M::load_slots(c, lock).await?;
                    let total: i64 = slots.iter().map(|&(_, n)| n).sum();
                    let mut moved: i64 = 0;
                    for &(slot, n) in slots.iter().filter(|&&(slot, _)| slot != 0) {
                        let delete = SlotStatement::<M, Col, SLOT_DELETE> {
                            table: Default::default(),
                            key: &key,
                            slot,
                            amount: 0,
                            on_duplicate: false,
                            bigint: "",
                            lock_sql: "",
                        };
                        c.query_count(delete).await?;
                        moved += n;
                    }
                    if moved != 0 {
                        this.add_to(c, &key, 0, moved).await?;
                    }
                    Ok(total)
                })
            })
        })
    }

    /// One upsert of `amount` into a random slot, re-run on a transient conflict.
    async fn add<R>(&self, raw: &mut R, key: &M::Key, amount: i64) -> Result<(), AtomicError>
    where
        R: RawConnection,
        M: SlottedOn<Col, R::Db>,
    {
        let slot = rand::random_range(0..M::SLOTS.max(1));
        retrying!(raw, self.retry, LockMode::Wait, |c| {
            self.add_to(c, key, slot, amount).await
        })
    }

    /// The upsert of `amount` into `slot`.
    async fn add_to<R>(
        &self,
        c: &mut R,
        key: &M::Key,
        slot: i32,
        amount: i64,
    ) -> Result<(), AtomicError>
    where
        R: RawConnection,
        M: SlottedOn<Col, R::Db>,
    {
        let add = SlotStatement::<M, Col, SLOT_ADD> {
            table: Default::default(),
            key,
            slot,
            amount,
            on_duplicate: R::Db::UPSERT == UpsertClause::OnDuplicateKey,
            bigint: "",
            lock_sql: "",
        };
        c.query_count(add).await?;
        Ok(())
    }
}

/// Emitted by the derive as a bound of the operations a slotted field cannot have; never
/// implemented, so a call fails to compile with this message.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a slotted counter has no guarded operations (`*_if_at_least`, `take_*_up_to`, `update_*_locked`, `transfer_*`)",
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
}
