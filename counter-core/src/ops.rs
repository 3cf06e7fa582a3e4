//! The operations, written once for every backend.
//!
//! Shape of every call: validate the input in Rust, run the backend's single guarded statement,
//! and only when it matched no row look once more to tell "no such row" from "the guard said
//! no". The whole attempt runs inside the retry loop, which re-runs it after a transient
//! conflict.

use std::future::Future;
use std::marker::PhantomData;

use diesel::Column;

use crate::backend::{
    write_transaction, AtomicConnection, BackendOf, CallMode, Dialect, Out, RawConnection,
};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::plan::{self, check_transition, non_negative, Delta, MissKind, Range, Take};
use crate::retry::{retrying, RetryPolicy};
use crate::sql::{pair_order, read, write, First};
use crate::value::AtomicValue;

/// How often a single-statement change is tried again when it missed but the row, read right
/// after, would have passed (another writer moved the value in between). Past this, the change
/// is decided under a row lock, where no other writer can move it.
pub(crate) const RECHECKS: u32 = 3;

/// The atomic operations on column `Col` of model `M`, with per-call options.
///
/// The derive generates one shorthand per operation (`Product::increment_stock(conn, id, 1)`)
/// and an accessor for this handle (`Product::atomic_stock()`) for the options:
///
/// ```
/// # use counter_core::{AtomicField, Field, LockMode, RetryPolicy};
/// # diesel::table! { counters (id) { id -> BigInt, hits -> BigInt, } }
/// # struct Counter;
/// # impl AtomicField<counters::hits> for Counter {
/// #     type Key = i64; type KeyColumns = (counters::id,); type Value = i64;
/// #     const MIN: Option<i64> = Some(0); const MAX: Option<i64> = None; const NAME: &'static str = "hits";
/// # }
/// use diesel::prelude::*;
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// diesel::sql_query("CREATE TABLE counters (id BIGINT PRIMARY KEY, hits BIGINT NOT NULL)").execute(&mut conn)?;
/// diesel::sql_query("INSERT INTO counters VALUES (1, 0)").execute(&mut conn)?;
///
/// let hits = Field::<Counter, counters::hits>::new().retry(RetryPolicy::DEFAULT.with_max_attempts(5));
/// assert_eq!(hits.increment(&mut conn, 1, 3)?, 3);
/// assert_eq!(hits.lock(LockMode::NoWait).update_locked(&mut conn, 1, |v| Ok(v * 10))?, 30);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Field<M, Col> {
    retry: RetryPolicy,
    lock: LockMode,
    marker: PhantomData<fn() -> (M, Col)>,
}

impl<M, Col> Clone for Field<M, Col> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, Col> Copy for Field<M, Col> {}

impl<M, Col> std::fmt::Debug for Field<M, Col> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Field")
            .field("retry", &self.retry)
            .field("lock", &self.lock)
            .finish()
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static> Default for Field<M, Col> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static> Field<M, Col> {
    /// The handle with the model's retry policy and [`LockMode::Wait`].
    pub fn new() -> Self {
        Field {
            retry: M::RETRY,
            lock: LockMode::Wait,
            marker: PhantomData,
        }
    }

    /// The same handle with another retry policy.
    pub fn retry(self, policy: RetryPolicy) -> Self {
        Field {
            retry: policy,
            ..self
        }
    }

    /// The same handle with another lock mode, for the operations that lock rows
    /// (`update_locked`, `transfer`).
    pub fn lock(self, mode: LockMode) -> Self {
        Field { lock: mode, ..self }
    }

    /// The row's current value: one plain `SELECT`, no lock, for showing a counter. It may be
    /// stale by the time you use it; to act on the value, use the operations below. A busy
    /// SQLite database is waited for like every other operation does.
    ///
    /// Errors: `NotFound`.
    pub fn current<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
    ) -> Out<C, impl Future<Output = Result<M::Value, AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
    {
        let this = *self;
        C::Mode::drive(async move {
            retrying!(conn.raw(), this.retry, LockMode::Wait, |c| {
                this.existing(c, &key).await
            })
        })
    }

    /// `c = c + by` in one statement, unless the result would pass the upper bound.
    ///
    /// Returns the new value. Errors: `NegativeAmount`, `NotFound`, `OutOfRange` (row unchanged).
    pub fn increment<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
        by: M::Value,
    ) -> Out<C, impl Future<Output = Result<M::Value, AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
    {
        let delta = plan::increment(Range::of::<M, Col>(), by);
        let this = *self;
        C::Mode::drive(async move {
            this.change(conn.raw(), &key, delta, MissKind::Increment)
                .await
        })
    }

    /// `c = c - by` in one statement, unless the result would pass the lower bound.
    ///
    /// Returns the new value. Errors: `NegativeAmount`, `NotFound`, `OutOfRange` (row unchanged).
    pub fn decrement<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
        by: M::Value,
    ) -> Out<C, impl Future<Output = Result<M::Value, AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
    {
        let delta = plan::decrement(Range::of::<M, Col>(), by);
        let this = *self;
        C::Mode::drive(async move {
            this.change(conn.raw(), &key, delta, MissKind::Decrement)
                .await
        })
    }

    /// `c = c - n` only if `c >= n` (`WHERE c >= n`): the sale that cannot oversell.
    ///
    /// Returns the new value. Errors: `Insufficient { available, requested }` when `c < n`,
    /// `OutOfRange` when `c - n` would pass a declared minimum above zero, `NegativeAmount`,
    /// `NotFound`. The row is unchanged on every error.
    pub fn decrement_if_at_least<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
        n: M::Value,
    ) -> Out<C, impl Future<Output = Result<M::Value, AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
    {
        let delta = plan::decrement_if_at_least(Range::of::<M, Col>(), n);
        let this = *self;
        C::Mode::drive(async move {
            this.change(conn.raw(), &key, delta, MissKind::AtLeast)
                .await
        })
    }

    /// Takes `t = min(n, c - floor)` where the floor is the declared minimum or 0: "sell what is
    /// left". Returns `t`, which is 0 when nothing is left.
    ///
    /// Errors: `NegativeAmount`, `NotFound`.
    pub fn take_up_to<'c, C>(
        &self,
        conn: &'c mut C,
        key: M::Key,
        n: M::Value,
    ) -> Out<C, impl Future<Output = Result<M::Value, AtomicError>> + use<'c, M, Col, C>>
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
    {
        let this = *self;
        C::Mode::drive(async move {
            non_negative(n)?;
            let take = Take::new(Range::floor::<M, Col>(), n).filter(|t| t.n != M::Value::ZERO);
            retrying!(conn.raw(), this.retry, LockMode::Wait, |c| {
                let Some(take) = take else {
                    return this.existing(c, &key).await.map(|_| M::Value::ZERO);
                };
                match <BackendOf<C> as Dialect>::take::<_, M, Col>(c, &key, take).await? {
                    Some(taken) => Ok(taken),
                    None => this.existing(c, &key).await.map(|_| M::Value::ZERO),
                }
            })
        })
    }

    /// Row-locked read-modify-write, for changes SQL cannot express: `op` gets the current
    /// value and returns the new one, which is written before the lock is released.
    ///
    /// The row is locked with `SELECT … FOR NO KEY UPDATE` (PostgreSQL), `FOR UPDATE` (MySQL)
    /// or `BEGIN IMMEDIATE` (SQLite). `op` is `FnMut` because a transient conflict re-runs the
    /// whole transaction, `op` included: keep it free of side effects outside the database.
    /// On SQLite in a rollback journal mode that includes a `COMMIT` that found a reader
    /// holding the file (SQLite rolls it back), which is waited for like any busy database,
    /// even under [`RetryPolicy::NEVER`] unless its `busy_timeout` is zero. If `op` panics,
    /// the transaction is rolled back and the panic resumed.
    /// An `Err` from `op` writes nothing and is returned as it is; use
    /// [`AtomicError::custom`] for your own reasons. The new value is checked against the
    /// bounds (`OutOfRange`). With [`LockMode::NoWait`], a row held by another transaction
    /// gives `Locked` at once. On an async connection, a future dropped before it finishes
    /// leaves its transaction to the pool to discard (see the crate docs on cancellation).
    pub fn update_locked<'c, C, F>(
        &self,
        conn: &'c mut C,
        key: M::Key,
        mut op: F,
    ) -> Out<C, impl Future<Output = Result<M::Value, AtomicError>> + use<'c, M, Col, C, F>>
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        F: FnMut(M::Value) -> Result<M::Value, AtomicError>,
    {
        let range = Range::of::<M, Col>();
        let this = *self;
        C::Mode::drive(async move {
            retrying!(conn.raw(), this.retry, this.lock, |c| {
                write_transaction!(c, |c| {
                    let current = this.lock_row(c, &key).await?.ok_or(AtomicError::NotFound)?;
                    let new = op(current)?;
                    check_transition(range, current.to_i128(), new.to_i128())?;
                    if new != current {
                        write::<M, Col, _>(c, &key, new).await?;
                    }
                    Ok(new)
                })
            })
        })
    }

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
        C::Mode::drive(async move {
            let amount_i = non_negative(amount)?;
            // Equal keys are one row whatever the collation; unequal ones the database decides.
            if from == to {
                return Err(AtomicError::SameRow);
            }
            retrying!(conn.raw(), this.retry, this.lock, |c| {
                // Before `BEGIN`: inside it, a plain SELECT is already a shared lock under
                // MySQL's SERIALIZABLE (two transfers of one row would then deadlock every
                // time), and it would fix a PostgreSQL REPEATABLE READ snapshot earlier than
                // needed. The locking reads below see the rows again, so a row deleted
                // meanwhile is still `NotFound`.
                let bigint = <BackendOf<C> as Dialect>::BIGINT;
                let first = pair_order::<M, Col, _>(c, &from, &to, bigint).await?;
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
        })
    }

    /// Like [`update_locked`](Self::update_locked) on the first of `keys` whose row no other
    /// transaction holds, tried in the order given with `SKIP LOCKED`: the slotted-counter
    /// pattern (spread a hot counter over N rows, bump whichever is free) and work queues.
    ///
    /// Returns the key it updated and the new value. Errors: `Locked` when every existing row
    /// was held, `NotFound` when none of the keys exists, `Unsupported` on SQLite (which locks
    /// the whole database, so there is nothing to skip), plus `op`'s and the bounds' errors.
    /// Always uses `SKIP LOCKED`, whatever the handle's lock mode.
    #[allow(clippy::type_complexity)]
    pub fn update_first_unlocked<'c, 'k, C, F>(
        &self,
        conn: &'c mut C,
        keys: &'k [M::Key],
        mut op: F,
    ) -> Out<
        C,
        impl Future<Output = Result<(M::Key, M::Value), AtomicError>> + use<'c, 'k, M, Col, C, F>,
    >
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        M::Key: Clone,
        F: FnMut(M::Value) -> Result<M::Value, AtomicError>,
    {
        let skipping = self.lock(LockMode::SkipLocked);
        let range = Range::of::<M, Col>();
        C::Mode::drive(async move {
            <BackendOf<C> as Dialect>::lock_sql(LockMode::SkipLocked)?;
            retrying!(conn.raw(), skipping.retry, LockMode::SkipLocked, |c| {
                write_transaction!(c, |c| {
                    for key in keys {
                        if let Some(current) = skipping.try_lock_row(c, key).await? {
                            let new = op(current)?;
                            check_transition(range, current.to_i128(), new.to_i128())?;
                            if new != current {
                                write::<M, Col, _>(c, key, new).await?;
                            }
                            return Ok((key.clone(), new));
                        }
                    }
                    for key in keys {
                        if read::<M, Col, _, 0>(c, key, "").await?.is_some() {
                            return Err(AtomicError::Locked);
                        }
                    }
                    Err(AtomicError::NotFound)
                })
            })
        })
    }

    /// [`increment`](Self::increment) on the connection underneath, inside a transaction of
    /// the crate's own.
    #[cfg(feature = "redis")]
    pub(crate) async fn increment_raw<R>(
        &self,
        raw: &mut R,
        key: &M::Key,
        by: M::Value,
    ) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        let delta = plan::increment(Range::of::<M, Col>(), by);
        self.change(raw, key, delta, MissKind::Increment).await
    }

    /// One guarded single-statement change, with the miss handling described in the module doc.
    async fn change<R>(
        &self,
        raw: &mut R,
        key: &M::Key,
        delta: Delta<M::Value>,
        kind: MissKind,
    ) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        let amount = non_negative(delta.amount)?;
        let range = Range::of::<M, Col>();
        retrying!(raw, self.retry, LockMode::Wait, |c| {
            if amount == 0 {
                return self.existing(c, key).await;
            }
            for _ in 0..RECHECKS {
                if let Some(guard) = delta.guard {
                    let statement = <R::Db as Dialect>::apply_delta::<_, M, Col>(
                        c,
                        key,
                        delta.direction,
                        delta.amount,
                        guard,
                    );
                    if let Some(new) = statement.await? {
                        return Ok(new);
                    }
                }
                let current = self.existing(c, key).await?;
                if !delta.admits(current) {
                    return Err(plan::miss_error(range, kind, current.to_i128(), amount));
                }
            }
            // The value keeps moving between our statement and our look: decide under the lock.
            self.change_locked(c, key, delta, kind).await
        })
    }

    /// The fallback of [`change`](Self::change): the same guarded change as a read and a write
    /// under a row lock, which waits for the lock like the statement would have, whatever the
    /// handle's lock mode.
    pub(crate) async fn change_locked<R>(
        &self,
        raw: &mut R,
        key: &M::Key,
        delta: Delta<M::Value>,
        kind: MissKind,
    ) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        let range = Range::of::<M, Col>();
        let amount = delta.amount.to_i128();
        let waiting = self.lock(LockMode::Wait);
        write_transaction!(raw, |c| {
            let current = waiting
                .lock_row(c, key)
                .await?
                .ok_or(AtomicError::NotFound)?;
            if !delta.admits(current) {
                return Err(plan::miss_error(range, kind, current.to_i128(), amount));
            }
            let new = match delta.direction {
                plan::Direction::Up => current.to_i128() + amount,
                plan::Direction::Down => current.to_i128() - amount,
            };
            let new = M::Value::from_i128(new).expect("the guard keeps the result in range");
            write::<M, Col, _>(c, key, new).await?;
            Ok(new)
        })
    }

    /// The current value of an existing row, unlocked; `NotFound` when there is none.
    async fn existing<R>(&self, raw: &mut R, key: &M::Key) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        read::<M, Col, _, 0>(raw, key, "")
            .await?
            .ok_or(AtomicError::NotFound)
    }

    /// Reads and locks a row inside a write transaction, per this handle's lock mode.
    /// `None` when the row does not exist; `Locked` when `SkipLocked` skipped it.
    async fn lock_row<R>(&self, raw: &mut R, key: &M::Key) -> Result<Option<M::Value>, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        match self.try_lock_row(raw, key).await? {
            Some(v) => Ok(Some(v)),
            None if self.lock == LockMode::SkipLocked => {
                match read::<M, Col, _, 0>(raw, key, "").await? {
                    Some(_) => Err(AtomicError::Locked),
                    None => Ok(None),
                }
            }
            None => Ok(None),
        }
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

    /// One locking read; with `SkipLocked`, `None` also for a row another transaction holds.
    async fn try_lock_row<R>(
        &self,
        raw: &mut R,
        key: &M::Key,
    ) -> Result<Option<M::Value>, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        let sql = <R::Db as Dialect>::lock_sql(self.lock)?;
        Ok(match self.lock {
            LockMode::Wait => read::<M, Col, _, 1>(raw, key, sql).await?,
            LockMode::NoWait => read::<M, Col, _, 2>(raw, key, sql).await?,
            LockMode::SkipLocked => read::<M, Col, _, 3>(raw, key, sql).await?,
        })
    }

    /// The handle's retry policy.
    pub(crate) fn policy(&self) -> RetryPolicy {
        self.retry
    }
}

/// Two values that the bound checks already proved to fit.
fn value<V: AtomicValue>(a: i128, b: i128) -> (V, V) {
    let fit = |v| V::from_i128(v).expect("checked against the bounds");
    (fit(a), fit(b))
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    //! The lock fallback of `change` runs only after three races in a row, which no test can
    //! provoke on purpose; it is tested here directly.

    use diesel::prelude::*;

    use super::*;
    use crate::backend::Blocking;

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
        delta: Delta<i32>,
        kind: MissKind,
    ) -> Result<i32, AtomicError> {
        Blocking::drive(f.change_locked(c, &1, delta, kind))
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
        let up = plan::increment(range, 5);
        assert_eq!(locked(f, c, up, MissKind::Increment).unwrap(), 15);
        let down = plan::decrement_if_at_least(range, 15);
        assert_eq!(locked(f, c, down, MissKind::AtLeast).unwrap(), 0);
        assert_eq!(stock(c), 0);
    }

    #[test]
    fn lock_fallback_refuses_what_the_guard_refuses() {
        let (c, f) = (&mut conn(), Field::<Item, items::stock>::new());
        let range = Range::of::<Item, items::stock>();
        let at_least = plan::decrement_if_at_least(range, 11);
        assert!(matches!(
            locked(f, c, at_least, MissKind::AtLeast),
            Err(AtomicError::Insufficient {
                available: 10,
                requested: 11
            })
        ));
        let up = plan::increment(range, 91);
        assert!(matches!(
            locked(f, c, up, MissKind::Increment),
            Err(AtomicError::OutOfRange {
                current: 10,
                attempted: 101,
                ..
            })
        ));
        assert!(matches!(
            Blocking::drive(f.change_locked(c, &2, plan::increment(range, 1), MissKind::Increment)),
            Err(AtomicError::NotFound)
        ));
        assert_eq!(stock(c), 10);
    }
}
