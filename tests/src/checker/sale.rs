//! The checker's [`Op::Transaction`](super::op::Op::Transaction): `decrement_if_at_least(a, n)`
//! then `increment(b, n)`, all or nothing, through `transaction` on a blocking connection and
//! `transaction_async_local` on an async one: the one operation whose API differs between
//! the two.
//!
//! One body for both, through [`TransactionMode`]: `transaction_async` takes a boxed `Send`
//! future, and the library's futures are `Send` only where their types are concrete, never in
//! code generic over the connection and the subject.

use counter_core::{
    AtomicConnection, AtomicError, AtomicFieldOn, BackendOf, CallMode, Field, RetryPolicy,
};

use super::subject::{KeyOf, Subject};
use crate::client::TransactionMode;

/// `decrement_if_at_least(a, n)` then `increment(b, n)` in one library transaction (with its
/// retries), on a blocking or an async connection: both new values, or the first error and
/// nothing written.
pub async fn sale_in_transaction<C, M>(
    conn: &mut C,
    a: KeyOf<M>,
    b: KeyOf<M>,
    n: i32,
) -> Result<(i32, i32), AtomicError>
where
    C: AtomicConnection,
    C::Mode: TransactionMode,
    M: Subject + AtomicFieldOn<M::Col, BackendOf<C>>,
    KeyOf<M>: Clone,
{
    let field = Field::<M, M::Col>::new();
    C::Mode::transaction(conn, RetryPolicy::DEFAULT, async |c| {
        let left = C::Mode::into_future(field.decrement_if_at_least(c, a.clone(), n)).await?;
        let added = C::Mode::into_future(field.increment(c, b.clone(), n)).await?;
        Ok((left, added))
    })
    .await
}
