//! The several-parents counter-cache subject, on every cell: reviews whose stars count into
//! their topic only while published and which count one into their reviewer, inserted, moved
//! (topic, reviewer, stars, published), deleted and recounted at random from every thread.
//!
//! A history: three topics, two reviewers, and a key no topic has; each thread inserts reviews
//! (a tenth of them on the missing topic), updates its own (a tenth of the moves to the missing
//! topic), deletes keys any thread inserted (often one another thread deletes too), and
//! recounts both caches. Then, through the harness's blocking pool:
//! - every topic's `stars` is the sum of its published reviews' stars and every reviewer's
//!   `reviews` the count of its reviews, and both equal what the calls that returned `Ok` add
//!   up to: each row still there as its inserting thread (the only one that updates it) last
//!   set it;
//! - every recount found nothing to correct, on either cache;
//! - each inserted key was deleted at most once, and no row is on the missing topic;
//! - every answer names the parents the row left and joined.
//!
//! One body of calls (`thread_calls`) serves blocking and diesel-async connections.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use counter_core::{
    AsyncConnection, AtomicConnection, AtomicError, BackendOf, CallMode, CounterCacheOn,
    CounterCached, CounterCaches, RawConnection,
};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::driver::{on_async_threads, on_pooled_threads};
use super::watchdog::Watchdog;
use super::{CheckConn, Plan, THREADS};
use crate::db::settle;
use crate::models::NewReview;
use crate::next_id;
use crate::schema::{ct_reviewers, ct_topics};

type Reviews = CounterCaches<NewReview, (ct_topics::stars, ct_reviewers::reviews)>;
type Stars = CounterCached<NewReview, ct_topics::stars>;
type ByReviewer = CounterCached<NewReview, ct_reviewers::reviews>;

/// What one thread saw.
#[derive(Default)]
struct Seen {
    inserted: usize,
    /// The reviews this thread inserted, as it last set them.
    owned: BTreeMap<i64, (i64, i64, i32, bool)>,
    deleted: Vec<i64>,
    moves: usize,
    recounts: usize,
    conflicts: usize,
    anomalies: Vec<String>,
}

/// One history's parents, its missing topic, and the keys offered for deletion.
struct Ctx {
    seed: u64,
    plan: Plan,
    topics: [i64; 3],
    reviewers: [i64; 2],
    missing: i64,
    offered: Mutex<Vec<i64>>,
}

fn setup<C: CheckConn>(pool: &Pool<ConnectionManager<C>>, plan: Plan) -> Ctx {
    let topics = [next_id(), next_id(), next_id()];
    let reviewers = [next_id(), next_id()];
    let mut conn = pool.get().expect("checker: a connection");
    let rows = |ids: &[i64]| {
        ids.iter()
            .map(|id| format!("({id}, 0)"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let insert = format!(
        "INSERT INTO ct_topics (id, stars) VALUES {}; INSERT INTO ct_reviewers (id, reviews) \
         VALUES {}",
        rows(&topics),
        rows(&reviewers)
    );
    settle(|| conn.batch_execute(&insert)).expect("checker: the topics and reviewers");
    Ctx {
        seed: plan.seed,
        plan,
        topics,
        reviewers,
        missing: next_id(),
        offered: Mutex::new(Vec::new()),
    }
}

/// A review of `row = (topic, reviewer, stars, published)`.
fn review((topic_id, reviewer_id, stars, published): (i64, i64, i32, bool)) -> NewReview {
    NewReview {
        topic_id,
        reviewer_id,
        stars,
        published,
    }
}

async fn thread_calls<C>(ctx: &Ctx, thread: usize, watchdog: &Watchdog, conn: &mut C) -> Seen
where
    C: AtomicConnection,
    NewReview: CounterCacheOn<ct_topics::stars, BackendOf<C>>
        + CounterCacheOn<ct_reviewers::reviews, BackendOf<C>>,
{
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ ((thread as u64 + 23) << 40));
    let mut seen = Seen::default();
    for _ in 0..ctx.plan.ops_per_thread {
        let topic = if rng.random_ratio(1, 10) {
            ctx.missing
        } else {
            ctx.topics[rng.random_range(0..3)]
        };
        let row = (
            topic,
            ctx.reviewers[rng.random_range(0..2)],
            rng.random_range(1..=5),
            rng.random_bool(0.7),
        );
        match rng.random_range(0..100) {
            0..40 => {
                let call = format!("insert review {row:?}");
                let new = review(row);
                let insert = C::Mode::into_future(Reviews::new().insert(conn, &new));
                match watchdog.watch(thread, &call, insert).await {
                    Ok(counted) => {
                        if counted.parent.0 < 0 || counted.parent.1 < 1 {
                            seen.anomalies
                                .push(format!("{call}: answered {:?}", counted.parent));
                        }
                        seen.inserted += 1;
                        seen.owned.insert(counted.key, row);
                        let mut offered = ctx.offered.lock().unwrap();
                        offered.push(counted.key);
                        if seen.inserted % 3 == 0 {
                            offered.push(counted.key);
                        }
                    }
                    Err(AtomicError::NotFound) if topic == ctx.missing => {}
                    Err(AtomicError::Conflict { .. }) => seen.conflicts += 1,
                    Err(e) => seen.anomalies.push(format!("{call}: {e}")),
                }
            }
            40..65 => {
                let keys: Vec<i64> = seen.owned.keys().copied().collect();
                if keys.is_empty() {
                    continue;
                }
                let key = keys[rng.random_range(0..keys.len())];
                let before = seen.owned[&key];
                let call = format!("update review {key} from {before:?} to {row:?}");
                let new = review(row);
                let update = C::Mode::into_future(Reviews::new().update(conn, key, &new));
                match watchdog.watch(thread, &call, update).await {
                    Ok((stars, reviews)) => {
                        let named = (stars.from.0, stars.to.0, reviews.from.0, reviews.to.0);
                        if named != (before.0, row.0, before.1, row.1) {
                            seen.anomalies
                                .push(format!("{call}: answered {stars:?}, {reviews:?}"));
                        }
                        seen.owned.insert(key, row);
                        seen.moves += 1;
                    }
                    // The missing topic, or another thread deleted the row first.
                    Err(AtomicError::NotFound) => {}
                    Err(AtomicError::Conflict { .. }) => seen.conflicts += 1,
                    Err(e) => seen.anomalies.push(format!("{call}: {e}")),
                }
            }
            65..92 => {
                let Some(key) = ctx.offered.lock().unwrap().pop() else {
                    continue;
                };
                let call = format!("delete review {key}");
                let delete = C::Mode::into_future(Reviews::new().delete(conn, key));
                match watchdog.watch(thread, &call, delete).await {
                    Ok((Some(_), Some(_))) => seen.deleted.push(key),
                    Err(AtomicError::NotFound) => {}
                    Err(AtomicError::Conflict { .. }) => seen.conflicts += 1,
                    other => seen.anomalies.push(format!("{call}: {other:?}")),
                }
            }
            _ => {
                let call = "recount stars and reviews";
                let stars = C::Mode::into_future(Stars::new().recount(conn, &ctx.topics));
                let stars = watchdog.watch(thread, &call, stars).await;
                let reviews = C::Mode::into_future(ByReviewer::new().recount(conn, &ctx.reviewers));
                let reviews = watchdog.watch(thread, &call, reviews).await;
                for (what, result) in [
                    ("stars", stars.map(|r| format!("{r:?}"))),
                    ("reviews", reviews.map(|r| format!("{r:?}"))),
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

/// The subject on blocking connections from the cell's pool.
pub fn run_reviews<C: CheckConn>(cell: &str, pool: &Pool<ConnectionManager<C>>, plan: Plan)
where
    NewReview: CounterCacheOn<ct_topics::stars, BackendOf<C>>
        + CounterCacheOn<ct_reviewers::reviews, BackendOf<C>>,
{
    let ctx = setup(pool, plan);
    let watchdog = Watchdog::start(
        format!("cell {cell}, several-parent caches, seed {}", ctx.seed),
        THREADS,
    );
    let seen = on_pooled_threads(pool, THREADS, async |thread, conn: &mut C| {
        thread_calls(&ctx, thread, &watchdog, conn).await
    });
    verify(cell, pool, &ctx, seen, "blocking");
}

/// The subject on diesel-async connections of type `A` to `url` (each set up with
/// `setup_sql`); the harness reads through `pool`.
pub fn run_reviews_async<C, A>(
    cell: &str,
    pool: &Pool<ConnectionManager<C>>,
    plan: Plan,
    url: &str,
    setup_sql: &str,
) where
    C: CheckConn,
    A: diesel_async::AsyncConnection + AsyncConnection + RawConnection + 'static,
    NewReview: CounterCacheOn<ct_topics::stars, BackendOf<A>>
        + CounterCacheOn<ct_reviewers::reviews, BackendOf<A>>,
{
    let ctx = setup(pool, plan);
    let watchdog = Watchdog::start(
        format!(
            "cell {cell}, async several-parent caches, seed {}",
            ctx.seed
        ),
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
    let what = format!(
        "cell {cell}, {kind} several-parent caches, seed {}",
        ctx.seed
    );
    let mut anomalies: Vec<String> = seen.iter().flat_map(|s| s.anomalies.clone()).collect();
    let mut deleted = BTreeSet::new();
    for key in seen.iter().flat_map(|s| &s.deleted) {
        if !deleted.insert(*key) {
            anomalies.push(format!("review {key} deleted twice"));
        }
    }
    let mut stars: BTreeMap<i64, i64> = ctx.topics.iter().map(|&t| (t, 0)).collect();
    let mut reviews: BTreeMap<i64, i64> = ctx.reviewers.iter().map(|&r| (r, 0)).collect();
    let mut alive = BTreeSet::new();
    for (key, &(topic, reviewer, n, published)) in seen.iter().flat_map(|s| &s.owned) {
        if deleted.contains(key) {
            continue;
        }
        alive.insert(*key);
        *reviews.entry(reviewer).or_default() += 1;
        if published {
            *stars.entry(topic).or_default() += i64::from(n);
        }
    }
    let mut conn = pool.get().expect("checker: a connection");
    let mut read = |sql: String| {
        settle(|| conn.bigints(&sql)).unwrap_or_else(|e| panic!("checker: {sql}: {e}"))
    };
    for &topic in &ctx.topics {
        let column = read(format!(
            "SELECT stars AS v FROM ct_topics WHERE id = {topic}"
        ))[0];
        // `id - id + stars`: the stars as a BIGINT on every backend, without a CAST.
        let rows: i64 = read(format!(
            "SELECT id - id + stars AS v FROM ct_reviews WHERE topic_id = {topic} AND published"
        ))
        .iter()
        .sum();
        if (column, rows) != (stars[&topic], stars[&topic]) {
            anomalies.push(format!(
                "topic {topic}: stars {column}, published rows sum {rows}, the calls say {}",
                stars[&topic]
            ));
        }
    }
    for &reviewer in &ctx.reviewers {
        let column = read(format!(
            "SELECT reviews AS v FROM ct_reviewers WHERE id = {reviewer}"
        ))[0];
        let keys = read(format!(
            "SELECT id AS v FROM ct_reviews WHERE reviewer_id = {reviewer}"
        ));
        if (column, keys.len() as i64) != (reviews[&reviewer], reviews[&reviewer]) {
            anomalies.push(format!(
                "reviewer {reviewer}: reviews {column}, {} rows, the calls say {}",
                keys.len(),
                reviews[&reviewer]
            ));
        }
        for key in keys {
            if !alive.contains(&key) {
                anomalies.push(format!("review {key} exists but no call left it"));
            }
        }
    }
    let orphans = read(format!(
        "SELECT id AS v FROM ct_reviews WHERE topic_id = {}",
        ctx.missing
    ));
    if !orphans.is_empty() {
        anomalies.push(format!("{} reviews on a missing topic", orphans.len()));
    }
    assert!(
        anomalies.is_empty(),
        "{what}: {} anomalies:\n{}",
        anomalies.len(),
        anomalies.join("\n")
    );
    println!(
        "{what}: {} inserts, {} moves, {} deletes, {} clean recounts, {} conflicts",
        seen.iter().map(|s| s.inserted).sum::<usize>(),
        seen.iter().map(|s| s.moves).sum::<usize>(),
        deleted.len(),
        seen.iter().map(|s| s.recounts).sum::<usize>(),
        seen.iter().map(|s| s.conflicts).sum::<usize>(),
    );
}
