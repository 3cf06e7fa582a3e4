//! What a flush does with a key that has no row: [`UnknownKeyPolicy`], implemented for
//! [`UnknownKeys`] (update existing rows only) and for a `new_row` function (insert).

use std::future::Future;

use diesel::backend::Backend;
use diesel::Column;

use crate::backend::RawConnection;
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::many::each::{Each, InsertMissing, ReportMissing};
use crate::ops::Field;
use crate::upsert::NewRow;

/// What a flush that updates existing rows only (no `new_row`) does with the count of a key
/// that has no row: the same choice for [`Buffer`](crate::Buffer),
/// [`AsyncBuffer`](crate::AsyncBuffer) and [`RedisCounter`](crate::RedisCounter).
///
/// Either way the flush reports the key with its count once, in its report; nothing creates a
/// row the application did not ask for (a download of article 999 that does not exist does
/// not create article 999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownKeys {
    /// Report the key and its count once, then forget them (the default): a row that does
    /// not exist at flush time is, for a counter, a row that was deleted or never existed.
    #[default]
    Drop,
    /// Report the key and its count, and keep the count pending: the next flush tries again
    /// (and reports it again) until a row exists. For rows created by another transaction
    /// that may commit after the first flush sees the count.
    Keep,
}

/// What a flush ([`Buffer`](crate::Buffer), [`AsyncBuffer`](crate::AsyncBuffer),
/// [`RedisCounter`](crate::RedisCounter)) does with a key that has no row: [`UnknownKeys`]
/// (update existing rows only, report the key in the flush's report, then drop or keep its
/// count), or a
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

    /// What happens to a key reported without a row.
    #[doc(hidden)]
    fn unknown(&self) -> UnknownKeys;
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

    fn unknown(&self) -> UnknownKeys {
        *self
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

    /// Never asked: every key without a row is inserted, none is left unknown.
    fn unknown(&self) -> UnknownKeys {
        UnknownKeys::Keep
    }
}
