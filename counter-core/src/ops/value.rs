//! The operations that set a value rather than add to it, each one conditional statement:
//! `set_max` and `set_min` (high- and low-water marks: the best bid, the longest streak, the
//! last sequence seen) and `compare_and_set` (the optimistic-locking step: write over the value
//! the caller read, or learn what it is now).
//!
//! Bounds hold as for every change, in the direction the value moves: `set_max` may not raise
//! a row past `max`, `set_min` may not lower it past `min`, and `compare_and_set` may not move
//! it past either. A value that cannot be written is refused before any statement where that
//! is already certain; otherwise the statement decides, and a miss is looked at once to say
//! why, as the single-statement operations do.

use std::future::Future;

use diesel::Column;

use super::single::RECHECKS;
use super::Field;
use crate::backend::{
    write_transaction, AtomicConnection, BackendOf, CallMode, Out, RawConnection,
};
use crate::error::{AtomicError, Limit};
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::plan::{check_transition, Range};
use crate::retry::retrying;
use crate::sql::{write, Assign, Highest, Lowest, Rule, Swap};
use crate::value::AtomicValue;

/// Which way a water mark moves.
#[derive(Clone, Copy)]
enum Mark {
    /// `set_max`: the row keeps the higher value.
    High,
    /// `set_min`: the row keeps the lower value.
    Low,
}

impl<M: AtomicField<Col>, Col: Column + 'static> Field<M, Col> {
    one_value_operations! {
        /// `c = max(c, v)`: a high-water mark (the highest bid, the longest streak), written
        /// only where `v` raises the row. Returns the row's value afterwards: `v` when it
        /// raised the row, else the higher value the row already held.
        ///
        /// Errors: `NotFound`; `OutOfRange` when `v` is above the declared maximum (or the
        /// type's) and the row holds less (the row is unchanged; a row already at or above `v`
        /// answers with its value).
        ///
        #[doc = include_str!("../../doc/ops/set_max.md")]
        set_max(v) => |this, conn, key| this.mark(conn.raw(), &key, v, Mark::High).await;

        /// `c = min(c, v)`: a low-water mark (the lowest price seen, the earliest start),
        /// written only where `v` lowers the row. Returns the row's value afterwards.
        ///
        /// Errors: `NotFound`; `OutOfRange` when `v` is below the declared minimum (or the
        /// type's) and the row holds more (the row is unchanged).
        ///
        #[doc = include_str!("../../doc/ops/set_min.md")]
        set_min(v) => |this, conn, key| this.mark(conn.raw(), &key, v, Mark::Low).await;
    }

    /// Writes `new` only if the row still holds `expected` (`UPDATE … SET c = $new WHERE pk =
    /// $key AND c = $expected`): the optimistic-locking step. Returns `new`.
    ///
    /// Errors: `Mismatch { expected, current }` when the row holds another value (nothing
    /// written: decide again from `current`); `NotFound`; `OutOfRange` when moving from
    /// `expected` to `new` would cross a bound, refused before any statement.
    ///
    #[doc = include_str!("../../doc/ops/compare_and_set.md")]
    pub fn compare_and_set<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
        expected: M::Value,
        new: M::Value,
    ) -> Out<C, impl Future<Output = Result<M::Value, AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("compare_and_set").wrap(async move {
            check_transition(Range::of::<M, Col>(), expected.to_i128(), new.to_i128())?;
            this.swap(conn.raw(), &key, expected, new).await
        }))
    }
}

/// The statements behind the public methods.
impl<M: AtomicField<Col>, Col: Column + 'static> Field<M, Col> {
    /// A water mark. Within the bound: the conditional set ([`Highest`] or [`Lowest`]),
    /// written only where it moves the row. Past the bound no row may move to `v`, so one
    /// read answers: a row already beyond `v` keeps its value, any other is refused.
    async fn mark<R>(
        &self,
        raw: &mut R,
        key: &M::Key,
        v: M::Value,
        mark: Mark,
    ) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        let range = Range::of::<M, Col>();
        let past = match mark {
            Mark::High => (v.to_i128() > range.hi).then_some(Limit::Max(range.hi)),
            Mark::Low => (v.to_i128() < range.lo).then_some(Limit::Min(range.lo)),
        };
        // A row holding `current` needs no write: it is at or beyond `v` already.
        let kept = move |current: M::Value| match mark {
            Mark::High => current >= v,
            Mark::Low => current <= v,
        };
        retrying!(Write on Self::subject(), raw, self.retry, LockMode::Wait, |c| {
            if let Some(limit) = past {
                let current = self.existing(c, key).await?;
                return match kept(current) {
                    true => Ok(current),
                    false => Err(AtomicError::OutOfRange {
                        current: current.to_i128(),
                        attempted: v.to_i128(),
                        limit,
                    }),
                };
            }
            let kept_or = |current: M::Value| kept(current).then_some(Ok(current));
            match mark {
                Mark::High => self.set_where::<_, Highest>(c, key, v, v, kept_or).await,
                Mark::Low => self.set_where::<_, Lowest>(c, key, v, v, kept_or).await,
            }
        })
    }

    /// Compare-and-set, bounds already checked: [`Swap`]; a row holding another value is
    /// `Mismatch`.
    async fn swap<R>(
        &self,
        raw: &mut R,
        key: &M::Key,
        expected: M::Value,
        new: M::Value,
    ) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        let mismatch = |current: M::Value| {
            (current != expected).then_some(Err(AtomicError::Mismatch {
                expected: expected.to_i128(),
                current: current.to_i128(),
            }))
        };
        retrying!(Write on Self::subject(), raw, self.retry, LockMode::Wait, |c| {
            self.set_where::<_, Swap>(c, key, new, expected, mismatch).await
        })
    }

    /// `UPDATE … SET c = value WHERE pk = key AND c <Ru::CMP> than`: `value` when it matched.
    /// Otherwise one look: `NotFound`, or what `decide` makes of the row's value (`None`: the
    /// row would match now, moved by another writer in between, so the statement runs
    /// again); past [`RECHECKS`] the same decision under the row lock, where nothing moves.
    async fn set_where<R, Ru>(
        &self,
        raw: &mut R,
        key: &M::Key,
        value: M::Value,
        than: M::Value,
        decide: impl Fn(M::Value) -> Option<Result<M::Value, AtomicError>>,
    ) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
        Ru: Rule,
    {
        for _ in 0..RECHECKS {
            let statement = Assign::<M, Col, Ru>::new(M::table(), key, value, than);
            if raw.query_count(statement).await? > 0 {
                return Ok(value);
            }
            if let Some(decided) = decide(self.existing(raw, key).await?) {
                return decided;
            }
        }
        let waiting = self.lock(LockMode::Wait);
        write_transaction!(raw, |c| {
            let current = waiting
                .lock_row(c, key)
                .await?
                .ok_or(AtomicError::NotFound)?;
            if let Some(decided) = decide(current) {
                return decided;
            }
            write::<M, Col, _>(c, key, value).await?;
            Ok(value)
        })
    }
}
