//! The single-statement operations: `increment`, `decrement`, `decrement_if_at_least`,
//! `take_up_to` and `increment_up_to`.
//!
//! Shape of every call: plan the change in Rust ([`Plan`]), run the backend's single guarded
//! statement ([`Strategy`]), and only when it matched no row look once more to tell "no such
//! row" from "the guard said no". A row that would have passed when looked at was moved by
//! another writer in between: the statement runs again, and past [`RECHECKS`] the change is
//! decided under a row lock, where no other writer can move it.

use std::future::Future;

use diesel::Column;

use super::Field;
use crate::backend::{
    write_transaction, AtomicConnection, BackendOf, CallMode, Out, RawConnection,
};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::plan::{non_negative, Direction, Op, Plan, Take};
use crate::retry::retrying;
use crate::sql::write;
use crate::strategy::Strategy;
use crate::value::AtomicValue;

/// How often a single-statement change is tried again when it missed but the row, read right
/// after, would have passed (another writer moved the value in between). Past this, the change
/// is decided under a row lock, where no other writer can move it.
pub(crate) const RECHECKS: u32 = 3;

impl<M: AtomicField<Col>, Col: Column + 'static> Field<M, Col> {
    one_value_operations! {
        /// `c = c + by` in one statement, unless the result would pass the upper bound.
        ///
        /// Returns the new value. Errors: `NegativeAmount`, `NotFound`, `OutOfRange` (row
        /// unchanged).
        ///
        #[doc = include_str!("../../doc/ops/increment.md")]
        increment(by) => |this, conn, key| {
            let plan = Plan::of::<M, Col>(Op::Increment, by)?;
            this.change(conn.raw(), &key, plan).await
        };

        /// `c = c - by` in one statement, unless the result would pass the lower bound.
        ///
        /// Returns the new value. Errors: `NegativeAmount`, `NotFound`, `OutOfRange` (row
        /// unchanged).
        ///
        #[doc = include_str!("../../doc/ops/decrement.md")]
        decrement(by) => |this, conn, key| {
            let plan = Plan::of::<M, Col>(Op::Decrement, by)?;
            this.change(conn.raw(), &key, plan).await
        };

        /// `c = c - n` only if `c >= n` (`WHERE c >= n`): the sale that cannot oversell.
        ///
        /// Returns the new value. Errors: `Insufficient { available, requested }` when `c < n`,
        /// `OutOfRange` when `c - n` would pass a declared minimum above zero,
        /// `NegativeAmount`, `NotFound`. The row is unchanged on every error.
        ///
        #[doc = include_str!("../../doc/ops/decrement_if_at_least.md")]
        decrement_if_at_least(n) => |this, conn, key| {
            let plan = Plan::of::<M, Col>(Op::AtLeast, n)?;
            this.change(conn.raw(), &key, plan).await
        };
    }

    one_value_operations! {
        /// Takes `t = min(n, c - floor)` where the floor is the declared minimum or 0: "sell
        /// what is left". Returns `t`, which is 0 when nothing is left.
        ///
        /// Errors: `NegativeAmount`, `NotFound`.
        ///
        #[doc = include_str!("../../doc/ops/take_up_to.md")]
        take_up_to(n) => |this, conn, key| {
            non_negative(n)?;
            let take = Take::of::<M, Col>(Direction::Down, n);
            this.clamped(conn.raw(), &key, take).await
        };

        /// Adds `a = min(n, ceiling - c)` where the ceiling is the declared maximum or the
        /// type's largest value: "fill up to the maximum", the mirror of
        /// [`take_up_to`](Self::take_up_to). Returns `a`, which is 0 when the row is full (or
        /// was already written above the ceiling by someone else: it is left as it is).
        ///
        /// Errors: `NegativeAmount`, `NotFound`.
        ///
        #[doc = include_str!("../../doc/ops/increment_up_to.md")]
        increment_up_to(n) => |this, conn, key| {
            non_negative(n)?;
            let take = Take::of::<M, Col>(Direction::Up, n);
            this.clamped(conn.raw(), &key, take).await
        };
    }

    /// A take or a fill ([`Take`]): one statement, and when it matched no row one look to
    /// tell a missing row (`NotFound`) from one with no room (0). `None` moves nothing.
    async fn clamped<R>(
        &self,
        raw: &mut R,
        key: &M::Key,
        take: Option<Take<M::Value>>,
    ) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        retrying!(Write on Self::subject(), raw, self.retry, LockMode::Wait, |c| {
            let Some(take) = take else {
                return self.existing(c, key).await.map(|_| M::Value::ZERO);
            };
            match <R::Db as Strategy>::take::<_, M, Col>(c, key, take).await? {
                Some(moved) => Ok(moved),
                None => self.existing(c, key).await.map(|_| M::Value::ZERO),
            }
        })
    }

    /// One guarded single-statement change, with the miss handling described in the module doc.
    async fn change<R>(
        &self,
        raw: &mut R,
        key: &M::Key,
        plan: Plan<M::Value>,
    ) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        retrying!(Write on Self::subject(), raw, self.retry, LockMode::Wait, |c| {
            if plan.moves_nothing() {
                return self.existing(c, key).await;
            }
            for _ in 0..RECHECKS {
                if let Some(delta) = plan.delta() {
                    let statement = <R::Db as Strategy>::apply_delta::<_, M, Col>(c, key, delta);
                    if let Some(new) = statement.await? {
                        return Ok(new);
                    }
                }
                if let Some(refused) = plan.refusal(self.existing(c, key).await?) {
                    return Err(refused);
                }
            }
            // The value keeps moving between our statement and our look: decide under the lock.
            self.change_locked(c, key, plan).await
        })
    }

    /// The fallback of [`change`](Self::change): the same planned change as a read and a write
    /// under a row lock, which waits for the lock like the statement would have, whatever the
    /// handle's lock mode.
    pub(crate) async fn change_locked<R>(
        &self,
        raw: &mut R,
        key: &M::Key,
        plan: Plan<M::Value>,
    ) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        let waiting = self.lock(LockMode::Wait);
        write_transaction!(raw, |c| {
            let current = waiting
                .lock_row(c, key)
                .await?
                .ok_or(AtomicError::NotFound)?;
            let new = plan.apply_to(current)?;
            write::<M, Col, _>(c, key, new).await?;
            Ok(new)
        })
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    //! The lock fallback of `change` runs only after three races in a row, which no test can
    //! provoke on purpose; it is tested here directly.

    use diesel::prelude::*;

    use super::*;
    use crate::backend::Blocking;
    use crate::plan::Range;

    diesel::table! { items (id) { id -> BigInt, stock -> Integer, } }

    struct Item;
    impl AtomicField<items::stock> for Item {
        type Key = i64;
        type KeyColumns = (items::id,);
        type Value = i32;
        const MIN: Option<i32> = Some(0);
        const MAX: Option<i32> = Some(100);
        const NAME: &'static str = "stock";
    }

    fn conn() -> SqliteConnection {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        diesel::sql_query("CREATE TABLE items (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL)")
            .execute(&mut c)
            .unwrap();
        diesel::sql_query("INSERT INTO items VALUES (1, 10)")
            .execute(&mut c)
            .unwrap();
        c
    }

    fn locked(
        f: Field<Item, items::stock>,
        c: &mut SqliteConnection,
        plan: Plan<i32>,
    ) -> Result<i32, AtomicError> {
        Blocking::drive(f.change_locked(c, &1, plan))
    }

    fn stock(c: &mut SqliteConnection) -> i32 {
        items::table.find(1).select(items::stock).first(c).unwrap()
    }

    #[test]
    fn lock_fallback_applies_the_guarded_change() {
        let (c, f) = (
            &mut conn(),
            Field::<Item, items::stock>::new().lock(LockMode::NoWait),
        );
        let range = Range::of::<Item, items::stock>();
        let up = Plan::new(Op::Increment, range, 5).unwrap();
        assert_eq!(locked(f, c, up).unwrap(), 15);
        let down = Plan::new(Op::AtLeast, range, 15).unwrap();
        assert_eq!(locked(f, c, down).unwrap(), 0);
        assert_eq!(stock(c), 0);
    }

    #[test]
    fn lock_fallback_refuses_what_the_guard_refuses() {
        let (c, f) = (&mut conn(), Field::<Item, items::stock>::new());
        let range = Range::of::<Item, items::stock>();
        let at_least = Plan::new(Op::AtLeast, range, 11).unwrap();
        assert!(matches!(
            locked(f, c, at_least),
            Err(AtomicError::Insufficient {
                available: 10,
                requested: 11
            })
        ));
        let up = Plan::new(Op::Increment, range, 91).unwrap();
        assert!(matches!(
            locked(f, c, up),
            Err(AtomicError::OutOfRange {
                current: 10,
                attempted: 101,
                ..
            })
        ));
        assert!(matches!(
            Blocking::drive(f.change_locked(c, &2, Plan::new(Op::Increment, range, 1).unwrap())),
            Err(AtomicError::NotFound)
        ));
        assert_eq!(stock(c), 10);
    }
}
