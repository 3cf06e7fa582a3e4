//! `transfer`: moves an amount between two rows of one column in one transaction, both rows
//! locked in the order the database sorts their keys.

use std::future::Future;

use diesel::Column;

use super::Field;
use crate::backend::{
    write_transaction, AtomicConnection, BackendOf, CallMode, Out, RawConnection,
};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::plan::{check_transition, non_negative, Range};
use crate::retry::retrying;
use crate::sql::{pair_order, write, First};
use crate::value::AtomicValue;

impl<M: AtomicField<Col>, Col: Column + 'static> Field<M, Col> {
    /// Moves `amount` from row `from` to row `to` in one transaction, both rows locked in the
    /// order the database sorts their keys, so that opposite transfers cannot deadlock.
    ///
    /// Returns the new values `(from, to)`. Errors: `Insufficient { available, requested }`
    /// when `from` would go below its lower bound (`available` is how much it could give: its
    /// value less the bound in force, the declared minimum or else the type's minimum),
    /// `OutOfRange` when `to` would pass its maximum, `SameRow` when both keys name one row
    /// *as the database compares them* (`"abc"` and `"ABC"` under a case-insensitive
    /// collation are one row; two equal keys are `SameRow` even when no row has them),
    /// `NegativeAmount`, `NotFound`. Nothing is written on any error.
    ///
    #[doc = include_str!("../../doc/ops/transfer.md")]
    #[allow(clippy::type_complexity)]
    pub fn transfer<'c, C>(
        &self,
        conn: &'c mut C,
        from: M::Key,
        to: M::Key,
        amount: M::Value,
    ) -> Out<C, impl Future<Output = Result<(M::Value, M::Value), AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        M::Key: PartialEq,
    {
        let range = Range::of::<M, Col>();
        let this = *self;
        C::Mode::drive(Self::span::<C>("transfer").wrap(async move {
            let amount_i = non_negative(amount)?;
            // Equal keys are one row whatever the collation; unequal ones the database decides.
            if from == to {
                return Err(AtomicError::SameRow);
            }
            retrying!(Write on Self::subject(), conn.raw(), this.retry, this.lock, |c| {
                // Before `BEGIN`: inside it, a plain SELECT is already a shared lock under
                // MySQL's SERIALIZABLE (two transfers of one row would then deadlock every
                // time), and it would fix a PostgreSQL REPEATABLE READ snapshot earlier than
                // needed. The locking reads below see the rows again, so a row deleted
                // meanwhile is still `NotFound`.
                let first = pair_order::<M, Col, _>(c, &from, &to).await?;
                write_transaction!(c, |c| {
                    let (source, target) = this.lock_pair(c, &from, &to, first).await?;
                    let (source, target) = (source.to_i128(), target.to_i128());
                    if amount_i == 0 {
                        return Ok(value(source, target));
                    }
                    if source - amount_i < range.lo {
                        return Err(AtomicError::Insufficient {
                            available: (source - range.lo).max(0),
                            requested: amount_i,
                        });
                    }
                    check_transition(range, target, target + amount_i)?;
                    let (new_source, new_target) =
                        value::<M::Value>(source - amount_i, target + amount_i);
                    write::<M, Col, _>(c, &from, new_source).await?;
                    write::<M, Col, _>(c, &to, new_target).await?;
                    Ok((new_source, new_target))
                })
            })
        }))
    }

    /// Reads and locks the two rows of a transfer per this handle's lock mode, in the order
    /// the database sorts their keys (`first`, from [`pair_order`]): their values
    /// `(from, to)`, or `NotFound`, or `Locked` when `SkipLocked` skipped one.
    async fn lock_pair<R>(
        &self,
        raw: &mut R,
        from: &M::Key,
        to: &M::Key,
        first: First,
    ) -> Result<(M::Value, M::Value), AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        let (a, b) = match first {
            First::From => (from, to),
            First::To => (to, from),
        };
        let a = self.lock_row(raw, a).await?.ok_or(AtomicError::NotFound)?;
        let b = self.lock_row(raw, b).await?.ok_or(AtomicError::NotFound)?;
        Ok(match first {
            First::From => (a, b),
            First::To => (b, a),
        })
    }
}

/// Two values that the bound checks already proved to fit.
fn value<V: AtomicValue>(a: i128, b: i128) -> (V, V) {
    let fit = |v| V::from_i128(v).expect("checked against the bounds");
    (fit(a), fit(b))
}
