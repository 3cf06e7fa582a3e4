//! `recount` and `recount_all`: a parent column rebuilt from its children (`COUNT(*)` or
//! `SUM(col)`), reporting every value it corrected.
//!
//! Safe while counted inserts and deletes go on: each page of parents is locked in key order
//! first (`FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` holds the database), then each parent's
//! children are counted by a plain read in a transaction that reads only what it locked
//! ([`Dialect::BEGIN_COMPACT`]: READ COMMITTED on PostgreSQL; on MySQL the first plain read
//! takes its snapshot after the locks). A counted insert changes its parent before its child
//! row exists, so it either committed before the lock (its child is counted) or waits for the
//! recount (and then adds to the recounted value). A counted delete removes its child row
//! before it changes the parent, so while it waits for the recount's lock its row is still
//! there, uncommitted, and counted; it then subtracts from the recounted value. Rows written
//! without the cache (another program) are what a recount repairs; they are not ordered.

use std::future::Future;

use diesel::Column;

use super::CounterCached;
use crate::backend::{guarded, AtomicConnection, BackendOf, CallMode, Dialect, Out};
use crate::error::AtomicError;
use crate::field::{
    cache_amount, AtomicFieldOn, CacheChange, CounterCache, CounterCacheOn, ParentKey, ParentValue,
};
use crate::lock::LockMode;
use crate::retry::retrying;
use crate::sql::{
    write, Aggregate, ForUpdate, LockKeys, ParentKeys, ReadKeys, Unlocked, PARENT_PAGE,
};

/// One parent value a recount corrected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recounted<K, V> {
    /// The parent's key.
    pub key: K,
    /// What the column held.
    pub was: V,
    /// What its children add up to, now written.
    pub now: V,
}

/// The recount report of child `C` into parent column `PCol`.
type Report<C, PCol> = Vec<Recounted<ParentKey<C, PCol>, ParentValue<C, PCol>>>;

impl<Child: CounterCache<PCol>, PCol: Column + 'static> CounterCached<Child, PCol> {
    /// Rebuilds the parent column of each of `keys` from its children, in pages of 500
    /// parents, each page one transaction; keys without a parent row are passed over.
    ///
    /// Returns every `(key, was, now)` it corrected, in key order within each page. Safe
    /// while counted inserts and deletes go on (see the module's lock order). Errors:
    /// `Unsupported` for a cache that decrements its parent (stock: the parent holds a base
    /// its children do not know), `OutOfRange` when the children's total does not fit the
    /// column's type.
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
        Child: CounterCacheOn<PCol, BackendOf<C>>,
        ParentKey<Child, PCol>: Clone + PartialEq,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("recount").wrap(async move {
            recountable::<Child, PCol, C>()?;
            let mut report = Vec::new();
            for page in keys.chunks(PARENT_PAGE) {
                report.extend(this.recount_page(conn, page).await?);
            }
            Ok(report)
        }))
    }

    /// Rebuilds the parent column of every parent row, in pages of 500 parents in key
    /// order, each page one transaction: see [`recount`](Self::recount). The parent's key
    /// must be one column.
    pub fn recount_all<'c, C>(
        &self,
        conn: &'c mut C,
    ) -> Out<
        C,
        impl Future<Output = Result<Report<Child, PCol>, AtomicError>> + use<'c, Child, PCol, C>,
    >
    where
        C: AtomicConnection,
        Child: CounterCacheOn<PCol, BackendOf<C>>,
        ParentKey<Child, PCol>: Clone + PartialEq,
    {
        let this = *self;
        C::Mode::drive(Self::span::<C>("recount_all").wrap(async move {
            recountable::<Child, PCol, C>()?;
            let table = || <Child::On as AtomicFieldOn<PCol, BackendOf<C>>>::table();
            let mut report = Vec::new();
            let mut after: Option<ParentKey<Child, PCol>> = None;
            loop {
                let page = retrying!(Read, conn.raw(), this.retry, LockMode::Wait, |c| {
                    Ok(match &after {
                        None => {
                            let first = ParentKeys::<Child, PCol, false>::new(table(), None);
                            Child::load_parent_keys(c, first).await?
                        }
                        Some(last) => {
                            let next = ParentKeys::<Child, PCol, true>::new(table(), Some(last));
                            Child::load_parent_keys(c, next).await?
                        }
                    })
                })?;
                let Some(last) = page.last().cloned() else {
                    break;
                };
                report.extend(this.recount_page(conn, &page).await?);
                if page.len() < PARENT_PAGE {
                    break;
                }
                after = Some(last);
            }
            Ok(report)
        }))
    }

    /// One page of a recount, in one transaction, retried whole.
    async fn recount_page<C>(
        &self,
        conn: &mut C,
        keys: &[ParentKey<Child, PCol>],
    ) -> Result<Report<Child, PCol>, AtomicError>
    where
        C: AtomicConnection,
        Child: CounterCacheOn<PCol, BackendOf<C>>,
        ParentKey<Child, PCol>: Clone + PartialEq,
    {
        // A key given twice is recounted once.
        let mut unique: Vec<&ParentKey<Child, PCol>> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        let table = || <Child::On as AtomicFieldOn<PCol, BackendOf<C>>>::table();
        let begin = <BackendOf<C> as Dialect>::BEGIN_COMPACT;
        retrying!(Write, conn.raw(), self.retry, LockMode::Wait, |c| {
            guarded!(c, begin, |c| {
                let lock = LockKeys::<Child::On, PCol, ForUpdate>::new(table(), &unique);
                <Child::On as AtomicFieldOn<PCol, BackendOf<C>>>::load_roles(c, lock).await?;
                // A plain read of rows this transaction holds: their latest values (READ
                // COMMITTED on PostgreSQL, whose lock clauses cannot sit on the read's outer
                // join; on MySQL the transaction's first plain read, so its snapshot is taken
                // after the locks).
                let read = ReadKeys::<Child::On, PCol, Unlocked>::new(table(), &unique);
                let values =
                    <Child::On as AtomicFieldOn<PCol, BackendOf<C>>>::load_outcomes(c, read)
                        .await?;
                let mut report = Vec::new();
                for (key, (_, was)) in unique.iter().zip(values) {
                    let Some(was) = was else { continue };
                    let total = <Child::On as AtomicFieldOn<PCol, BackendOf<C>>>::load_roles(
                        c,
                        Aggregate::<Child, PCol>::new(key),
                    )
                    .await?;
                    let now = cache_amount::<ParentValue<Child, PCol>, i64>(
                        total.first().copied().unwrap_or(0),
                    )?;
                    if now != was {
                        write::<Child::On, PCol, _>(c, key, now).await?;
                        report.push(Recounted {
                            key: (*key).clone(),
                            was,
                            now,
                        });
                    }
                }
                Ok(report)
            })
        })
    }
}

/// `Unsupported` for a cache whose parent is not the total of its children.
fn recountable<Child, PCol, C>() -> Result<(), AtomicError>
where
    Child: CounterCache<PCol>,
    PCol: Column,
    C: AtomicConnection,
{
    match Child::CHANGE {
        CacheChange::Increment => Ok(()),
        CacheChange::Decrement | CacheChange::DecrementIfAtLeast => Err(AtomicError::Unsupported {
            feature: "recount of a cache that decrements its parent (the parent holds a base its children do not know)",
            backend: <BackendOf<C> as Dialect>::NAME,
        }),
    }
}
