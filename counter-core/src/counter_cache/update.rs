//! `update`: a child row set to a struct's values, and its parents kept exact: a row moved to
//! another parent takes its amount from the old parent and gives it to the new one; a row that
//! stays changes its parent by the difference (a new summed value, or a flip of its `WHEN`
//! column in or out of the count).
//!
//! One transaction: the row's old link (parent and counted amount) read under the row's lock,
//! then each parent change in key order (so two opposite moves between two parents lock them in
//! the same order and cannot deadlock), then the row's `UPDATE`. Any refusal rolls all of it
//! back.

use std::future::Future;

use diesel::Column;

use super::steps::{locked_link, move_row};
use super::CounterCached;
use crate::backend::{
    write_transaction, AtomicConnection, BackendOf, CallMode, Out, RawConnection,
};
use crate::error::AtomicError;
use crate::field::{CounterCache, CounterCacheOn, ParentKey, ParentValue};
use crate::lock::LockMode;
use crate::retry::retrying;
use crate::sql::UpdateChild;

/// What a counted update did to the parents: the one the row pointed at before and the one it
/// points at now (the same key twice when it stayed), each with its value after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated<K, V> {
    /// The row's old parent and its value after the update; `None` when no parent row has that
    /// key (an orphan row: nothing to take from).
    pub from: (K, Option<V>),
    /// The row's parent now, and its value after the update.
    pub to: (K, V),
}

/// The report of a counted update of child `C` into parent column `PCol`.
type Report<C, PCol> = Updated<ParentKey<C, PCol>, ParentValue<C, PCol>>;

impl<Child: CounterCache<PCol>, PCol: Column + 'static> CounterCached<Child, PCol> {
    /// Sets child row `key` to `child`'s values (all its columns but the key) and moves the
    /// row's amount accordingly, in one transaction:
    ///
    /// - another parent (a new foreign key): the old amount is taken from the old parent and
    ///   the new amount given to the new one, the two parents changed in key order;
    /// - the same parent: changed by the difference of the new and the old amount (a new
    ///   summed value; a `WHEN` column that flips the row in or out of the count).
    ///
    /// Returns both parents' values after the change. Errors, with nothing changed: `NotFound`
    /// (no child row has `key`, or no parent row has the new foreign key), `Insufficient`
    /// (a `decrement_if_at_least` cache whose new parent, or whose parent asked for more,
    /// holds too little), `OutOfRange` (past a declared bound, on either parent),
    /// `NegativeAmount`, and the database's errors for the row as `Database`.
    pub fn update<'c, C>(
        &self,
        conn: &'c mut C,
        key: Child::Key,
        child: &'c Child,
    ) -> Out<
        C,
        impl Future<Output = Result<Report<Child, PCol>, AtomicError>> + use<'c, Child, PCol, C>,
    >
    where
        C: AtomicConnection,
        Child: CounterCacheOn<PCol, BackendOf<C>>,
        ParentKey<Child, PCol>: PartialOrd,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("update_counted").wrap(async move {
            retrying!(Write, conn.raw(), this.retry, LockMode::Wait, |c| {
                write_transaction!(c, |c| {
                    let old = locked_link::<_, Child, PCol>(c, &key)
                        .await?
                        .ok_or(AtomicError::NotFound)?;
                    let updated = move_row::<_, Child, PCol>(c, old, child).await?;
                    c.query_count(UpdateChild::<Child, PCol>::new(&key, child))
                        .await?;
                    Ok(updated)
                })
            })
        }))
    }
}
