//! SQLite's facts: the whole-database write lock taken up front with `BEGIN IMMEDIATE` (there
//! is no `FOR UPDATE`, so no row lock clause and no `SKIP LOCKED`), and a busy database as a
//! transient conflict: the retry loop waits and runs the operation again, so callers need no
//! busy timeout.

use diesel::result::Error;
use diesel::sqlite::Sqlite;

use super::dialect::{message, Dialect, ErrorClass};
use crate::error::AtomicError;
use crate::lock::LockMode;

impl Dialect for Sqlite {
    const NAME: &'static str = "SQLite";

    /// `BEGIN IMMEDIATE` (a savepoint inside the caller's transaction, whose lock mode the
    /// caller chose when it began).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    fn lock_sql(mode: LockMode) -> Result<&'static str, AtomicError> {
        match mode {
            // The write lock was taken by BEGIN IMMEDIATE; a NOWAIT lock fails there.
            LockMode::Wait | LockMode::NoWait => Ok(""),
            LockMode::SkipLocked => Err(AtomicError::Unsupported {
                feature: "LockMode::SkipLocked (SQLite locks the whole database, not rows)",
                backend: Self::NAME,
            }),
        }
    }

    fn classify(error: &Error, mode: LockMode) -> ErrorClass {
        let text = message(error);
        // SQLITE_BUSY ("database is locked") and SQLITE_LOCKED ("database table is locked").
        if text.contains("database is locked") || text.contains("database table is locked") {
            return match mode {
                LockMode::NoWait | LockMode::SkipLocked => ErrorClass::Locked,
                LockMode::Wait => ErrorClass::Busy,
            };
        }
        ErrorClass::Other
    }
}
