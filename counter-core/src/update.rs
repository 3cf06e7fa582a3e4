//! Several columns of one row in one guarded statement; see [`crate::change`].

use std::future::Future;

use crate::backend::{
    write_transaction, AtomicConnection, BackendOf, CallMode, Dialect, Out, RawConnection,
};
use crate::change::Changes;
use crate::error::AtomicError;
use crate::lock::LockMode;
use crate::ops::RECHECKS;
use crate::retry::{retrying, RetryPolicy};
use crate::sql::{ForUpdate, MultiSelect, MultiWrite, Unlocked};
use crate::strategy::Strategy;
use crate::trace::OpSpan;

/// Changes several atomic columns of the row `key` of model `M` at once, each under its own
/// guard, in one statement: all of them change, or none. Returns the new values, in the
/// order of the tuple. Uses [`RetryPolicy::DEFAULT`]; see [`update_with`].
///
/// The sale that cannot oversell and counts what it sold:
///
/// ```
/// use counter_core::{AtomicError, AtomicField, ChangeColumn};
/// use diesel::prelude::*;
///
/// diesel::table! { products (id) { id -> BigInt, stock -> Integer, sold -> BigInt, } }
///
/// #[derive(Queryable, AtomicField)]
/// #[diesel(table_name = products)]
/// struct Product {
///     id: i64,
///     #[atomic(min = 0)]
///     stock: i32,
///     #[atomic]
///     sold: i64,
/// }
///
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// diesel::sql_query("CREATE TABLE products (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL, sold BIGINT NOT NULL)").execute(&mut conn)?;
/// diesel::sql_query("INSERT INTO products VALUES (1, 3, 0)").execute(&mut conn)?;
///
/// let sale = |n| (products::stock.decrement_if_at_least(n), products::sold.increment(n as i64));
/// assert_eq!(Product::update_atomic(&mut conn, 1, sale(2))?, (1, 2));
/// let refused = Product::update_atomic(&mut conn, 1, sale(2)).unwrap_err();
/// assert!(matches!(refused, AtomicError::InColumn { column: "stock", .. }));
/// assert_eq!(refused.to_string(), "stock: insufficient: 2 requested, 1 available");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Errors: [`AtomicError::InColumn`] naming the first column (in tuple order) whose guard
/// refused, with its `Insufficient` or `OutOfRange`; `NegativeAmount`; `NotFound`. The row is
/// unchanged on every error.
///
#[doc = include_str!("../doc/ops/update_atomic.md")]
pub fn update<'c, M, C, Cs>(
    conn: &'c mut C,
    key: Cs::Key,
    changes: Cs,
) -> Out<C, impl Future<Output = Result<Cs::Values, AtomicError>> + use<'c, M, C, Cs>>
where
    M: 'static,
    C: AtomicConnection,
    Cs: Changes<M, BackendOf<C>> + 'static,
{
    update_with(conn, RetryPolicy::DEFAULT, key, changes)
}

/// [`update`] with a retry policy.
///
#[doc = include_str!("../doc/ops/update_atomic.md")]
pub fn update_with<'c, M, C, Cs>(
    conn: &'c mut C,
    policy: RetryPolicy,
    key: Cs::Key,
    changes: Cs,
) -> Out<C, impl Future<Output = Result<Cs::Values, AtomicError>> + use<'c, M, C, Cs>>
where
    M: 'static,
    C: AtomicConnection,
    Cs: Changes<M, BackendOf<C>> + 'static,
{
    C::Mode::drive(
        OpSpan::new::<M>(
            "update",
            "(several columns)",
            <BackendOf<C> as Dialect>::NAME,
        )
        .wrap(async move {
            let parts = changes.plan()?;
            retrying!(Write, conn.raw(), policy, LockMode::Wait, |c| {
                for _ in 0..RECHECKS {
                    if Cs::possible(&parts) {
                        let statement =
                            <BackendOf<C> as Strategy>::apply_changes::<_, M, Cs>(c, &key, &parts);
                        if let Some(new) = statement.await? {
                            return Ok(new);
                        }
                    }
                    let read = MultiSelect::<M, Cs, BackendOf<C>, Unlocked>::new(&key);
                    let current = Cs::load(c, read).await?.ok_or(AtomicError::NotFound)?;
                    if let Some(refused) = Cs::refusal(&parts, &current) {
                        return Err(refused);
                    }
                }
                // The values keep moving between our statement and our look: decide under the lock.
                write_transaction!(c, |c| {
                    let lock = MultiSelect::<M, Cs, BackendOf<C>, ForUpdate>::new(&key);
                    let current = Cs::load(c, lock).await?.ok_or(AtomicError::NotFound)?;
                    if let Some(refused) = Cs::refusal(&parts, &current) {
                        return Err(refused);
                    }
                    let new = Cs::apply(&parts, &current);
                    c.query_count(MultiWrite::<M, Cs, BackendOf<C>>::new(&key, &new, &parts))
                        .await?;
                    Ok(new)
                })
            })
        }),
    )
}
