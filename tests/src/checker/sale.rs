//! The checker's [`Op::Transaction`](super::op::Op::Transaction): `decrement_if_at_least(a, n)`
//! then `increment(b, n)`, all or nothing, through `transaction` on a blocking connection and
//! `transaction_async_local` on an async one: the one operation whose API differs between
//! the two.
//!
//! The async impls use `transaction_async_local`: `transaction_async` takes a boxed `Send`
//! future, and the library's futures are `Send` only where their types are concrete, never in
//! code generic over the subject.

use std::future::Future;

use counter_core::scoped_futures::ScopedFutureExt;
use counter_core::{
    transaction, transaction_async_local, AtomicError, AtomicFieldOn, BackendOf, Field, RetryPolicy,
};
use diesel::{MysqlConnection, PgConnection, SqliteConnection};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncMysqlConnection, AsyncPgConnection};

use super::subject::{KeyOf, Subject};

/// The checker's two-operation transaction on this connection.
pub trait SaleInTransaction<M: Subject> {
    /// `decrement_if_at_least(a, n)` then `increment(b, n)` in one library transaction (with
    /// its retries): both new values, or the first error and nothing written.
    fn sale_in_transaction(
        &mut self,
        a: KeyOf<M>,
        b: KeyOf<M>,
        n: i32,
    ) -> impl Future<Output = Result<(i32, i32), AtomicError>>;
}

/// Blocking connections: `transaction`, for every subject.
macro_rules! blocking_sales {
    ($($conn:ty),* $(,)?) => {$(
        impl<M> SaleInTransaction<M> for $conn
        where
            M: Subject + AtomicFieldOn<M::Col, BackendOf<$conn>>,
            KeyOf<M>: Clone,
        {
            async fn sale_in_transaction(
                &mut self,
                a: KeyOf<M>,
                b: KeyOf<M>,
                n: i32,
            ) -> Result<(i32, i32), AtomicError> {
                let field = Field::<M, M::Col>::new();
                transaction(self, RetryPolicy::DEFAULT, |c| {
                    let left = field.decrement_if_at_least(c, a.clone(), n)?;
                    let added = field.increment(c, b.clone(), n)?;
                    Ok((left, added))
                })
            }
        }
    )*};
}
blocking_sales!(PgConnection, MysqlConnection, SqliteConnection);

/// Async connections: `transaction_async_local`, for every subject (its future need not be
/// `Send`, which code generic over the subject could not prove).
macro_rules! async_sales {
    ($($conn:ty),* $(,)?) => {$(
        impl<M> SaleInTransaction<M> for $conn
        where
            M: Subject + AtomicFieldOn<M::Col, BackendOf<$conn>>,
            KeyOf<M>: Clone,
        {
            async fn sale_in_transaction(
                &mut self,
                a: KeyOf<M>,
                b: KeyOf<M>,
                n: i32,
            ) -> Result<(i32, i32), AtomicError> {
                let field = Field::<M, M::Col>::new();
                transaction_async_local(self, RetryPolicy::DEFAULT, |c| {
                    let (a, b) = (a.clone(), b.clone());
                    async move {
                        let left = field.decrement_if_at_least(c, a, n).await?;
                        let added = field.increment(c, b, n).await?;
                        Ok((left, added))
                    }
                    .scope_boxed_local()
                })
                .await
            }
        }
    )*};
}
async_sales!(
    AsyncPgConnection,
    AsyncMysqlConnection,
    SyncConnectionWrapper<SqliteConnection>,
);
