//! [`CounterCaches`]: every counter cache of one child changed together (a comment counted on
//! its post and on its author), written once for tuples of two and three parent columns.
//!
//! Each operation is one transaction on every backend: the parents changed one cache after the
//! other, in the order the tuple names them (each cache's two parents of a move in key order),
//! and the child row inserted after its parents, or locked before them. Two structs whose
//! caches share parent tables should name them in the same order; a deadlock between two that
//! do not is retried.

use std::future::Future;
use std::marker::PhantomData;

use diesel::Column;

use super::steps::{join_parent, locked_link, move_row, take_back};
use super::{cache_handle, Counted, Updated};
use crate::backend::{
    write_transaction, AtomicConnection, BackendOf, CallMode, Dialect, Out, RawConnection,
};
use crate::error::AtomicError;
use crate::field::{AtomicField, ChildRow, CounterCache, CounterCacheOn, ParentKey, ParentValue};
use crate::lock::LockMode;
use crate::retry::{retrying, RetryPolicy};
use crate::sql::{DeleteChild, NoAnswer, UpdateChild};
use crate::strategy::Strategy;
use crate::trace::OpSpan;

/// The counter caches of child `Child` into each parent column of the tuple `Cols`
/// (`(posts::comments, users::comments)`), changed together: an insert, update or delete
/// changes every parent or none.
///
/// `#[derive(CounterCache)]` with several `#[counter_cache]` attributes makes the struct's
/// `insert_counted`, `update_counted` and `delete_counted` call this handle.
///
/// ```
/// # use counter_core::{AtomicError, AtomicField, CacheChange, CacheLink, ChildRow, ChildRowOn, CountRows, CounterCache, CounterCaches};
/// # use diesel::prelude::*;
/// # use diesel::query_builder::AstPass;
/// # use diesel::sqlite::Sqlite;
/// # diesel::table! { posts (id) { id -> BigInt, comments -> BigInt, } }
/// # diesel::table! { users (id) { id -> BigInt, comments -> BigInt, } }
/// # diesel::table! { comments (id) { id -> BigInt, post_id -> BigInt, user_id -> BigInt, } }
/// # struct Post;
/// # impl AtomicField<posts::comments> for Post {
/// #     type Key = i64; type KeyColumns = (posts::id,); type Value = i64;
/// #     const MIN: Option<i64> = Some(0); const MAX: Option<i64> = None; const NAME: &'static str = "comments";
/// # }
/// # struct User;
/// # impl AtomicField<users::comments> for User {
/// #     type Key = i64; type KeyColumns = (users::id,); type Value = i64;
/// #     const MIN: Option<i64> = Some(0); const MAX: Option<i64> = None; const NAME: &'static str = "comments";
/// # }
/// # struct NewComment { post_id: i64, user_id: i64 }
/// # impl ChildRow for NewComment {
/// #     type Table = comments::table; type KeyColumn = comments::id; type Key = i64;
/// #     const COLUMNS: &'static [&'static str] = &["post_id", "user_id"];
/// #     fn key(&self) -> Option<i64> { None }
/// # }
/// # impl ChildRowOn<Sqlite> for NewComment {
/// #     fn walk_value<'b>(&'b self, column: usize, out: &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
/// #         match column { 0 => out.push_bind_param::<diesel::sql_types::BigInt, _>(&self.post_id),
/// #                        _ => out.push_bind_param::<diesel::sql_types::BigInt, _>(&self.user_id) }
/// #     }
/// # }
/// # impl CacheLink<posts::comments> for NewComment {
/// #     type ForeignKey = comments::post_id; type Amount = CountRows; type ParentKey = i64;
/// #     fn parent_key(&self) -> i64 { self.post_id }
/// # }
/// # impl CounterCache<posts::comments> for NewComment {
/// #     type Parent = Post; const CHANGE: CacheChange = CacheChange::Increment;
/// #     fn amount(&self) -> Result<i64, AtomicError> { Ok(1) }
/// # }
/// # impl CacheLink<users::comments> for NewComment {
/// #     type ForeignKey = comments::user_id; type Amount = CountRows; type ParentKey = i64;
/// #     fn parent_key(&self) -> i64 { self.user_id }
/// # }
/// # impl CounterCache<users::comments> for NewComment {
/// #     type Parent = User; const CHANGE: CacheChange = CacheChange::Increment;
/// #     fn amount(&self) -> Result<i64, AtomicError> { Ok(1) }
/// # }
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// diesel::connection::SimpleConnection::batch_execute(&mut conn, "
///     CREATE TABLE posts (id BIGINT PRIMARY KEY, comments BIGINT NOT NULL);
///     CREATE TABLE users (id BIGINT PRIMARY KEY, comments BIGINT NOT NULL);
///     CREATE TABLE comments (id INTEGER PRIMARY KEY, post_id BIGINT NOT NULL, user_id BIGINT NOT NULL);
///     INSERT INTO posts VALUES (1, 0), (2, 0); INSERT INTO users VALUES (7, 0);")?;
/// let caches = CounterCaches::<NewComment, (posts::comments, users::comments)>::new();
/// let first = caches.insert(&mut conn, &NewComment { post_id: 1, user_id: 7 })?;
/// assert_eq!(first.parent, (1, 1)); // the post's count, the user's count
/// // A comment by a user who does not exist: nothing inserted, the post unchanged.
/// let orphan = caches.insert(&mut conn, &NewComment { post_id: 1, user_id: 8 });
/// assert!(matches!(orphan, Err(AtomicError::NotFound)));
/// // Moved to post 2: post 1 loses it, post 2 gains it, the user keeps it.
/// let (post, user) = caches.update(&mut conn, first.key, &NewComment { post_id: 2, user_id: 7 })?;
/// assert_eq!((post.from, post.to, user.to), ((1, Some(0)), (2, 1), (7, 1)));
/// assert_eq!(caches.delete(&mut conn, first.key)?, (Some(0), Some(0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CounterCaches<Child, Cols> {
    retry: RetryPolicy,
    marker: PhantomData<fn() -> (Child, Cols)>,
}

cache_handle!(CounterCaches);

impl<Child, Cols> Default for CounterCaches<Child, Cols> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Child, Cols> CounterCaches<Child, Cols> {
    /// The handle with the default retry policy.
    pub fn new() -> Self {
        CounterCaches {
            retry: RetryPolicy::DEFAULT,
            marker: PhantomData,
        }
    }
}

/// The operations for a tuple of parent columns `$col` (the first is `$first`), each parent's
/// value named `$v`.
macro_rules! counter_caches {
    ($first:ident; $($col:ident $v:ident),+) => {
        impl<Child, $($col),+> CounterCaches<Child, ($($col,)+)>
        where
            Child: ChildRow $(+ CounterCache<$col>)+,
            $($col: Column + 'static,)+
        {
            /// Inserts `child` and changes each of its parents by the row's amount, all or
            /// nothing, in one transaction: the parents first, in the tuple's order (each
            /// guarded as a one-cache insert is), then the `INSERT`.
            ///
            /// Returns the child's key and each parent's new value, in the tuple's order.
            /// Errors, with nothing written: `NotFound` (a parent does not exist),
            /// `Insufficient`, `OutOfRange`, `NegativeAmount` (a parent's guard refused), and
            /// the database's errors for the row as `Database`.
            #[allow(clippy::type_complexity)]
            pub fn insert<'c, C>(
                &self,
                conn: &'c mut C,
                child: &'c Child,
            ) -> Out<
                C,
                impl Future<
                    Output = Result<
                        Counted<Child::Key, ($(ParentValue<Child, $col>,)+)>,
                        AtomicError,
                    >,
                > + use<'c, Child, C, $($col),+>,
            >
            where
                C: AtomicConnection,
                Child: $(CounterCacheOn<$col, BackendOf<C>> +)+,
            {
                let this = *self;
                C::Mode::drive(span::<Child, $first, C>("insert_counted").wrap(async move {
                    retrying!(Write, conn.raw(), this.retry, LockMode::Wait, |c| {
                        write_transaction!(c, |c| {
                            $(let $v = join_parent::<_, Child, $col>(c, child).await?;)+
                            let key =
                                <BackendOf<C> as Strategy>::insert_child::<_, Child, $first>(
                                    c, child,
                                )
                                .await?;
                            Ok(Counted {
                                key,
                                parent: ($($v,)+),
                            })
                        })
                    })
                }))
            }

            /// Sets child row `key` to `child`'s values and moves its amount in each cache, in
            /// one transaction: the row locked first, then each cache's parents (a move's two
            /// in key order), then the row's `UPDATE`. Each cache's `Updated`, in the tuple's
            /// order. Errors as [`CounterCached::update`](super::CounterCached::update)'s,
            /// from any cache; nothing is written on any error.
            #[allow(clippy::type_complexity)]
            pub fn update<'c, C>(
                &self,
                conn: &'c mut C,
                key: Child::Key,
                child: &'c Child,
            ) -> Out<
                C,
                impl Future<
                    Output = Result<
                        ($(Updated<ParentKey<Child, $col>, ParentValue<Child, $col>>,)+),
                        AtomicError,
                    >,
                > + use<'c, Child, C, $($col),+>,
            >
            where
                C: AtomicConnection,
                Child: $(CounterCacheOn<$col, BackendOf<C>> +)+,
                $(ParentKey<Child, $col>: PartialEq + PartialOrd,)+
            {
                let this = *self;
                C::Mode::drive(span::<Child, $first, C>("update_counted").wrap(async move {
                    retrying!(Write, conn.raw(), this.retry, LockMode::Wait, |c| {
                        write_transaction!(c, |c| {
                            $(
                                let $v = locked_link::<_, Child, $col>(c, &key)
                                    .await?
                                    .ok_or(AtomicError::NotFound)?;
                            )+
                            $(let $v = move_row::<_, Child, $col>(c, $v, child).await?;)+
                            c.query_count(UpdateChild::<Child, $first>::new(&key, child))
                                .await?;
                            Ok(($($v,)+))
                        })
                    })
                }))
            }

            /// Deletes child row `key` and takes its amount back from each parent, in one
            /// transaction: the row's links read under its lock, the `DELETE`, then each
            /// parent in the tuple's order. Each parent's new value (`None`: it does not
            /// exist). Errors: `NotFound` (no row has `key`, or a concurrent delete took it
            /// first; nothing changed), `OutOfRange` (a parent's bound; the row stays).
            #[allow(clippy::type_complexity)]
            pub fn delete<'c, C>(
                &self,
                conn: &'c mut C,
                key: Child::Key,
            ) -> Out<
                C,
                impl Future<
                    Output = Result<($(Option<ParentValue<Child, $col>>,)+), AtomicError>,
                > + use<'c, Child, C, $($col),+>,
            >
            where
                C: AtomicConnection,
                Child: $(CounterCacheOn<$col, BackendOf<C>> +)+,
            {
                let this = *self;
                C::Mode::drive(span::<Child, $first, C>("delete_counted").wrap(async move {
                    retrying!(Write, conn.raw(), this.retry, LockMode::Wait, |c| {
                        write_transaction!(c, |c| {
                            $(
                                let $v = locked_link::<_, Child, $col>(c, &key)
                                    .await?
                                    .ok_or(AtomicError::NotFound)?;
                            )+
                            c.query_count(DeleteChild::<Child, $first, NoAnswer>::new(&key))
                                .await?;
                            $(
                                let $v = take_back::<_, Child, $col>(c, &$v.0, $v.1).await?;
                            )+
                            Ok(($($v,)+))
                        })
                    })
                }))
            }
        }
    };
}

counter_caches!(A; A a, B b);
counter_caches!(A; A a, B b, D d);

/// The tracing span of operation `op` on the first cache's parent field, over connection `C`.
fn span<Child: CounterCache<PCol>, PCol: Column, C: AtomicConnection>(op: &'static str) -> OpSpan {
    OpSpan::new::<Child::Parent>(
        op,
        <Child::Parent as AtomicField<PCol>>::NAME,
        <BackendOf<C> as Dialect>::NAME,
    )
}
