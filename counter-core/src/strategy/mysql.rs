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
//! Side effect: the connection's `LAST_INSERT_ID()` is overwritten.
//!
//! Diesel connects with `CLIENT_FOUND_ROWS`, so the affected-row count is rows *matched*,
//! which is what tells a guard miss from a hit even when the value does not change.

use std::marker::PhantomData;

use diesel::mysql::Mysql;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::result::{Error, QueryResult};
use diesel::Column;

use super::Strategy;
use crate::backend::{message, write_transaction, RawConnection};
use crate::change::Changes;
use crate::error::AtomicError;
use crate::field::{AtomicFieldOn, ChildLinkOn, CounterCacheOn, ParentKey, ParentValue};
use crate::plan::{Delta, Direction, Plan, Take};
use crate::sql::{
    decode_capture, read, Captured, ChildKeyBack, CountedBack, DeleteChild, DeltaUpdate, Down,
    ForUpdate, Guarded, InsertChild, LastInsertId, LinkOf, MultiCaptured, MultiUpdate, NoAnswer,
    OnDuplicateKey, TakeCaptured, Unanswered, Unguarded, Up, Upsert,
};
use crate::value::AtomicValue;

/// Reads back the value the last statement captured.
async fn captured<R, V>(conn: &mut R) -> QueryResult<V>
where
    R: RawConnection<Db = Mysql>,
    V: AtomicValue,
{
    let raw: u64 = conn
        .query_rows(LastInsertId)
        .await?
        .pop()
        .ok_or(Error::NotFound)?;
    decode_capture(raw).ok_or_else(|| {
        Error::DeserializationError(
            format!("captured value {raw} does not fit the column type").into(),
        )
    })
}

impl Strategy for Mysql {
    /// One transaction, the parent first: its guarded `UPDATE` without the value's capture
    /// (the rows it matched say whether it passed), the `INSERT`, then one read of both the
    /// generated key and the parent's new value ([`CountedBack`]; the parent's value alone
    /// when the struct carries the key). Four statements, three of them while the parent's
    /// row lock is held, as many as the hand-written UPDATE, INSERT and COMMIT.
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
        let table = <C::On as AtomicFieldOn<PCol, Self>>::table;
        write_transaction!(conn, |c| {
            let matched = match delta.direction {
                Direction::Up => {
                    let up = DeltaUpdate::<C::On, PCol, Up, Unanswered>::new(table(), key, delta);
                    c.query_count(up).await?
                }
                Direction::Down => {
                    let down =
                        DeltaUpdate::<C::On, PCol, Down, Unanswered>::new(table(), key, delta);
                    c.query_count(down).await?
                }
            };
            if matched == 0 {
                return Ok(None);
            }
            c.query_count(InsertChild::<C, PCol, NoAnswer>::new(child))
                .await?;
            let counted = match child.key() {
                Some(inserted) => read::<C::On, PCol, _>(c, key)
                    .await?
                    .map(|value| (inserted, value)),
                None => C::load_counted(c, CountedBack::<C, PCol, Self>::new(key)).await?,
            };
            counted.map(Some).ok_or(AtomicError::NotFound)
        })
    }

    /// No `RETURNING`: the insert, then the key the struct carries or, when the database
    /// generated it, [`ChildKeyBack`] (`WHERE key = LAST_INSERT_ID()`, read as the key
    /// column's type).
    async fn insert_child<R, C, PCol>(conn: &mut R, child: &C) -> Result<C::Key, AtomicError>
    where
        R: RawConnection<Db = Self>,
        PCol: Column + 'static,
        C: ChildLinkOn<PCol, Self>,
    {
        conn.query_count(InsertChild::<C, PCol, NoAnswer>::new(child))
            .await?;
        if let Some(key) = child.key() {
            return Ok(key);
        }
        C::load_child_key(conn, ChildKeyBack::<C, PCol>::new())
            .await?
            .ok_or_else(|| {
                AtomicError::Database(Error::QueryBuilderError(
                    "the child row's key is neither in the struct nor generated by an AUTO_INCREMENT column (LAST_INSERT_ID() names no row)".into(),
                ))
            })
    }

    /// No `RETURNING`: the row's link read under its row lock ([`LinkOf`]), then the delete.
    async fn delete_child<R, C, PCol>(
        conn: &mut R,
        key: &C::Key,
    ) -> Result<Option<(ParentKey<C, PCol>, i64)>, AtomicError>
    where
        R: RawConnection<Db = Self>,
        PCol: Column + 'static,
        C: ChildLinkOn<PCol, Self>,
    {
        let mut links = C::load_links(conn, LinkOf::<C, PCol, ForUpdate>::new(key)).await?;
        let Some(link) = links.pop() else {
            return Ok(None);
        };
        conn.query_count(DeleteChild::<C, PCol, NoAnswer>::new(key))
            .await?;
        Ok(Some(link))
    }

    async fn apply_delta<R, M, Col>(
        conn: &mut R,
        key: &M::Key,
        delta: Delta<M::Value>,
    ) -> QueryResult<Option<M::Value>>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>,
    {
        let matched = match delta.direction {
            Direction::Up => {
                let up = DeltaUpdate::<M, Col, Up, Captured>::new(M::table(), key, delta);
                conn.query_count(up).await?
            }
            Direction::Down => {
                let down = DeltaUpdate::<M, Col, Down, Captured>::new(M::table(), key, delta);
                conn.query_count(down).await?
            }
        };
        if matched == 0 {
            return Ok(None);
        }
        captured(conn).await.map(Some)
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
        let matched = match take.direction {
            Direction::Down => {
                let statement = TakeCaptured::<M, Col, Down> {
                    table: M::table(),
                    key,
                    take,
                    sign: PhantomData,
                };
                conn.query_count(statement).await?
            }
            Direction::Up => {
                let statement = TakeCaptured::<M, Col, Up> {
                    table: M::table(),
                    key,
                    take,
                    sign: PhantomData,
                };
                conn.query_count(statement).await?
            }
        };
        if matched == 0 {
            return Ok(None);
        }
        let before: M::Value = captured(conn).await?;
        Ok(Some(take.taken_from(before)))
    }

    async fn apply_changes<R, M, Cs>(
        conn: &mut R,
        key: &Cs::Key,
        parts: &Cs::Parts,
    ) -> QueryResult<Option<Cs::Values>>
    where
        R: RawConnection<Db = Self>,
        M: 'static,
        Cs: Changes<M, Self> + 'static,
    {
        let update = MultiUpdate::<M, Cs, Self, Captured>::new(key, parts);
        if conn.query_count(update).await? == 0 {
            return Ok(None);
        }
        Cs::load(conn, MultiCaptured::<M, Cs, Self>::new()).await
    }

    /// A row that exists and takes the amount: the guarded `UPDATE` with capture of
    /// `increment`, two round trips, exact. No row matched (missing, or it refused): the
    /// insert, or the refusal, in one transaction, so the value read back is the one this
    /// statement left (the row stays locked until the commit). See `sql::upsert`.
    async fn upsert<R, M, Col, I>(
        conn: &mut R,
        key: &M::Key,
        insert: &I,
        plan: &Plan<M::Value>,
    ) -> Result<Option<M::Value>, AtomicError>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>,
        I: QueryFragment<Self> + QueryId,
    {
        let (amount, delta) = (plan.amount(), plan.delta());
        if let Some(delta) = delta {
            if let Some(value) = Self::apply_delta::<R, M, Col>(conn, key, delta).await? {
                return Ok(Some(value));
            }
        }
        write_transaction!(conn, |c| {
            let table = M::table();
            let written = match delta {
                Some(delta) => {
                    let guarded = Guarded(delta.guard);
                    let upsert =
                        Upsert::<M, Col, I, OnDuplicateKey, _>::new(table, insert, amount, guarded);
                    c.query_count(upsert).await
                }
                None => {
                    let upsert = Upsert::<M, Col, I, OnDuplicateKey, _>::new(
                        table, insert, amount, Unguarded,
                    );
                    c.query_count(upsert).await
                }
            };
            match written {
                // 1242, raised on purpose by the refused branch; the statement wrote nothing.
                Err(error) if message(&error).contains("Subquery returns more than 1 row") => {
                    Ok(None)
                }
                Err(error) => Err(error.into()),
                Ok(_) => Ok(read::<M, Col, _>(c, key).await?),
            }
        })
    }
}
