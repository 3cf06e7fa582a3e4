//! [`MissingRows`]: what a buffer's flush does with a key that has no row, and the write of a
//! batch that follows from it (the same for both buffers).

use std::future::Future;

use diesel::backend::Backend;
use diesel::Column;

use crate::backend::RawConnection;
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::many::each::{Each, InsertMissing, ReportMissing};
use crate::ops::Field;
use crate::unknown_keys::UnknownKeys;
use crate::upsert::NewRow;

/// What a buffer's flush does with a key that has no row: a `new_row` closure inserts it
/// (`Buffer::new`, `AsyncBuffer::new`); [`UnknownKeys`] updates existing rows only and
/// reports the key (`Buffer::updating`, `AsyncBuffer::updating`). Implemented for those two
/// only; it names the last type parameter of [`AsyncBuffer`](crate::AsyncBuffer).
pub trait MissingRows<M: AtomicField<Col>, Col: Column, DB: Backend> {
    /// Writes `batch` (keys distinct and in order, amounts above zero), each row on its own
    /// in one transaction.
    #[doc(hidden)]
    fn write<R>(
        &self,
        field: &Field<M, Col>,
        raw: &mut R,
        batch: &[(M::Key, M::Value)],
    ) -> impl Future<Output = Result<Written<M::Key, M::Value>, AtomicError>>
    where
        R: RawConnection<Db = DB>,
        M: AtomicFieldOn<Col, DB>,
        M::Key: Ord + Clone;

    /// What happens to a key reported without a row.
    #[doc(hidden)]
    fn unknown(&self) -> UnknownKeys;
}

/// What [`MissingRows::write`] wrote, refused and found without a row (not public: only the
/// buffers read it).
#[doc(hidden)]
pub struct Written<K, V>(pub(crate) Each<K, V>);

impl<M, Col, DB, F, R> MissingRows<M, Col, DB> for F
where
    M: AtomicField<Col>,
    Col: Column + 'static,
    DB: Backend,
    F: Fn(&M::Key, M::Value) -> R,
    R: NewRow<M, Col, DB>,
{
    async fn write<Raw>(
        &self,
        field: &Field<M, Col>,
        raw: &mut Raw,
        batch: &[(M::Key, M::Value)],
    ) -> Result<Written<M::Key, M::Value>, AtomicError>
    where
        Raw: RawConnection<Db = DB>,
        M: AtomicFieldOn<Col, DB>,
        M::Key: Ord + Clone,
    {
        let mut insert = InsertMissing(self);
        field.add_each(raw, batch, &mut insert).await.map(Written)
    }

    /// Never asked: every key without a row is inserted.
    fn unknown(&self) -> UnknownKeys {
        UnknownKeys::Keep
    }
}

impl<M, Col, DB> MissingRows<M, Col, DB> for UnknownKeys
where
    M: AtomicField<Col>,
    Col: Column + 'static,
    DB: Backend,
{
    async fn write<Raw>(
        &self,
        field: &Field<M, Col>,
        raw: &mut Raw,
        batch: &[(M::Key, M::Value)],
    ) -> Result<Written<M::Key, M::Value>, AtomicError>
    where
        Raw: RawConnection<Db = DB>,
        M: AtomicFieldOn<Col, DB>,
        M::Key: Ord + Clone,
    {
        field
            .add_each(raw, batch, &mut ReportMissing)
            .await
            .map(Written)
    }

    fn unknown(&self) -> UnknownKeys {
        *self
    }
}
