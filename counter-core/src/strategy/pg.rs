//! PostgreSQL: `UPDATE … RETURNING` for every single-statement operation (the defaults), and
//! `take_up_to` in one statement that subtracts the new value from the locked old one.

use diesel::pg::Pg;
use diesel::Column;

use super::{Answers, Strategy};
use crate::backend::RawConnection;
use crate::error::AtomicError;
use crate::field::AtomicFieldOn;
use crate::plan::{Direction, Take};
use crate::set_plan::RowPlan;
use crate::sql::{Down, RowsRule, SetChange, TakeFromLocked, Up};

impl Strategy for Pg {
    /// One statement per chunk: [`SetChange`], the chunk's keys, amounts and guards as arrays.
    async fn change_chunk<R, M, Col, A>(
        conn: &mut R,
        rows: &[RowPlan<M::Key, M::Value>],
    ) -> Result<Answers<M::Value>, AtomicError>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>,
        A: RowsRule,
    {
        let mut keys = M::KeyArrays::default();
        let (mut amounts, mut guards) = (
            Vec::with_capacity(rows.len()),
            Vec::with_capacity(rows.len()),
        );
        let mut direction = Direction::Up;
        for row in rows {
            let delta = row
                .plan
                .and_then(|p| p.delta())
                .expect("a chunk's rows have guards");
            M::push_key(&row.key, &mut keys);
            amounts.push(delta.amount);
            guards.push(delta.guard);
            direction = delta.direction;
        }
        Ok(match direction {
            Direction::Up => {
                let change = SetChange::<M, Col, Self, Up, A>::new(&keys, &amounts, &guards);
                M::load_outcomes(conn, change).await?
            }
            Direction::Down => {
                let change = SetChange::<M, Col, Self, Down, A>::new(&keys, &amounts, &guards);
                M::load_outcomes(conn, change).await?
            }
        })
    }

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
