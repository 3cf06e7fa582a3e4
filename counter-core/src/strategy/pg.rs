//! PostgreSQL: `UPDATE … RETURNING` for every single-statement operation (the defaults), and
//! `take_up_to` in one statement that subtracts the new value from the locked old one.

use std::marker::PhantomData;

use diesel::dsl::sql;
use diesel::pg::Pg;
use diesel::result::QueryResult;
use diesel::sql_types::Text;
use diesel::Column;

use super::{Answers, Strategy};
use crate::backend::RawConnection;
use crate::error::AtomicError;
use crate::field::{AtomicFieldOn, CounterCacheOn, ParentKey, ParentValue};
use crate::plan::{Delta, Direction, Take};
use crate::set_plan::RowPlan;
use crate::sql::{Down, InsertCounted, RowsRule, SetChange, TakeFromLocked, Up};

impl Strategy for Pg {
    /// One statement, [`InsertCounted`]: the parent's guarded `UPDATE … RETURNING` feeding the
    /// child's `INSERT … SELECT`; atomic without a transaction of its own.
    async fn insert_counted<R, C, PCol>(
        conn: &mut R,
        child: &C,
        key: &ParentKey<C, PCol>,
        delta: Delta<ParentValue<C, PCol>>,
    ) -> Result<Option<(C::Key, ParentValue<C, PCol>)>, AtomicError>
    where
        R: RawConnection<Db = Self>,
        PCol: Column + 'static,
        C: CounterCacheOn<PCol, Self>,
    {
        Ok(match delta.direction {
            Direction::Up => {
                let insert = InsertCounted::<C, PCol, Pg, Up>::new(child, key, delta);
                C::load_counted(conn, insert).await?
            }
            Direction::Down => {
                let insert = InsertCounted::<C, PCol, Pg, Down>::new(child, key, delta);
                C::load_counted(conn, insert).await?
            }
        })
    }

    /// One statement per chunk: [`SetChange`], the chunk's keys, amounts and guards as arrays,
    /// planned without JIT (see [`without_jit`]).
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
        // A small chunk is costed far below `jit_above_cost`: no round trips for the setting.
        let jit = match rows.len() >= JIT_ROWS {
            true => Some(without_jit(conn).await?),
            false => None,
        };
        let answers = match direction {
            Direction::Up => {
                let change = SetChange::<M, Col, Self, Up, A>::new(&keys, &amounts, &guards);
                M::load_outcomes(conn, change).await?
            }
            Direction::Down => {
                let change = SetChange::<M, Col, Self, Down, A>::new(&keys, &amounts, &guards);
                M::load_outcomes(conn, change).await?
            }
        };
        if let Some(jit) = jit {
            restore_jit(conn, jit).await?;
        }
        Ok(answers)
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
        Ok(match take.direction {
            Direction::Down => {
                let statement = TakeFromLocked::<M, Col, Down> {
                    table: M::table(),
                    key,
                    take,
                    sign: PhantomData,
                };
                M::load_value(conn, statement).await?
            }
            Direction::Up => {
                let statement = TakeFromLocked::<M, Col, Up> {
                    table: M::table(),
                    key,
                    take,
                    sign: PhantomData,
                };
                M::load_value(conn, statement).await?
            }
        })
    }
}

/// From how many rows a chunk is planned without JIT: the planner's cost of a [`SetChange`]
/// grows with the cube of its rows (joins of CTEs it cannot estimate); 1,000 rows cost about
/// 1% of what 10,000 do, below the default `jit_above_cost` of 100,000.
const JIT_ROWS: usize = 1_000;

/// Turns JIT compilation off for the rest of the transaction (`set_config(…, true)`: a
/// savepoint rolled back restores it too) and returns the setting it had.
///
/// Why: the planner cannot estimate joins between the CTEs of a [`SetChange`] (no statistics,
/// a default selectivity of 1/200), so a chunk of 10,000 keys is costed in the millions, far
/// above `jit_above_cost` (100,000), and PostgreSQL spent about 400 ms of a 550 ms chunk
/// compiling it with LLVM (inlining, optimization, emission; `EXPLAIN ANALYZE` here, PostgreSQL
/// 15) to run plans that take about 100 ms without it. One more round trip each side of the
/// chunk costs far less.
async fn without_jit<R: RawConnection<Db = Pg>>(conn: &mut R) -> QueryResult<String> {
    // The materialized CTE reads the old value before `set_config` changes it.
    let old: Vec<String> = conn
        .query_rows(diesel::select(sql::<Text>(
            "(WITH \"__o\" AS MATERIALIZED (SELECT current_setting('jit') AS \"__s\") \
             SELECT \"__s\" FROM \"__o\" WHERE set_config('jit', 'off', true) IS NOT NULL)",
        )))
        .await?;
    old.into_iter()
        .next()
        .ok_or(diesel::result::Error::NotFound)
}

/// Puts back the JIT setting [`without_jit`] returned, for the rest of the caller's
/// transaction.
async fn restore_jit<R: RawConnection<Db = Pg>>(conn: &mut R, old: String) -> QueryResult<()> {
    conn.query_rows::<_, String>(diesel::select(
        sql::<Text>("set_config('jit', ")
            .bind::<Text, _>(old)
            .sql(", true)"),
    ))
    .await
    .map(drop)
}
