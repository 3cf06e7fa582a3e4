//! The counter-cache subject, on every cell: comments counted on their post and tips summed
//! into it, and reads counted into an article's slotted views while they count (a slotted
//! cache), inserted, deleted and recounted at random from every thread.
//!
//! A history: three posts and a key no post has; each thread inserts comments (a tenth of
//! them on the missing post) and tips (cents from -20 to 50: a refund past the post's total
//! is refused), moves its own rows to another post (a tenth of the moves to the missing post)
//! and re-rates its tips, deletes keys any thread inserted (often one another thread deletes
//! too), and recounts the posts; the same for reads over three articles (a move may also flip
//! whether the read counts). Then, through the harness's blocking pool:
//! - every post's `comments` is `COUNT(*)` of its comments and `tips` the sum of its tips,
//!   every article's view slots add up to `COUNT(*)` of its counted reads, and all equal what
//!   the calls that returned `Ok` add up to: each row still there as its inserting thread (the
//!   only one that updates it) last set it;
//! - every recount found nothing to correct (no call ever left a post wrong, even for a
//!   moment a recount could see);
//! - each inserted key was deleted at most once, and exactly the keys inserted and not
//!   deleted are still there;
//! - an insert on (or a move to) the missing post is `NotFound` and left no row there; a
//!   refused refund is `OutOfRange` from a total below its amount; a delete that found nothing
//!   is `NotFound`.
//!
//! One body of calls (`thread_calls`) serves blocking connections ([`run_cache`]) and
//! diesel-async ones ([`run_cache_async`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use counter_core::{
    AsyncConnection, AtomicConnection, AtomicError, BackendOf, CallMode, CounterCacheOn,
    CounterCached, RawConnection, SlottedCounterCacheOn, SlottedCounterCached,
};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::driver::{on_async_threads, on_pooled_threads};
use super::watchdog::Watchdog;
use super::{CheckConn, Plan, THREADS};
use crate::db::settle;
use crate::models::{NewComment, NewRead, NewTip};
use crate::next_id;
use crate::schema::{ct_articles, ct_posts};

type Comments = CounterCached<NewComment, ct_posts::comments>;
type Tips = CounterCached<NewTip, ct_posts::tips>;
type Reads = SlottedCounterCached<NewRead, ct_articles::views>;

/// A child row a thread inserted: a comment or a tip, its key, its post and its amount; or a
/// read, its key, its article and whether it counts.
#[derive(Debug, Clone, Copy)]
enum Child {
    Comment {
        key: i64,
        post: i64,
    },
    Tip {
        key: i64,
        post: i64,
        cents: i32,
    },
    Read {
        key: i64,
        article: i64,
        counted: bool,
    },
}

impl Child {
    /// The table it is in (0: comments, 1: tips, 2: reads) and its key.
    fn id(&self) -> (u8, i64) {
        match *self {
            Child::Comment { key, .. } => (0, key),
            Child::Tip { key, .. } => (1, key),
            Child::Read { key, .. } => (2, key),
        }
    }
}

/// What one thread saw.
#[derive(Default)]
struct Seen {
    inserted: Vec<Child>,
    /// The rows this thread inserted, as it last set them (only it updates them).
    owned: BTreeMap<(u8, i64), Child>,
    deleted: Vec<Child>,
    moves: usize,
    recounts: usize,
    conflicts: usize,
    anomalies: Vec<String>,
}

/// One history's posts, its missing post, and the keys offered for deletion.
struct Ctx {
    seed: u64,
    plan: Plan,
    posts: [i64; 3],
    articles: [i64; 3],
    missing: i64,
    offered: Mutex<Vec<Child>>,
}

fn setup<C: CheckConn>(pool: &Pool<ConnectionManager<C>>, plan: Plan) -> Ctx {
    let posts = [next_id(), next_id(), next_id()];
    let mut conn = pool.get().expect("checker: a connection");
    let rows: Vec<String> = posts.iter().map(|id| format!("({id}, 0, 0)")).collect();
    let insert = format!(
        "INSERT INTO ct_posts (id, comments, tips) VALUES {}",
        rows.join(", ")
    );
    settle(|| conn.batch_execute(&insert)).expect("checker: the posts");
    let articles = [next_id(), next_id(), next_id()];
    let rows: Vec<String> = articles.iter().map(|id| format!("({id}, 0, 0)")).collect();
    let insert = format!(
        "INSERT INTO ct_articles (id, views, likes) VALUES {}",
        rows.join(", ")
    );
    settle(|| conn.batch_execute(&insert)).expect("checker: the articles");
    Ctx {
        seed: plan.seed,
        plan,
        posts,
        articles,
        missing: next_id(),
        offered: Mutex::new(Vec::new()),
    }
}

async fn thread_calls<C>(ctx: &Ctx, thread: usize, watchdog: &Watchdog, conn: &mut C) -> Seen
where
    C: AtomicConnection,
    NewComment: CounterCacheOn<ct_posts::comments, BackendOf<C>>,
    NewTip: CounterCacheOn<ct_posts::tips, BackendOf<C>>,
    NewRead: SlottedCounterCacheOn<ct_articles::views, BackendOf<C>>,
{
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ ((thread as u64 + 11) << 40));
    let mut seen = Seen::default();
    for _ in 0..ctx.plan.ops_per_thread {
        let (post, article) = if rng.random_ratio(1, 10) {
            (ctx.missing, ctx.missing)
        } else {
            (
                ctx.posts[rng.random_range(0..3)],
                ctx.articles[rng.random_range(0..3)],
            )
        };
        match rng.random_range(0..100) {
            0..20 => {
                let row = NewComment {
                    post_id: post,
                    body: None,
                };
                let call = format!("insert comment on {post}");
                let result = watchdog
                    .watch(
                        thread,
                        &call,
                        C::Mode::into_future(Comments::new().insert(conn, &row)),
                    )
                    .await;
                match result {
                    Ok(counted) => seen.insert(
                        ctx,
                        Child::Comment {
                            key: counted.key,
                            post,
                        },
                    ),
                    Err(AtomicError::NotFound) if post == ctx.missing => {}
                    Err(AtomicError::Conflict { .. }) => seen.conflicts += 1,
                    Err(e) => seen.anomalies.push(format!("{call}: {e}")),
                }
            }
            20..38 => {
                let cents = rng.random_range(-20..=50);
                let row = NewTip {
                    post_id: post,
                    cents,
                };
                let call = format!("insert tip of {cents} on {post}");
                let result = watchdog
                    .watch(
                        thread,
                        &call,
                        C::Mode::into_future(Tips::new().insert(conn, &row)),
                    )
                    .await;
                match result {
                    Ok(counted) => {
                        if counted.parent < 0 {
                            seen.anomalies
                                .push(format!("{call}: tips went to {}", counted.parent));
                        }
                        seen.insert(
                            ctx,
                            Child::Tip {
                                key: counted.key,
                                post,
                                cents,
                            },
                        )
                    }
                    Err(AtomicError::NotFound) if post == ctx.missing => {}
                    Err(AtomicError::OutOfRange {
                        current, attempted, ..
                    }) if cents < 0
                        && current + i128::from(cents) == attempted
                        && attempted < 0 => {}
                    Err(AtomicError::Conflict { .. }) => seen.conflicts += 1,
                    Err(e) => seen.anomalies.push(format!("{call}: {e:?}")),
                }
            }
            38..50 => {
                let row = NewRead {
                    article_id: article,
                    counted: !rng.random_ratio(1, 5),
                };
                let call = format!("insert {row:?}");
                let insert = C::Mode::into_future(Reads::new().insert(conn, &row));
                match watchdog.watch(thread, &call, insert).await {
                    Ok(key) => seen.insert(
                        ctx,
                        Child::Read {
                            key,
                            article,
                            counted: row.counted,
                        },
                    ),
                    Err(AtomicError::NotFound) if article == ctx.missing => {}
                    Err(AtomicError::Conflict { .. }) => seen.conflicts += 1,
                    Err(e) => seen.anomalies.push(format!("{call}: {e}")),
                }
            }
            50..62 => {
                let owned: Vec<Child> = seen.owned.values().copied().collect();
                if owned.is_empty() {
                    continue;
                }
                let child = owned[rng.random_range(0..owned.len())];
                let call = format!("move {child:?} to {post}");
                let result = match child {
                    Child::Comment { key, .. } => {
                        let row = NewComment {
                            post_id: post,
                            body: None,
                        };
                        let update = Comments::new().update(conn, key, &row);
                        let result = watchdog
                            .watch(thread, &call, C::Mode::into_future(update))
                            .await;
                        result.map(|updated| (Child::Comment { key, post }, updated))
                    }
                    Child::Tip { key, .. } => {
                        let cents = rng.random_range(-20..=50);
                        let row = NewTip {
                            post_id: post,
                            cents,
                        };
                        let update = Tips::new().update(conn, key, &row);
                        let result = watchdog
                            .watch(thread, &call, C::Mode::into_future(update))
                            .await;
                        result.map(|updated| (Child::Tip { key, post, cents }, updated))
                    }
                    Child::Read { key, .. } => {
                        // Moved (the post's pick names an article here), and half the time
                        // flipped in or out of the count.
                        let row = NewRead {
                            article_id: article,
                            counted: rng.random_bool(0.5),
                        };
                        let update = Reads::new().update(conn, key, &row);
                        let result = watchdog
                            .watch(thread, &call, C::Mode::into_future(update))
                            .await;
                        let now = Child::Read {
                            key,
                            article,
                            counted: row.counted,
                        };
                        // A slotted update answers nothing: report the parents as moved.
                        result.map(|()| {
                            let from = match child {
                                Child::Read { article, .. } => article,
                                _ => unreachable!("a read stays a read"),
                            };
                            (
                                now,
                                counter_core::Updated {
                                    from: (from, Some(0)),
                                    to: (article, 0),
                                },
                            )
                        })
                    }
                };
                match result {
                    Ok((now, updated)) => {
                        let (old_post, new_post) = match (child, now) {
                            (Child::Comment { post: a, .. }, Child::Comment { post: b, .. })
                            | (Child::Tip { post: a, .. }, Child::Tip { post: b, .. })
                            | (Child::Read { article: a, .. }, Child::Read { article: b, .. }) => {
                                (a, b)
                            }
                            _ => unreachable!("a row stays in its table"),
                        };
                        if updated.from.0 != old_post || updated.to.0 != new_post {
                            seen.anomalies.push(format!("{call}: answered {updated:?}"));
                        }
                        seen.owned.insert(now.id(), now);
                        seen.moves += 1;
                    }
                    // The missing post, or the row was deleted by another thread first.
                    Err(AtomicError::NotFound) => {}
                    // A tip taken back from a post whose refunds took its tips, or a refund
                    // given to a post with too little: refused, nothing moved.
                    Err(AtomicError::OutOfRange { .. }) if matches!(child, Child::Tip { .. }) => {}
                    Err(AtomicError::Conflict { .. }) => seen.conflicts += 1,
                    Err(e) => seen.anomalies.push(format!("{call}: {e:?}")),
                }
            }
            62..92 => {
                let Some(child) = ctx.offered.lock().unwrap().pop() else {
                    continue;
                };
                let call = format!("delete {child:?}");
                let result = match child {
                    Child::Comment { key, .. } => {
                        let delete = C::Mode::into_future(Comments::new().delete(conn, key));
                        watchdog.watch(thread, &call, delete).await
                    }
                    Child::Tip { key, .. } => {
                        let delete = C::Mode::into_future(Tips::new().delete(conn, key));
                        watchdog.watch(thread, &call, delete).await
                    }
                    Child::Read { key, .. } => {
                        let delete = C::Mode::into_future(Reads::new().delete(conn, key));
                        // A slotted delete answers nothing; `Some` as the others' success.
                        watchdog
                            .watch(thread, &call, delete)
                            .await
                            .map(|()| Some(0))
                    }
                };
                match result {
                    Ok(Some(_)) => seen.deleted.push(child),
                    Err(AtomicError::NotFound) => {}
                    // Taking back a tip would put the post's tips below zero (refunds took
                    // them): refused, the tip stays.
                    Err(AtomicError::OutOfRange { .. }) if matches!(child, Child::Tip { .. }) => {}
                    Err(AtomicError::Conflict { .. }) => seen.conflicts += 1,
                    other => seen.anomalies.push(format!("{call}: {other:?}")),
                }
            }
            _ => {
                let call = "recount comments, tips and reads";
                let comments = watchdog
                    .watch(
                        thread,
                        &call,
                        C::Mode::into_future(Comments::new().recount(conn, &ctx.posts)),
                    )
                    .await;
                let tips = watchdog
                    .watch(
                        thread,
                        &call,
                        C::Mode::into_future(Tips::new().recount(conn, &ctx.posts)),
                    )
                    .await;
                let reads = watchdog
                    .watch(
                        thread,
                        &call,
                        C::Mode::into_future(Reads::new().recount(conn, &ctx.articles)),
                    )
                    .await;
                for (what, result) in [
                    ("comments", comments.map(|r| format!("{r:?}"))),
                    ("tips", tips.map(|r| format!("{r:?}"))),
                    ("reads", reads.map(|r| format!("{r:?}"))),
                ] {
                    match result {
                        Ok(report) if report == "[]" => seen.recounts += 1,
                        Ok(report) => seen
                            .anomalies
                            .push(format!("a recount of {what} corrected {report}")),
                        Err(AtomicError::Conflict { .. }) => seen.conflicts += 1,
                        Err(e) => seen.anomalies.push(format!("recount of {what}: {e}")),
                    }
                }
            }
        }
    }
    seen
}

impl Seen {
    /// An `Ok` insert: logged, and offered for deletion (a third of the time twice, so two
    /// threads race to delete it).
    fn insert(&mut self, ctx: &Ctx, child: Child) {
        self.inserted.push(child);
        self.owned.insert(child.id(), child);
        let mut offered = ctx.offered.lock().unwrap();
        offered.push(child);
        if self.inserted.len() % 3 == 0 {
            offered.push(child);
        }
    }
}

/// The subject on blocking connections from the cell's pool.
pub fn run_cache<C: CheckConn>(cell: &str, pool: &Pool<ConnectionManager<C>>, plan: Plan)
where
    NewComment: CounterCacheOn<ct_posts::comments, BackendOf<C>>,
    NewTip: CounterCacheOn<ct_posts::tips, BackendOf<C>>,
    NewRead: SlottedCounterCacheOn<ct_articles::views, BackendOf<C>>,
{
    let ctx = setup(pool, plan);
    let watchdog = Watchdog::start(
        format!("cell {cell}, counter caches, seed {}", ctx.seed),
        THREADS,
    );
    let seen = on_pooled_threads(pool, THREADS, async |thread, conn: &mut C| {
        thread_calls(&ctx, thread, &watchdog, conn).await
    });
    verify(cell, pool, &ctx, seen, "blocking");
}

/// The subject on diesel-async connections of type `A` to `url` (each set up with
/// `setup_sql`), on one multi-threaded runtime; the harness reads through `pool`.
pub fn run_cache_async<C, A>(
    cell: &str,
    pool: &Pool<ConnectionManager<C>>,
    plan: Plan,
    url: &str,
    setup_sql: &str,
) where
    C: CheckConn,
    A: diesel_async::AsyncConnection + AsyncConnection + RawConnection + 'static,
    NewComment: CounterCacheOn<ct_posts::comments, BackendOf<A>>,
    NewTip: CounterCacheOn<ct_posts::tips, BackendOf<A>>,
    NewRead: SlottedCounterCacheOn<ct_articles::views, BackendOf<A>>,
{
    let ctx = setup(pool, plan);
    let watchdog = Watchdog::start(
        format!("cell {cell}, async counter caches, seed {}", ctx.seed),
        THREADS,
    );
    let seen = on_async_threads(url, setup_sql, THREADS, async |thread, conn: &mut A| {
        thread_calls(&ctx, thread, &watchdog, conn).await
    });
    verify(cell, pool, &ctx, seen, "async");
}

/// The promises of the module documentation, through the harness's blocking `pool`.
fn verify<C: CheckConn>(
    cell: &str,
    pool: &Pool<ConnectionManager<C>>,
    ctx: &Ctx,
    seen: Vec<Seen>,
    kind: &str,
) {
    let what = format!("cell {cell}, {kind} counter caches, seed {}", ctx.seed);
    let mut anomalies: Vec<String> = seen.iter().flat_map(|s| s.anomalies.clone()).collect();
    let mut comments: BTreeMap<i64, i64> = ctx.posts.iter().map(|&p| (p, 0)).collect();
    let mut tips = comments.clone();
    let mut inserted = BTreeSet::new();
    for child in seen.iter().flat_map(|s| &s.inserted) {
        if !inserted.insert(child.id()) {
            anomalies.push(format!("{child:?}: key inserted twice"));
        }
    }
    let mut deleted = BTreeSet::new();
    for child in seen.iter().flat_map(|s| &s.deleted) {
        if !deleted.insert(child.id()) {
            anomalies.push(format!("{child:?}: deleted twice"));
        }
    }
    // What is left: every row inserted and not deleted, as its owner last set it.
    let (mut comment_keys, mut tip_keys) = (BTreeSet::new(), BTreeSet::new());
    let mut read_keys = BTreeSet::new();
    let mut views: BTreeMap<i64, i64> = ctx.articles.iter().map(|&a| (a, 0)).collect();
    for child in seen.iter().flat_map(|s| s.owned.values()) {
        if deleted.contains(&child.id()) {
            continue;
        }
        match *child {
            Child::Comment { key, post } => {
                *comments.entry(post).or_default() += 1;
                comment_keys.insert(key);
            }
            Child::Tip { key, post, cents } => {
                *tips.entry(post).or_default() += i64::from(cents);
                tip_keys.insert(key);
            }
            Child::Read {
                key,
                article,
                counted,
            } => {
                *views.entry(article).or_default() += i64::from(counted);
                read_keys.insert(key);
            }
        }
    }
    let mut conn = pool.get().expect("checker: a connection");
    let mut read = |sql: String| {
        settle(|| conn.bigints(&sql)).unwrap_or_else(|e| panic!("checker: {sql}: {e}"))
    };
    for &post in &ctx.posts {
        let count = read(format!(
            "SELECT comments AS v FROM ct_posts WHERE id = {post}"
        ))[0];
        let sum = read(format!("SELECT tips AS v FROM ct_posts WHERE id = {post}"))[0];
        let rows = read(format!(
            "SELECT id AS v FROM ct_comments WHERE post_id = {post}"
        ));
        let tip_rows = read(format!(
            "SELECT id AS v FROM ct_tips WHERE post_id = {post}"
        ));
        // `id - id + cents`: the cents as a BIGINT on every backend, without a CAST per dialect.
        let cents = read(format!(
            "SELECT id - id + cents AS v FROM ct_tips WHERE post_id = {post}"
        ));
        let tip_sum: i64 = cents.iter().sum();
        if (count, rows.len() as i64) != (comments[&post], comments[&post]) {
            anomalies.push(format!(
                "post {post}: comments {count}, {} rows, the calls say {}",
                rows.len(),
                comments[&post]
            ));
        }
        if (sum, tip_sum) != (tips[&post], tips[&post]) {
            anomalies.push(format!(
                "post {post}: tips {sum}, rows sum {tip_sum}, the calls say {}",
                tips[&post]
            ));
        }
        for key in rows {
            if !comment_keys.contains(&key) {
                anomalies.push(format!("comment {key} exists but no call left it"));
            }
        }
        for key in tip_rows {
            if !tip_keys.contains(&key) {
                anomalies.push(format!("tip {key} exists but no call left it"));
            }
        }
    }
    for &article in &ctx.articles {
        let slots: i64 = read(format!(
            "SELECT count AS v FROM ct_article_view_slots WHERE id = {article}"
        ))
        .iter()
        .sum();
        let counted = read(format!(
            "SELECT id AS v FROM ct_article_reads WHERE article_id = {article} AND counted"
        ));
        if (slots, counted.len() as i64) != (views[&article], views[&article]) {
            anomalies.push(format!(
                "article {article}: view slots add up to {slots}, {} counted reads, the calls \
                 say {}",
                counted.len(),
                views[&article]
            ));
        }
        for key in read(format!(
            "SELECT id AS v FROM ct_article_reads WHERE article_id = {article}"
        )) {
            if !read_keys.contains(&key) {
                anomalies.push(format!("read {key} exists but no call left it"));
            }
        }
    }
    let stray_reads = read(format!(
        "SELECT id AS v FROM ct_article_reads WHERE article_id = {}",
        ctx.missing
    ));
    if !stray_reads.is_empty() {
        anomalies.push(format!(
            "{} reads of an article that does not exist",
            stray_reads.len()
        ));
    }
    let orphans = read(format!(
        "SELECT id AS v FROM ct_comments WHERE post_id = {}",
        ctx.missing
    ));
    if !orphans.is_empty() {
        anomalies.push(format!(
            "{} comments on a post that does not exist",
            orphans.len()
        ));
    }
    let recounts: usize = seen.iter().map(|s| s.recounts).sum();
    let conflicts: usize = seen.iter().map(|s| s.conflicts).sum();
    assert!(
        anomalies.is_empty(),
        "{what}: {} anomalies:\n{}",
        anomalies.len(),
        anomalies.join("\n")
    );
    println!(
        "{what}: {} inserts, {} moves, {} deletes, {recounts} clean recounts, {conflicts} \
         conflicts",
        seen.iter().map(|s| s.inserted.len()).sum::<usize>(),
        seen.iter().map(|s| s.moves).sum::<usize>(),
        seen.iter().map(|s| s.deleted.len()).sum::<usize>(),
    );
}
