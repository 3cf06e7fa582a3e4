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

use diesel::Column;

use crate::backend::{guarded, AtomicConnection, BackendOf, CallMode, Dialect, Out, RawConnection};
use crate::error::AtomicError;
use crate::field::{Slotted, SlottedDecrement, SlottedOn};
use crate::lock::LockMode;
use crate::plan::non_negative;
use crate::retry::{retrying, RetryPolicy};
use crate::sql::{SlotAdd, SlotDelete, SlotSum, SlotsLocked};
use crate::trace::OpSpan;

/// The operations on slotted column `Col` of model `M`; the derive's `atomic_f()` returns it.
///
#[doc = include_str!("../doc/ops/slotted.md")]
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
        C::Mode::drive(
            OpSpan::new::<M>(
                "slotted_increment",
                M::NAME,
                <BackendOf<C> as Dialect>::NAME,
            )
            .wrap(self.adding(conn, key, by, 1)),
        )
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
        C::Mode::drive(
            OpSpan::new::<M>(
                "slotted_decrement",
                M::NAME,
                <BackendOf<C> as Dialect>::NAME,
            )
            .wrap(self.adding(conn, key, by, -1)),
        )
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
        C::Mode::drive(
            OpSpan::new::<M>("slotted_current", M::NAME, <BackendOf<C> as Dialect>::NAME).wrap(
                async move {
                    retrying!(Read, conn.raw(), retry, LockMode::Wait, |c| {
                        let sum = SlotSum::<M, Col> {
                            table: Default::default(),
                            key: &key,
                        };
                        Ok(M::load_sum(c, sum).await?)
                    })
                },
            ),
        )
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
        C::Mode::drive(
            OpSpan::new::<M>("slotted_compact", M::NAME, <BackendOf<C> as Dialect>::NAME).wrap(
                async move {
                    let begin = <BackendOf<C> as Dialect>::BEGIN_COMPACT;
                    retrying!(Write, conn.raw(), this.retry, LockMode::Wait, |c| {
                        guarded!(c, begin, |c| {
                            let lock = SlotsLocked::<M, Col> {
                                table: Default::default(),
                                key: &key,
                            };
                            let slots = M::load_slots(c, lock).await?;
                            let total: i64 = slots.iter().map(|&(_, n)| n).sum();
                            let mut moved: i64 = 0;
                            for &(slot, n) in slots.iter().filter(|&&(slot, _)| slot != 0) {
                                let delete = SlotDelete::<M, Col> {
                                    table: Default::default(),
                                    key: &key,
                                    slot,
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
                },
            ),
        )
    }

    /// The future of `increment` (`sign` 1) and `decrement` (`sign` -1).
    fn adding<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
        by: i64,
        sign: i64,
    ) -> impl Future<Output = Result<(), AtomicError>> + use<'c, M, Col, C>
    where
        C: AtomicConnection,
        M: SlottedOn<Col, BackendOf<C>>,
    {
        let this = *self;
        async move {
            non_negative(by)?;
            this.add(conn.raw(), &key, sign * by).await
        }
    }

    /// One upsert of `amount` into a random slot, re-run on a transient conflict.
    async fn add<R>(&self, raw: &mut R, key: &M::Key, amount: i64) -> Result<(), AtomicError>
    where
        R: RawConnection,
        M: SlottedOn<Col, R::Db>,
    {
        let slot = rand::random_range(0..M::SLOTS.max(1));
        retrying!(Write, raw, self.retry, LockMode::Wait, |c| {
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
        let add = SlotAdd::<M, Col> {
            table: Default::default(),
            key,
            slot,
            amount,
        };
        c.query_count(add).await?;
        Ok(())
    }
}
