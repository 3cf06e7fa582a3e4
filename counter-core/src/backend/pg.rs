//! PostgreSQL's facts: `FOR NO KEY UPDATE` for row locks (it does not block inserts of child
//! rows that reference the locked row), compactions `READ COMMITTED`, SQLSTATEs by class.

use diesel::pg::Pg;
use diesel::result::{DatabaseErrorKind, Error};

use super::dialect::{message, Dialect, ErrorClass};
use crate::error::AtomicError;
use crate::lock::LockMode;

impl Dialect for Pg {
    const NAME: &'static str = "PostgreSQL";
    const BEGIN_COMPACT: &'static str = "BEGIN ISOLATION LEVEL READ COMMITTED";

    fn lock_sql(mode: LockMode) -> Result<&'static str, AtomicError> {
        Ok(match mode {
            LockMode::Wait => " FOR NO KEY UPDATE",
            LockMode::NoWait => " FOR NO KEY UPDATE NOWAIT",
            LockMode::SkipLocked => " FOR NO KEY UPDATE SKIP LOCKED",
        })
    }

    fn classify(error: &Error, mode: LockMode) -> ErrorClass {
        let text = message(error);
        match error {
            // 40001: serialization failure (REPEATABLE READ / SERIALIZABLE, CockroachDB, Yugabyte).
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                ErrorClass::Transient
            }
            // 40P01 arrives as Unknown.
            Error::DatabaseError(_, _) if text.contains("deadlock detected") => {
                ErrorClass::Transient
            }
            // 55P03 from NOWAIT.
            Error::DatabaseError(_, _) if text.contains("could not obtain lock") => match mode {
                LockMode::NoWait | LockMode::SkipLocked => ErrorClass::Locked,
                LockMode::Wait => ErrorClass::Transient,
            },
            // 55P03 from the caller's lock_timeout.
            Error::DatabaseError(_, _) if text.contains("lock timeout") => ErrorClass::LockTimeout,
            _ => ErrorClass::Other,
        }
    }
}
