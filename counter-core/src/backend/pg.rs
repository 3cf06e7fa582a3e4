//! PostgreSQL: `UPDATE … RETURNING` for every single-statement operation, `FOR NO KEY UPDATE`
//! for row locks (it does not block inserts of child rows that reference the locked row).

use diesel::pg::PgConnection;
use diesel::result::{DatabaseErrorKind, Error, QueryResult};
use diesel::Column;

use super::{message, raw_connection, ErrorClass, RawConnection};
use crate::error::AtomicError;
use crate::field::AtomicFieldOn;
use crate::lock::LockMode;
use crate::plan::{Direction, Take};
use crate::sql::{DeltaUpdate, TakeUpdate, DELTA_RETURNING, TAKE_FROM_LOCKED};

raw_connection!(PgConnection);

impl RawConnection for PgConnection {
    const BACKEND: &'static str = "PostgreSQL";

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

    fn take<M, Col>(
        &mut self,
        key: &M::Key,
        take: Take<M::Value>,
    ) -> Result<Option<M::Value>, AtomicError>
    where
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self::Backend>,
    {
        let statement = TakeUpdate::<M, Col, TAKE_FROM_LOCKED> {
            table: M::table(),
            key,
            take,
        };
        Ok(M::load_value(self, statement)?)
    }

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
