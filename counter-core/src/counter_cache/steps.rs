//! The steps of a counted operation inside its transaction, on one cache (child `Child` into
//! parent column `PCol`), shared by the one-cache handle and [`CounterCaches`]: a parent
//! joined, a parent left, a row's link read under its lock, a row moved.
//!
//! [`CounterCaches`]: super::CounterCaches

use diesel::Column;

use super::Updated;
use crate::backend::RawConnection;
use crate::error::{AtomicError, Limit};
use crate::field::{cache_amount, CounterCache, CounterCacheOn, ParentKey, ParentValue};
use crate::plan::{cache_plan, Plan};
use crate::sql::{read, read_locked, write, ForUpdate, LinkOf};
use crate::strategy::Strategy;
use crate::value::AtomicValue;

/// A row's link to its parent: the parent's key and what the row adds to it.
pub(super) type Link<C, PCol> = (ParentKey<C, PCol>, ParentValue<C, PCol>);

/// Changes parent `key` by `plan`: the guarded statement, and when it matches nothing, the
/// decision under the parent's row lock (the refusal, or the value computed and written). A
/// plan that moves nothing only reads the value. `Ok(None)`: no parent row has `key`.
pub(super) async fn change_parent<R, Child, PCol>(
    c: &mut R,
    key: &ParentKey<Child, PCol>,
    plan: Plan<ParentValue<Child, PCol>>,
) -> Result<Option<ParentValue<Child, PCol>>, AtomicError>
where
    R: RawConnection,
    R::Db: Strategy,
    PCol: Column + 'static,
    Child: CounterCacheOn<PCol, R::Db>,
{
    if plan.moves_nothing() {
        return Ok(read::<Child::On, PCol, _>(c, key).await?);
    }
    if let Some(delta) = plan.delta() {
        let changed = <R::Db as Strategy>::apply_delta::<_, Child::On, PCol>(c, key, delta);
        if let Some(new) = changed.await? {
            return Ok(Some(new));
        }
    }
    // Missed: the parent is gone, or its guard refused; decide under its lock.
    let Some(current) = read_locked::<Child::On, PCol, ForUpdate, _>(c, key).await? else {
        return Ok(None);
    };
    let new = plan.apply_to(current)?;
    write::<Child::On, PCol, _>(c, key, new).await?;
    Ok(Some(new))
}

/// Gives `child`'s counted amount to its parent, as an insert does; the parent's new value.
/// `NotFound` when the parent does not exist.
pub(super) async fn join_parent<R, Child, PCol>(
    c: &mut R,
    child: &Child,
) -> Result<ParentValue<Child, PCol>, AtomicError>
where
    R: RawConnection,
    R::Db: Strategy,
    PCol: Column + 'static,
    Child: CounterCacheOn<PCol, R::Db>,
{
    let plan = cache_plan::<Child::On, PCol>(Child::CHANGE, child.counted_amount()?, true)?;
    change_parent::<_, Child, PCol>(c, &child.parent_key(), plan)
        .await?
        .ok_or(AtomicError::NotFound)
}

/// Takes a deleted row's `amount` back from parent `key`, as a delete does; the parent's new
/// value, `None` when it does not exist.
pub(super) async fn take_back<R, Child, PCol>(
    c: &mut R,
    key: &ParentKey<Child, PCol>,
    amount: ParentValue<Child, PCol>,
) -> Result<Option<ParentValue<Child, PCol>>, AtomicError>
where
    R: RawConnection,
    R::Db: Strategy,
    PCol: Column + 'static,
    Child: CounterCacheOn<PCol, R::Db>,
{
    let plan = cache_plan::<Child::On, PCol>(Child::CHANGE, amount, false)?;
    change_parent::<_, Child, PCol>(c, key, plan).await
}

/// Child row `key`'s link to its parent, read under the row's lock; `None` when no row has
/// `key` (or a concurrent delete took it first).
pub(super) async fn locked_link<R, Child, PCol>(
    c: &mut R,
    key: &Child::Key,
) -> Result<Option<Link<Child, PCol>>, AtomicError>
where
    R: RawConnection,
    PCol: Column + 'static,
    Child: CounterCacheOn<PCol, R::Db>,
{
    let mut links = Child::load_links(c, LinkOf::<Child, PCol, ForUpdate>::new(key)).await?;
    debug_assert!(links.len() <= 1, "one row per key");
    let Some((parent, amount)) = links.pop() else {
        return Ok(None);
    };
    Ok(Some((
        parent,
        cache_amount::<ParentValue<Child, PCol>, i64>(amount)?,
    )))
}

/// Moves a row linked by `old` to what `child` says: the old amount taken from the old parent
/// and the new one given to the new parent, in key order, or one change by the difference when
/// the parent stays. Both parents' values after the change.
pub(super) async fn move_row<R, Child, PCol>(
    c: &mut R,
    old: Link<Child, PCol>,
    child: &Child,
) -> Result<Updated<ParentKey<Child, PCol>, ParentValue<Child, PCol>>, AtomicError>
where
    R: RawConnection,
    R::Db: Strategy,
    PCol: Column + 'static,
    Child: CounterCacheOn<PCol, R::Db>,
    ParentKey<Child, PCol>: PartialEq + PartialOrd,
{
    let (old_parent, was) = old;
    let new_parent = child.parent_key();
    let now = child.counted_amount()?;
    let mut from = None;
    let mut to = None;
    for change in parent_changes::<Child, PCol>(&old_parent, was, &new_parent, now)? {
        let value = change_parent::<_, Child, PCol>(c, change.key, change.plan).await?;
        if change.joins {
            to = Some(value.ok_or(AtomicError::NotFound)?);
        }
        if change.key == &old_parent {
            from = Some(value);
        }
    }
    let to = to.expect("the row's new parent is always changed or read");
    Ok(Updated {
        from: (old_parent, from.flatten()),
        to: (new_parent, to),
    })
}

/// A change of one parent: its key, the plan, and whether the row joins it (a missing parent
/// is then `NotFound`; a parent the row leaves may be missing).
struct ParentChange<'k, K, V> {
    key: &'k K,
    plan: Plan<V>,
    joins: bool,
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
