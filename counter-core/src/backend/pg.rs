//! PostgreSQL's facts: `FOR NO KEY UPDATE` for row locks (it does not block inserts of child
//! rows that reference the locked row), compactions `READ COMMITTED`, SQLSTATEs by class.

use diesel::pg::Pg;
use diesel::query_builder::AstPass;
use diesel::result::QueryResult;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, HasSqlType, SingleValue, SqlType};

use super::dialect::{message, Dialect, ErrorClass};
use crate::error::AtomicError;
use crate::lock::LockMode;

impl Dialect for Pg {
    const NAME: &'static str = "PostgreSQL";
    const NOW: &'static str = "clock_timestamp()";
    const BEGIN_COMPACT: &'static str = "BEGIN ISOLATION LEVEL READ COMMITTED";
    /// Keys, amounts and guards travel as three arrays, whatever the chunk's size: the
    /// statement is prepared once.
    const SET_CHUNK: usize = 10_000;

    fn bind_array<'b, ST, T>(values: &'b [T], out: &mut AstPass<'_, 'b, Self>) -> QueryResult<()>
    where
        ST: SqlType + SingleValue + 'static,
        Self: HasSqlType<ST>,
        T: ToSql<ST, Self> + std::fmt::Debug,
    {
        out.push_bind_param::<Array<ST>, [T]>(values)
    }

    const SHARE_LOCK: &'static str = " FOR SHARE";
    const KEY_SHARE_LOCK: &'static str = " FOR KEY SHARE";
    const EXCLUSIVE_LOCK: &'static str = " FOR UPDATE";

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
