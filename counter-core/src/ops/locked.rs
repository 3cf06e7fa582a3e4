//! The row-locked read-modify-writes, for changes SQL cannot express: `update_locked` and
//! `update_first_unlocked`. The row is read under the handle's lock clause inside a write
//! transaction, the caller's closure computes the new value, the bounds check it, and it is
//! written before the lock is released.

use std::future::Future;

use diesel::Column;

use super::Field;
use crate::backend::{guarded, AtomicConnection, BackendOf, CallMode, Dialect, Out};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::plan::{check_transition, Range};
use crate::retry::retrying;
use crate::sql::{read, write};
use crate::value::AtomicValue;

impl<M: AtomicField<Col>, Col: Column + 'static> Field<M, Col> {
    /// Row-locked read-modify-write, for changes SQL cannot express: `op` gets the current
    /// value and returns the new one, which is written before the lock is released.
    ///
    /// The row is locked with `SELECT … FOR NO KEY UPDATE` (PostgreSQL), `FOR UPDATE` (MySQL)
    /// or `BEGIN EXCLUSIVE` (SQLite: the whole file, taken before `op` runs, so that no reader
    /// can refuse the `COMMIT` after it; `BEGIN IMMEDIATE` under [`LockMode::NoWait`], where a
    /// reader refusing the `COMMIT` gives `Locked`). `op` is `FnMut` because a transient conflict
    /// re-runs the whole transaction, `op` included: keep it free of side effects outside the
    /// database. Under [`RetryPolicy::NEVER`](crate::RetryPolicy::NEVER) it runs at most once.
    /// If `op` panics, the transaction is rolled back and the panic resumed.
    /// An `Err` from `op` writes nothing and is returned as it is; use
    /// [`AtomicError::custom`] for your own reasons. The new value is checked against the
    /// bounds (`OutOfRange`). With [`LockMode::NoWait`], a row held by another transaction
    /// gives `Locked` at once. On an async connection, a future dropped before it finishes
    /// leaves its transaction to the pool to discard (see the crate docs on cancellation).
    ///
    #[doc = include_str!("../../doc/ops/update_locked.md")]
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
        C::Mode::drive(Self::span::<C>("update_locked").wrap(async move {
            let begin = <BackendOf<C> as Dialect>::begin_locked(this.lock);
            retrying!(Write on Self::subject(), conn.raw(), this.retry, this.lock, |c| {
                guarded!(c, begin, |c| {
                    let current = this.lock_row(c, &key).await?.ok_or(AtomicError::NotFound)?;
                    let new = op(current)?;
                    check_transition(range, current.to_i128(), new.to_i128())?;
                    if new != current {
                        write::<M, Col, _>(c, &key, new).await?;
                    }
                    Ok(new)
                })
            })
        }))
    }

    /// Like [`update_locked`](Self::update_locked) on the first of `keys` whose row no other
    /// transaction holds, tried in the order given with `SKIP LOCKED`: the slotted-counter
    /// pattern (spread a hot counter over N rows, bump whichever is free) and work queues.
    ///
    /// Returns the key it updated and the new value. Errors: `Locked` when every existing row
    /// was held, `NotFound` when none of the keys exists, `Unsupported` on SQLite (which locks
    /// the whole database, so there is nothing to skip), plus `op`'s and the bounds' errors.
    /// Always uses `SKIP LOCKED`, whatever the handle's lock mode.
    ///
    #[doc = include_str!("../../doc/ops/update_first_unlocked.md")]
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
        C::Mode::drive(Self::span::<C>("update_first_unlocked").wrap(async move {
            <BackendOf<C> as Dialect>::lock_sql(LockMode::SkipLocked)?;
            let begin = <BackendOf<C> as Dialect>::begin_locked(LockMode::SkipLocked);
            retrying!(
                Write,
                conn.raw(),
                skipping.retry,
                LockMode::SkipLocked,
                |c| {
                    guarded!(c, begin, |c| {
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
                            if read::<M, Col, _>(c, key).await?.is_some() {
                                return Err(AtomicError::Locked);
                            }
                        }
                        Err(AtomicError::NotFound)
                    })
                }
            )
        }))
    }
}
