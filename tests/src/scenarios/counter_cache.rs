//! Counter caches: a child row and its parent's counter, both or neither. Comments counted on
//! their post, tips summed into it (a refund is a negative tip), orders taken from a product's
//! stock only if it holds them. Every parent is held against `COUNT(*)`/`SUM(col)` of its
//! children, read with plain Diesel.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};

use counter_core::{AtomicError, CounterCacheOn, CounterCached, Recounted};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::harness::{beside_busy_threads, serializable_postgres, BUSY_THREADS, KEYED_THREADS};
use crate::client::{on_n_workers, Client};
use crate::db::{DbOf, TestDb};
use crate::models::{NewComment, NewOrder, NewTip};
use crate::schema::{ct_posts, ct_products};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! counter_cache_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            counted_insert_and_delete_keep_the_count,
            a_summed_cache_moves_by_the_column,
            a_refused_order_inserts_nothing,
            counted_calls_in_the_callers_transaction_roll_back_with_it,
            counter_cache_storm_is_exact,
            concurrent_orders_never_oversell,
            concurrent_double_deletes_change_the_parent_once,
            recount_during_a_storm_leaves_every_parent_exact,
        );
    };
}

type Comments = CounterCached<NewComment, ct_posts::comments>;

type Tips = CounterCached<NewTip, ct_posts::tips>;
type Orders = CounterCached<NewOrder, ct_products::stock>;

fn comment(post_id: i64) -> NewComment {
    NewComment {
        post_id,
        body: None,
    }
}

/// Insert, read the key back, delete once (the count goes back), delete again (`NotFound`,
/// nothing changes), a comment on a post that does not exist (`NotFound`, no row), and the
/// recount of a drift.
pub async fn counted_insert_and_delete_keep_the_count<C: Client>(client: &C)
where
    NewComment: CounterCacheOn<ct_posts::comments, DbOf<C::Db>>,
{
    let db = client.db();
    let post = db.new_post();
    let mut conn = client.conn().await;
    let cache = Comments::new();
    let first = C::done(comment(post).insert_counted(&mut conn))
        .await
        .unwrap();
    let with_body = NewComment {
        post_id: post,
        body: Some("second".into()),
    };
    let second = C::done(with_body.insert_counted(&mut conn)).await.unwrap();
    assert_eq!((first.parent, second.parent), (1, 2));
    assert_ne!(
        first.key, second.key,
        "each insert answers its own row's key"
    );
    assert_eq!(db.post(post), (2, 0));
    assert_eq!(db.post_children(post), (2, 0));

    assert_eq!(
        C::done(NewComment::delete_counted(&mut conn, first.key))
            .await
            .unwrap(),
        Some(1)
    );
    assert!(matches!(
        C::done(NewComment::delete_counted(&mut conn, first.key)).await,
        Err(AtomicError::NotFound)
    ));
    assert_eq!(db.post(post), (1, 0));
    assert_eq!(db.post_children(post), (1, 0));

    // No such post: a typed error, nothing inserted anywhere.
    let nowhere = crate::db::next_id();
    assert!(matches!(
        C::done(cache.insert(&mut conn, &comment(nowhere))).await,
        Err(AtomicError::NotFound)
    ));
    assert_eq!(db.post_children(nowhere), (0, 0));

    // A comment written behind the cache's back, and a counter written wrong: a recount
    // reports and repairs both, and a second one finds nothing.
    db.raw_comment(post);
    let report = C::done(NewComment::recount_comments(
        &mut conn,
        &[post, post, nowhere],
    ))
    .await
    .unwrap();
    assert_eq!(
        report,
        vec![Recounted {
            key: post,
            was: 1,
            now: 2
        }]
    );
    db.set_post(post, 40, 0);
    let other = db.new_post();
    C::done(NewComment::counter_cache_comments().insert(&mut conn, &comment(other)))
        .await
        .unwrap();
    let report = C::done(cache.recount(&mut conn, &[other, post]))
        .await
        .unwrap();
    assert_eq!(
        report,
        vec![Recounted {
            key: post,
            was: 40,
            now: 2
        }]
    );
    assert!(C::done(cache.recount(&mut conn, &[post, other]))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(db.post(post), (2, 0));
    assert_eq!(db.post(other), (1, 0));
}

/// A sum cache: each tip adds its cents, a refund (negative) takes them back, a delete
/// reverses the row's own amount, and a refund the post cannot give (its `tips` would go below
/// `min = 0`) is `OutOfRange` with no row inserted.
pub async fn a_summed_cache_moves_by_the_column<C: Client>(client: &C)
where
    NewTip: CounterCacheOn<ct_posts::tips, DbOf<C::Db>>,
{
    let db = client.db();
    let post = db.new_post();
    let mut conn = client.conn().await;
    let tips = Tips::new();
    let tip = |cents| NewTip {
        post_id: post,
        cents,
    };
    let five = C::done(tips.insert(&mut conn, &tip(500))).await.unwrap();
    assert_eq!(five.parent, 500);
    let refund = C::done(tips.insert(&mut conn, &tip(-200))).await.unwrap();
    assert_eq!(refund.parent, 300);
    assert_eq!(db.post_children(post), (0, 300));
    match C::done(tips.insert(&mut conn, &tip(-301))).await {
        Err(AtomicError::OutOfRange {
            current: 300,
            attempted: -1,
            ..
        }) => {}
        other => panic!("{}: a refund past zero: {other:?}", client.name()),
    }
    assert_eq!(
        db.post_children(post),
        (0, 300),
        "the refused refund left no row"
    );
    // Deleting the refund gives its 200 back; deleting the tip then takes 500 from 500.
    assert_eq!(
        C::done(tips.delete(&mut conn, refund.key)).await.unwrap(),
        Some(500)
    );
    assert_eq!(
        C::done(tips.delete(&mut conn, five.key)).await.unwrap(),
        Some(0)
    );
    assert_eq!(db.post(post), (0, 0));
    assert_eq!(db.post_children(post), (0, 0));
    // Deleting the tip of a post whose counter drifted to 0 would take it below its minimum:
    // refused, the tip stays, and a recount repairs the counter.
    let kept = C::done(tips.insert(&mut conn, &tip(70))).await.unwrap();
    db.set_post(post, 0, 0);
    assert!(matches!(
        C::done(tips.delete(&mut conn, kept.key)).await,
        Err(AtomicError::OutOfRange { current: 0, .. })
    ));
    assert_eq!(db.post_children(post), (0, 70));
    let report = C::done(tips.recount(&mut conn, &[post])).await.unwrap();
    assert_eq!((report[0].was, report[0].now), (0, 70));
    assert_eq!(
        C::done(tips.delete(&mut conn, kept.key)).await.unwrap(),
        Some(0)
    );
}

/// An order for more than the stock is `Insufficient { available, requested }` and no order
/// row exists; one that fits leaves its quantity's worth; a decrementing cache cannot be
/// recounted (`Unsupported`).
pub async fn a_refused_order_inserts_nothing<C: Client>(client: &C)
where
    NewOrder: CounterCacheOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let product = db.new_product(5, 0);
    let mut conn = client.conn().await;
    let orders = Orders::new();
    let order = |quantity| NewOrder {
        product_id: product,
        quantity,
        note: Some(format!("{quantity} units")),
    };
    match C::done(order(6).insert_counted(&mut conn)).await {
        Err(AtomicError::Insufficient {
            available: 5,
            requested: 6,
        }) => {}
        other => panic!("{}: an order past the stock: {other:?}", client.name()),
    }
    assert!(db.order_quantities(product).is_empty());
    let placed = C::done(order(5).insert_counted(&mut conn)).await.unwrap();
    assert_eq!(placed.parent, 0);
    assert_eq!(db.order_quantities(product), vec![5]);
    assert!(matches!(
        C::done(orders.insert(&mut conn, &order(-1))).await,
        Err(AtomicError::NegativeAmount { amount: -1 })
    ));
    assert!(matches!(
        C::done(orders.recount(&mut conn, &[product])).await,
        Err(AtomicError::Unsupported { .. })
    ));
    // A cancelled order puts its units back.
    assert_eq!(
        C::done(NewOrder::delete_counted(&mut conn, placed.key))
            .await
            .unwrap(),
        Some(5)
    );
    assert_eq!(db.product(product), (5, 0));
    assert!(db.order_quantities(product).is_empty());
}

/// Inside the caller's own transaction: a counted insert and a counted delete followed by an
/// error roll back with it (no comment, the count unchanged, the deleted comment back); the
/// same work committed stays; a refused order inside it leaves the transaction usable; a panic
/// in the body rolls everything back too.
pub async fn counted_calls_in_the_callers_transaction_roll_back_with_it<C: Client>(client: &C)
where
    NewComment: CounterCacheOn<ct_posts::comments, DbOf<C::Db>>,
    NewOrder: CounterCacheOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let post = db.new_post();
    let product = db.new_product(2, 0);
    let mut conn = client.conn().await;
    let kept = C::done(comment(post).insert_counted(&mut conn))
        .await
        .unwrap();
    let rolled_back = C::own_transaction(&mut conn, async |c| {
        assert_eq!(C::done(comment(post).insert_counted(c)).await?.parent, 2);
        assert_eq!(
            C::done(NewComment::delete_counted(c, kept.key)).await?,
            Some(1)
        );
        let too_many = NewOrder {
            product_id: product,
            quantity: 3,
            note: None,
        };
        // Refused inside the transaction: an error value, and the transaction goes on.
        assert!(matches!(
            C::done(too_many.insert_counted(c)).await,
            Err(AtomicError::Insufficient {
                available: 2,
                requested: 3
            })
        ));
        let fits = NewOrder {
            product_id: product,
            quantity: 2,
            note: None,
        };
        assert_eq!(C::done(fits.insert_counted(c)).await?.parent, 0);
        Err::<(), _>(AtomicError::Custom("the caller changes its mind".into()))
    })
    .await;
    assert!(matches!(rolled_back, Err(AtomicError::Custom(_))));
    assert_eq!(db.post(post), (1, 0));
    assert_eq!(db.post_children(post), (1, 0));
    assert_eq!(db.product(product), (2, 0));
    assert!(db.order_quantities(product).is_empty());

    let panicked = super::harness::catch_panic(C::own_transaction(
        &mut conn,
        async |c| -> Result<(), AtomicError> {
            C::done(comment(post).insert_counted(c)).await?;
            panic!("the caller's code panics after a counted insert");
        },
    ))
    .await;
    assert!(panicked.is_err());
    drop(conn);
    assert_eq!(db.post(post), (1, 0));
    assert_eq!(db.post_children(post), (1, 0));

    let mut conn = client.conn().await;
    let committed = C::own_transaction(&mut conn, async |c| {
        C::done(comment(post).insert_counted(c)).await?;
        C::done(NewComment::delete_counted(c, kept.key)).await
    })
    .await
    .unwrap();
    assert_eq!(committed, Some(1));
    assert_eq!(db.post(post), (1, 0));
    assert_eq!(db.post_children(post), (1, 0));
}

/// What one worker of the storm did: comments it inserted (post, key) and deleted (post).
#[derive(Default)]
struct StormLog {
    inserted: Vec<(i64, i64)>,
    deleted: Vec<i64>,
    /// Deletes of a key another worker also deleted, that found nothing.
    missed: usize,
    /// Gave up under PostgreSQL SERIALIZABLE (nothing happened).
    conflicts: usize,
}

/// How many operations each storm worker runs.
const STORM_OPS: usize = 40;

/// Picks one of four posts, the first (hot) one about two times in three.
fn pick(rng: &mut StdRng, posts: &[i64]) -> i64 {
    if rng.random_bool(0.67) {
        posts[0]
    } else {
        posts[rng.random_range(1..posts.len())]
    }
}

/// One storm worker: inserts comments on four posts (one hot) and deletes its own and its
/// neighbour's at random (so two workers race to delete one row); every outcome logged.
async fn storm_worker<C: Client>(
    worker: usize,
    conn: &mut C::Conn,
    posts: &[i64],
    seed: u64,
    shared: &std::sync::Mutex<Vec<(i64, i64)>>,
) -> StormLog
where
    NewComment: CounterCacheOn<ct_posts::comments, DbOf<C::Db>>,
{
    let cache = Comments::new();
    let mut rng = StdRng::seed_from_u64(seed ^ worker as u64);
    let mut log = StormLog::default();
    for _ in 0..STORM_OPS {
        let target = if rng.random_bool(0.4) {
            shared.lock().unwrap().pop()
        } else {
            None
        };
        match target {
            Some((post, key)) => match C::done(cache.delete(conn, key)).await {
                Ok(Some(_)) => log.deleted.push(post),
                Ok(None) => panic!("a comment's post is gone"),
                Err(AtomicError::NotFound) => log.missed += 1,
                Err(e @ AtomicError::Conflict { .. }) => {
                    if log.conflicts == 0 {
                        eprintln!("worker {worker}: delete: {e}");
                    }
                    log.conflicts += 1;
                    shared.lock().unwrap().push((post, key));
                }
                Err(e) => panic!("worker {worker}: delete: {e}"),
            },
            None => {
                let post = pick(&mut rng, posts);
                match C::done(cache.insert(conn, &comment(post))).await {
                    Ok(counted) => {
                        log.inserted.push((post, counted.key));
                        // Half of the keys are offered twice: two workers race to delete.
                        let mut shared = shared.lock().unwrap();
                        shared.push((post, counted.key));
                        if rng.random_bool(0.5) {
                            shared.push((post, counted.key));
                        }
                    }
                    Err(e @ AtomicError::Conflict { .. }) => {
                        if log.conflicts == 0 {
                            eprintln!("worker {worker}: insert: {e}");
                        }
                        log.conflicts += 1
                    }
                    Err(e) => panic!("worker {worker}: insert: {e}"),
                }
            }
        }
    }
    log
}

/// 16 workers insert and delete comments over 4 posts (one hot), some deletes racing another
/// worker's delete of the same row, while CPU-bound threads run beside them. Afterwards every
/// post's counter equals `COUNT(*)` of its comments and what the calls reported (inserts less
/// successful deletes); each offered row was deleted at most once.
pub async fn counter_cache_storm_is_exact<C: Client>(client: &C)
where
    NewComment: CounterCacheOn<ct_posts::comments, DbOf<C::Db>>,
{
    let db = client.db();
    let posts: Vec<i64> = (0..4).map(|_| db.new_post()).collect();
    let seed = RandomState::new().hash_one(std::time::SystemTime::now());
    let shared = std::sync::Mutex::new(Vec::new());
    let logs: Vec<StormLog> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, KEYED_THREADS, async |worker, conn| {
            storm_worker::<C>(worker, conn, &posts, seed, &shared).await
        })
    });
    check_storm(client, &posts, &logs, None);
}

/// Holds the posts against their children and the logs; `recounted`: the posts' counters
/// were written wrong before the storm and a recount ran during it.
fn check_storm<C: Client>(client: &C, posts: &[i64], logs: &[StormLog], recounted: Option<()>) {
    let db = client.db();
    let mut expected: BTreeMap<i64, i64> = posts.iter().map(|&p| (p, 0)).collect();
    let mut keys = std::collections::BTreeSet::new();
    let conflicts: usize = logs.iter().map(|l| l.conflicts).sum();
    for log in logs {
        for &(post, key) in &log.inserted {
            *expected.get_mut(&post).unwrap() += 1;
            assert!(
                keys.insert(key),
                "{}: key {key} handed out twice",
                client.name()
            );
        }
        for post in &log.deleted {
            *expected.get_mut(post).unwrap() -= 1;
        }
    }
    let deleted: usize = logs.iter().map(|l| l.deleted.len()).sum();
    let inserted: usize = logs.iter().map(|l| l.inserted.len()).sum();
    assert!(
        deleted > 0 && inserted > deleted,
        "the storm inserted and deleted"
    );
    if conflicts > 0 {
        assert!(
            serializable_postgres(client),
            "{conflicts} conflicts outside SERIALIZABLE"
        );
    }
    for &post in posts {
        let (counter, _) = db.post(post);
        let (children, _) = db.post_children(post);
        let raw = if recounted.is_some() { 1 } else { 0 };
        assert_eq!(
            (counter, children),
            (expected[&post] + raw, expected[&post] + raw),
            "{}: post {post}: counter, COUNT(*) and the calls' sum disagree",
            client.name()
        );
    }
}

/// 16 workers order 1 to 3 units of one product of stock 1,000 until it is out. The orders'
/// quantities sum to exactly what left the stock, no order row exists for a refused call, and
/// every refusal's `available` is below its `requested` and a value the stock really held.
pub async fn concurrent_orders_never_oversell<C: Client>(client: &C)
where
    NewOrder: CounterCacheOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let product = db.new_product(1000, 0);
    let seed = RandomState::new().hash_one(std::time::SystemTime::now());
    type Outcome = (i32, Result<(i64, i32), AtomicError>);
    let logs: Vec<Vec<Outcome>> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, KEYED_THREADS, async |worker, conn| {
            let orders = Orders::new();
            let mut rng = StdRng::seed_from_u64(seed ^ worker as u64);
            let mut log = Vec::new();
            let mut refusals = 0;
            while refusals < 3 {
                let quantity = rng.random_range(1..=3);
                let order = NewOrder {
                    product_id: product,
                    quantity,
                    note: None,
                };
                let result = C::done(orders.insert(conn, &order))
                    .await
                    .map(|c| (c.key, c.parent));
                if result.is_err() {
                    refusals += 1;
                }
                log.push((quantity, result));
            }
            log
        })
    });
    let (stock, _) = db.product(product);
    let mut quantities = db.order_quantities(product);
    let mut placed = Vec::new();
    let mut values = Vec::new();
    for (quantity, result) in logs.iter().flatten() {
        match result {
            Ok((_, left)) => {
                placed.push(*quantity);
                values.push(*left);
            }
            Err(AtomicError::Insufficient {
                available,
                requested,
            }) => {
                assert_eq!(*requested, i128::from(*quantity));
                assert!(
                    (0..*requested).contains(available),
                    "{}: refused {requested} with {available} available",
                    client.name()
                );
            }
            Err(AtomicError::Conflict { .. }) if serializable_postgres(client) => {}
            Err(e) => panic!("{}: an order failed: {e}", client.name()),
        }
    }
    quantities.sort_unstable();
    placed.sort_unstable();
    assert_eq!(quantities, placed, "one order row per successful call");
    let sold: i32 = placed.iter().sum();
    assert_eq!(stock, 1000 - sold);
    assert!(stock < 3, "the workers stopped with {stock} left");
    // Each call's answer is a distinct stock level: no value handed out twice.
    values.sort_unstable();
    values.dedup();
    assert_eq!(values.len(), placed.len());
}

/// Two workers delete the same 100 comments, one in order and one in reverse: each row is
/// deleted by exactly one of them (the other gets `NotFound`), and the post ends at 0.
pub async fn concurrent_double_deletes_change_the_parent_once<C: Client>(client: &C)
where
    NewComment: CounterCacheOn<ct_posts::comments, DbOf<C::Db>>,
{
    let db = client.db();
    let post = db.new_post();
    let mut conn = client.conn().await;
    let mut keys = Vec::new();
    for _ in 0..100 {
        keys.push(
            C::done(Comments::new().insert(&mut conn, &comment(post)))
                .await
                .unwrap()
                .key,
        );
    }
    drop(conn);
    assert_eq!(db.post(post), (100, 0));
    let results: Vec<Vec<(i64, bool)>> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, 2, async |worker, conn| {
            let mut order = keys.clone();
            if worker == 1 {
                order.reverse();
            }
            let mut log = Vec::new();
            for key in order {
                match C::done(Comments::new().delete(conn, key)).await {
                    Ok(Some(_)) => log.push((key, true)),
                    Err(AtomicError::NotFound) => log.push((key, false)),
                    other => panic!("{}: delete {key}: {other:?}", client.name()),
                }
            }
            log
        })
    });
    let mut by_key: BTreeMap<i64, usize> = BTreeMap::new();
    for (key, deleted) in results.iter().flatten() {
        *by_key.entry(*key).or_default() += usize::from(*deleted);
    }
    assert_eq!(by_key.len(), 100);
    assert!(
        by_key.values().all(|&n| n == 1),
        "each row deleted exactly once"
    );
    assert_eq!(db.post(post), (0, 0));
    assert_eq!(db.post_children(post), (0, 0));
}

/// The posts' counters are written wrong and a comment is inserted behind the cache's back;
/// then the storm runs with a 17th worker recounting the four posts over and over. After the
/// storm, without another recount, every post is exact; a last recount finds nothing.
pub async fn recount_during_a_storm_leaves_every_parent_exact<C: Client>(client: &C)
where
    NewComment: CounterCacheOn<ct_posts::comments, DbOf<C::Db>>,
{
    let db = client.db();
    let posts: Vec<i64> = (0..4).map(|_| db.new_post()).collect();
    for &post in &posts {
        db.raw_comment(post);
        db.set_post(post, 1000, 0);
    }
    let seed = RandomState::new().hash_one(std::time::SystemTime::now());
    let shared = std::sync::Mutex::new(Vec::new());
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(StormLog, usize)> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, KEYED_THREADS + 1, async |worker, conn| {
            if worker < KEYED_THREADS {
                let log = storm_worker::<C>(worker, conn, &posts, seed, &shared).await;
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                return (log, 0);
            }
            // The recounter: at least once, and until every storm worker is done.
            let mut rounds = 0;
            loop {
                match C::done(Comments::new().recount(conn, &posts)).await {
                    Ok(_) => rounds += 1,
                    Err(AtomicError::Conflict { .. }) if serializable_postgres(client) => {}
                    Err(e) => panic!("{}: recount: {e}", client.name()),
                }
                if rounds > 0 && done.load(std::sync::atomic::Ordering::SeqCst) == KEYED_THREADS {
                    break;
                }
            }
            (StormLog::default(), rounds)
        })
    });
    let rounds: usize = results.iter().map(|(_, r)| r).sum();
    assert!(rounds >= 1);
    let logs: Vec<StormLog> = results.into_iter().map(|(log, _)| log).collect();
    check_storm(client, &posts, &logs, Some(()));
    let mut conn = client.conn().await;
    assert!(C::done(Comments::new().recount(&mut conn, &posts))
        .await
        .unwrap()
        .is_empty());
}
