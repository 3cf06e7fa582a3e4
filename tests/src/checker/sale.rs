//! The checker's [`Op::Transaction`](super::op::Op::Transaction): `decrement_if_at_least(a, n)`
//! then `increment(b, n)`, all or nothing, through `transaction` on a blocking connection and
//! `transaction_async` on an async one: the one operation whose API differs between the two.
//!
//! `transaction_async` takes a boxed `Send` future, and the library's futures are `Send` only
//! where their types are concrete (generic code cannot see through them), so the async impls
//! are written per connection and subject by a macro, as a service's handler names its own
//! types.

use std::future::Future;

use counter_core::scoped_futures::ScopedFutureExt;
use counter_core::{
    transaction, transaction_async, AtomicError, AtomicFieldOn, BackendOf, Field, RetryPolicy,
};
use diesel::{MysqlConnection, PgConnection, SqliteConnection};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncMysqlConnection, AsyncPgConnection};

use super::subject::{KeyOf, Subject};
use crate::models::{CkCounter, CkName, CkPair};

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

/// Async connections: `transaction_async`, per subject (see the module doc).
macro_rules! async_sales {
    ($($conn:ty),* $(,)? ; $subjects:tt) => {$(
        async_sales!(@subjects $conn; $subjects);
    )*};
    (@subjects $conn:ty; [$($m:ty),* $(,)?]) => {$(
        impl SaleInTransaction<$m> for $conn {
            async fn sale_in_transaction(
                &mut self,
                a: KeyOf<$m>,
                b: KeyOf<$m>,
                n: i32,
            ) -> Result<(i32, i32), AtomicError> {
                let field = Field::<$m, <$m as Subject>::Col>::new();
                transaction_async(self, RetryPolicy::DEFAULT, |c| {
                    let (a, b) = (a.clone(), b.clone());
                    async move {
                        let left = field.decrement_if_at_least(c, a, n).await?;
                        let added = field.increment(c, b, n).await?;
                        Ok((left, added))
                    }
                    .scope_boxed()
                })
                .await
            }
        }
    )*};
}
async_sales!(
    AsyncPgConnection,
    AsyncMysqlConnection,
    SyncConnectionWrapper<SqliteConnection>;
    [CkCounter, CkName, CkPair]
);
