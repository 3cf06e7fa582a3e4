//! [`SlottedCounterCached`]: a child table counted (or summed) into a *slotted* counter of its
//! parent (see [`SlottedField`](crate::SlottedField)), for the parent that is too hot for one
//! row: every counted insert of a child of a viral article would otherwise wait for the one
//! before it to commit.
//!
//! Each operation is one transaction, the same on every backend:
//!
//! - insert: the parent row read under a key-share lock (it must exist, and stays until the
//!   commit), the child row inserted, its amount added to a random slot of the parent;
//! - delete: the child row deleted (and its link read), the parent locked the same way, the
//!   amount taken back through a random slot, only if the `DELETE` removed the row;
//! - update: the row's old link read under the row's lock, the parents locked in key order,
//!   the row updated, and the slot changes made in key order (two opposite moves lock slots of
//!   the two parents in the same order);
//! - recount: per parent, the parent row locked exclusively (which waits for every counted
//!   change in flight and holds off the next ones), its slots locked, its children counted,
//!   and the slots replaced by one slot 0 holding the count when they disagree.
//!
//! The parent's lock is `FOR KEY SHARE` on PostgreSQL: counted changes never wait for each
//! other on it, nor for updates of the parent's other columns; only a recount (`FOR UPDATE`)
//! or a delete of the parent waits for them. MySQL's weakest lock is `LOCK IN SHARE MODE`,
//! which an `UPDATE` of the parent row waits for; SQLite has one writer at a time.

use std::future::Future;
use std::marker::PhantomData;

use diesel::Column;

use super::cache_handle;
use super::recount::Recounted;
use crate::backend::{
    guarded, write_transaction, AtomicConnection, BackendOf, CallMode, Dialect, Out, RawConnection,
};
use crate::error::AtomicError;
use crate::field::{ParentKey, Slotted, SlottedCounterCache, SlottedCounterCacheOn, SlottedOn};
use crate::lock::LockMode;
use crate::retry::{retrying, RetryPolicy};
use crate::sql::{
    Aggregate, ForUpdate, LinkOf, ParentRow, SlotAdd, SlotDelete, SlotsLocked, SlottedParentKeys,
    UpdateChild, PARENT_PAGE,
};
use crate::strategy::Strategy;
use crate::trace::OpSpan;

/// The recount report of child `C` into slotted parent column `PCol`.
type Report<C, PCol> = Vec<Recounted<ParentKey<C, PCol>, i64>>;

/// The operations of the counter cache of child `Child` into the slotted parent column `PCol`.
///
/// `#[derive(CounterCache)]` with `#[counter_cache(.., slotted)]` generates shorthands on the
/// child (`insert_counted`, `update_counted`, `delete_counted`, `recount_<column>`) and an
/// accessor for this handle (`counter_cache_<column>()`). The parent's counter is read with
/// the slotted field's own `current_<column>` (the sum of its slots).
pub struct SlottedCounterCached<Child, PCol> {
    retry: RetryPolicy,
    marker: PhantomData<fn() -> (Child, PCol)>,
}

cache_handle!(SlottedCounterCached);

impl<Child: SlottedCounterCache<PCol>, PCol: Column + 'static> Default
    for SlottedCounterCached<Child, PCol>
{
    fn default() -> Self {
        Self::new()
    }
}

/// A slot of a parent's slotted column, chosen at random for each change.
fn random_slot<Child: SlottedCounterCache<PCol>, PCol: Column>() -> i32 {
    rand::random_range(0..<Child::Parent as Slotted<PCol>>::SLOTS.max(1))
}

impl<Child: SlottedCounterCache<PCol>, PCol: Column + 'static> SlottedCounterCached<Child, PCol> {
    /// The handle with the parent field's retry policy.
    pub fn new() -> Self {
        SlottedCounterCached {
            retry: <Child::Parent as Slotted<PCol>>::RETRY,
            marker: PhantomData,
        }
    }

    /// Inserts `child` and adds its amount to a random slot of its parent's column, both or
    /// neither, in one transaction (see the module: the parent is locked `FOR KEY SHARE`,
    /// so counted inserts of one parent do not wait for each other there). Returns the child's
    /// key. Errors, with nothing inserted: `NotFound` (no parent row has the child's foreign
    /// key), and the database's own errors for the child row as `Database`.
    pub fn insert<'c, C>(
        &self,
        conn: &'c mut C,
        child: &'c Child,
    ) -> Out<C, impl Future<Output = Result<Child::Key, AtomicError>> + use<'c, Child, PCol, C>>
    where
        C: AtomicConnection,
        Child: SlottedCounterCacheOn<PCol, BackendOf<C>>,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("insert_counted").wrap(async move {
            let amount = child.counted_amount()?;
            let parent = child.parent_key();
            retrying!(Write, conn.raw(), this.retry, LockMode::Wait, |c| {
                write_transaction!(c, |c| {
                    if !parent_locked::<_, Child, PCol, false>(c, &parent).await? {
                        return Err(AtomicError::NotFound);
                    }
                    let inserted =
                        <BackendOf<C> as Strategy>::insert_child::<_, Child, PCol>(c, child)
                            .await?;
                    add_to_slot::<_, Child, PCol>(c, &parent, amount).await?;
                    Ok(inserted)
                })
            })
        }))
    }

    /// Deletes child row `key` and takes its amount back from its parent (through a random
    /// slot), in one transaction, only if the `DELETE` removed the row: of two concurrent
    /// deletes of one row, the second finds nothing and changes nothing. A row whose parent
    /// does not exist is deleted all the same. Errors: `NotFound` (no child row has `key`, or
    /// a concurrent delete took it first; nothing changed).
    pub fn delete<'c, C>(
        &self,
        conn: &'c mut C,
        key: Child::Key,
    ) -> Out<C, impl Future<Output = Result<(), AtomicError>> + use<'c, Child, PCol, C>>
    where
        C: AtomicConnection,
        Child: SlottedCounterCacheOn<PCol, BackendOf<C>>,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("delete_counted").wrap(async move {
            retrying!(Write, conn.raw(), this.retry, LockMode::Wait, |c| {
                write_transaction!(c, |c| {
                    let deleted =
                        <BackendOf<C> as Strategy>::delete_child::<_, Child, PCol>(c, &key).await?;
                    let Some((parent, amount)) = deleted else {
                        return Err(AtomicError::NotFound);
                    };
                    if parent_locked::<_, Child, PCol, false>(c, &parent).await? {
                        add_to_slot::<_, Child, PCol>(c, &parent, -amount).await?;
                    }
                    Ok(())
                })
            })
        }))
    }

    /// Sets child row `key` to `child`'s values (all its columns but the key) and moves the
    /// row's amount accordingly, in one transaction: from the parent it leaves to the one it
    /// joins, or by the difference when it stays (a new summed value, a `WHEN` column that
    /// flips). Errors, with nothing changed: `NotFound` (no child row has `key`, or no parent
    /// row has the new foreign key), and the database's errors for the row as `Database`.
    pub fn update<'c, C>(
        &self,
        conn: &'c mut C,
        key: Child::Key,
        child: &'c Child,
    ) -> Out<C, impl Future<Output = Result<(), AtomicError>> + use<'c, Child, PCol, C>>
    where
        C: AtomicConnection,
        Child: SlottedCounterCacheOn<PCol, BackendOf<C>>,
        ParentKey<Child, PCol>: PartialOrd,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("update_counted").wrap(async move {
            let now = child.counted_amount()?;
            let new = child.parent_key();
            retrying!(Write, conn.raw(), this.retry, LockMode::Wait, |c| {
                write_transaction!(c, |c| {
                    let mut links =
                        Child::load_links(c, LinkOf::<Child, PCol, ForUpdate>::new(&key)).await?;
                    let Some((old, was)) = links.pop() else {
                        return Err(AtomicError::NotFound);
                    };
                    // The parents' changes in key order: one by the difference, or the old
                    // amount taken from the old parent and the new one given to the new.
                    let mut changes = if old == new {
                        vec![(&new, now - was)]
                    } else {
                        vec![(&old, -was), (&new, now)]
                    };
                    if changes.len() == 2 && new < old {
                        changes.swap(0, 1);
                    }
                    let mut present = Vec::with_capacity(changes.len());
                    for &(parent, _) in &changes {
                        let exists = parent_locked::<_, Child, PCol, false>(c, parent).await?;
                        if !exists && parent == &new {
                            return Err(AtomicError::NotFound);
                        }
                        present.push(exists);
                    }
                    c.query_count(UpdateChild::<Child, PCol>::new(&key, child))
                        .await?;
                    for (&(parent, delta), exists) in changes.iter().zip(present) {
                        if exists {
                            add_to_slot::<_, Child, PCol>(c, parent, delta).await?;
                        }
                    }
                    Ok(())
                })
            })
        }))
    }

    /// Rebuilds the slotted column of each of `keys` from its children (`COUNT(*)` or
    /// `SUM(col)` of the rows that count), one transaction per parent; keys without a parent
    /// row are passed over, a key given twice is recounted once. A parent whose slots add up
    /// to something else gets one slot 0 holding the count.
    ///
    /// Returns every `(key, was, now)` it corrected, `was` being the sum of the slots. Safe
    /// while counted inserts, deletes and updates go on: the parent's exclusive lock waits for
    /// the ones in flight and holds off the next ones until the recount commits (the module
    /// says why each is counted once).
    pub fn recount<'c, C>(
        &self,
        conn: &'c mut C,
        keys: &'c [ParentKey<Child, PCol>],
    ) -> Out<
        C,
        impl Future<Output = Result<Report<Child, PCol>, AtomicError>> + use<'c, Child, PCol, C>,
    >
    where
        C: AtomicConnection,
        Child: SlottedCounterCacheOn<PCol, BackendOf<C>>,
        ParentKey<Child, PCol>: Clone + PartialEq,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("recount").wrap(async move {
            let mut unique: Vec<&ParentKey<Child, PCol>> = Vec::with_capacity(keys.len());
            for key in keys {
                if !unique.contains(&key) {
                    unique.push(key);
                }
            }
            this.recount_each(conn, unique).await
        }))
    }

    /// Rebuilds the slotted column of every parent row, one parent per transaction, reading
    /// the parents' keys in pages of 500 in key order: see [`recount`](Self::recount). The
    /// parent's key must be one column.
    pub fn recount_all<'c, C>(
        &self,
        conn: &'c mut C,
    ) -> Out<
        C,
        impl Future<Output = Result<Report<Child, PCol>, AtomicError>> + use<'c, Child, PCol, C>,
    >
    where
        C: AtomicConnection,
        Child: SlottedCounterCacheOn<PCol, BackendOf<C>>,
        ParentKey<Child, PCol>: Clone + PartialEq,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("recount_all").wrap(async move {
            let mut report = Vec::new();
            let mut after: Option<ParentKey<Child, PCol>> = None;
            loop {
                let page = retrying!(Read, conn.raw(), this.retry, LockMode::Wait, |c| {
                    let table = Child::parent_table();
                    Ok(match &after {
                        None => {
                            let first =
                                SlottedParentKeys::<Child, PCol, false> { table, after: None };
                            Child::load_parent_keys(c, first).await?
                        }
                        Some(last) => {
                            let next = SlottedParentKeys::<Child, PCol, true> {
                                table,
                                after: Some(last),
                            };
                            Child::load_parent_keys(c, next).await?
                        }
                    })
                })?;
                report.extend(this.recount_each(conn, &page).await?);
                if page.len() < PARENT_PAGE {
                    break;
                }
                after = page.last().cloned();
            }
            Ok(report)
        }))
    }

    /// Recounts each of `keys`, one transaction per parent (of `recount` and `recount_all`).
    async fn recount_each<'k, C>(
        &self,
        conn: &mut C,
        keys: impl IntoIterator<Item = &'k ParentKey<Child, PCol>>,
    ) -> Result<Report<Child, PCol>, AtomicError>
    where
        C: AtomicConnection,
        Child: SlottedCounterCacheOn<PCol, BackendOf<C>>,
        ParentKey<Child, PCol>: Clone + 'k,
    {
        let begin = <BackendOf<C> as Dialect>::BEGIN_COMPACT;
        let mut report = Vec::new();
        for key in keys {
            let corrected = retrying!(Write, conn.raw(), self.retry, LockMode::Wait, |c| {
                guarded!(c, begin, |c| recount_one::<_, Child, PCol>(c, key).await)
            })?;
            report.extend(corrected.map(|(was, now)| Recounted {
                key: key.clone(),
                was,
                now,
            }));
        }
        Ok(report)
    }

    /// The tracing span of operation `op` on this cache's parent field, over connection `C`.
    fn span<C: AtomicConnection>(op: &'static str) -> OpSpan {
        OpSpan::new::<Child::Parent>(
            op,
            <Child::Parent as Slotted<PCol>>::NAME,
            <BackendOf<C> as Dialect>::NAME,
        )
    }
}

/// Locks parent row `key` (`EXCLUSIVE`: for a recount; else the key-share lock of a counted
/// change); whether it exists.
async fn parent_locked<R, Child, PCol, const EXCLUSIVE: bool>(
    c: &mut R,
    key: &ParentKey<Child, PCol>,
) -> Result<bool, AtomicError>
where
    R: RawConnection,
    PCol: Column + 'static,
    Child: SlottedCounterCacheOn<PCol, R::Db>,
{
    let row = ParentRow::<Child, PCol, EXCLUSIVE> {
        table: Child::parent_table(),
        key,
    };
    Ok(<Child::On as SlottedOn<PCol, R::Db>>::load_sum(c, row).await? == 1)
}

/// Adds `amount` to a random slot of parent `key` (nothing for 0).
async fn add_to_slot<R, Child, PCol>(
    c: &mut R,
    key: &ParentKey<Child, PCol>,
    amount: i64,
) -> Result<(), AtomicError>
where
    R: RawConnection,
    PCol: Column + 'static,
    Child: SlottedCounterCacheOn<PCol, R::Db>,
{
    if amount != 0 {
        let add = SlotAdd::<Child::On, PCol> {
            table: Default::default(),
            key,
            slot: random_slot::<Child, PCol>(),
            amount,
        };
        c.query_count(add).await?;
    }
    Ok(())
}

/// One parent's recount, inside its transaction: `Some((was, now))` when its slots were
/// corrected, `None` when they were right or the parent does not exist.
async fn recount_one<R, Child, PCol>(
    c: &mut R,
    key: &ParentKey<Child, PCol>,
) -> Result<Option<(i64, i64)>, AtomicError>
where
    R: RawConnection,
    PCol: Column + 'static,
    Child: SlottedCounterCacheOn<PCol, R::Db>,
{
    if !parent_locked::<_, Child, PCol, true>(c, key).await? {
        return Ok(None);
    }
    let locked = SlotsLocked::<Child::On, PCol> {
        table: Default::default(),
        key,
    };
    let slots = <Child::On as SlottedOn<PCol, R::Db>>::load_slots(c, locked).await?;
    let was: i64 = slots.iter().map(|&(_, n)| n).sum();
    // A plain read after the locks: the children committed before them (READ COMMITTED on
    // PostgreSQL; on MySQL the transaction's first plain read takes its snapshot now).
    let now =
        <Child::On as SlottedOn<PCol, R::Db>>::load_sum(c, Aggregate::<Child, PCol>::new(key))
            .await?;
    if was == now {
        return Ok(None);
    }
    for &(slot, _) in &slots {
        let delete = SlotDelete::<Child::On, PCol> {
            table: Default::default(),
            key,
            slot,
        };
        c.query_count(delete).await?;
    }
    if now != 0 {
        let add = SlotAdd::<Child::On, PCol> {
            table: Default::default(),
            key,
            slot: 0,
            amount: now,
        };
        c.query_count(add).await?;
    }
    Ok(Some((was, now)))
}
