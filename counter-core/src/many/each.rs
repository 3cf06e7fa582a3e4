//! A batch of increments applied each row on its own: what every flush writes with
//! (`Buffer`, `AsyncBuffer`, `RedisCounter`, `increment_or_insert_all`).
//!
//! A row that refuses (past its maximum, or a database error of its own: a `CHECK`, a
//! trigger) is reported by key and does not hold back the others; a key without a row is
//! inserted or reported, as the caller's [`OnMissing`] says.

use std::future::Future;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Column;

use crate::backend::{guarded, write_transaction, Dialect, ErrorClass, RawConnection};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::ops::Field;
use crate::plan::{Op, Plan};
use crate::retry::retrying;
use crate::set_plan::RowPlan;
use crate::sql::{read, read_locked, write, EachRow, ForUpdate, ReadKeys, Unlocked};
use crate::strategy::Strategy;
use crate::unknown_keys::UnknownKeyPolicy;
use crate::upsert::NewRow;
use crate::value::AtomicValue;

/// What applying a batch did with each key, every list in key order.
#[derive(Debug)]
pub(crate) struct Each<K, V> {
    /// Keys written: the amount added and the row's new value (an inserted row's value).
    pub written: Vec<(K, V, V)>,
    /// Keys whose row refused, with the amount: `OutOfRange` (past the maximum) or
    /// `Database` (an error of the row's own, a `CHECK` or a trigger).
    pub refused: Vec<(K, V, AtomicError)>,
    /// Keys without a row that were not inserted, with the amount.
    pub missing: Vec<(K, V)>,
}

impl<K, V> Default for Each<K, V> {
    fn default() -> Self {
        Each {
            written: Vec::new(),
            refused: Vec::new(),
            missing: Vec::new(),
        }
    }
}

/// What a flush does with keys that have no row.
pub(crate) trait OnMissing<M: AtomicField<Col>, Col: Column, DB: diesel::backend::Backend> {
    /// Inserts rows for `missing` (keys in order, none has a row under this transaction's
    /// view): the keys inserted, each with its amount and new value, and those left missing.
    fn insert<R>(
        &mut self,
        c: &mut R,
        field: &Field<M, Col>,
        missing: Vec<(M::Key, M::Value)>,
        each: &mut Each<M::Key, M::Value>,
    ) -> impl Future<Output = Result<(), AtomicError>>
    where
        R: RawConnection<Db = DB>,
        DB: Dialect,
        M: AtomicFieldOn<Col, DB>,
        M::Key: Clone;
}

/// Update existing rows only: keys without a row are reported in [`Each::missing`].
pub(crate) struct ReportMissing;

impl<M: AtomicField<Col>, Col: Column, DB: diesel::backend::Backend> OnMissing<M, Col, DB>
    for ReportMissing
{
    async fn insert<R>(
        &mut self,
        _: &mut R,
        _: &Field<M, Col>,
        missing: Vec<(M::Key, M::Value)>,
        each: &mut Each<M::Key, M::Value>,
    ) -> Result<(), AtomicError>
    where
        R: RawConnection<Db = DB>,
        DB: Dialect,
        M: AtomicFieldOn<Col, DB>,
        M::Key: Clone,
    {
        each.missing.extend(missing);
        Ok(())
    }
}

/// Insert a key without a row as `new_row(key, amount)`.
pub(crate) struct InsertMissing<F>(pub F);

impl<M, Col, DB, F, Row> OnMissing<M, Col, DB> for InsertMissing<F>
where
    M: AtomicField<Col>,
    Col: Column + 'static,
    F: FnMut(&M::Key, M::Value) -> Row,
    Row: NewRow<M, Col, DB>,
    DB: diesel::backend::Backend,
{
    /// One multi-row `INSERT` per chunk of [`Dialect::INSERT_CHUNK`] rows (one per row on
    /// SQLite), in a savepoint, then one read of the chunk's new values. A chunk that meets a
    /// row another writer inserted meanwhile (a unique violation) rolls back to its savepoint
    /// and goes row by row through the single-row increment-or-insert, which adds to that row.
    async fn insert<R>(
        &mut self,
        c: &mut R,
        field: &Field<M, Col>,
        missing: Vec<(M::Key, M::Value)>,
        each: &mut Each<M::Key, M::Value>,
    ) -> Result<(), AtomicError>
    where
        R: RawConnection<Db = DB>,
        DB: Dialect,
        M: AtomicFieldOn<Col, DB>,
        M::Key: Clone,
    {
        for chunk in missing.chunks(DB::INSERT_CHUNK) {
            let rows: Vec<Row> = chunk.iter().map(|(key, n)| (self.0)(key, *n)).collect();
            let inserted = write_transaction!(&mut *c, |c| {
                match Row::insert_many(&rows) {
                    Some(statement) => {
                        c.query_count(statement).await?;
                    }
                    None => {
                        for row in &rows {
                            c.query_count(row.insert()).await?;
                        }
                    }
                }
                let keys: Vec<&M::Key> = chunk.iter().map(|(key, _)| key).collect();
                // Unlocked: the rows are this transaction's own inserts (and PostgreSQL refuses a
                // lock on the nullable side of the outer join).
                let read = ReadKeys::<M, Col, Unlocked>::new(M::table(), &keys);
                Ok(M::load_outcomes(c, read).await?)
            });
            match inserted {
                Ok(values) => {
                    for ((key, n), (_, value)) in chunk.iter().zip(values) {
                        let new = value.ok_or_else(|| {
                            AtomicError::custom("an inserted row is not there (a trigger?)")
                        })?;
                        each.written.push((key.clone(), *n, new));
                    }
                }
                Err(AtomicError::Database(DieselError::DatabaseError(
                    DatabaseErrorKind::UniqueViolation,
                    _,
                ))) => {
                    for ((key, n), row) in chunk.iter().zip(&rows) {
                        let insert = row.insert();
                        match field.upsert(c, key, &insert, *n).await {
                            Ok(new) => each.written.push((key.clone(), *n, new)),
                            // A row inserted meanwhile, too full to take the amount.
                            Err(error @ AtomicError::OutOfRange { .. }) => {
                                each.refused.push((key.clone(), *n, error))
                            }
                            Err(other) => return Err(other),
                        }
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static> Field<M, Col> {
    /// Adds each `(key, amount)` of `batch` (keys distinct, in order, amounts above zero) to
    /// its row, each row on its own, in one write transaction (a savepoint inside the
    /// caller's) opened with [`Dialect::BEGIN_COMPACT`], re-run whole after a transient
    /// conflict; keys without a row as `unknown` says (the buffers' flush).
    pub(crate) async fn add_each<R, U>(
        &self,
        raw: &mut R,
        batch: &[(M::Key, M::Value)],
        unknown: &U,
    ) -> Result<Each<M::Key, M::Value>, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
        M::Key: Ord + Clone,
        U: UnknownKeyPolicy<M, Col, R::Db>,
    {
        retrying!(Write, raw, self.policy(), LockMode::Wait, |c| {
            let begin = <R::Db as Dialect>::BEGIN_COMPACT;
            guarded!(c, begin, |c| unknown.add_each_in(self, c, batch).await)
        })
    }

    /// [`add_each`](Self::add_each) inside a transaction the caller opened.
    pub(crate) async fn add_each_in<R, O>(
        &self,
        c: &mut R,
        batch: &[(M::Key, M::Value)],
        on_missing: &mut O,
    ) -> Result<Each<M::Key, M::Value>, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
        M::Key: Ord + Clone,
        O: OnMissing<M, Col, R::Db>,
    {
        let mut each = Each::default();
        let mut missing = Vec::new();
        let mut rows = Vec::with_capacity(batch.len());
        for (key, amount) in batch {
            let plan = Plan::of::<M, Col>(Op::Increment, *amount)?;
            if plan.delta().is_none() {
                // No value can take this amount: only the report needs the row.
                match read::<M, Col, _>(c, key).await? {
                    None => missing.push((key.clone(), *amount)),
                    Some(v) => each.refused.push((key.clone(), *amount, refused(&plan, v))),
                }
                continue;
            }
            rows.push(RowPlan {
                key: key.clone(),
                total: amount.to_i128(),
                plan: Some(plan),
            });
        }
        for chunk in rows.chunks(<R::Db as Dialect>::SET_CHUNK) {
            // In a savepoint: a row's own error (a CHECK) rolls back only this chunk, which
            // then goes row by row.
            let answers = write_transaction!(&mut *c, |c| {
                <R::Db as Strategy>::change_chunk::<_, M, Col, EachRow>(c, chunk).await
            });
            // A row that admits its change but did not change: two keys named one row (equal
            // under the collation), and nothing of the chunk changed.
            let collided = |answers: &[(bool, Option<M::Value>)]| {
                !answers.iter().any(|(changed, _)| *changed)
                    && chunk.iter().zip(answers).any(|(row, (_, value))| {
                        value.is_some_and(|v| row.plan.is_some_and(|p| p.admits(v)))
                    })
            };
            match answers {
                Ok(answers) if collided(&answers) => {
                    self.rows_alone(c, chunk, &mut each, &mut missing).await?
                }
                Ok(answers) => {
                    for (row, (changed, value)) in chunk.iter().zip(answers) {
                        let (key, amount) = (row.key.clone(), row_amount(row));
                        match (changed, value) {
                            (true, Some(new)) => each.written.push((key, amount, new)),
                            (_, None) => missing.push((key, amount)),
                            (false, Some(v)) => {
                                let plan = row.plan.expect("a chunk's rows have plans");
                                each.refused.push((key, amount, refused(&plan, v)));
                            }
                        }
                    }
                }
                Err(error) if row_level::<R::Db>(&error) => {
                    self.rows_alone(c, chunk, &mut each, &mut missing).await?
                }
                Err(other) => return Err(other),
            }
        }
        if !missing.is_empty() {
            missing.sort_by(|a, b| a.0.cmp(&b.0));
            on_missing.insert(c, self, missing, &mut each).await?;
        }
        each.written.sort_by(|a, b| a.0.cmp(&b.0));
        each.refused.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(each)
    }

    /// A chunk whose statement failed on one row's own error, row by row, each in a
    /// savepoint: the rows that fail are reported with their error, the others written.
    async fn rows_alone<R>(
        &self,
        c: &mut R,
        chunk: &[RowPlan<M::Key, M::Value>],
        each: &mut Each<M::Key, M::Value>,
        missing: &mut Vec<(M::Key, M::Value)>,
    ) -> Result<(), AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
        M::Key: Ord + Clone,
    {
        for row in chunk {
            let (key, amount) = (&row.key, row_amount(row));
            let plan = row.plan.expect("a chunk's rows have plans");
            let outcome = write_transaction!(&mut *c, |c| {
                let Some(current) = read_locked::<M, Col, ForUpdate, _>(c, key).await? else {
                    return Ok(None);
                };
                Ok(Some(match plan.apply_to(current) {
                    Ok(new) => {
                        write::<M, Col, _>(c, key, new).await?;
                        Ok(new)
                    }
                    Err(refused) => Err(refused),
                }))
            });
            match outcome {
                Ok(None) => missing.push((key.clone(), amount)),
                Ok(Some(Ok(new))) => each.written.push((key.clone(), amount, new)),
                Ok(Some(Err(refused))) => each.refused.push((key.clone(), amount, refused)),
                Err(error) if row_level::<R::Db>(&error) => {
                    each.refused.push((key.clone(), amount, error))
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }
}

/// The amount of a flush's row (it fits the column's type: flush batches are clamped to it).
fn row_amount<K, V: AtomicValue>(row: &RowPlan<K, V>) -> V {
    V::from_i128(row.total).expect("a flush's amounts fit the column's type")
}

/// Why `plan` refused a row at `v` (the statement and the plan agree; a disagreement would be
/// a row changed under its lock, reported rather than guessed).
fn refused<V: AtomicValue>(plan: &Plan<V>, v: V) -> AtomicError {
    plan.refusal(v)
        .unwrap_or_else(|| AtomicError::custom("the row changed under its lock; try again"))
}

/// Is `error` one row's own failure (a `CHECK`, a trigger, a foreign key), which another row
/// would not meet, rather than the connection's or the transaction's?
pub(crate) fn row_level<DB: Dialect>(error: &AtomicError) -> bool {
    match error {
        AtomicError::Database(error @ DieselError::DatabaseError(kind, _)) => {
            *kind != DatabaseErrorKind::ClosedConnection
                && DB::classify(error, LockMode::Wait) == ErrorClass::Other
        }
        _ => false,
    }
}
