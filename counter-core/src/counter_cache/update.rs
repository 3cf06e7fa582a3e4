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

use super::{change_parent, CounterCached};
use crate::backend::{
    write_transaction, AtomicConnection, BackendOf, CallMode, Out, RawConnection,
};
use crate::error::{AtomicError, Limit};
use crate::field::{cache_amount, CounterCache, CounterCacheOn, ParentKey, ParentValue};
use crate::lock::LockMode;
use crate::plan::{cache_plan, Plan};
use crate::retry::retrying;
use crate::sql::{ForUpdate, LinkOf, UpdateChild};
use crate::value::AtomicValue;

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

/// A change of one parent: its key, the plan, and whether the row joins it (a missing parent
/// is then `NotFound`; a parent the row leaves may be missing).
struct ParentChange<'k, K, V> {
    key: &'k K,
    plan: Plan<V>,
    joins: bool,
}

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
        ParentKey<Child, PCol>: Clone + PartialEq + PartialOrd,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("update_counted").wrap(async move {
            let new_amount = child.counted_amount()?;
            let new_parent = child.parent_key();
            retrying!(conn.raw(), this.retry, LockMode::Wait, |c| {
                write_transaction!(c, |c| {
                    let mut links =
                        Child::load_links(c, LinkOf::<Child, PCol, ForUpdate>::new(&key)).await?;
                    let Some((old_parent, old_amount)) = links.pop() else {
                        return Err(AtomicError::NotFound);
                    };
                    let old_amount = cache_amount::<ParentValue<Child, PCol>, i64>(old_amount)?;
                    let changes = parent_changes::<Child, PCol>(
                        &old_parent,
                        old_amount,
                        &new_parent,
                        new_amount,
                    )?;
                    let mut from = None;
                    let mut to = None;
                    for change in changes {
                        let value =
                            change_parent::<_, Child, PCol>(c, change.key, change.plan).await?;
                        if change.joins {
                            to = Some(value.ok_or(AtomicError::NotFound)?);
                        }
                        if change.key == &old_parent {
                            from = Some(value);
                        }
                    }
                    c.query_count(UpdateChild::<Child, PCol>::new(&key, child))
                        .await?;
                    let to = to.expect("the row's new parent is always changed or read");
                    Ok(Updated {
                        from: (old_parent, from.flatten()),
                        to: (new_parent.clone(), to),
                    })
                })
            })
        }))
    }
}

/// The parent changes of a row moving from `old` (worth `was`) to `new` (worth `now`), in key
/// order: one change by the difference when it stays, else the old amount taken back from
/// `old` (as a delete would) and the new one given to `new` (as an insert would).
#[allow(clippy::type_complexity)]
fn parent_changes<'k, Child, PCol>(
    old: &'k ParentKey<Child, PCol>,
    was: ParentValue<Child, PCol>,
    new: &'k ParentKey<Child, PCol>,
    now: ParentValue<Child, PCol>,
) -> Result<Vec<ParentChange<'k, ParentKey<Child, PCol>, ParentValue<Child, PCol>>>, AtomicError>
where
    PCol: Column,
    Child: CounterCache<PCol>,
    ParentKey<Child, PCol>: PartialEq + PartialOrd,
{
    let change = Child::CHANGE;
    if old == new {
        // A rise is given as an insert gives its amount; a fall is taken back as a delete
        // takes its amount back.
        let net = now.to_i128() - was.to_i128();
        let magnitude =
            ParentValue::<Child, PCol>::from_i128(net.abs()).ok_or(AtomicError::OutOfRange {
                current: was.to_i128(),
                attempted: now.to_i128(),
                limit: Limit::Max(ParentValue::<Child, PCol>::MAX.to_i128()),
            })?;
        let plan = cache_plan::<Child::Parent, PCol>(change, magnitude, net >= 0)?;
        return Ok(vec![ParentChange {
            key: new,
            plan,
            joins: true,
        }]);
    }
    let leave = ParentChange {
        key: old,
        plan: cache_plan::<Child::Parent, PCol>(change, was, false)?,
        joins: false,
    };
    let join = ParentChange {
        key: new,
        plan: cache_plan::<Child::Parent, PCol>(change, now, true)?,
        joins: true,
    };
    Ok(if new < old {
        vec![join, leave]
    } else {
        vec![leave, join]
    })
}
