//! What each backend sends for an operation: [`Strategy`], implemented for `Pg`, `Mysql` and
//! `Sqlite`, one file each, over the statements of [`crate::sql`] and the facts of
//! [`Dialect`].
//!
//! The defaults are the one statement SQL can do it in (`UPDATE … RETURNING`, `INSERT … ON
//! CONFLICT … RETURNING`), and, where one statement cannot say it, the lock fallback; a backend
//! overrides what it says better: PostgreSQL takes in one statement, MySQL captures the value
//! with `LAST_INSERT_ID` and reads it back.

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::future::Future;

use diesel::query_builder::{QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::Column;

use crate::backend::{write_transaction, Dialect, RawConnection};
use crate::change::Changes;
use crate::error::AtomicError;
use crate::field::{AtomicFieldOn, ChildLinkOn, CounterCacheOn, ParentKey, ParentValue};
use crate::plan::{Delta, Direction, Plan, Take};
use crate::set_plan::RowPlan;
use crate::sql::{
    read_locked, write, DeleteChild, DeltaUpdate, Down, ForUpdate, Guarded, InsertChild,
    LedgerDialect, LockKeys, MemcachedLedger, MultiUpdate, OnConflict, ReadKeys, ReturnKey,
    Returning, RowsRule, Unguarded, Up, Upsert, WriteKeys,
};
use crate::value::AtomicValue;

/// A set chunk's answer per row, in order: changed, and the new or current value (`None`: no
/// row).
pub(crate) type Answers<V> = Vec<(bool, Option<V>)>;

/// The per-backend way to run each single-statement operation; every method is generic over
/// the connection that sends it. `RawConnection::Db` is bound by it, which is how any
/// `C: AtomicConnection` reaches its backend's strategy.
#[doc(hidden)]
pub trait Strategy: Dialect + LedgerDialect + MemcachedLedger {
    /// Runs `delta` as one guarded statement; the new value, or `None` when no row matched
    /// (missing, or the guard refused it). `UPDATE … RETURNING` unless the backend overrides
    /// it.
    fn apply_delta<R, M, Col>(
        conn: &mut R,
        key: &M::Key,
        delta: Delta<M::Value>,
    ) -> impl Future<Output = QueryResult<Option<M::Value>>>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>,
    {
        async move {
            match delta.direction {
                Direction::Up => {
                    let up = DeltaUpdate::<M, Col, Up, Returning>::new(M::table(), key, delta);
                    M::load_value(conn, up).await
                }
                Direction::Down => {
                    let down = DeltaUpdate::<M, Col, Down, Returning>::new(M::table(), key, delta);
                    M::load_value(conn, down).await
                }
            }
        }
    }

    /// Takes `min(n, c - floor)`, or adds `min(n, ceiling - c)` (a [`Take`] going `Up`); the
    /// amount moved, or `None` when the statement matched no row (missing, or already at or
    /// past the limit: the caller looks once more to tell which).
    /// A backend that already knows the row exists returns `Some(0)` for an empty take.
    ///
    /// Unless the backend overrides it: the lock fallback, a read under the row lock and a
    /// write in one write transaction. SQLite takes it as it is: `RETURNING` cannot see the old
    /// value and SQLite has no session variable to capture it, and under `BEGIN IMMEDIATE` no
    /// other writer can interleave (its lock clause is empty: the transaction holds the lock).
    fn take<R, M, Col>(
        conn: &mut R,
        key: &M::Key,
        take: Take<M::Value>,
    ) -> impl Future<Output = Result<Option<M::Value>, AtomicError>>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>,
    {
        async move {
            write_transaction!(conn, |conn| {
                let Some(current) = read_locked::<M, Col, ForUpdate, _>(conn, key).await? else {
                    return Ok(None);
                };
                let taken = take.taken_from(current);
                // The row exists: an empty take is `Some(0)`, with no second look needed.
                if taken != M::Value::ZERO {
                    write::<M, Col, _>(conn, key, take.after(current)).await?;
                }
                Ok(Some(taken))
            })
        }
    }

    /// Runs a several-column change as one guarded statement; the new values, or `None` when
    /// no row matched (missing, or a guard refused). `UPDATE … RETURNING` unless the backend
    /// overrides it.
    fn apply_changes<R, M, Cs>(
        conn: &mut R,
        key: &Cs::Key,
        parts: &Cs::Parts,
    ) -> impl Future<Output = QueryResult<Option<Cs::Values>>>
    where
        R: RawConnection<Db = Self>,
        M: 'static,
        Cs: Changes<M, Self> + 'static,
    {
        async move {
            let update = MultiUpdate::<M, Cs, Self, Returning>::new(key, parts);
            Cs::load(conn, update).await
        }
    }

    /// Runs one chunk of a set (keys in order, each row's plan with a guard, one direction):
    /// per row, in order, whether it changed and its value (new, or current for a row that
    /// refused; `None` for a key without a row). With [`AllRows`] no row changes unless every
    /// row can. When two keys of the chunk name one row (equal under the column's collation)
    /// no row changes: a row that admits its change but did not change tells the caller to go
    /// row by row.
    ///
    /// Unless the backend overrides it: lock the rows in key order ([`LockKeys`], where the
    /// backend has row locks), read them ([`ReadKeys`]), decide in Rust, and write the rows
    /// that change with one joined `UPDATE` ([`WriteKeys`]); three statements whatever the
    /// chunk's size, inside the caller's write transaction.
    fn change_chunk<R, M, Col, A>(
        conn: &mut R,
        rows: &[RowPlan<M::Key, M::Value>],
    ) -> impl Future<Output = Result<Answers<M::Value>, AtomicError>>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>,
        A: RowsRule,
    {
        async move {
            let keys: Vec<&M::Key> = rows.iter().map(|row| &row.key).collect();
            // One row per existing row, locked in key order (on SQLite, whose transaction holds
            // the database, only counted).
            let lock = LockKeys::<M, Col, ForUpdate>::new(M::table(), &keys);
            let locked = M::load_roles(conn, lock).await?.len();
            let read = ReadKeys::<M, Col, ForUpdate>::new(M::table(), &keys);
            let current = M::load_outcomes(conn, read).await?;
            debug_assert_eq!(current.len(), rows.len(), "one answer per key");
            if current.iter().filter(|(_, v)| v.is_some()).count() != locked {
                // Two keys name one row (equal under the column's collation): change nothing,
                // and the caller goes row by row.
                return Ok(current);
            }
            let plan =
                |row: &RowPlan<M::Key, M::Value>| row.plan.expect("a chunk's rows have plans");
            let every = !A::ALL
                || rows
                    .iter()
                    .zip(&current)
                    .all(|(row, (_, value))| value.is_some_and(|v| plan(row).admits(v)));
            let mut answers = Vec::with_capacity(rows.len());
            let mut writes = Vec::new();
            for (row, (_, value)) in rows.iter().zip(current) {
                answers.push(match value {
                    Some(v) if every && plan(row).admits(v) => {
                        let new = plan(row).apply_to(v)?;
                        if new != v {
                            writes.push((&row.key, new));
                        }
                        (true, Some(new))
                    }
                    other => (false, other),
                });
            }
            if !writes.is_empty() {
                conn.query_count(WriteKeys::<M, Col>::new(M::table(), &writes))
                    .await?;
            }
            Ok(answers)
        }
    }

    /// Inserts `child` and applies `delta` to its parent `key`, both or neither: the child's
    /// key and the parent's new value, or `None` when no parent row matched (missing, or its
    /// guard refused), and then no child row was inserted.
    ///
    /// Unless the backend overrides it: one write transaction, the parent's guarded statement
    /// first (its row lock orders everything after it), then the insert.
    #[allow(clippy::type_complexity)]
    fn insert_counted<R, C, PCol>(
        conn: &mut R,
        child: &C,
        key: &ParentKey<C, PCol>,
        delta: Delta<ParentValue<C, PCol>>,
    ) -> impl Future<Output = Result<Option<(C::Key, ParentValue<C, PCol>)>, AtomicError>>
    where
        R: RawConnection<Db = Self>,
        PCol: Column + 'static,
        C: CounterCacheOn<PCol, Self>,
    {
        async move {
            write_transaction!(conn, |c| {
                let Some(new) = Self::apply_delta::<_, C::On, PCol>(c, key, delta).await? else {
                    return Ok(None);
                };
                let inserted = Self::insert_child::<_, C, PCol>(c, child).await?;
                Ok(Some((inserted, new)))
            })
        }
    }

    /// Inserts `child` alone; its key. `INSERT … RETURNING key` unless the backend overrides
    /// it.
    fn insert_child<R, C, PCol>(
        conn: &mut R,
        child: &C,
    ) -> impl Future<Output = Result<C::Key, AtomicError>>
    where
        R: RawConnection<Db = Self>,
        PCol: Column + 'static,
        C: ChildLinkOn<PCol, Self>,
    {
        async move {
            let insert = InsertChild::<C, PCol, ReturnKey>::new(child);
            C::load_child_key(conn, insert)
                .await?
                .ok_or(AtomicError::NotFound)
        }
    }

    /// Deletes child row `key`; its parent's key and its amount, or `None` when no row was
    /// deleted (there was none, or a concurrent delete took it first). `DELETE … RETURNING`
    /// unless the backend overrides it.
    #[allow(clippy::type_complexity)]
    fn delete_child<R, C, PCol>(
        conn: &mut R,
        key: &C::Key,
    ) -> impl Future<Output = Result<Option<(ParentKey<C, PCol>, i64)>, AtomicError>>
    where
        R: RawConnection<Db = Self>,
        PCol: Column + 'static,
        C: ChildLinkOn<PCol, Self>,
    {
        async move {
            let mut links =
                C::load_links(conn, DeleteChild::<C, PCol, ReturnKey>::new(key)).await?;
            debug_assert!(links.len() <= 1, "one row per key");
            Ok(links.pop())
        }
    }

    /// Runs `insert` with the clause that adds the plan's amount to an existing row the plan's
    /// guard admits (no guard: no existing row can take it). The value inserted or updated,
    /// or `None` when the existing row refused. `key` is `insert`'s key.
    fn upsert<R, M, Col, I>(
        conn: &mut R,
        key: &M::Key,
        insert: &I,
        plan: &Plan<M::Value>,
    ) -> impl Future<Output = Result<Option<M::Value>, AtomicError>>
    where
        R: RawConnection<Db = Self>,
        Col: Column + 'static,
        M: AtomicFieldOn<Col, Self>,
        I: QueryFragment<Self> + QueryId,
    {
        let _ = key;
        let (amount, delta) = (plan.amount(), plan.delta());
        async move {
            let table = M::table();
            Ok(match delta {
                Some(delta) => {
                    let guarded = Guarded(delta.guard);
                    let upsert =
                        Upsert::<M, Col, I, OnConflict, _>::new(table, insert, amount, guarded);
                    M::load_value(conn, upsert).await?
                }
                None => {
                    let upsert =
                        Upsert::<M, Col, I, OnConflict, _>::new(table, insert, amount, Unguarded);
                    M::load_value(conn, upsert).await?
                }
            })
        }
    }
}
