//! Counted updates, conditional counts and several parents per child: reviews whose stars
//! count into their topic only while published and which count one into their reviewer either
//! way, moved between topics and reviewers, re-rated and flipped in and out of the count;
//! orders moved between products' stocks. Every parent is held against `SUM(col) … WHERE
//! published` / `COUNT(*)` of its children, read with plain Diesel.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};

use counter_core::{
    AtomicError, CounterCacheOn, CounterCached, CounterCaches, RetryPolicy, Updated,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::harness::{beside_busy_threads, serializable_postgres, BUSY_THREADS, KEYED_THREADS};
use crate::client::{on_n_workers, Client};
use crate::db::{DbOf, TestDb};
use crate::models::{NewOrder, NewReview};
use crate::schema::{ct_products, ct_reviewers, ct_topics};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! counter_cache_update_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            a_review_counts_only_while_published,
            a_moved_review_leaves_one_topic_for_another,
            a_moved_order_is_taken_from_the_new_stock,
            opposite_moves_never_deadlock,
            move_storm_is_exact,
        );
    };
}

/// Both caches of a review: its topic's stars and its reviewer's count.
type Reviews = CounterCaches<NewReview, (ct_topics::stars, ct_reviewers::reviews)>;
type Orders = CounterCached<NewOrder, ct_products::stock>;

fn review(topic_id: i64, reviewer_id: i64, stars: i32, published: bool) -> NewReview {
    NewReview {
        topic_id,
        reviewer_id,
        stars,
        published,
    }
}

/// An unpublished review is inserted without touching its topic (but still needs one, and
/// counts on its reviewer); a flip to published adds its stars, a re-rating while published
/// adds the difference, a flip back takes them out, and deleting an unpublished review changes
/// only its reviewer. A review by a reviewer who does not exist inserts nothing anywhere.
pub async fn a_review_counts_only_while_published<C: Client>(client: &C)
where
    NewReview: CounterCacheOn<ct_topics::stars, DbOf<C::Db>>
        + CounterCacheOn<ct_reviewers::reviews, DbOf<C::Db>>,
{
    let db = client.db();
    let (topic, ann) = (db.new_topic(), db.new_reviewer());
    let mut conn = client.conn().await;
    let shown = C::done(review(topic, ann, 4, true).insert_counted(&mut conn))
        .await
        .unwrap();
    assert_eq!(shown.parent, (4, 1));
    let draft = C::done(review(topic, ann, 5, false).insert_counted(&mut conn))
        .await
        .unwrap();
    assert_eq!(draft.parent, (4, 2), "a draft counts on its reviewer only");
    assert_eq!((db.topic(topic), db.topic_children(topic)), (4, 4));
    assert_eq!(db.reviewer(ann), (2, 2));

    // A draft of a topic that does not exist, a review by nobody: `NotFound`, no row, and
    // neither parent changed (the topic is changed first, then refused on the reviewer).
    let no_topic = review(topic + 1_000_000, ann, 5, false);
    let no_topic = C::done(no_topic.insert_counted(&mut conn)).await;
    assert!(
        matches!(no_topic, Err(AtomicError::NotFound)),
        "{no_topic:?}"
    );
    let nobody = review(topic, ann + 1_000_000, 5, true);
    let nobody = C::done(nobody.insert_counted(&mut conn)).await;
    assert!(matches!(nobody, Err(AtomicError::NotFound)), "{nobody:?}");
    assert_eq!((db.topic(topic), db.topic_children(topic)), (4, 4));
    assert_eq!(db.reviewer(ann), (2, 2));

    let update = async |conn: &mut C::Conn, stars, published| {
        let row = review(topic, ann, stars, published);
        C::done(row.update_counted(conn, draft.key)).await.unwrap()
    };
    assert_eq!(
        update(&mut conn, 5, true).await,
        (moved(topic, 9, topic, 9), moved(ann, 2, ann, 2))
    );
    assert_eq!(
        update(&mut conn, 2, true).await.0,
        moved(topic, 6, topic, 6)
    );
    assert_eq!(
        update(&mut conn, 2, false).await.0,
        moved(topic, 4, topic, 4)
    );
    // A change of neither the topic nor the counted amount leaves the topic as it is.
    assert_eq!(
        update(&mut conn, 3, false).await.0,
        moved(topic, 4, topic, 4)
    );
    assert_eq!(db.review(draft.key), Some((topic, ann, 3, false)));
    assert_eq!((db.topic(topic), db.topic_children(topic)), (4, 4));
    assert_eq!(db.reviewer(ann), (2, 2));

    assert_eq!(
        C::done(NewReview::delete_counted(&mut conn, draft.key))
            .await
            .unwrap(),
        (Some(4), Some(1)),
        "a hidden review's delete changes its reviewer only"
    );
    assert_eq!(
        C::done(NewReview::delete_counted(&mut conn, shown.key))
            .await
            .unwrap(),
        (Some(0), Some(0))
    );
    assert_eq!((db.topic(topic), db.topic_children(topic)), (0, 0));
    assert_eq!(db.reviewer(ann), (0, 0));

    // A recount adds only what is published; each cache recounts on its own.
    C::done(review(topic, ann, 5, false).insert_counted(&mut conn))
        .await
        .unwrap();
    C::done(review(topic, ann, 1, true).insert_counted(&mut conn))
        .await
        .unwrap();
    assert!(C::done(NewReview::recount_stars(&mut conn, &[topic]))
        .await
        .unwrap()
        .is_empty());
    assert!(C::done(NewReview::recount_reviews(&mut conn, &[ann]))
        .await
        .unwrap()
        .is_empty());
}

/// The `Updated` of a row that went from `from` (now holding `was`) to `to` (now `now`).
fn moved<V>(from: i64, was: V, to: i64, now: V) -> Updated<i64, V> {
    Updated {
        from: (from, Some(was)),
        to: (to, now),
    }
}

/// A review moved to another topic and another reviewer leaves the first of each and joins
/// the second, both ways; a move to a topic or reviewer that does not exist and an update of a
/// review that does not exist are `NotFound` with nothing changed; inside the caller's
/// transaction a move rolls back with it.
pub async fn a_moved_review_leaves_one_topic_for_another<C: Client>(client: &C)
where
    NewReview: CounterCacheOn<ct_topics::stars, DbOf<C::Db>>
        + CounterCacheOn<ct_reviewers::reviews, DbOf<C::Db>>,
{
    let db = client.db();
    let (a, b) = (db.new_topic(), db.new_topic());
    let (ann, bob) = (db.new_reviewer(), db.new_reviewer());
    let mut conn = client.conn().await;
    let first = C::done(review(a, ann, 4, true).insert_counted(&mut conn))
        .await
        .unwrap();
    C::done(review(a, ann, 1, true).insert_counted(&mut conn))
        .await
        .unwrap();
    // Moved, re-rated and handed to another reviewer in one update: 4 leaves `a`, 3 joins
    // `b`; one review leaves ann, one joins bob.
    let there = C::done(review(b, bob, 3, true).update_counted(&mut conn, first.key))
        .await
        .unwrap();
    assert_eq!(there, (moved(a, 1, b, 3), moved(ann, 1, bob, 1)));
    // Back to `a`, unpublished on the way, same reviewer: `b` loses 3, `a` gains nothing.
    let back = C::done(review(a, bob, 3, false).update_counted(&mut conn, first.key))
        .await
        .unwrap();
    assert_eq!(back, (moved(b, 0, a, 1), moved(bob, 1, bob, 1)));

    let missing_topic = a.max(b) + 1_000_000;
    let nowhere = review(missing_topic, bob, 3, true);
    let nowhere = C::done(nowhere.update_counted(&mut conn, first.key)).await;
    assert!(matches!(nowhere, Err(AtomicError::NotFound)), "{nowhere:?}");
    let nobody = review(b, ann.max(bob) + 1_000_000, 3, true);
    let nobody = C::done(nobody.update_counted(&mut conn, first.key)).await;
    assert!(matches!(nobody, Err(AtomicError::NotFound)), "{nobody:?}");
    let no_row = review(a, bob, 3, true);
    let no_row = C::done(no_row.update_counted(&mut conn, first.key + 1_000_000)).await;
    assert!(matches!(no_row, Err(AtomicError::NotFound)), "{no_row:?}");
    assert_eq!(db.review(first.key), Some((a, bob, 3, false)));
    assert_eq!((db.topic(a), db.topic_children(a)), (1, 1));
    assert_eq!((db.topic(b), db.topic_children(b)), (0, 0));
    assert_eq!((db.reviewer(ann), db.reviewer(bob)), ((1, 1), (1, 1)));

    let rolled_back = C::own_transaction(&mut conn, async |c| {
        let there = C::done(review(b, ann, 5, true).update_counted(c, first.key)).await?;
        assert_eq!(there, (moved(a, 1, b, 5), moved(bob, 0, ann, 2)));
        Err::<(), _>(AtomicError::Custom("the caller changes its mind".into()))
    })
    .await;
    assert!(matches!(rolled_back, Err(AtomicError::Custom(_))));
    assert_eq!(db.review(first.key), Some((a, bob, 3, false)));
    assert_eq!((db.topic(a), db.topic_children(a)), (1, 1));
    assert_eq!((db.topic(b), db.topic_children(b)), (0, 0));
    assert_eq!((db.reviewer(ann), db.reviewer(bob)), ((1, 1), (1, 1)));
}

/// An order moved to a product whose stock cannot hold it is refused with `Insufficient` and
/// stays where it was; a larger quantity takes the difference from the stock (refused past
/// it), a smaller one gives it back; a move that fits returns the old stock and takes the new.
pub async fn a_moved_order_is_taken_from_the_new_stock<C: Client>(client: &C)
where
    NewOrder: CounterCacheOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let (p, q) = (db.new_product(5, 0), db.new_product(1, 0));
    let order = |product_id, quantity| NewOrder {
        product_id,
        quantity,
        note: None,
    };
    let mut conn = client.conn().await;
    let orders = Orders::new();
    let placed = C::done(orders.insert(&mut conn, &order(p, 3)))
        .await
        .unwrap();
    assert_eq!(placed.parent, 2);
    let refused = C::done(orders.update(&mut conn, placed.key, &order(q, 3))).await;
    assert!(
        matches!(
            refused,
            Err(AtomicError::Insufficient {
                available: 1,
                requested: 3
            })
        ),
        "{refused:?}"
    );
    assert_eq!((db.product(p).0, db.product(q).0), (2, 1));
    assert_eq!(db.order_quantities(p), [3]);

    let more = C::done(orders.update(&mut conn, placed.key, &order(p, 5)))
        .await
        .unwrap();
    assert_eq!(more, moved(p, 0, p, 0));
    let too_many = C::done(orders.update(&mut conn, placed.key, &order(p, 6))).await;
    assert!(
        matches!(
            too_many,
            Err(AtomicError::Insufficient {
                available: 0,
                requested: 1
            })
        ),
        "{too_many:?}"
    );
    let fewer = C::done(orders.update(&mut conn, placed.key, &order(p, 1)))
        .await
        .unwrap();
    assert_eq!(fewer, moved(p, 4, p, 4));
    let elsewhere = C::done(orders.update(&mut conn, placed.key, &order(q, 1)))
        .await
        .unwrap();
    assert_eq!(elsewhere, moved(p, 5, q, 0));
    assert_eq!((db.product(p).0, db.product(q).0), (5, 0));
    assert!(db.order_quantities(p).is_empty());
    assert_eq!(db.order_quantities(q), [1]);
}

/// Eight workers move their own review between two topics and two reviewers, half starting on
/// each, 30 times each, with no retries (a deadlock would surface as `Conflict`), beside
/// CPU-bound threads: every move locks the two topics in key order, then the two reviewers in
/// key order, so none waits in a cycle. Every parent ends exact.
pub async fn opposite_moves_never_deadlock<C: Client>(client: &C)
where
    NewReview: CounterCacheOn<ct_topics::stars, DbOf<C::Db>>
        + CounterCacheOn<ct_reviewers::reviews, DbOf<C::Db>>,
{
    const WORKERS: usize = 8;
    const MOVES: usize = 30;
    let db = client.db();
    let topics = [db.new_topic(), db.new_topic()];
    let reviewers = [db.new_reviewer(), db.new_reviewer()];
    let mut conn = client.conn().await;
    let mut keys = Vec::new();
    for worker in 0..WORKERS {
        let stars = worker as i32 + 1;
        let start = review(topics[worker % 2], reviewers[worker % 2], stars, true);
        keys.push(C::done(start.insert_counted(&mut conn)).await.unwrap().key);
    }
    drop(conn);
    let no_retries = RetryPolicy::NEVER;
    let outcomes: Vec<(usize, usize)> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, WORKERS, async |worker, conn| {
            let reviews = Reviews::new().retry(no_retries);
            let stars = worker as i32 + 1;
            let (mut at, mut moves, mut conflicts) = (worker % 2, 0, 0);
            for _ in 0..MOVES {
                let to = 1 - at;
                let row = review(topics[to], reviewers[to], stars, true);
                match C::done(reviews.update(conn, keys[worker], &row)).await {
                    Ok((topic, reviewer)) => {
                        assert_eq!((topic.from.0, topic.to.0), (topics[at], topics[to]));
                        assert_eq!(
                            (reviewer.from.0, reviewer.to.0),
                            (reviewers[at], reviewers[to])
                        );
                        at = to;
                        moves += 1;
                    }
                    Err(AtomicError::Conflict { .. }) if serializable_postgres(client) => {
                        conflicts += 1
                    }
                    Err(e) => panic!("{}: worker {worker}: move: {e}", client.name()),
                }
            }
            (moves, conflicts)
        })
    });
    let moves: usize = outcomes.iter().map(|(m, _)| m).sum();
    assert!(moves > 0);
    let total: i64 = (1..=WORKERS as i64).sum();
    let (a, b) = (db.topic(topics[0]), db.topic(topics[1]));
    assert_eq!(a + b, total);
    assert_eq!(
        (a, b),
        (db.topic_children(topics[0]), db.topic_children(topics[1])),
        "{}: a topic and its published reviews disagree",
        client.name()
    );
    let (x, y) = (db.reviewer(reviewers[0]), db.reviewer(reviewers[1]));
    assert_eq!(x.0 + y.0, WORKERS as i64);
    assert!(
        x.0 == x.1 && y.0 == y.1,
        "{}: reviewers {x:?} {y:?}",
        client.name()
    );
}

/// What one move-storm worker did.
#[derive(Default)]
struct MoveLog {
    /// The reviews this worker inserted, as it last set them (only it updates them).
    owned: BTreeMap<i64, NewReview>,
    /// Reviews it deleted (its own or another worker's).
    deleted: Vec<i64>,
    /// Deletes and updates of a row another worker had deleted first.
    missed: usize,
    /// Updates that moved a review to another topic, and that flipped `published`.
    moves: usize,
    flips: usize,
    /// Gave up under PostgreSQL SERIALIZABLE (nothing happened).
    conflicts: usize,
}

/// How many operations each move-storm worker runs.
const STORM_OPS: usize = 40;

/// One of four topics, the first (hot) one about two times in three.
fn pick(rng: &mut StdRng, topics: &[i64]) -> i64 {
    if rng.random_bool(0.67) {
        topics[0]
    } else {
        topics[rng.random_range(1..topics.len())]
    }
}

/// One move-storm worker: inserts reviews (some unpublished), moves, re-rates and flips its
/// own, and deletes rows offered by every worker (some offered twice: two workers race to
/// delete one row, and an owner may update a row already deleted).
async fn move_worker<C: Client>(
    worker: usize,
    conn: &mut C::Conn,
    topics: &[i64],
    reviewers: &[i64],
    seed: u64,
    offered: &std::sync::Mutex<Vec<i64>>,
) -> MoveLog
where
    NewReview: CounterCacheOn<ct_topics::stars, DbOf<C::Db>>
        + CounterCacheOn<ct_reviewers::reviews, DbOf<C::Db>>,
{
    let reviews = Reviews::new();
    let mut rng = StdRng::seed_from_u64(seed ^ worker as u64);
    let mut log = MoveLog::default();
    let name = || format!("worker {worker}");
    for _ in 0..STORM_OPS {
        let roll = rng.random_range(0..10);
        if roll < 3 || log.owned.is_empty() {
            let row = review(
                pick(&mut rng, topics),
                reviewers[rng.random_range(0..reviewers.len())],
                rng.random_range(1..=5),
                rng.random_bool(0.7),
            );
            match C::done(reviews.insert(conn, &row)).await {
                Ok(counted) => {
                    let mut offered = offered.lock().unwrap();
                    if rng.random_bool(0.3) {
                        offered.push(counted.key);
                        if rng.random_bool(0.5) {
                            offered.push(counted.key);
                        }
                    }
                    log.owned.insert(counted.key, row);
                }
                Err(AtomicError::Conflict { .. }) => log.conflicts += 1,
                Err(e) => panic!("{}: insert: {e}", name()),
            }
        } else if roll < 5 {
            let Some(key) = offered.lock().unwrap().pop() else {
                continue;
            };
            match C::done(reviews.delete(conn, key)).await {
                Ok((Some(_), Some(_))) => log.deleted.push(key),
                Ok(parents) => panic!("{}: a review's parent is gone: {parents:?}", name()),
                Err(AtomicError::NotFound) => log.missed += 1,
                Err(AtomicError::Conflict { .. }) => {
                    log.conflicts += 1;
                    offered.lock().unwrap().push(key);
                }
                Err(e) => panic!("{}: delete: {e}", name()),
            }
        } else {
            let keys: Vec<i64> = log.owned.keys().copied().collect();
            let key = keys[rng.random_range(0..keys.len())];
            let before = log.owned[&key].clone();
            let mut row = before.clone();
            match rng.random_range(0..4) {
                0 => row.topic_id = pick(&mut rng, topics),
                1 => row.published = !row.published,
                2 => row.reviewer_id = reviewers[rng.random_range(0..reviewers.len())],
                _ => row.stars = rng.random_range(1..=5),
            }
            match C::done(reviews.update(conn, key, &row)).await {
                Ok((topic, reviewer)) => {
                    assert_eq!(topic.from.0, before.topic_id, "{}: the old topic", name());
                    assert_eq!(topic.to.0, row.topic_id, "{}: the new topic", name());
                    assert_eq!(reviewer.from.0, before.reviewer_id, "{}", name());
                    assert_eq!(reviewer.to.0, row.reviewer_id, "{}", name());
                    assert!(topic.from.1.is_some_and(|v| v >= 0) && topic.to.1 >= 0);
                    assert!(reviewer.from.1.is_some_and(|v| v >= 0) && reviewer.to.1 > 0);
                    log.moves += usize::from(row.topic_id != before.topic_id);
                    log.flips += usize::from(row.published != before.published);
                    log.owned.insert(key, row);
                }
                Err(AtomicError::NotFound) => {
                    log.missed += 1;
                    log.owned.remove(&key);
                }
                Err(AtomicError::Conflict { .. }) => log.conflicts += 1,
                Err(e) => panic!("{}: update: {e}", name()),
            }
        }
    }
    log
}

/// 16 workers insert, delete, move (to another topic or reviewer), re-rate and flip reviews
/// over 4 topics (one hot) and 3 reviewers beside CPU-bound threads. Afterwards every topic's
/// `stars` equals the sum of its published reviews, every reviewer's `reviews` the count of its
/// reviews, and both equal what the calls say: each surviving review as its owner last set it.
pub async fn move_storm_is_exact<C: Client>(client: &C)
where
    NewReview: CounterCacheOn<ct_topics::stars, DbOf<C::Db>>
        + CounterCacheOn<ct_reviewers::reviews, DbOf<C::Db>>,
{
    let db = client.db();
    let topics: Vec<i64> = (0..4).map(|_| db.new_topic()).collect();
    let reviewers: Vec<i64> = (0..3).map(|_| db.new_reviewer()).collect();
    let seed = RandomState::new().hash_one(std::time::SystemTime::now());
    let offered = std::sync::Mutex::new(Vec::new());
    let logs: Vec<MoveLog> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, KEYED_THREADS, async |worker, conn| {
            move_worker::<C>(worker, conn, &topics, &reviewers, seed, &offered).await
        })
    });
    let conflicts: usize = logs.iter().map(|l| l.conflicts).sum();
    assert!(
        conflicts == 0 || serializable_postgres(client),
        "{}: {conflicts} conflicts outside SERIALIZABLE",
        client.name()
    );
    let deleted: BTreeSet<i64> = logs
        .iter()
        .flat_map(|l| l.deleted.iter().copied())
        .collect();
    let all_deletes: usize = logs.iter().map(|l| l.deleted.len()).sum();
    assert_eq!(deleted.len(), all_deletes, "a row deleted twice");
    let moves: usize = logs.iter().map(|l| l.moves).sum();
    let flips: usize = logs.iter().map(|l| l.flips).sum();
    assert!(
        moves > 0 && flips > 0 && all_deletes > 0,
        "the storm moved ({moves}), flipped ({flips}) and deleted ({all_deletes})"
    );
    let mut expected: BTreeMap<i64, i64> = topics.iter().map(|&t| (t, 0)).collect();
    let mut by_reviewer: BTreeMap<i64, i64> = reviewers.iter().map(|&r| (r, 0)).collect();
    for log in &logs {
        for (key, row) in &log.owned {
            let gone = deleted.contains(key);
            assert_eq!(
                db.review(*key),
                (!gone).then_some((row.topic_id, row.reviewer_id, row.stars, row.published)),
                "{}: review {key} is not as its owner last set it",
                client.name()
            );
            if !gone {
                *by_reviewer.get_mut(&row.reviewer_id).unwrap() += 1;
            }
            if !gone && row.published {
                *expected.get_mut(&row.topic_id).unwrap() += i64::from(row.stars);
            }
        }
    }
    for &reviewer in &reviewers {
        let n = by_reviewer[&reviewer];
        assert_eq!(
            db.reviewer(reviewer),
            (n, n),
            "{}: reviewer {reviewer}: counter, COUNT(*) of its reviews and the calls disagree",
            client.name()
        );
    }
    for &topic in &topics {
        assert_eq!(
            (db.topic(topic), db.topic_children(topic)),
            (expected[&topic], expected[&topic]),
            "{}: topic {topic}: counter, SUM(stars) of its published reviews and the calls \
             disagree",
            client.name()
        );
    }
}
