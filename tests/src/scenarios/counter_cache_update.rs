//! Counted updates and conditional counts: reviews whose stars count into their topic only
//! while published, moved between topics, re-rated and flipped in and out of the count; orders
//! moved between products' stocks. Every parent is held against `SUM(col) … WHERE published` of
//! its children, read with plain Diesel.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use counter_core::{AtomicError, CounterCacheOn, CounterCached, RetryPolicy, Updated};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::harness::{beside_busy_threads, serializable_postgres, BUSY_THREADS, KEYED_THREADS};
use crate::client::{on_n_workers, Client};
use crate::db::{DbOf, TestDb};
use crate::models::{NewOrder, NewReview};
use crate::schema::{ct_products, ct_topics};

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

type Reviews = CounterCached<NewReview, ct_topics::stars>;
type Orders = CounterCached<NewOrder, ct_products::stock>;

/// The storms' retry policy (see `counter_cache.rs`): a busy SQLite file is waited for up to a
/// minute.
fn storm_policy() -> RetryPolicy {
    RetryPolicy::DEFAULT.with_busy_timeout(Duration::from_secs(60))
}

fn review(topic_id: i64, stars: i32, published: bool) -> NewReview {
    NewReview {
        topic_id,
        stars,
        published,
    }
}

/// An unpublished review is inserted without touching its topic (but still needs one); a
/// flip to published adds its stars, a re-rating while published adds the difference, a flip
/// back takes them out, and deleting an unpublished review changes nothing.
pub async fn a_review_counts_only_while_published<C: Client>(client: &C)
where
    NewReview: CounterCacheOn<ct_topics::stars, DbOf<C::Db>>,
{
    let db = client.db();
    let topic = db.new_topic();
    let mut conn = client.conn().await;
    let shown = C::done(review(topic, 4, true).insert_counted(&mut conn))
        .await
        .unwrap();
    assert_eq!(shown.parent, 4);
    let draft = C::done(review(topic, 5, false).insert_counted(&mut conn))
        .await
        .unwrap();
    assert_eq!(draft.parent, 4, "a draft does not count");
    assert_eq!((db.topic(topic), db.topic_children(topic)), (4, 4));

    // A draft of a topic that does not exist: `NotFound`, no row.
    let orphan = C::done(review(topic + 1_000_000, 5, false).insert_counted(&mut conn)).await;
    assert!(matches!(orphan, Err(AtomicError::NotFound)), "{orphan:?}");

    let published = C::done(review(topic, 5, true).update_counted(&mut conn, draft.key))
        .await
        .unwrap();
    assert_eq!(published, moved(topic, 9, topic, 9));
    let rerated = C::done(review(topic, 2, true).update_counted(&mut conn, draft.key))
        .await
        .unwrap();
    assert_eq!(rerated, moved(topic, 6, topic, 6));
    let hidden = C::done(review(topic, 2, false).update_counted(&mut conn, draft.key))
        .await
        .unwrap();
    assert_eq!(hidden, moved(topic, 4, topic, 4));
    // A change of neither the topic nor the counted amount leaves the topic as it is.
    let unchanged = C::done(review(topic, 3, false).update_counted(&mut conn, draft.key))
        .await
        .unwrap();
    assert_eq!(unchanged, moved(topic, 4, topic, 4));
    assert_eq!(db.review(draft.key), Some((topic, 3, false)));
    assert_eq!((db.topic(topic), db.topic_children(topic)), (4, 4));

    assert_eq!(
        C::done(NewReview::delete_counted(&mut conn, draft.key))
            .await
            .unwrap(),
        Some(4),
        "a hidden review's delete changes nothing"
    );
    assert_eq!(
        C::done(NewReview::delete_counted(&mut conn, shown.key))
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!((db.topic(topic), db.topic_children(topic)), (0, 0));

    // A recount adds only what is published.
    C::done(review(topic, 5, false).insert_counted(&mut conn))
        .await
        .unwrap();
    C::done(review(topic, 1, true).insert_counted(&mut conn))
        .await
        .unwrap();
    assert!(C::done(NewReview::recount_stars(&mut conn, &[topic]))
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

/// A review moved to another topic leaves the first and joins the second, both ways; a move to
/// a topic that does not exist and an update of a review that does not exist are `NotFound`
/// with nothing changed; inside the caller's transaction a move rolls back with it.
pub async fn a_moved_review_leaves_one_topic_for_another<C: Client>(client: &C)
where
    NewReview: CounterCacheOn<ct_topics::stars, DbOf<C::Db>>,
{
    let db = client.db();
    let (a, b) = (db.new_topic(), db.new_topic());
    let mut conn = client.conn().await;
    let first = C::done(review(a, 4, true).insert_counted(&mut conn))
        .await
        .unwrap();
    C::done(review(a, 1, true).insert_counted(&mut conn))
        .await
        .unwrap();
    // Moved and re-rated in one update: 4 leaves `a`, 3 joins `b`.
    let there = C::done(review(b, 3, true).update_counted(&mut conn, first.key))
        .await
        .unwrap();
    assert_eq!(there, moved(a, 1, b, 3));
    // Back, and unpublished on the way: `b` loses 3, `a` gains nothing.
    let back = C::done(review(a, 3, false).update_counted(&mut conn, first.key))
        .await
        .unwrap();
    assert_eq!(back, moved(b, 0, a, 1));

    let missing_topic = a.max(b) + 1_000_000;
    let nowhere =
        C::done(review(missing_topic, 3, true).update_counted(&mut conn, first.key)).await;
    assert!(matches!(nowhere, Err(AtomicError::NotFound)), "{nowhere:?}");
    let no_row = C::done(review(a, 3, true).update_counted(&mut conn, first.key + 1_000_000)).await;
    assert!(matches!(no_row, Err(AtomicError::NotFound)), "{no_row:?}");
    assert_eq!(db.review(first.key), Some((a, 3, false)));
    assert_eq!((db.topic(a), db.topic_children(a)), (1, 1));
    assert_eq!((db.topic(b), db.topic_children(b)), (0, 0));

    let rolled_back = C::own_transaction(&mut conn, async |c| {
        let there = C::done(review(b, 5, true).update_counted(c, first.key)).await?;
        assert_eq!(there, moved(a, 1, b, 5));
        Err::<(), _>(AtomicError::Custom("the caller changes its mind".into()))
    })
    .await;
    assert!(matches!(rolled_back, Err(AtomicError::Custom(_))));
    assert_eq!(db.review(first.key), Some((a, 3, false)));
    assert_eq!((db.topic(a), db.topic_children(a)), (1, 1));
    assert_eq!((db.topic(b), db.topic_children(b)), (0, 0));
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

/// Eight workers move their own review between two topics, half starting on each, 30 times
/// each, with no retries (a deadlock would surface as `Conflict`), beside CPU-bound threads:
/// the two topics are locked in key order by every move, so none waits in a cycle. Both
/// topics end exact.
pub async fn opposite_moves_never_deadlock<C: Client>(client: &C)
where
    NewReview: CounterCacheOn<ct_topics::stars, DbOf<C::Db>>,
{
    const WORKERS: usize = 8;
    const MOVES: usize = 30;
    let db = client.db();
    let topics = [db.new_topic(), db.new_topic()];
    let mut conn = client.conn().await;
    let mut keys = Vec::new();
    for worker in 0..WORKERS {
        let stars = worker as i32 + 1;
        let start = review(topics[worker % 2], stars, true);
        keys.push(C::done(start.insert_counted(&mut conn)).await.unwrap().key);
    }
    drop(conn);
    let no_retries = RetryPolicy::NEVER.with_busy_timeout(Duration::from_secs(60));
    let outcomes: Vec<(usize, usize)> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, WORKERS, async |worker, conn| {
            let reviews = Reviews::new().retry(no_retries);
            let stars = worker as i32 + 1;
            let (mut at, mut moves, mut conflicts) = (worker % 2, 0, 0);
            for _ in 0..MOVES {
                let to = 1 - at;
                let row = review(topics[to], stars, true);
                match C::done(reviews.update(conn, keys[worker], &row)).await {
                    Ok(updated) => {
                        assert_eq!(updated.from.0, topics[at]);
                        assert_eq!(updated.to.0, topics[to]);
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
    seed: u64,
    offered: &std::sync::Mutex<Vec<i64>>,
) -> MoveLog
where
    NewReview: CounterCacheOn<ct_topics::stars, DbOf<C::Db>>,
{
    let reviews = Reviews::new().retry(storm_policy());
    let mut rng = StdRng::seed_from_u64(seed ^ worker as u64);
    let mut log = MoveLog::default();
    let name = || format!("worker {worker}");
    for _ in 0..STORM_OPS {
        let roll = rng.random_range(0..10);
        if roll < 3 || log.owned.is_empty() {
            let row = review(
                pick(&mut rng, topics),
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
                Ok(Some(_)) => log.deleted.push(key),
                Ok(None) => panic!("{}: a review's topic is gone", name()),
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
            match rng.random_range(0..3) {
                0 => row.topic_id = pick(&mut rng, topics),
                1 => row.published = !row.published,
                _ => row.stars = rng.random_range(1..=5),
            }
            match C::done(reviews.update(conn, key, &row)).await {
                Ok(updated) => {
                    assert_eq!(updated.from.0, before.topic_id, "{}: the old topic", name());
                    assert_eq!(updated.to.0, row.topic_id, "{}: the new topic", name());
                    assert!(updated.from.1.is_some_and(|v| v >= 0) && updated.to.1 >= 0);
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

/// 16 workers insert, delete, move, re-rate and flip reviews over 4 topics (one hot) beside
/// CPU-bound threads. Afterwards every topic's `stars` equals the sum of its published reviews,
/// and both equal what the calls say: each surviving review as its owner last set it.
pub async fn move_storm_is_exact<C: Client>(client: &C)
where
    NewReview: CounterCacheOn<ct_topics::stars, DbOf<C::Db>>,
{
    let db = client.db();
    let topics: Vec<i64> = (0..4).map(|_| db.new_topic()).collect();
    let seed = RandomState::new().hash_one(std::time::SystemTime::now());
    let offered = std::sync::Mutex::new(Vec::new());
    let logs: Vec<MoveLog> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, KEYED_THREADS, async |worker, conn| {
            move_worker::<C>(worker, conn, &topics, seed, &offered).await
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
    for log in &logs {
        for (key, row) in &log.owned {
            let gone = deleted.contains(key);
            assert_eq!(
                db.review(*key),
                (!gone).then_some((row.topic_id, row.stars, row.published)),
                "{}: review {key} is not as its owner last set it",
                client.name()
            );
            if !gone && row.published {
                *expected.get_mut(&row.topic_id).unwrap() += i64::from(row.stars);
            }
        }
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
