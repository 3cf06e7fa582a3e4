//! PostgreSQL: `UPDATE … RETURNING` for every single-statement operation (the defaults), and
//! `take_up_to` in one statement that subtracts the new value from the locked old one.

use diesel::pg::Pg;
use diesel::Column;

use super::Strategy;
use crate::backend::RawConnection;
use crate::error::AtomicError;
use crate::field::AtomicFieldOn;
use crate::plan::Take;
use crate::sql::TakeFromLocked;

impl Strategy for Pg {
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
        let statement = TakeFromLocked::<M, Col> {
            table: M::table(),
            key,
            take,
        };
        Ok(M::load_value(conn, statement).await?)
    }
}
