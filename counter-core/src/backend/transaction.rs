//! The library's own transactions: committed on `Ok`, rolled back on `Err` and on a panic.
//!
//! Diesel's `Connection::transaction` does not catch a panic of its closure: the `BEGIN` stays
//! open, the connection's transaction manager still counts one level, and every later call on
//! that connection believes it runs inside the caller's transaction (it only uses savepoints,
//! and commits nothing). A panic in an `update_*_locked` closure would leave the row locked
//! (on SQLite, the whole database) and every later write on that connection uncommitted.
//! Here a panic rolls back what this call opened, then resumes unwinding.
//!
//! An async future can also stop half-way: dropped at an `.await` (a timeout, a cancelled
//! request) between `BEGIN` and `COMMIT`, it leaves the transaction open on the connection.
//! No rollback can be sent from a destructor, so the transaction manager is marked broken
//! instead: deadpool and bb8 then discard the connection rather than hand it out again, and
//! on a connection used directly every later operation fails with
//! `BrokenTransactionManager` instead of running inside a transaction nobody will commit.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::panic::{resume_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::task::Poll;

use diesel::result::Error;

use super::{Dialect, ErrorClass, RawConnection};
use crate::error::AtomicError;
use crate::lock::LockMode;

/// Runs `$body` (an expression that may `.await`, `?` and `return`, with `$c` bound to the
/// connection) in a transaction (or a savepoint, inside the caller's transaction) opened with
/// `$begin` (`BEGIN`, `BEGIN IMMEDIATE`; unused for a savepoint); commits when it gives `Ok`,
/// rolls back when it gives `Err` or panics, then resumes the panic. Evaluates to the body's
/// `Result<T, AtomicError>`. A macro for the reason given at [`retrying`](crate::retry).
///
/// On a panic the rollback's own error, if any, is dropped: the panic is what the caller sees,
/// and Diesel marks a connection whose rollback failed as broken, so a pool discards it.
macro_rules! guarded {
    ($conn:expr, $begin:expr, |$c:ident| $body:expr) => {{
        let conn = $conn;
        match $crate::backend::RawConnection::begin(&mut *conn, $begin).await {
            Err(error) => Err($crate::error::AtomicError::from(error)),
            Ok(()) => {
                let open = $crate::backend::Open::new(conn);
                let outcome = $crate::backend::catch_unwind(async {
                    let $c = &mut *open.conn;
                    $body
                })
                .await;
                open.settle(outcome).await
            }
        }
    }};
}
pub(crate) use guarded;

/// Polls `body`, catching a panic of any poll: `Err` with the panic's payload.
pub(crate) async fn catch_unwind<T, F>(body: F) -> Result<Result<T, AtomicError>, Panic>
where
    F: Future<Output = Result<T, AtomicError>>,
{
    let mut body = pin!(body);
    poll_fn(
        |cx| match std::panic::catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Err(panic) => Poll::Ready(Err(panic)),
        },
    )
    .await
}

/// The payload of a caught panic.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

/// A transaction this call opened and has not yet committed or rolled back. Dropped in that
/// state (its future was dropped at an `.await`), it marks the connection's transaction
/// manager broken: see the module doc.
pub(crate) struct Open<'c, R: RawConnection> {
    pub(crate) conn: &'c mut R,
    settled: bool,
}

impl<'c, R: RawConnection> Open<'c, R> {
    /// A transaction `begin` just opened on `conn`.
    pub(crate) fn new(conn: &'c mut R) -> Self {
        Open {
            conn,
            settled: false,
        }
    }

    /// Commits after `Ok`, rolls back after `Err` or a panic (then resumes it).
    pub(crate) async fn settle<T>(
        mut self,
        outcome: Result<Result<T, AtomicError>, Panic>,
    ) -> Result<T, AtomicError> {
        match outcome {
            Ok(Ok(value)) => {
                // On failure Diesel has already rolled the transaction back.
                let committed = self.conn.commit().await;
                self.settled = true;
                committed?;
                Ok(value)
            }
            Ok(Err(error)) => {
                let rolled_back = self.conn.rollback().await;
                self.settled = true;
                match rolled_back {
                    Ok(()) | Err(Error::BrokenTransactionManager) => Err(error),
                    // A deadlock inside a savepoint: MySQL rolled back the whole transaction,
                    // the savepoint with it, so rolling back to it fails. The deadlock is what
                    // the caller must see, to roll back and re-run its transaction. (Diesel
                    // ignores that failure itself when it knows the error is a deadlock;
                    // diesel-async does not know MySQL's, code 1213.)
                    Err(_) if ended_the_transaction::<R>(&error) => Err(error),
                    Err(rollback_error) => Err(rollback_error.into()),
                }
            }
            Err(panic) => {
                let _ = self.conn.rollback().await;
                self.settled = true;
                resume_unwind(panic)
            }
        }
    }
}

/// Is `error` one after which the server may have rolled back the whole transaction (a
/// deadlock, a serialization failure), not only the statement?
fn ended_the_transaction<R: RawConnection>(error: &AtomicError) -> bool {
    match error {
        AtomicError::Database(error) | AtomicError::Conflict { source: error, .. } => matches!(
            <R::Db as Dialect>::classify(error, LockMode::Wait),
            ErrorClass::Transient
        ),
        _ => false,
    }
}

/// An operation under way on a connection. Dropped before it lands (its future was dropped at
/// an `.await`, possibly in the middle of a statement), it marks the connection's transaction
/// manager broken like [`Open`] does: a statement cut off half-way can leave its answer on
/// the wire, where the next statement would read it (seen with MySQL), so the connection must
/// not be used again. Unwinding from a panic is not a cut-off: a panic inside a transaction
/// was rolled back before it resumed.
pub(crate) struct InFlight<'c, R: RawConnection> {
    pub(crate) conn: &'c mut R,
    landed: bool,
    /// Set while the operation waits with no statement under way (in the SQLite writers'
    /// line): dropped then, it leaves the connection as it found it, fit for reuse.
    pub(crate) idle: std::sync::atomic::AtomicBool,
}

impl<'c, R: RawConnection> InFlight<'c, R> {
    /// An operation starting on `conn`.
    pub(crate) fn new(conn: &'c mut R) -> Self {
        InFlight {
            conn,
            landed: false,
            idle: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The operation finished, whatever its result.
    pub(crate) fn land(mut self) {
        self.landed = true;
    }
}

impl<R: RawConnection> Drop for InFlight<'_, R> {
    fn drop(&mut self) {
        if !self.landed
            && !self.idle.load(std::sync::atomic::Ordering::Relaxed)
            && !std::thread::panicking()
        {
            self.conn.transaction_status().set_in_error();
        }
    }
}

impl<R: RawConnection> Drop for Open<'_, R> {
    fn drop(&mut self) {
        if !self.settled {
            self.conn.transaction_status().set_in_error();
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use diesel::prelude::*;
    use diesel::sqlite::SqliteConnection;

    use std::panic::catch_unwind;

    use super::*;
    use crate::backend::{in_transaction, Blocking, CallMode};

    fn conn() -> SqliteConnection {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        diesel::sql_query("CREATE TABLE t (v INTEGER NOT NULL)")
            .execute(&mut c)
            .unwrap();
        c
    }

    fn rows(c: &mut SqliteConnection) -> i64 {
        diesel::dsl::sql::<diesel::sql_types::BigInt>("SELECT count(*) FROM t")
            .get_result(c)
            .unwrap()
    }

    fn insert(c: &mut SqliteConnection) -> Result<(), AtomicError> {
        diesel::sql_query("INSERT INTO t VALUES (1)").execute(c)?;
        Ok(())
    }

    fn run<T>(
        c: &mut SqliteConnection,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, AtomicError>,
    ) -> Result<T, AtomicError> {
        Blocking::drive(async { guarded!(c, "BEGIN", |c| f(c)) })
    }

    #[test]
    fn commits_on_ok_and_rolls_back_on_err() {
        let c = &mut conn();
        run(c, insert).unwrap();
        let refused = run(c, |c| {
            insert(c)?;
            Err::<(), _>(AtomicError::SameRow)
        });
        assert!(matches!(refused, Err(AtomicError::SameRow)));
        assert_eq!(rows(c), 1);
        assert!(!in_transaction(c).unwrap());
    }

    #[test]
    fn a_panic_rolls_back_and_leaves_no_transaction_open() {
        let c = &mut conn();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            run(c, |c| -> Result<(), AtomicError> {
                insert(c)?;
                panic!("the caller's closure panicked")
            })
        }));
        assert!(panicked.is_err());
        assert!(!in_transaction(c).unwrap());
        assert_eq!(rows(c), 0);
    }

    #[test]
    fn a_panic_in_a_savepoint_keeps_the_callers_transaction() {
        let c = &mut conn();
        c.transaction(|c| {
            insert(c).unwrap();
            let panicked = catch_unwind(AssertUnwindSafe(|| {
                run(c, |c| -> Result<(), AtomicError> {
                    insert(c)?;
                    panic!("inner")
                })
            }));
            assert!(panicked.is_err());
            assert!(in_transaction(c).unwrap());
            assert_eq!(rows(c), 1);
            QueryResult::Ok(())
        })
        .unwrap();
        assert_eq!(rows(c), 1);
    }

    #[test]
    fn a_transaction_dropped_half_way_breaks_the_connection() {
        use std::future::Future;
        use std::task::{Context, Waker};
        let mut connection = conn();
        {
            // A body that waits forever after its insert: polled once, then dropped.
            let c = &mut connection;
            let body = async {
                guarded!(c, "BEGIN", |c| {
                    insert(c)?;
                    std::future::pending::<()>().await;
                    Ok(())
                })
            };
            let mut body = pin!(body);
            assert!(body
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending());
        }
        assert!(matches!(
            in_transaction(&mut connection),
            Err(Error::BrokenTransactionManager)
        ));
    }
}
