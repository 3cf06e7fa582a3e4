//! MySQL and MariaDB: no `UPDATE … RETURNING`. Each single-statement operation runs its guarded
//! `UPDATE` with the value captured as a side effect of the assignment itself,
//! `SET c = c + ? + CAST(LAST_INSERT_ID((c + ?) ^ 2^63) & 0 AS SIGNED)`, then reads it back with
//! `SELECT LAST_INSERT_ID()` on the same connection: two round trips, no transaction.
//!
//! Why not the textbook `SET c = LAST_INSERT_ID(c + ?)`: `LAST_INSERT_ID` holds an unsigned
//! 64-bit value, so a negative result fails in strict mode and, in non-strict mode, writes
//! 2147483647 into the column (seen on MariaDB 10.11). The XOR with the sign bit maps every
//! value into the unsigned range reversibly, and adding a *signed* zero keeps the column's own
//! arithmetic signed. One assignment, so it does not depend on assignment order either (two
//! assignments to one column are refused under MariaDB's `SIMULTANEOUS_ASSIGNMENT`).
//! Side effect: the connection's `LAST_INSERT_ID()` is overwritten. Row locks are `FOR UPDATE`.
//!
//! Diesel connects with `CLIENT_FOUND_ROWS`, so the affected-row count is rows *matched*,
//! which is what tells a guard miss from a hit even when the value does not change.

use diesel::mysql::MysqlConnection;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error, QueryResult};
use diesel::{Column, Connection, RunQueryDsl};

use super::{message, raw_connection, ErrorClass, RawConnection};
use crate::change::Changes;
use crate::error::AtomicError;
use crate::field::AtomicFieldOn;
use crate::lock::LockMode;
use crate::plan::{Direction, Take};
use crate::sql::{
    decode_capture, read, DeltaUpdate, LastInsertId, MultiStatement, TakeUpdate, Upsert,
    DELTA_CAPTURE, MULTI_CAPTURE, MULTI_CAPTURED, TAKE_CAPTURE, UPSERT_ON_DUPLICATE,
};
use crate::value::AtomicValue;

raw_connection!(MysqlConnection);

/// Reads back the value the last statement captured.
fn captured<V: AtomicValue>(conn: &mut MysqlConnection) -> QueryResult<V> {
    let raw: u64 = LastInsertId.get_result(conn)?;
    decode_capture(raw).ok_or_else(|| {
        Error::DeserializationError(
            format!("captured value {raw} does not fit the column type").into(),
        )
    })
}

impl RawConnection for MysqlConnection {
    const BACKEND: &'static str = "MySQL";
    const BIGINT: &'static str = "SIGNED";
    const ON_DUPLICATE_KEY: bool = true;

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
        let matched = match direction {
            Direction::Up => {
                self.execute_returning_count(&DeltaUpdate::<M, Col, DELTA_CAPTURE, true> {
                    table: M::table(),
                    key,
                    amount,
                    guard,
                })?
            }
            Direction::Down => {
                self.execute_returning_count(&DeltaUpdate::<M, Col, DELTA_CAPTURE, false> {
                    table: M::table(),
                    key,
                    amount,
                    guard,
                })?
            }
        };
        if matched == 0 {
            return Ok(None);
        }
        captured(self).map(Some)
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
        let statement = TakeUpdate::<M, Col, TAKE_CAPTURE> {
            table: M::table(),
            key,
            take,
        };
        if self.execute_returning_count(&statement)? == 0 {
            return Ok(None);
        }
        let before: M::Value = captured(self)?;
        Ok(Some(take.taken_from(before)))
    }

    fn apply_changes<M, Cs>(
        &mut self,
        key: &Cs::Key,
        parts: &Cs::Parts,
    ) -> QueryResult<Option<Cs::Values>>
    where
        M: 'static,
        Cs: Changes<M, Self::Backend> + 'static,
    {
        let mut update = MultiStatement::<M, Cs, Self::Backend, MULTI_CAPTURE>::new(key);
        update.parts = Some(parts);
        if self.execute_returning_count(&update)? == 0 {
            return Ok(None);
        }
        let captured = MultiStatement::<M, Cs, Self::Backend, MULTI_CAPTURED>::new(key);
        Cs::load(self, captured)
    }

    fn upsert<M, Col, I>(
        &mut self,
        key: &M::Key,
        insert: &I,
        amount: M::Value,
        guard: Option<M::Value>,
    ) -> Result<Option<M::Value>, AtomicError>
    where
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self::Backend>,
        I: QueryFragment<Self::Backend> + QueryId,
    {
        // A row that exists and takes the amount: the guarded `UPDATE` with capture of
        // `increment`, two round trips, exact.
        if let Some(guard) = guard {
            if let Some(value) = self.apply_delta::<M, Col>(key, Direction::Up, amount, guard)? {
                return Ok(Some(value));
            }
        }
        // No row matched (missing, or it refused): the insert, or the refusal, in one
        // transaction, so the value read back is the one this statement left (the row stays
        // locked until the commit). See `sql::upsert`.
        self.write_transaction(|c| {
            let written = match guard {
                Some(guard) => {
                    c.execute_returning_count(&Upsert::<M, Col, I, UPSERT_ON_DUPLICATE, true> {
                        table: M::table(),
                        insert,
                        amount,
                        guard,
                    })
                }
                None => {
                    c.execute_returning_count(&Upsert::<M, Col, I, UPSERT_ON_DUPLICATE, false> {
                        table: M::table(),
                        insert,
                        amount,
                        guard: amount,
                    })
                }
            };
            match written {
                // 1242, raised on purpose by the refused branch; the statement wrote nothing.
                Err(error) if message(&error).contains("Subquery returns more than 1 row") => {
                    Ok(None)
                }
                Err(error) => Err(error.into()),
                Ok(_) => Ok(read::<M, Col, _, 0>(c, key, "")?),
            }
        })
    }

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
