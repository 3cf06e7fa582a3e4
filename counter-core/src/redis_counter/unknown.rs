//! [`UnknownKeyPolicy`]: what a flush does with a key that has no row, the counter's third
//! type parameter. [`UnknownKeys`] updates existing rows only; a `new_row` function inserts.

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

/// What a [`RedisCounter`](crate::RedisCounter) flush does with a key that has no row:
/// [`UnknownKeys`] (the default: update existing rows only, report the key in
/// [`FlushReport::unknown`](crate::FlushReport::unknown), then drop or keep its count), or a
/// function `new_row(&key, count)` whose row is inserted (set with
/// [`RedisCounter::inserting`](crate::RedisCounter::inserting)).
// `Each` is the crate's own: the method that returns it is hidden, and only this crate's
// two implementations below exist to call it.
#[allow(private_interfaces, private_bounds)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say what a flush does with a key of `{M}` without a row",
    note = "use `UnknownKeys`, or a `new_row` function `Fn(&Key, Value) -> Row` whose `Row` \
            derives Insertable for the same table"
)]
pub trait UnknownKeyPolicy<M: AtomicField<Col>, Col: Column, DB: Backend> {
    /// Adds each of `batch` to its row inside the flush's transaction, dealing with keys
    /// without a row as this policy says.
    #[doc(hidden)]
    fn add_each_in<R>(
        &self,
        field: &Field<M, Col>,
        c: &mut R,
        batch: &[(M::Key, M::Value)],
    ) -> impl Future<Output = Result<Each<M::Key, M::Value>, AtomicError>>
    where
        R: RawConnection<Db = DB>,
        M: AtomicFieldOn<Col, DB>,
        M::Key: Ord + Clone;

    /// Do keys without a row stay pending in Redis?
    #[doc(hidden)]
    fn keeps_unknown(&self) -> bool;
}

#[allow(private_interfaces)]
impl<M, Col, DB> UnknownKeyPolicy<M, Col, DB> for UnknownKeys
where
    M: AtomicField<Col>,
    Col: Column + 'static,
    DB: Backend,
{
    async fn add_each_in<R>(
        &self,
        field: &Field<M, Col>,
        c: &mut R,
        batch: &[(M::Key, M::Value)],
    ) -> Result<Each<M::Key, M::Value>, AtomicError>
    where
        R: RawConnection<Db = DB>,
        M: AtomicFieldOn<Col, DB>,
        M::Key: Ord + Clone,
    {
        field.add_each_in(c, batch, &mut ReportMissing).await
    }

    fn keeps_unknown(&self) -> bool {
        *self == UnknownKeys::Keep
    }
}

#[allow(private_interfaces)]
impl<M, Col, DB, F, Row> UnknownKeyPolicy<M, Col, DB> for F
where
    M: AtomicField<Col>,
    Col: Column + 'static,
    DB: Backend,
    F: Fn(&M::Key, M::Value) -> Row,
    Row: NewRow<M, Col, DB>,
{
    async fn add_each_in<R>(
        &self,
        field: &Field<M, Col>,
        c: &mut R,
        batch: &[(M::Key, M::Value)],
    ) -> Result<Each<M::Key, M::Value>, AtomicError>
    where
        R: RawConnection<Db = DB>,
        M: AtomicFieldOn<Col, DB>,
        M::Key: Ord + Clone,
    {
        field
            .add_each_in(c, batch, &mut InsertMissing(|key: &M::Key, n| self(key, n)))
            .await
    }

    fn keeps_unknown(&self) -> bool {
        // Every key without a row is inserted; none is left unknown.
        false
    }
}
