//! A batch of increments applied each row on its own: what every flush writes with
//! (`Buffer`, `AsyncBuffer`, `RedisCounter`, `increment_or_insert_all`).
//!
//! A row that refuses (past its maximum, or a database error of its own: a `CHECK`, a
//! trigger) is reported by key and does not hold back the others; a key without a row is
//! inserted or reported, as the caller's [`OnMissing`] says.

use std::future::Future;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Column;

use crate::backend::{write_transaction, Dialect, ErrorClass, RawConnection};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::ops::Field;
use crate::plan::{Op, Plan};
use crate::retry::retrying;
use crate::sql::{read_locked, write, ForUpdate};
use crate::upsert::NewRow;

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
        M: AtomicFieldOn<Col, DB>;
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
        M: AtomicFieldOn<Col, DB>,
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
    async fn insert<R>(
        &mut self,
        c: &mut R,
        field: &Field<M, Col>,
        missing: Vec<(M::Key, M::Value)>,
        each: &mut Each<M::Key, M::Value>,
    ) -> Result<(), AtomicError>
    where
        R: RawConnection<Db = DB>,
        M: AtomicFieldOn<Col, DB>,
    {
        for (key, amount) in missing {
            let row = (self.0)(&key, amount);
            let insert = row.insert();
            match field.upsert(c, &key, &insert, amount).await {
                Ok(new) => each.written.push((key, amount, new)),
                // A row inserted meanwhile by another writer, too full to take the amount.
                Err(error @ AtomicError::OutOfRange { .. }) => {
                    each.refused.push((key, amount, error))
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
    /// caller's), re-run whole after a transient conflict.
    pub(crate) async fn add_each<R, O>(
        &self,
        raw: &mut R,
        batch: &[(M::Key, M::Value)],
        on_missing: &mut O,
    ) -> Result<Each<M::Key, M::Value>, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
        M::Key: Ord + Clone,
        O: OnMissing<M, Col, R::Db>,
    {
        retrying!(raw, self.policy(), LockMode::Wait, |c| {
            write_transaction!(c, |c| self.add_each_in(c, batch, &mut *on_missing).await)
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
        for (key, amount) in batch {
            let plan = Plan::of::<M, Col>(Op::Increment, *amount)?;
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
                Ok(None) => missing.push((key.clone(), *amount)),
                Ok(Some(Ok(new))) => each.written.push((key.clone(), *amount, new)),
                Ok(Some(Err(refused))) => each.refused.push((key.clone(), *amount, refused)),
                Err(error) if row_level::<R::Db>(&error) => {
                    each.refused.push((key.clone(), *amount, error))
                }
                Err(other) => return Err(other),
            }
        }
        if !missing.is_empty() {
            on_missing.insert(c, self, missing, &mut each).await?;
            each.written.sort_by(|a, b| a.0.cmp(&b.0));
            each.refused.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(each)
    }
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
