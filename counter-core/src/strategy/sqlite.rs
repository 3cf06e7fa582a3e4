//! SQLite: `UPDATE … RETURNING` (3.35+) for the single-statement operations (the defaults);
//! `take_up_to` reads and writes under `BEGIN IMMEDIATE`, since `RETURNING` cannot see the old
//! value and SQLite has no session variable to capture it.

use diesel::sqlite::Sqlite;
use diesel::Column;

use super::Strategy;
use crate::backend::{write_transaction, RawConnection};
use crate::error::AtomicError;
use crate::field::AtomicFieldOn;
use crate::plan::Take;
use crate::sql::{read, write};
use crate::value::AtomicValue;

impl Strategy for Sqlite {
    /// Read and write under `BEGIN IMMEDIATE`, which no other writer can interleave.
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
            let Some(current) = read::<M, Col, _>(conn, key).await? else {
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
}
