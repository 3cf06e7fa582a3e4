//! Sets of rows: the set operations (`increment_many`, `decrement_many`, the checkout
//! `decrement_if_at_least_many`), every row or none, and the per-row application a flush
//! makes ([`each`]), each row on its own.
//!
//! Both are planned once ([`SetPlan`]) and sent as the backend's batched statements
//! ([`Strategy`]): keys in order, so two batches over overlapping keys lock their rows in
//! one order.

pub(crate) mod each;

use std::fmt::Debug;
use std::future::Future;

use diesel::Column;

use crate::backend::{
    write_transaction, AtomicConnection, BackendOf, CallMode, Dialect, Out, RawConnection,
};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::ops::Field;
use crate::plan::Op;
use crate::retry::retrying;
use crate::set_plan::{in_row, RowPlan, SetPlan};
use crate::sql::{read_locked, write, AllRows, ForUpdate};
use crate::strategy::Strategy;
use crate::upsert::KeyValues;
use crate::value::AtomicValue;

/// The set operations: one public method each, with one signature.
macro_rules! set_operations {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)+) => {$(
        $(#[$doc])*
        pub fn $name<'c, C, I>(
            &self,
            conn: &'c mut C,
            pairs: I,
        ) -> Out<C, impl Future<Output = Result<KeyValues<M, Col>, AtomicError>> + use<'c, M, Col, C, I>>
        where
            C: AtomicConnection,
            M: AtomicFieldOn<Col, BackendOf<C>>,
            M::Key: Ord + Clone + Debug,
            I: IntoIterator<Item = (M::Key, M::Value)>,
        {
            let this = *self;
            C::Mode::drive(Self::span::<C>(stringify!($name)).wrap(async move {
                let set = SetPlan::of::<M, Col>(Op::$op, pairs)?;
                this.change_set(conn.raw(), &set).await
            }))
        }
    )+};
}

impl<M: AtomicField<Col>, Col: Column + 'static> Field<M, Col> {
    set_operations! {
        /// Adds each pair's amount to its key's row: every row or none, in one statement where
        /// SQL can say it. Amounts of a repeated key are summed first. Returns each key with
        /// its new value, in key order.
        ///
        /// Errors: `InRow { key, error }` naming the first key (in key order) that refused,
        /// with `NotFound` (no such row), `OutOfRange` (it would pass the maximum) or
        /// `NegativeAmount`; no row was changed.
        increment_many => Increment;

        /// Subtracts each pair's amount from its key's row under the field's lower bound:
        /// every row or none, like [`increment_many`](Self::increment_many).
        decrement_many => Decrement;

        /// **The checkout**: takes each pair's amount from its key's row only if the row holds
        /// at least that much, every row or none. Returns each key's new value in key order.
        ///
        /// Errors: `InRow { key, error }` naming the first key (in key order) that refused:
        /// `Insufficient { available, requested }` (the row's value when the call locked it),
        /// `OutOfRange` (past a declared minimum above zero), `NotFound`; no row was changed.
        decrement_if_at_least_many => AtLeast;
    }

    /// Applies `set`, every row or none, in a write transaction of its own (a savepoint in
    /// the caller's), re-run whole after a transient conflict: one batched statement per chunk
    /// of keys ([`Strategy::change_chunk`]); a chunk that refuses rolls back the chunks before
    /// it.
    pub(crate) async fn change_set<R>(
        &self,
        raw: &mut R,
        set: &SetPlan<M::Key, M::Value>,
    ) -> Result<KeyValues<M, Col>, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
        M::Key: Ord + Clone + Debug,
    {
        if set.rows.is_empty() {
            return Ok(Vec::new());
        }
        // A row no value can admit (an amount past the range): decided under the locks, row
        // by row, which reads what the refusal reports.
        let hopeless = set
            .rows
            .iter()
            .any(|row| row.plan.and_then(|p| p.delta()).is_none());
        retrying!(Write, raw, self.policy(), LockMode::Wait, |c| {
            write_transaction!(c, |c| {
                if hopeless {
                    return self.change_set_locked(c, set).await;
                }
                let mut done = Vec::with_capacity(set.rows.len());
                for chunk in set.rows.chunks(<R::Db as Dialect>::SET_CHUNK) {
                    let answers =
                        <R::Db as Strategy>::change_chunk::<_, M, Col, AllRows>(c, chunk).await?;
                    if !answers.iter().all(|(changed, _)| *changed) {
                        match first_refusal(set, chunk, &answers) {
                            Some(refusal) => return Err(refusal),
                            // Keys equal under the collation (the statement changed
                            // nothing): row by row, under the locks.
                            None if !answers.iter().any(|(changed, _)| *changed) => {
                                return self.change_set_locked(c, set).await
                            }
                            None => return Err(AtomicError::custom(
                                "a set changed some rows of a chunk and not others (a bug: please report it)",
                            )),
                        }
                    }
                    for (row, (_, value)) in chunk.iter().zip(answers) {
                        let value = value.expect("a changed row has its value");
                        done.push((row.key.clone(), value));
                    }
                }
                Ok(done)
            })
        })
    }

    /// [`change_set`](Self::change_set) row by row, each read under its lock, in key order.
    async fn change_set_locked<R>(
        &self,
        c: &mut R,
        set: &SetPlan<M::Key, M::Value>,
    ) -> Result<KeyValues<M, Col>, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
        M::Key: Ord + Clone + Debug,
    {
        let mut done = Vec::with_capacity(set.rows.len());
        for row in &set.rows {
            let current = read_locked::<M, Col, ForUpdate, _>(c, &row.key)
                .await?
                .ok_or_else(|| in_row(&row.key, AtomicError::NotFound))?;
            let new = set
                .apply_to(row, current)
                .map_err(|error| in_row(&row.key, error))?;
            if new != current {
                write::<M, Col, _>(c, &row.key, new).await?;
            }
            done.push((row.key.clone(), new));
        }
        Ok(done)
    }
}

/// The refusal of the first row of `chunk` (in key order) that did not admit its change;
/// `None` when every row admits it (two keys named one row).
fn first_refusal<K: Ord + Clone + Debug, V: AtomicValue>(
    set: &SetPlan<K, V>,
    chunk: &[RowPlan<K, V>],
    answers: &[(bool, Option<V>)],
) -> Option<AtomicError> {
    for (row, (_, value)) in chunk.iter().zip(answers) {
        let refusal = match value {
            None => Some(AtomicError::NotFound),
            Some(v) => set.refusal(row, *v),
        };
        if let Some(error) = refusal {
            return Some(in_row(&row.key, error));
        }
    }
    None
}
