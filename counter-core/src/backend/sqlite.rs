//! SQLite: `UPDATE … RETURNING` (3.35+) for the single-statement operations; whole-database
//! write lock taken up front with `BEGIN IMMEDIATE` where a value must be read and then
//! written (there is no `FOR UPDATE`). A busy database is a transient conflict: the retry loop
//! waits and runs the operation again, so callers need no busy timeout.

use diesel::result::Error;
use diesel::sqlite::Sqlite;
use diesel::Column;

use super::{message, write_transaction, Dialect, ErrorClass, RawConnection};
use crate::error::AtomicError;
use crate::field::AtomicFieldOn;
use crate::lock::LockMode;
use crate::plan::Take;
use crate::sql::{read, write};
use crate::value::AtomicValue;

impl Dialect for Sqlite {
    const NAME: &'static str = "SQLite";

    /// `BEGIN IMMEDIATE` (a savepoint inside the caller's transaction, whose lock mode the
    /// caller chose when it began).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    /// `RETURNING` cannot see the old value and SQLite has no session variable to capture it,
    /// so: read and write under `BEGIN IMMEDIATE`, which no other writer can interleave.
    async fn take<R, M, Col>(
        conn: &mut R,
        key: &M::Key,
        take: Take<M::Value>,
    ) -> Result<Option<M::Value>, AtomicError>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>,
    {
        write_transaction!(conn, |conn| {
            let Some(current) = read::<M, Col, _, 0>(conn, key, "").await? else {
                return Ok(None);
            };
            let taken = take.taken_from(current);
            // The row exists: an empty take is `Some(0)`, with no second look needed.
            if taken != <M::Value as AtomicValue>::ZERO {
                let after =
                    <M::Value as AtomicValue>::from_i128(current.to_i128() - taken.to_i128())
                        .expect("floor <= after < current");
                write::<M, Col, _>(conn, key, after).await?;
            }
            Ok(Some(taken))
        })
    }

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
