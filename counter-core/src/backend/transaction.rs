//! The library's own transactions: committed on `Ok`, rolled back on `Err` and on a panic.
//!
//! Diesel's `Connection::transaction` does not catch a panic of its closure: the `BEGIN` stays
//! open, the connection's transaction manager still counts one level, and every later call on
//! that connection believes it runs inside the caller's transaction (it only uses savepoints,
//! and commits nothing). A panic in an `update_*_locked` closure would leave the row locked
//! (on SQLite, the whole database) and every later write on that connection uncommitted.
//! Here a panic rolls back what this call opened, then resumes unwinding.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use diesel::connection::TransactionManager;
use diesel::result::{Error, QueryResult};
use diesel::Connection;

use crate::error::AtomicError;

/// Runs `f` in a transaction (or a savepoint, inside the caller's transaction) that `begin`
/// opens; commits when `f` returns `Ok`, rolls back when it returns `Err` or panics.
///
/// `begin` is `TransactionManager::begin_transaction` (which takes a savepoint when nested)
/// or a backend's own `BEGIN` statement. On a panic the rollback's own error, if any, is
/// dropped: the panic is what the caller sees, and Diesel marks a connection whose rollback
/// failed as broken, so a pool discards it.
pub(crate) fn guarded<C, T>(
    conn: &mut C,
    begin: impl FnOnce(&mut C) -> QueryResult<()>,
    f: impl FnOnce(&mut C) -> Result<T, AtomicError>,
) -> Result<T, AtomicError>
where
    C: Connection,
{
    begin(conn)?;
    match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(Ok(value)) => {
            // On failure Diesel has already rolled the transaction back.
            C::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Ok(Err(error)) => match C::TransactionManager::rollback_transaction(conn) {
            Ok(()) | Err(Error::BrokenTransactionManager) => Err(error),
            Err(rollback_error) => Err(rollback_error.into()),
        },
        Err(panic) => {
            let _ = C::TransactionManager::rollback_transaction(conn);
            resume_unwind(panic)
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use diesel::prelude::*;
    use diesel::sqlite::SqliteConnection;

    use super::*;
    use crate::backend::in_transaction;

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

    fn begin(c: &mut SqliteConnection) -> QueryResult<()> {
        <SqliteConnection as Connection>::TransactionManager::begin_transaction(c)
    }

    #[test]
    fn commits_on_ok_and_rolls_back_on_err() {
        let c = &mut conn();
        guarded(c, begin, insert).unwrap();
        let refused = guarded(c, begin, |c| {
            insert(c)?;
            Err::<(), _>(AtomicError::SameRow)
        });
        assert!(matches!(refused, Err(AtomicError::SameRow)));
        assert_eq!(rows(c), 1);
        assert!(!in_transaction(c));
    }

    #[test]
    fn a_panic_rolls_back_and_leaves_no_transaction_open() {
        let c = &mut conn();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            guarded(c, begin, |c| -> Result<(), AtomicError> {
                insert(c)?;
                panic!("the caller's closure panicked")
            })
        }));
        assert!(panicked.is_err());
        assert!(!in_transaction(c));
        assert_eq!(rows(c), 0);
    }

    #[test]
    fn a_panic_in_a_savepoint_keeps_the_callers_transaction() {
        let c = &mut conn();
        c.transaction(|c| {
            insert(c).unwrap();
            let panicked = catch_unwind(AssertUnwindSafe(|| {
                guarded(c, begin, |c| -> Result<(), AtomicError> {
                    insert(c)?;
                    panic!("inner")
                })
            }));
            assert!(panicked.is_err());
            assert!(in_transaction(c));
            assert_eq!(rows(c), 1);
            QueryResult::Ok(())
        })
        .unwrap();
        assert_eq!(rows(c), 1);
    }
}
