//! Slotted counter caches: reads of an article counted into its slotted `views` (16 slots)
//! while they count (`when = counted`), each change through a random slot. Every article is
//! held against `COUNT(*)` of its counted reads, read with plain Diesel.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use counter_core::{
    AtomicError, Recounted, SlottedCounterCacheOn, SlottedCounterCached, SlottedOn,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::harness::{beside_busy_threads, serializable_postgres, BUSY_THREADS, KEYED_THREADS};
use crate::client::{on_n_workers, Client};
use crate::db::{next_id, DbOf, TestDb};
use crate::models::{Article, NewRead};
use crate::schema::ct_articles;

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! slotted_cache_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            slotted_cache_counts_inserts_updates_and_deletes,
            slotted_cache_storm_is_exact,
            slotted_cache_storm_with_recounts_is_exact,
        );
    };
}

type Reads = SlottedCounterCached<NewRead, ct_articles::views>;

fn read(article_id: i64, counted: bool) -> NewRead {
    NewRead {
        article_id,
        counted,
    }
}

/// The sum of article `id`'s view slots, read as its counter is.
async fn views<C: Client>(conn: &mut C::Conn, id: i64) -> i64
where
    NewRead: SlottedCounterCacheOn<ct_articles::views, DbOf<C::Db>>,
    Article: SlottedOn<ct_articles::views, DbOf<C::Db>>,
{
    C::done(Article::current_views(conn, id)).await.unwrap()
}

/// Each operation on its own: inserts (a bot's read stored and not counted), a flip of
/// `counted`, a move to another article, deletes (the second `NotFound`, nothing changed), a
/// read of an article that does not exist (`NotFound`, no row), a move to one (`NotFound`,
/// nothing changed), and the recount of a drift, which folds the slots into slot 0.
pub async fn slotted_cache_counts_inserts_updates_and_deletes<C: Client>(client: &C)
where
    NewRead: SlottedCounterCacheOn<ct_articles::views, DbOf<C::Db>>,
    Article: SlottedOn<ct_articles::views, DbOf<C::Db>>,
{
    let db = client.db();
    let (a, b) = (db.new_article(), db.new_article());
    let mut conn = client.conn().await;
    let mut keys = Vec::new();
    for counted in [true, true, true, false] {
        keys.push(
            C::done(read(a, counted).insert_counted(&mut conn))
                .await
                .unwrap(),
        );
    }
    keys.dedup();
    assert_eq!(keys.len(), 4, "each insert answers its own row's key");
    assert_eq!(
        (views::<C>(&mut conn, a).await, db.article_reads(a)),
        (3, (3, 4))
    );

    // The bot's read starts counting, then a counted one stops.
    C::done(read(a, true).update_counted(&mut conn, keys[3]))
        .await
        .unwrap();
    C::done(read(a, false).update_counted(&mut conn, keys[0]))
        .await
        .unwrap();
    assert_eq!(views::<C>(&mut conn, a).await, 3);
    // A move to `b`, counted there.
    C::done(read(b, true).update_counted(&mut conn, keys[1]))
        .await
        .unwrap();
    assert_eq!(
        (
            views::<C>(&mut conn, a).await,
            views::<C>(&mut conn, b).await
        ),
        (2, 1)
    );
    assert_eq!((db.article_reads(a), db.article_reads(b)), ((2, 3), (1, 1)));

    // Deleted once; the second delete finds nothing and changes nothing.
    C::done(NewRead::delete_counted(&mut conn, keys[2]))
        .await
        .unwrap();
    assert!(matches!(
        C::done(NewRead::delete_counted(&mut conn, keys[2])).await,
        Err(AtomicError::NotFound)
    ));
    // An uncounted read's delete changes nothing.
    C::done(NewRead::delete_counted(&mut conn, keys[0]))
        .await
        .unwrap();
    assert_eq!(views::<C>(&mut conn, a).await, 1);
    assert_eq!(db.article_reads(a), (1, 1));

    // No such article: refused, no row; a move there: refused, nothing changed.
    let missing = next_id();
    assert!(matches!(
        C::done(read(missing, true).insert_counted(&mut conn)).await,
        Err(AtomicError::NotFound)
    ));
    assert_eq!(db.article_reads(missing), (0, 0));
    assert!(matches!(
        C::done(read(missing, true).update_counted(&mut conn, keys[3])).await,
        Err(AtomicError::NotFound)
    ));
    assert_eq!(
        (db.article_reads(a), views::<C>(&mut conn, a).await),
        ((1, 1), 1)
    );

    // A read written behind the cache's back: the recount finds it and folds the slots.
    db.raw_read(a);
    let recounted = C::done(NewRead::recount_views(&mut conn, &[a, b, a, missing]))
        .await
        .unwrap();
    assert_eq!(
        recounted,
        vec![Recounted {
            key: a,
            was: 1,
            now: 2
        }]
    );
    assert_eq!(db.view_slots(a), vec![(0, 2)]);
    assert!(C::done(Reads::new().recount(&mut conn, &[a, b]))
        .await
        .unwrap()
        .is_empty());
}

/// What one storm worker did. (A row offered twice can be moved by one worker while another
/// holds its old article: the workers cannot know where each row ends, the database can, so
/// the check is the slots against `COUNT(*)`, and the rows against the inserts and deletes.)
#[derive(Default)]
struct SlotStormLog {
    inserted: usize,
    deleted: usize,
    /// Deletes of a row another worker deleted first.
    missed: usize,
    /// Gave up under PostgreSQL SERIALIZABLE (nothing happened).
    conflicts: usize,
}

/// How many operations each storm worker runs.
const STORM_OPS: usize = 40;

/// 16 workers insert, delete, flip and move reads over four articles (the first one hot),
/// deletes racing another worker's delete of the same row, while CPU-bound threads run beside
/// them. After the storm every article's slots add up to `COUNT(*)` of its counted reads, and
/// the rows are the inserts less the deletes that removed one.
pub async fn slotted_cache_storm_is_exact<C: Client>(client: &C)
where
    NewRead: SlottedCounterCacheOn<ct_articles::views, DbOf<C::Db>>,
    Article: SlottedOn<ct_articles::views, DbOf<C::Db>>,
{
    slotted_storm(client, false).await;
}

/// The storm with a 17th worker recounting the four articles over and over; the articles
/// start wrong (a read behind the cache's back, a slot of 1,000). The recounter stops when
/// half the storm workers are done, so the rest of the storm is not repaired by it: after the
/// storm every article is exact, and a last recount finds nothing.
pub async fn slotted_cache_storm_with_recounts_is_exact<C: Client>(client: &C)
where
    NewRead: SlottedCounterCacheOn<ct_articles::views, DbOf<C::Db>>,
    Article: SlottedOn<ct_articles::views, DbOf<C::Db>>,
{
    slotted_storm(client, true).await;
}

/// The storm; `recount`: the articles start wrong and a recounter runs beside it.
async fn slotted_storm<C: Client>(client: &C, recount: bool)
where
    NewRead: SlottedCounterCacheOn<ct_articles::views, DbOf<C::Db>>,
    Article: SlottedOn<ct_articles::views, DbOf<C::Db>>,
{
    let db = client.db();
    let articles: Vec<i64> = (0..4).map(|_| db.new_article()).collect();
    let mut conn = client.conn().await;
    if recount {
        for &article in &articles {
            db.raw_read(article);
            C::done(Article::increment_views(&mut conn, article, 1000))
                .await
                .unwrap();
        }
    }
    drop(conn);
    let seed = RandomState::new().hash_one(std::time::SystemTime::now());
    // Rows any worker may delete or move: (key, article, counted).
    let shared: Mutex<Vec<(i64, i64, bool)>> = Mutex::new(Vec::new());
    let done = AtomicUsize::new(0);
    let results: Vec<(SlotStormLog, usize)> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(
            client,
            KEYED_THREADS + usize::from(recount),
            async |worker, conn| {
                if worker == KEYED_THREADS {
                    return (
                        SlotStormLog::default(),
                        recounter::<C>(client, conn, &articles, &done).await,
                    );
                }
                let log = storm_worker::<C>(worker, conn, &articles, seed, &shared).await;
                done.fetch_add(1, Ordering::SeqCst);
                (log, 0)
            },
        )
    });
    let rounds: usize = results.iter().map(|(_, r)| r).sum();
    assert_eq!(rounds >= 1, recount, "the recounter ran {rounds} rounds");
    let conflicts: usize = results.iter().map(|(log, _)| log.conflicts).sum();
    if conflicts > 0 {
        assert!(
            serializable_postgres(client),
            "{conflicts} conflicts outside SERIALIZABLE"
        );
    }
    let missed: usize = results.iter().map(|(log, _)| log.missed).sum();
    let inserted: usize = results.iter().map(|(log, _)| log.inserted).sum();
    let deleted: usize = results.iter().map(|(log, _)| log.deleted).sum();
    assert!(
        deleted > 0,
        "the storm deleted ({missed} found their row gone)"
    );
    let mut conn = client.conn().await;
    let mut rows = 0;
    for &article in &articles {
        let counter = views::<C>(&mut conn, article).await;
        let (counted, all) = db.article_reads(article);
        rows += all;
        assert_eq!(
            counter,
            counted,
            "{}: article {article}: the slots and COUNT(*) of its counted reads disagree",
            client.name()
        );
    }
    assert_eq!(
        rows,
        i64::from(recount) * articles.len() as i64 + inserted as i64 - deleted as i64,
        "{}: rows against inserts less deletes",
        client.name()
    );
    assert!(C::done(Reads::new().recount(&mut conn, &articles))
        .await
        .unwrap()
        .is_empty());
}

/// Recounts `articles` until half the storm workers are done (at least once); how many
/// rounds.
async fn recounter<C: Client>(
    client: &C,
    conn: &mut C::Conn,
    articles: &[i64],
    done: &AtomicUsize,
) -> usize
where
    NewRead: SlottedCounterCacheOn<ct_articles::views, DbOf<C::Db>>,
    Article: SlottedOn<ct_articles::views, DbOf<C::Db>>,
{
    let mut rounds = 0;
    loop {
        match C::done(Reads::new().recount(conn, articles)).await {
            Ok(_) => rounds += 1,
            Err(AtomicError::Conflict { .. }) if serializable_postgres(client) => {}
            Err(e) => panic!("{}: recount: {e}", client.name()),
        }
        if rounds > 0 && done.load(Ordering::SeqCst) >= KEYED_THREADS / 2 {
            return rounds;
        }
    }
}

/// Picks one of four articles, the first (hot) one about two times in three.
fn pick(rng: &mut StdRng, articles: &[i64]) -> i64 {
    if rng.random_bool(0.6) {
        articles[0]
    } else {
        articles[rng.random_range(0..articles.len())]
    }
}

/// One storm worker: inserts (one in five not counted), and on rows from the shared pool
/// deletes, flips and moves. A row it deletes or changes leaves the pool; an inserted row is
/// offered twice half the time, so two workers race on it.
async fn storm_worker<C: Client>(
    worker: usize,
    conn: &mut C::Conn,
    articles: &[i64],
    seed: u64,
    shared: &Mutex<Vec<(i64, i64, bool)>>,
) -> SlotStormLog
where
    NewRead: SlottedCounterCacheOn<ct_articles::views, DbOf<C::Db>>,
    Article: SlottedOn<ct_articles::views, DbOf<C::Db>>,
{
    let cache = Reads::new();
    let mut rng = StdRng::seed_from_u64(seed ^ worker as u64);
    let mut log = SlotStormLog::default();
    for _ in 0..STORM_OPS {
        let target = if rng.random_bool(0.5) {
            let mut pool = shared.lock().unwrap();
            let len = pool.len();
            (len > 0).then(|| pool.swap_remove(rng.random_range(0..len)))
        } else {
            None
        };
        let outcome = match target {
            Some((key, article, counted)) if rng.random_bool(0.5) => {
                match C::done(cache.delete(conn, key)).await {
                    Ok(()) => {
                        log.deleted += 1;
                        Ok(())
                    }
                    Err(e) => Err((e, Some((key, article, counted)))),
                }
            }
            Some((key, article, counted)) => {
                // A flip of `counted`, or a move to another article.
                let to = if rng.random_bool(0.5) {
                    read(article, !counted)
                } else {
                    read(pick(&mut rng, articles), counted)
                };
                match C::done(cache.update(conn, key, &to)).await {
                    Ok(()) => {
                        shared
                            .lock()
                            .unwrap()
                            .push((key, to.article_id, to.counted));
                        Ok(())
                    }
                    Err(e) => Err((e, Some((key, article, counted)))),
                }
            }
            None => {
                let new = read(pick(&mut rng, articles), !rng.random_bool(0.2));
                match C::done(cache.insert(conn, &new)).await {
                    Ok(key) => {
                        log.inserted += 1;
                        let mut pool = shared.lock().unwrap();
                        pool.push((key, new.article_id, new.counted));
                        if rng.random_bool(0.5) {
                            pool.push((key, new.article_id, new.counted));
                        }
                        Ok(())
                    }
                    Err(e) => Err((e, None)),
                }
            }
        };
        match outcome {
            Ok(()) => {}
            // Another worker deleted the row first (it was offered twice), or moved it: a
            // stale pool entry. Nothing changed.
            Err((AtomicError::NotFound, Some(_))) => log.missed += 1,
            Err((e @ AtomicError::Conflict { .. }, row)) => {
                if log.conflicts == 0 {
                    eprintln!("worker {worker}: {e}");
                }
                log.conflicts += 1;
                if let Some(row) = row {
                    shared.lock().unwrap().push(row);
                }
            }
            Err((e, _)) => panic!("worker {worker}: {e}"),
        }
    }
    log
}
