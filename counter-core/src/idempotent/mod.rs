//! [`Idempotent`]: a call that carries a key of the caller's, applied once however often it
//! is sent, through a ledger of keys in the same database.

mod outcome;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use outcome::Outcome;
pub(crate) use outcome::{field, ok_text, read_outcome, refusal_text};

use crate::backend::{
    AtomicConnection, Blocking, BlockingConnection, CallMode, Out, RawConnection,
};
use crate::error::AtomicError;
use crate::lock::LockMode;
use crate::retry::{retrying, RetryPolicy};
use crate::sql::{KeyClaim, KeyRow, KeySettle, LedgerDialect};

/// The ledger table of idempotency keys, by default.
pub const IDEMPOTENCY_TABLE: &str = "counter_idempotency";

/// The longest idempotency key, in bytes: what the ledger's `op_key` column holds on every
/// backend (`VARCHAR(200)`).
pub const MAX_KEY_BYTES: usize = 200;

/// A call made at most once per key: the first call with key `k` runs and records its outcome
/// with `k`, in the same transaction; every later call with `k` returns that outcome (the
/// value, or the same refusal) and changes nothing. Two calls with one key at once apply once:
/// the second waits for the first's transaction and returns its outcome.
///
/// This closes the gap every database write has: a reply lost after `COMMIT` (a killed
/// connection, a timeout, a crash of the app between the commit and its answer) leaves the
/// caller not knowing whether the write happened. Retried with the same key, it is applied
/// once whichever it was. The key is the caller's: an order id, a payment's idempotency key
/// from its HTTP request, a message id from a queue.
///
/// ```
/// use counter_core::{AtomicError, AtomicField, Idempotent};
/// use diesel::prelude::*;
/// # diesel::table! { products (id) { id -> BigInt, stock -> Integer, } }
/// # #[derive(Queryable, Identifiable, AtomicField)]
/// # #[diesel(table_name = products)]
/// # pub struct Product { pub id: i64, #[atomic(min = 0)] pub stock: i32 }
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// diesel::sql_query("CREATE TABLE counter_idempotency (op_key VARCHAR(200) PRIMARY KEY, \
///     request TEXT NOT NULL, outcome TEXT NOT NULL, done_at BIGINT NOT NULL)").execute(&mut conn)?;
/// # diesel::sql_query("CREATE TABLE products (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL)").execute(&mut conn)?;
/// # diesel::sql_query("INSERT INTO products VALUES (1, 10)").execute(&mut conn)?;
///
/// let order = Idempotent::key("order-17");
/// let left = order.run(&mut conn, |c| Product::decrement_stock_if_at_least(c, 1, 4))?;
/// assert_eq!(left, 6);
/// // The reply was lost; the client sends the order again: nothing is taken twice.
/// let again = order.run(&mut conn, |c| Product::decrement_stock_if_at_least(c, 1, 4))?;
/// assert_eq!((again, Product::current_stock(&mut conn, 1)?), (6, 6));
///
/// // A refusal is an outcome too: the same key gets the same refusal, even once stock is back.
/// let big = Idempotent::key("order-18");
/// let refused = big.run(&mut conn, |c| Product::decrement_stock_if_at_least(c, 1, 50));
/// assert!(matches!(refused, Err(AtomicError::Insufficient { available: 6, requested: 50 })));
/// Product::increment_stock(&mut conn, 1, 100)?;
/// let refused = big.run(&mut conn, |c| Product::decrement_stock_if_at_least(c, 1, 50));
/// assert!(matches!(refused, Err(AtomicError::Insufficient { available: 6, requested: 50 })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// **Any operation, and several:** the closure gets the connection inside the call's
/// transaction, like [`transaction`](crate::transaction)'s, so one key can cover one
/// operation (`increment_*`, `transfer_*`, `update`, `increment_*_or_insert`, a counter
/// cache's `insert_counted`, a set's `increment_*_many`) or several, all or nothing. Its value
/// is recorded: any [`Outcome`] (integers, tuples, `Option`, `Vec`, `()`, or a type of yours).
///
/// **What is recorded:** `Ok` values, and the operations' refusals
/// ([`ErrorKind::Refused`](crate::ErrorKind): `Insufficient`, `OutOfRange`, `NotFound`,
/// `NegativeAmount`, `SameRow`, `Mismatch`, `InColumn`, `InRow`; not `KeyReused`, which is
/// about the key),
/// each rolled back before it is recorded, so a refusal changes nothing but the ledger. Transient and internal errors (`Conflict`,
/// `Locked`, a lost connection, your closure's `Custom` error) record nothing: the key stays
/// free, and the next call with it runs.
///
/// **Steps:** one transaction: claim the key (`INSERT … ON CONFLICT DO NOTHING`, `INSERT
/// IGNORE` on MySQL, which waits for a transaction holding the key uncommitted), run the
/// closure, record its value, `COMMIT`. A key already there is read back (a share-locked read
/// on the servers, which returns the latest committed row; under PostgreSQL's `REPEATABLE READ`
/// and `SERIALIZABLE` a key committed after the transaction's snapshot fails the claim with a
/// serialization failure instead, and the retry sees it) and nothing runs.
/// A refusal rolls the transaction back and then claims the key with the refusal. Retries on
/// conflicts run all of it again, under [`retry`](Self::retry)'s policy. Inside a transaction
/// of yours the steps run in a savepoint, and the key is settled when you commit.
///
/// **The ledger** is one table for every key (name it with
/// [`ledger_table`](Self::ledger_table)):
///
/// ```sql
/// -- PostgreSQL, SQLite
/// CREATE TABLE counter_idempotency (op_key VARCHAR(200) PRIMARY KEY, request TEXT NOT NULL,
///     outcome TEXT NOT NULL, done_at BIGINT NOT NULL);
/// CREATE INDEX counter_idempotency_at ON counter_idempotency (done_at);
/// -- MySQL / MariaDB: a binary collation, so "A1" and "a1" are two keys
/// CREATE TABLE counter_idempotency (op_key VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
///     PRIMARY KEY, request TEXT NOT NULL, outcome LONGTEXT NOT NULL, done_at BIGINT NOT NULL,
///     INDEX counter_idempotency_at (done_at)) ENGINE = InnoDB;
/// ```
///
/// (`outcome` is `LONGTEXT` on MySQL, whose `TEXT` stops at 64 KB: a set operation's outcome
/// lists every row, and a non-strict `sql_mode` would cut it short silently.)
///
/// A key column that would take two keys for one (a case-insensitive collation; trailing
/// spaces under a `PAD SPACE` collation, which `utf8mb4_bin` is, so `"k"` and `"k "` cannot
/// both be keys) is caught on the second key: it is refused with a `Custom` error naming both
/// spellings, and nothing runs. A column that cuts a long key short (MySQL's `INSERT IGNORE`
/// stores it with a warning) is caught at once: the call is rolled back with a `Custom` error.
/// `op_key` must be the primary key.
/// Keys stay until [`prune`](Self::prune) deletes them: keep each longer than any client
/// retries (a day is common); a key pruned and sent again runs again.
#[derive(Debug, Clone, Copy)]
pub struct Idempotent<'k> {
    key: &'k str,
    request: &'k str,
    table: &'static str,
    retry: RetryPolicy,
}

/// What the call's transaction found: the key free (the closure ran), or taken.
enum First<T> {
    Ran(T),
    Known(Option<KeyRow>),
}

impl<'k> Idempotent<'k> {
    /// A call with idempotency key `key` (at most [`MAX_KEY_BYTES`], not empty), on the
    /// default ledger table [`IDEMPOTENCY_TABLE`] and the default retry policy.
    pub fn key(key: &'k str) -> Self {
        Idempotent {
            key,
            request: "",
            table: IDEMPOTENCY_TABLE,
            retry: RetryPolicy::DEFAULT,
        }
    }

    /// The same call, recording what it asks for (`"sell 4 of product 1"`), so a key sent
    /// again with *another* request is refused with [`AtomicError::KeyReused`] instead of
    /// answered with the first request's outcome (as Stripe refuses a key reused with other
    /// parameters). Without it, a key is trusted to name one request.
    pub fn request(self, request: &'k str) -> Self {
        Idempotent { request, ..self }
    }

    /// The same call on another ledger table.
    pub fn ledger_table(self, table: &'static str) -> Self {
        Idempotent { table, ..self }
    }

    /// The same call with another retry policy.
    pub fn retry(self, policy: RetryPolicy) -> Self {
        Idempotent {
            retry: policy,
            ..self
        }
    }

    /// Runs `f` once for this key: see the type's docs. `f` may run several times (a
    /// conflict re-runs the whole transaction) or not at all (the key was there): keep it free
    /// of side effects outside the database.
    ///
    /// Errors: `f`'s own; [`AtomicError::KeyReused`]; `Custom` when the key is empty or too
    /// long, or the ledger holds it under another spelling or an outcome that is not a `T`.
    pub fn run<C, T, F>(&self, conn: &mut C, mut f: F) -> Result<T, AtomicError>
    where
        C: BlockingConnection,
        T: Outcome,
        F: FnMut(&mut C::Raw) -> Result<T, AtomicError>,
    {
        Blocking::drive(async { idempotent!(conn.raw(), *self, |raw| f(raw)) })
    }

    /// [`run`](Self::run) on an async connection: `f` returns a boxed future, as in
    /// [`transaction_async`](crate::transaction_async)
    /// (`|conn| async move { … }.scope_boxed()`).
    ///
    /// ```
    /// # use counter_core::{AtomicField, Idempotent};
    /// # use diesel::prelude::*;
    /// # use diesel_async::{sync_connection_wrapper::SyncConnectionWrapper, AsyncConnection, SimpleAsyncConnection};
    /// use counter_core::scoped_futures::ScopedFutureExt;
    /// # diesel::table! { products (id) { id -> BigInt, stock -> Integer, } }
    /// # #[derive(Queryable, Identifiable, AtomicField)]
    /// # #[diesel(table_name = products)]
    /// # pub struct Product { pub id: i64, #[atomic(min = 0)] pub stock: i32 }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(":memory:").await?;
    /// # conn.batch_execute("CREATE TABLE counter_idempotency (op_key VARCHAR(200) PRIMARY KEY, request TEXT NOT NULL, outcome TEXT NOT NULL, done_at BIGINT NOT NULL); CREATE TABLE products (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL); INSERT INTO products VALUES (1, 10)").await?;
    /// let order = Idempotent::key("order-17");
    /// for _ in 0..3 {
    ///     let left = order
    ///         .run_async(&mut conn, |c| {
    ///             async move { Product::decrement_stock_if_at_least(c, 1, 4).await }.scope_boxed()
    ///         })
    ///         .await?;
    ///     assert_eq!(left, 6);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "async")]
    pub async fn run_async<'a, C, T, F>(&self, conn: &mut C, mut f: F) -> Result<T, AtomicError>
    where
        C: crate::AsyncConnection,
        T: Outcome + Send + 'a,
        F: for<'r> FnMut(
                &'r mut C::Raw,
            )
                -> scoped_futures::ScopedBoxFuture<'a, 'r, Result<T, AtomicError>>
            + Send
            + 'a,
    {
        idempotent!(conn.raw(), *self, |raw| f(raw).await)
    }

    /// [`run_async`](Self::run_async) for a closure whose future is not `Send`
    /// (`.scope_boxed_local()`), as [`transaction_async_local`](crate::transaction_async_local).
    #[cfg(feature = "async")]
    pub async fn run_async_local<'a, C, T, F>(
        &self,
        conn: &mut C,
        mut f: F,
    ) -> Result<T, AtomicError>
    where
        C: crate::AsyncConnection,
        T: Outcome + 'a,
        F: for<'r> FnMut(
                &'r mut C::Raw,
            )
                -> scoped_futures::ScopedLocalBoxFuture<'a, 'r, Result<T, AtomicError>>
            + 'a,
    {
        idempotent!(conn.raw(), *self, |raw| f(raw).await)
    }

    /// Deletes the keys of ledger `table` settled more than `older_than` ago; how many. A key
    /// sent again after it was pruned runs again, so keep keys longer than any client retries.
    pub fn prune<'c, C>(
        conn: &'c mut C,
        table: &'static str,
        older_than: Duration,
    ) -> Out<C, impl Future<Output = Result<usize, AtomicError>> + use<'c, C>>
    where
        C: AtomicConnection,
    {
        C::Mode::drive(async move {
            let before = now() - i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
            let raw = conn.raw();
            retrying!(Write, raw, RetryPolicy::DEFAULT, LockMode::Wait, |c| {
                Ok(LedgerDialect::key_prune(c, table, before).await?)
            })
        })
    }

    /// Refuses a key no ledger column holds.
    pub(crate) fn check(&self) -> Result<(), AtomicError> {
        if self.key.is_empty() || self.key.len() > MAX_KEY_BYTES {
            return Err(AtomicError::custom(format!(
                "an idempotency key has 1 to {MAX_KEY_BYTES} bytes, got {}",
                self.key.len()
            )));
        }
        Ok(())
    }

    /// Claims the key with `outcome`: `true` when this call holds it now.
    async fn claim<R: RawConnection>(
        &self,
        conn: &mut R,
        outcome: &str,
        at: i64,
    ) -> Result<bool, AtomicError> {
        let claim = KeyClaim {
            table: self.table,
            key: self.key,
            request: self.request,
            outcome,
            at,
        };
        Ok(LedgerDialect::key_claim(conn, claim).await? == 1)
    }

    /// Records the value of the call that claimed the key.
    async fn settle<R: RawConnection, T: Outcome>(
        &self,
        conn: &mut R,
        value: &T,
    ) -> Result<(), AtomicError> {
        let settle = KeySettle {
            table: self.table,
            key: self.key,
            outcome: &ok_text(value),
        };
        match LedgerDialect::key_settle(conn, settle).await? {
            1 => Ok(()),
            // The claim stored another key than ours (MySQL's `INSERT IGNORE` cuts a key too
            // long for its column, with a warning): roll the call back rather than commit a
            // change whose outcome no retry could find.
            _ => Err(self.misfiled("no row")),
        }
    }

    /// The error of a ledger whose key column does not hold this key as it is.
    fn misfiled(&self, stored: &str) -> AtomicError {
        AtomicError::custom(format!(
            "the idempotency ledger {} did not keep key {:?} as it is (it holds {stored}): its \
             op_key column needs a binary collation, room for {MAX_KEY_BYTES} bytes, and to be \
             the primary key",
            self.table, self.key
        ))
    }

    /// The key's row, which a claim found there; an error when several rows have the key (a
    /// ledger whose `op_key` is not its primary key).
    async fn recall<R: RawConnection>(&self, conn: &mut R) -> Result<Option<KeyRow>, AtomicError> {
        let mut rows = LedgerDialect::key_recall(conn, self.table, self.key).await?;
        if rows.len() > 1 {
            return Err(self.misfiled(&format!("{} rows", rows.len())));
        }
        Ok(rows.pop())
    }

    /// The call's result from what its transaction found: the closure's value; the outcome
    /// the ledger holds; or, after a refusal (rolled back), the refusal, once the key is
    /// claimed with it (or the outcome of a call that claimed it in between).
    async fn finish<R: RawConnection, T: Outcome>(
        &self,
        conn: &mut R,
        first: Result<First<T>, AtomicError>,
        at: i64,
    ) -> Result<T, AtomicError> {
        match first {
            Ok(First::Ran(value)) => Ok(value),
            Ok(First::Known(row)) => self.replay(row),
            Err(error) => match refusal_text(&error) {
                None => Err(error),
                Some(text) => {
                    if self.claim(conn, &text, at).await? {
                        Err(error)
                    } else {
                        let row = self.recall(conn).await?;
                        self.replay(row)
                    }
                }
            },
        }
    }

    /// The outcome recorded in `row`, for a call that found its key taken.
    fn replay<T: Outcome>(&self, row: Option<KeyRow>) -> Result<T, AtomicError> {
        let (stored, request, outcome) = match row {
            Some((stored, request, outcome)) if stored == self.key => (stored, request, outcome),
            other => {
                let stored =
                    other.map_or_else(|| "no row".to_owned(), |row| format!("{:?}", row.0));
                return Err(self.misfiled(&stored));
            }
        };
        if !self.request.is_empty() && !request.is_empty() && request != self.request {
            return Err(AtomicError::KeyReused {
                key: stored,
                recorded: request,
            });
        }
        read_outcome::<T>(&outcome).unwrap_or_else(|| {
            Err(AtomicError::custom(format!(
                "the idempotency ledger {} holds for key {:?} an outcome this call cannot \
                 return ({outcome:?}): was the key used for another operation?",
                self.table, self.key
            )))
        })
    }
}

/// Unix seconds.
pub(crate) fn now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

/// Runs `$body` (an expression that may `.await` and `?`, with `$c` bound to the connection)
/// as an [`Idempotent`] call `$once` on `$raw`: see its docs for the steps. Evaluates to the
/// body's `Result<T, AtomicError>`. A macro for the reason given at
/// [`retrying`](crate::retry).
macro_rules! idempotent {
    ($raw:expr, $once:expr, |$c:ident| $body:expr) => {{
        let once: $crate::idempotent::Idempotent<'_> = $once;
        match once.check() {
            Err(error) => Err(error),
            Ok(()) => {
                let raw = $raw;
                $crate::retry::retrying!(
                    Write,
                    raw,
                    once.retry,
                    $crate::lock::LockMode::Wait,
                    |conn| {
                        let at = $crate::idempotent::now();
                        let first = $crate::backend::write_transaction!(&mut *conn, |$c| {
                            if !once.claim(&mut *$c, "", at).await? {
                                let row = once.recall(&mut *$c).await?;
                                return Ok($crate::idempotent::First::Known(row));
                            }
                            let value = $crate::retry::attempt(async { $body }).await?;
                            once.settle(&mut *$c, &value).await?;
                            Ok($crate::idempotent::First::Ran(value))
                        });
                        once.finish(&mut *conn, first, at).await
                    }
                )
            }
        }
    }};
}
use idempotent;

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use diesel::prelude::*;

    use super::*;

    diesel::table! { items (id) { id -> BigInt, hits -> BigInt, } }

    struct Item;
    impl crate::field::AtomicField<items::hits> for Item {
        type Key = i64;
        type KeyColumns = (items::id,);
        type Value = i64;
        const MIN: Option<i64> = None;
        const MAX: Option<i64> = None;
        const NAME: &'static str = "hits";
    }

    #[test]
    fn a_pruned_key_runs_again_and_a_kept_one_does_not() {
        let c = &mut SqliteConnection::establish(":memory:").unwrap();
        diesel::connection::SimpleConnection::batch_execute(
            c,
            "CREATE TABLE items (id BIGINT PRIMARY KEY, hits BIGINT NOT NULL);
             INSERT INTO items VALUES (1, 0);
             CREATE TABLE counter_idempotency (op_key VARCHAR(200) PRIMARY KEY,
                 request TEXT NOT NULL, outcome TEXT NOT NULL, done_at BIGINT NOT NULL);",
        )
        .unwrap();
        let hit = |c: &mut SqliteConnection| {
            crate::ops::Field::<Item, items::hits>::new().increment(c, 1, 1)
        };
        let (old, new) = (Idempotent::key("old"), Idempotent::key("new"));
        assert_eq!(old.run(c, hit).unwrap(), 1);
        assert_eq!(new.run(c, hit).unwrap(), 2);
        // "old" was settled two days ago.
        diesel::sql_query(
            "UPDATE counter_idempotency SET done_at = done_at - 172800 WHERE op_key = 'old'",
        )
        .execute(c)
        .unwrap();
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(Idempotent::prune(c, IDEMPOTENCY_TABLE, day).unwrap(), 1);
        assert_eq!(new.run(c, hit).unwrap(), 2, "kept: answered, not run");
        assert_eq!(old.run(c, hit).unwrap(), 3, "pruned: run again");
    }
}
