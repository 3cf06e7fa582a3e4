//! SQLite: `UPDATE … RETURNING` (3.35+) for the single-statement operations; whole-database
//! write lock taken up front with `BEGIN IMMEDIATE` where a value must be read and then
//! written (there is no `FOR UPDATE`). A busy database is a transient conflict: the retry loop
//! waits and runs the operation again, so callers need no busy timeout.

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::result::{Error, QueryResult};
use diesel::sqlite::SqliteConnection;
use diesel::Column;

use super::{message, raw_connection, ErrorClass, RawConnection};
use crate::error::AtomicError;
use crate::field::AtomicFieldOn;
use crate::lock::LockMode;
use crate::plan::{Direction, Take};
use crate::sql::{read, write, DeltaUpdate, DELTA_RETURNING};
use crate::value::AtomicValue;

raw_connection!(SqliteConnection);

impl RawConnection for SqliteConnection {
    const BACKEND: &'static str = "SQLite";

    fn apply_delta<M, Col>(
        &mut self,
        key: &M::Key,
        direction: Direction,
        amount: M::Value,
        guard: M::Value,
    ) -> QueryResult<Option<M::Value>>
    where
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self::Backend>,
    {
        match direction {
            Direction::Up => M::load_value(
                self,
                DeltaUpdate::<M, Col, DELTA_RETURNING, true> {
                    table: M::table(),
                    key,
                    amount,
                    guard,
                },
            ),
            Direction::Down => M::load_value(
                self,
                DeltaUpdate::<M, Col, DELTA_RETURNING, false> {
                    table: M::table(),
                    key,
                    amount,
                    guard,
                },
            ),
        }
    }

    /// `RETURNING` cannot see the old value and SQLite has no session variable to capture it,
    /// so: read and write under `BEGIN IMMEDIATE`, which no other writer can interleave.
    fn take<M, Col>(
        &mut self,
        key: &M::Key,
        take: Take<M::Value>,
    ) -> Result<Option<M::Value>, AtomicError>
    where
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self::Backend>,
    {
        self.write_transaction(|conn| {
            let Some(current) = read::<M, Col, _, 0>(conn, key, "")? else {
                return Ok(None);
            };
            let taken = take.taken_from(current);
            // The row exists: an empty take is `Some(0)`, with no second look needed.
            if taken != <M::Value as AtomicValue>::ZERO {
                let after =
                    <M::Value as AtomicValue>::from_i128(current.to_i128() - taken.to_i128())
                        .expect("floor <= after < current");
                write::<M, Col, _>(conn, key, after)?;
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
                backend: Self::BACKEND,
            }),
        }
    }

    /// `BEGIN IMMEDIATE`, or a savepoint inside the caller's transaction (whose lock mode the
    /// caller chose when it began).
    fn begin_write(&mut self) -> QueryResult<()> {
        if super::in_transaction(self) {
            AnsiTransactionManager::begin_transaction(self)
        } else {
            AnsiTransactionManager::begin_transaction_sql(self, "BEGIN IMMEDIATE")
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
