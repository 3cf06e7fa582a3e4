//! `transaction`: several operations, all or nothing, re-run whole on a transient conflict.

use crate::backend::{AtomicConnection, RawConnection};
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
    C: AtomicConnection,
    F: FnMut(&mut C::Raw) -> Result<T, AtomicError>,
{
    retrying(conn.raw(), policy, LockMode::Wait, |raw| {
        raw.write_transaction(&mut f)
    })
}
