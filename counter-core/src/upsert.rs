//! Increment-or-insert: add to a row, or create it, in one statement; and the batch form.

use std::collections::BTreeMap;
use std::future::Future;

use diesel::associations::Identifiable;
use diesel::backend::Backend;
use diesel::query_builder::{InsertStatement, QueryFragment, QueryId};
use diesel::{Column, Insertable};

use crate::backend::{
    write_transaction, AtomicConnection, BackendOf, CallMode, Out, RawConnection,
};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::key::IdIntoKey;
use crate::lock::LockMode;
use crate::many::each::InsertMissing;
use crate::ops::{Field, RECHECKS};
use crate::plan::{non_negative, Op, Plan, Range};
use crate::retry::retrying;
use crate::sql::read;
use crate::strategy::Strategy;
use crate::value::AtomicValue;

/// Keys with their new values, as the batch form returns them.
pub type KeyValues<M, Col> = Vec<(<M as AtomicField<Col>>::Key, <M as AtomicField<Col>>::Value)>;

/// The insert Diesel builds for row type `R` of `M`'s table.
type InsertOf<Col, R> =
    InsertStatement<<Col as Column>::Table, <R as Insertable<<Col as Column>::Table>>::Values>;

/// A row [`Field::increment_or_insert`] accepts: `&row`, where `row` is anything Diesel can
/// insert into the table and that names its key through Diesel's `Identifiable` (the model
/// itself, or a `#[derive(Insertable, Identifiable)]` struct such as `NewCartLine`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be inserted as a row of `{M}`",
    note = "pass `&row` where the row type derives Insertable (for the same table) and Identifiable (with the same primary key)"
)]
pub trait UpsertRow<M: AtomicField<Col>, Col: Column, DB: Backend>: Copy {
    /// Diesel's insert of this row.
    #[doc(hidden)]
    type Insert: QueryFragment<DB> + QueryId;
    /// The row's key.
    #[doc(hidden)]
    fn key(self) -> M::Key;
    /// `INSERT INTO t (…) VALUES (…)` of this row.
    #[doc(hidden)]
    fn insert(self) -> Self::Insert;
}

impl<'r, R, M, Col, DB> UpsertRow<M, Col, DB> for &'r R
where
    M: AtomicField<Col>,
    Col: Column,
    Col::Table: Default,
    DB: Backend,
    &'r R: Insertable<Col::Table> + Identifiable,
    <&'r R as Identifiable>::Id: IdIntoKey<M::Key>,
    InsertOf<Col, &'r R>: QueryFragment<DB> + QueryId,
{
    type Insert = InsertOf<Col, &'r R>;

    fn key(self) -> M::Key {
        self.id().into_key()
    }

    fn insert(self) -> Self::Insert {
        diesel::insert_into(Col::Table::default()).values(self)
    }
}

/// A row [`Field::increment_or_insert_all`] and the flushes create for a missing key: any
/// type whose reference Diesel can insert into the table (`#[derive(Insertable)]`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be inserted as a row of `{M}`",
    note = "`new_row` must return a value of a type that derives Insertable for the same table"
)]
pub trait NewRow<M: AtomicField<Col>, Col: Column, DB: Backend>: Sized {
    /// Diesel's insert of this row.
    #[doc(hidden)]
    type Insert<'r>: QueryFragment<DB> + QueryId
    where
        Self: 'r;
    /// `INSERT INTO t (…) VALUES (…)` of this row.
    #[doc(hidden)]
    fn insert(&self) -> Self::Insert<'_>;
    /// Diesel's insert of several rows in one statement.
    #[doc(hidden)]
    type InsertMany<'r>: QueryFragment<DB> + QueryId
    where
        Self: 'r;
    /// `INSERT INTO t (…) VALUES (…), (…)` of `rows`; `None` where the backend inserts them one
    /// by one (SQLite: Diesel builds its multi-row insert only inside its own `execute`, and
    /// a statement there costs no round trip).
    #[doc(hidden)]
    fn insert_many(rows: &[Self]) -> Option<Self::InsertMany<'_>>;
}

/// `NewRow` on a backend with multi-row inserts (PostgreSQL, MySQL).
#[cfg(any(feature = "postgres", feature = "mysql"))]
macro_rules! new_row_in_one_statement {
    ($backend:ty) => {
        impl<R, M, Col> NewRow<M, Col, $backend> for R
        where
            M: AtomicField<Col>,
            Col: Column,
            Col::Table: Default,
            for<'r> &'r R: Insertable<Col::Table>,
            for<'r> &'r [R]: Insertable<Col::Table>,
            for<'r> InsertOf<Col, &'r R>: QueryFragment<$backend> + QueryId,
            for<'r> InsertOf<Col, &'r [R]>: QueryFragment<$backend> + QueryId,
        {
            type Insert<'r>
                = InsertOf<Col, &'r R>
            where
                R: 'r;

            fn insert(&self) -> Self::Insert<'_> {
                diesel::insert_into(Col::Table::default()).values(self)
            }

            type InsertMany<'r>
                = InsertOf<Col, &'r [R]>
            where
                R: 'r;

            fn insert_many(rows: &[Self]) -> Option<Self::InsertMany<'_>> {
                Some(diesel::insert_into(Col::Table::default()).values(rows))
            }
        }
    };
}

#[cfg(feature = "postgres")]
new_row_in_one_statement!(diesel::pg::Pg);
#[cfg(feature = "mysql")]
new_row_in_one_statement!(diesel::mysql::Mysql);

#[cfg(feature = "sqlite")]
impl<R, M, Col> NewRow<M, Col, diesel::sqlite::Sqlite> for R
where
    M: AtomicField<Col>,
    Col: Column,
    Col::Table: Default,
    for<'r> &'r R: Insertable<Col::Table>,
    for<'r> InsertOf<Col, &'r R>: QueryFragment<diesel::sqlite::Sqlite> + QueryId,
{
    type Insert<'r>
        = InsertOf<Col, &'r R>
    where
        R: 'r;

    fn insert(&self) -> Self::Insert<'_> {
        diesel::insert_into(Col::Table::default()).values(self)
    }

    type InsertMany<'r>
        = InsertOf<Col, &'r R>
    where
        R: 'r;

    fn insert_many(_: &[Self]) -> Option<Self::InsertMany<'_>> {
        None
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static> Field<M, Col> {
    /// Adds `by` to the row that has `row`'s key, or inserts `row` as given when no row has
    /// it, in one statement; returns the new value of the column (the inserted one when it
    /// inserted).
    ///
    /// `row` is anything Diesel can insert into the table and that names its key through
    /// Diesel's `Identifiable`: the model itself, or a `NewCartLine`-style struct with
    /// `#[derive(Insertable, Identifiable)]`. An existing row takes `by` under the field's
    /// bounds: a row that would pass `max` refuses with `OutOfRange`, nothing written.
    ///
    /// The statement, per backend (the `INSERT` is Diesel's own for `row`):
    /// - PostgreSQL, SQLite: `INSERT … ON CONFLICT (pk) DO UPDATE SET c = t.c + $by WHERE
    ///   t.c <= $max_minus_by RETURNING c`;
    /// - MySQL: the guarded `UPDATE` with capture of `increment` (two round trips) settles a
    ///   row that exists and takes `by`; when it matches no row, `INSERT … ON DUPLICATE KEY
    ///   UPDATE c = IF(c <= $max_minus_by, c + $by, <error>)` then `SELECT c … WHERE pk = ?`, in
    ///   one transaction (an insert leaves no value to capture). `ON DUPLICATE KEY UPDATE` fires on a conflict with *any* unique
    ///   key: on a table with another unique key besides the primary key, a row that
    ///   collides on that key is the one updated. Use it on tables whose only unique key is
    ///   the primary key. Concurrent upserts of one new key can deadlock in InnoDB; the retry
    ///   loop re-runs them.
    ///
    /// Errors: `NegativeAmount`, `OutOfRange` (existing row unchanged), and the database's
    /// own errors for `row` (a `NOT NULL` column left out, a foreign key).
    ///
    #[doc = include_str!("../doc/ops/increment_or_insert.md")]
    pub fn increment_or_insert<'c, C, R>(
        &self,
        conn: &'c mut C,
        row: R,
        by: M::Value,
    ) -> Out<C, impl Future<Output = Result<M::Value, AtomicError>> + use<'c, M, Col, C, R>>
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        R: UpsertRow<M, Col, BackendOf<C>>,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("increment_or_insert").wrap(async move {
            non_negative(by)?;
            let key = row.key();
            let insert = row.insert();
            retrying!(Write on Self::subject(), conn.raw(), this.policy(), LockMode::Wait, |c| {
                this.upsert(c, &key, &insert, by).await
            })
        }))
    }

    /// Adds many amounts at once, each to its key's row or creating it as `new_row(key,
    /// total)`, all in one transaction (all or nothing). Amounts of equal keys are summed
    /// first, and keys are applied in their `Ord` order, so two batches over overlapping keys
    /// take their row locks in one order and do not deadlock (keys that are equal only under
    /// the database's collation can still meet in another order; a deadlock is re-run like
    /// any conflict). Returns each key with its new value, in key order.
    ///
    /// This is what a write-behind buffer flushes with. Each key is one
    /// [`increment_or_insert`](Self::increment_or_insert) statement inside the transaction.
    /// `new_row(key, total)` must build the row *of that key* (its value of the column is
    /// what a new row starts at, usually `total`).
    ///
    /// Errors: `NegativeAmount` (checked before anything runs), `OutOfRange` for a key whose
    /// row would pass its maximum (the whole batch is rolled back), and the database's errors.
    ///
    #[doc = include_str!("../doc/ops/increment_or_insert.md")]
    #[allow(clippy::type_complexity)]
    pub fn increment_or_insert_all<'c, C, R, I, F>(
        &self,
        conn: &'c mut C,
        amounts: I,
        new_row: F,
    ) -> Out<
        C,
        impl Future<Output = Result<KeyValues<M, Col>, AtomicError>> + use<'c, M, Col, C, R, I, F>,
    >
    where
        C: AtomicConnection,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        M::Key: Ord + Clone,
        I: IntoIterator<Item = (M::Key, M::Value)>,
        F: FnMut(&M::Key, M::Value) -> R,
        R: NewRow<M, Col, BackendOf<C>>,
    {
        let this = *self;
        C::Mode::drive(
            Self::span::<C>("increment_or_insert_all")
                .wrap(async move { this.upsert_all(conn.raw(), amounts, new_row).await }),
        )
    }

    /// [`increment_or_insert_all`](Self::increment_or_insert_all) on the connection underneath.
    pub(crate) async fn upsert_all<Raw, R, I, F>(
        &self,
        raw: &mut Raw,
        amounts: I,
        mut new_row: F,
    ) -> Result<KeyValues<M, Col>, AtomicError>
    where
        Raw: RawConnection,
        M: AtomicFieldOn<Col, Raw::Db>,
        M::Key: Ord + Clone,
        I: IntoIterator<Item = (M::Key, M::Value)>,
        F: FnMut(&M::Key, M::Value) -> R,
        R: NewRow<M, Col, Raw::Db>,
    {
        let mut totals: BTreeMap<M::Key, i128> = BTreeMap::new();
        for (key, amount) in amounts {
            *totals.entry(key).or_insert(0) += non_negative(amount)?;
        }
        let mut batch = Vec::with_capacity(totals.len());
        for (key, total) in totals {
            // A total past the type cannot be added to any row, nor inserted.
            let total = M::Value::from_i128(total).ok_or(AtomicError::OutOfRange {
                current: 0,
                attempted: total,
                limit: crate::error::Limit::Max(Range::of::<M, Col>().hi),
            })?;
            batch.push((key, total));
        }
        let mut on_missing = InsertMissing(|key: &M::Key, total| new_row(key, total));
        retrying!(Write, raw, self.policy(), LockMode::Wait, |c| {
            write_transaction!(c, |c| {
                let each = self.add_each_in(c, &batch, &mut on_missing).await?;
                // All or nothing: the first refusal rolls the batch back.
                if let Some((_, _, refused)) = each.refused.into_iter().next() {
                    return Err(refused);
                }
                debug_assert!(each.missing.is_empty(), "every missing key is inserted");
                Ok(each
                    .written
                    .into_iter()
                    .map(|(key, _, new)| (key, new))
                    .collect())
            })
        })
    }

    /// One attempt of an increment-or-insert, with the miss handling of the one-statement
    /// operations: when the existing row refused, look at it once to report why, or to find
    /// that it moved (or went away) in between and try again; past `RECHECKS`, decide under
    /// the row lock.
    pub(crate) async fn upsert<R, I>(
        &self,
        c: &mut R,
        key: &M::Key,
        insert: &I,
        by: M::Value,
    ) -> Result<M::Value, AtomicError>
    where
        R: RawConnection,
        M: AtomicFieldOn<Col, R::Db>,
        I: QueryFragment<R::Db> + QueryId,
    {
        let plan = Plan::of::<M, Col>(Op::Increment, by)?;
        for _ in 0..RECHECKS {
            let statement = <R::Db as Strategy>::upsert::<_, M, Col, I>(c, key, insert, &plan);
            if let Some(value) = statement.await? {
                return Ok(value);
            }
            match read::<M, Col, _>(c, key).await?.map(|v| plan.refusal(v)) {
                Some(Some(refused)) => return Err(refused),
                // Moved below the guard, or deleted, since the statement: run it again.
                _ => continue,
            }
        }
        match self.change_locked(c, key, plan).await {
            Err(AtomicError::NotFound) => {
                <R::Db as Strategy>::upsert::<_, M, Col, I>(c, key, insert, &plan)
                    .await?
                    .ok_or(AtomicError::NotFound)
            }
            other => other,
        }
    }
}
