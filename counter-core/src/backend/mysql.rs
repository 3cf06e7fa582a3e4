//! MySQL's and MariaDB's facts: `CAST(… AS SIGNED)`, `ON DUPLICATE KEY UPDATE`, `FOR UPDATE`
//! row locks, and their error codes by class. (No `UPDATE … RETURNING`: how each operation
//! gets its value back is in `strategy::mysql`.)

use diesel::mysql::Mysql;
use diesel::result::{DatabaseErrorKind, Error};

use super::dialect::{message, DerivedRows, Dialect, ErrorClass, UpdateJoin, UpsertClause};
use crate::error::AtomicError;
use crate::lock::LockMode;

impl Dialect for Mysql {
    const NAME: &'static str = "MySQL";
    const NOW: &'static str = "SYSDATE(6)";
    const DECIMAL_CAST: Option<&'static str> = Some("DECIMAL");
    const BIGINT: &'static str = "SIGNED";
    const UPSERT: UpsertClause = UpsertClause::OnDuplicateKey;
    const DERIVED_ROWS: DerivedRows = DerivedRows::UnionAll;
    const UPDATE_JOIN: UpdateJoin = UpdateJoin::Join;
    const SHARE_LOCK: &'static str = " LOCK IN SHARE MODE";
    const KEY_SHARE_LOCK: &'static str = " LOCK IN SHARE MODE";
    const EXCLUSIVE_LOCK: &'static str = " FOR UPDATE";

    fn lock_sql(mode: LockMode) -> Result<&'static str, AtomicError> {
        Ok(match mode {
            LockMode::Wait => " FOR UPDATE",
            LockMode::NoWait => " FOR UPDATE NOWAIT",
            LockMode::SkipLocked => " FOR UPDATE SKIP LOCKED",
        })
    }

    fn classify(error: &Error, mode: LockMode) -> ErrorClass {
        let text = message(error);
        match error {
            // 1213: deadlock; InnoDB rolled the transaction back.
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                ErrorClass::Transient
            }
            // 3572 (MySQL 8 NOWAIT).
            Error::DatabaseError(_, _) if text.contains("NOWAIT is set") => ErrorClass::Locked,
            // 1205: lock wait timeout; MariaDB also reports NOWAIT this way.
            Error::DatabaseError(_, _) if text.contains("Lock wait timeout exceeded") => match mode
            {
                LockMode::NoWait | LockMode::SkipLocked => ErrorClass::Locked,
                LockMode::Wait => ErrorClass::LockTimeout,
            },
            Error::DatabaseError(_, _) if text.contains("Deadlock found") => ErrorClass::Transient,
            _ => ErrorClass::Other,
        }
    }
}
