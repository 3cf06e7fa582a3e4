//! `transaction`: several operations, all or nothing, re-run whole on a transient conflict.

use crate::backend::{write_transaction, Blocking, BlockingConnection, CallMode};
use crate::error::AtomicError;
use crate::lock::LockMode;
use crate::retry::{retrying, RetryPolicy};

/// Runs `f` in a write transaction and re-runs it whole after a transient conflict
/// (serialization failure, deadlock, lock wait timeout, busy SQLite), per `policy`.
///
/// The transaction is `BEGIN` on PostgreSQL and MySQL and `BEGIN IMMEDIATE` on SQLite (which
/// takes the write lock up front, so a read followed by a write cannot fail with a busy
/// error that no waiting resolves). `f` gets the connection underneath `conn` (for a pooled
/// connection, the `PgConnection`, `MysqlConnection` or `SqliteConnection` it wraps), on which
/// every atomic operation and any Diesel query runs inside the transaction. Operations inside
/// it do not retry on their own: they return `Conflict` at once, and this is the loop that
/// catches it and runs `f` again. So `f` is `FnMut` and may run several times: keep it free
/// of side effects outside the database.
///
/// `f`'s `Ok` commits; its `Err` rolls back and is returned as it is (wrap your own errors
/// with [`AtomicError::custom`]; a Diesel error converts with `?`); a panic rolls back and
/// resumes. Called inside a transaction of your own, it runs in a savepoint and retries
/// nothing: only you can re-run your transaction.
///
/// ```
/// # use counter_core::{transaction, AtomicError, AtomicField, RetryPolicy};
/// # use diesel::prelude::*;
/// # diesel::table! { products (id) { id -> BigInt, name -> Text, stock -> Integer, sold -> BigInt, } }
/// # #[derive(Queryable, Selectable, Identifiable, AtomicField)]
/// # #[diesel(table_name = products)]
/// # pub struct Product { pub id: i64, pub name: String, #[atomic(min = 0, max = 1000)] pub stock: i32, #[atomic] pub sold: i64 }
/// # let mut conn = SqliteConnection::establish(":memory:")?;
/// # diesel::sql_query("CREATE TABLE products (id BIGINT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL, sold BIGINT NOT NULL)").execute(&mut conn)?;
/// # diesel::sql_query("INSERT INTO products VALUES (1, 'mug', 10, 0)").execute(&mut conn)?;
/// let left = transaction(&mut conn, RetryPolicy::DEFAULT, |conn| {
///     let left = Product::decrement_stock_if_at_least(conn, 1, 3)?;
///     Product::increment_sold(conn, 1, 3)?;
///     Ok(left)
/// })?;
/// assert_eq!(left, 7);
///
/// // An error anywhere undoes everything before it.
/// let refused = transaction(&mut conn, RetryPolicy::DEFAULT, |conn| {
///     Product::increment_sold(conn, 1, 100)?;
///     Product::decrement_stock_if_at_least(conn, 1, 100) // Insufficient
/// });
/// assert!(matches!(refused, Err(AtomicError::Insufficient { available: 7, .. })));
/// assert_eq!(Product::current_sold(&mut conn, 1)?, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn transaction<C, T, F>(conn: &mut C, policy: RetryPolicy, mut f: F) -> Result<T, AtomicError>
where
    C: BlockingConnection,
    F: FnMut(&mut C::Raw) -> Result<T, AtomicError>,
{
    Blocking::drive(async {
        retrying!(Write, conn.raw(), policy, LockMode::Wait, |raw| {
            write_transaction!(raw, |raw| f(raw))
        })
    })
}

/// [`transaction`] on an async connection: `f` returns a boxed future, as in diesel-async's
/// own `transaction` (`|conn| async move { … }.scope_boxed()`), given the connection
/// underneath `conn` (for a pooled connection, the `AsyncPgConnection`,
/// `AsyncMysqlConnection` or `SyncConnectionWrapper<SqliteConnection>` it wraps), on which
/// every operation is awaited inside the transaction. The same transaction, retries and
/// rollback on error and panic; and if the future is dropped before it finishes, the
/// transaction is left to the pool to discard (see the crate docs on cancellation).
///
/// ```
/// # use counter_core::{transaction_async, AtomicError, AtomicField, RetryPolicy};
/// # use diesel::prelude::*;
/// # use diesel_async::{sync_connection_wrapper::SyncConnectionWrapper, AsyncConnection, SimpleAsyncConnection};
/// use counter_core::scoped_futures::ScopedFutureExt;
/// # diesel::table! { products (id) { id -> BigInt, stock -> Integer, sold -> BigInt, } }
/// # #[derive(Queryable, Identifiable, AtomicField)]
/// # #[diesel(table_name = products)]
/// # pub struct Product { pub id: i64, #[atomic(min = 0)] pub stock: i32, #[atomic] pub sold: i64 }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(":memory:").await?;
/// # conn.batch_execute("CREATE TABLE products (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL, sold BIGINT NOT NULL); INSERT INTO products VALUES (1, 10, 0)").await?;
/// let left = transaction_async(&mut conn, RetryPolicy::DEFAULT, |conn| {
///     async move {
///         let left = Product::decrement_stock_if_at_least(conn, 1, 3).await?;
///         Product::increment_sold(conn, 1, 3).await?;
///         Ok(left)
///     }
///     .scope_boxed()
/// })
/// .await?;
/// assert_eq!(left, 7);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "async")]
pub async fn transaction_async<'a, C, T, F>(
    conn: &mut C,
    policy: RetryPolicy,
    mut f: F,
) -> Result<T, AtomicError>
where
    C: crate::AsyncConnection,
    F: for<'r> FnMut(
            &'r mut C::Raw,
        ) -> scoped_futures::ScopedBoxFuture<'a, 'r, Result<T, AtomicError>>
        + Send
        + 'a,
    T: Send + 'a,
{
    retrying!(Write, conn.raw(), policy, LockMode::Wait, |raw| {
        write_transaction!(raw, |raw| f(raw).await)
    })
}

/// [`transaction_async`] for a closure whose future is not `Send`: the same transaction,
/// retries, rollback and cancellation, with `.scope_boxed_local()` in place of
/// `.scope_boxed()`.
///
/// Reach for it where Rust cannot prove the future `Send`: on a current-thread runtime or a
/// `LocalSet` holding `Rc`s, and in code generic over the connection
/// (`async fn f<C: AsyncConnection>(conn: &mut C)`), since the operations' futures are `Send`
/// only where the connection type is concrete. The future it returns is then not `Send`
/// either: await it, or block on it, where it was made.
///
/// ```
/// # use counter_core::{transaction_async_local, AtomicError, AtomicField, AtomicFieldOn, AsyncConnection, BackendOf, RetryPolicy};
/// # use diesel::prelude::*;
/// # use diesel_async::{sync_connection_wrapper::SyncConnectionWrapper, AsyncConnection as _, SimpleAsyncConnection};
/// use counter_core::scoped_futures::ScopedFutureExt;
/// # diesel::table! { products (id) { id -> BigInt, stock -> Integer, sold -> BigInt, } }
/// # #[derive(Queryable, Identifiable, AtomicField)]
/// # #[diesel(table_name = products)]
/// # pub struct Product { pub id: i64, #[atomic(min = 0)] pub stock: i32, #[atomic] pub sold: i64 }
/// /// One sale, on any async connection of any backend.
/// async fn sell<C>(conn: &mut C, id: i64, n: i32) -> Result<i32, AtomicError>
/// where
///     C: AsyncConnection,
///     Product: AtomicFieldOn<products::stock, BackendOf<C>> + AtomicFieldOn<products::sold, BackendOf<C>>,
/// {
///     transaction_async_local(conn, RetryPolicy::DEFAULT, |conn| {
///         async move {
///             let left = Product::decrement_stock_if_at_least(conn, id, n).await?;
///             Product::increment_sold(conn, id, i64::from(n)).await?;
///             Ok(left)
///         }
///         .scope_boxed_local()
///     })
///     .await
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(":memory:").await?;
/// # conn.batch_execute("CREATE TABLE products (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL, sold BIGINT NOT NULL); INSERT INTO products VALUES (1, 10, 0)").await?;
/// assert_eq!(sell(&mut conn, 1, 3).await?, 7);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "async")]
pub async fn transaction_async_local<'a, C, T, F>(
    conn: &mut C,
    policy: RetryPolicy,
    mut f: F,
) -> Result<T, AtomicError>
where
    C: crate::AsyncConnection,
    F: for<'r> FnMut(
            &'r mut C::Raw,
        )
            -> scoped_futures::ScopedLocalBoxFuture<'a, 'r, Result<T, AtomicError>>
        + 'a,
    T: 'a,
{
    retrying!(Write, conn.raw(), policy, LockMode::Wait, |raw| {
        write_transaction!(raw, |raw| f(raw).await)
    })
}
