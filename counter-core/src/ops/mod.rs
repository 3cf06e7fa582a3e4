//! [`Field`], the handle of one atomic column, and its operations, written once for every
//! backend, one family per file:
//!
//! - `single`: the single-statement operations (`increment`, `decrement`,
//!   `decrement_if_at_least`, `take_up_to`, `increment_up_to`) and their lock fallback;
//! - `locked`: the row-locked read-modify-writes (`update_locked`, `update_first_unlocked`);
//! - `transfer`: two rows in one transaction;
//! - `value`: the changes that set a value (`set_max`, `set_min`, `compare_and_set`);
//! - here: the handle, `current`, and the reads and locks the families share.
//!
//! Every call runs inside the retry loop, which re-runs it whole after a transient conflict.

/// The operations of one row and one value, `(conn, key, value) -> value`: one public method
/// each, with that one signature, whose body is the future `$run`, traced under the method's
/// name and driven per connection kind (returned on a blocking connection, awaited on an async
/// one). The guarded changes, the clamped moves and the water marks differ only in `$run`.
macro_rules! one_value_operations {
    ($($(#[$doc:meta])* $name:ident($value:ident) => |$this:ident, $conn:ident, $key:ident| $run:expr;)+) => {$(
        $(#[$doc])*
        pub fn $name<'c, C>(
            &self,
            $conn: &'c mut C,
            $key: M::Key,
            $value: M::Value,
        ) -> Out<C, impl Future<Output = Result<M::Value, AtomicError>> + use<'c, M, Col, C>>
        where
            C: AtomicConnection,
            M: AtomicFieldOn<Col, BackendOf<C>>,
        {
            let $this = *self;
            C::Mode::drive(Self::span::<C>(stringify!($name)).wrap(async move { $run }))
        }
    )+};
}

mod locked;
mod single;
mod transfer;
mod value;

use std::future::Future;
use std::marker::PhantomData;

use diesel::Column;

use crate::backend::{AtomicConnection, BackendOf, CallMode, Dialect, Out, RawConnection};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::retry::{retrying, RetryPolicy, Subject};
use crate::sql::{read, read_locked, ForUpdate, NoWait, SkipLocked};
use crate::trace::OpSpan;

pub(crate) use single::RECHECKS;

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
    ///
    #[doc = include_str!("../../doc/ops/current.md")]
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
        C::Mode::drive(Self::span::<C>("current").wrap(async move {
            retrying!(Read, conn.raw(), this.retry, LockMode::Wait, |c| {
                this.existing(c, &key).await
            })
        }))
    }
}

/// What the operation families share: the reads and locks of rows.
impl<M: AtomicField<Col>, Col: Column + 'static> Field<M, Col> {
    /// The current value of an existing row, unlocked; `NotFound` when there is none.
    async fn existing<R>(&self, raw: &mut R, key: &M::Key) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
    {
        read::<M, Col, _>(raw, key)
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
            None if self.lock == LockMode::SkipLocked => match read::<M, Col, _>(raw, key).await? {
                Some(_) => Err(AtomicError::Locked),
                None => Ok(None),
            },
            None => Ok(None),
        }
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
        // Refused before any statement where the backend cannot lock this way.
        <R::Db as Dialect>::lock_sql(self.lock)?;
        Ok(match self.lock {
            LockMode::Wait => read_locked::<M, Col, ForUpdate, _>(raw, key).await?,
            LockMode::NoWait => read_locked::<M, Col, NoWait, _>(raw, key).await?,
            LockMode::SkipLocked => read_locked::<M, Col, SkipLocked, _>(raw, key).await?,
        })
    }

    /// The handle's retry policy.
    pub(crate) fn policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The line this field's single-row operations retry in after a conflict.
    pub(crate) fn subject() -> Option<Subject> {
        Some(Subject {
            model: std::any::type_name::<M>(),
            field: M::NAME,
        })
    }

    /// The tracing span of operation `op` on this field, over connection `C`.
    pub(crate) fn span<C: AtomicConnection>(op: &'static str) -> OpSpan {
        OpSpan::new::<M>(op, M::NAME, <BackendOf<C> as Dialect>::NAME)
    }
}
