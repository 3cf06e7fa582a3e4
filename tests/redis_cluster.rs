//! `RedisCounter` on a real Redis Cluster (3 masters, 3 replicas, append-only files with
//! fsync always), started by the test on free loopback ports: a sharded counter spreads over
//! every master and counts exactly under concurrent adders and flushers, blocking and async;
//! a manual failover mid-load costs typed errors only: nothing doubled, nothing acknowledged
//! lost; a master killed mid-load doubles nothing (both with blocking and with async cluster
//! connections). The database is SQLite. They need `redis-server` and `redis-cli`
//! (`.ci/env.sh` installs them).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use counter_core::AtomicError;
use counter_tests::redis_cluster::PrivateCluster;
use counter_tests::scenarios::harness::{beside_busy_threads, BUSY_THREADS};
use counter_tests::scenarios::{daily_rows, rows, Views, SUITE_REDIS_TIMEOUT};
use counter_tests::{next_id, Sqlite, TestDb};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::AsyncConnection;
use rand::Rng;

/// Shards of the counters here: 16 over 3 masters.
const SHARDS: u16 = 16;
/// Keys (days of one page): day 0 is hot.
const DAYS: i32 = 40;

/// A sharded counter on a fresh prefix, and the prefix.
fn sharded_views() -> (Views, String) {
    let prefix = format!("cluster-{}", next_id());
    let views = Views::new(&prefix)
        .shards(SHARDS)
        .timeout(SUITE_REDIS_TIMEOUT);
    (views, prefix)
}

/// The pending hash of each shard of `prefix`.
fn pending_keys(prefix: &str) -> Vec<String> {
    (0..SHARDS)
        .map(|i| match i {
            0 => format!("{{{prefix}}}:pending"),
            i => format!("{{{prefix}#{i}}}:pending"),
        })
        .collect()
}

/// The database and the rows of `page` for every day, at 0.
fn database() -> (Sqlite, i64) {
    let db = Sqlite::open();
    let page = next_id();
    daily_rows(&db, page, 0..DAYS, 0);
    (db, page)
}

/// A day, day 0 half the time.
fn some_day(rng: &mut impl Rng) -> i32 {
    if rng.random_bool(0.5) {
        0
    } else {
        rng.random_range(0..DAYS)
    }
}

/// Counts an adder out when dropped, however it ends.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// Every shard's batches and pending counts are gone.
fn nothing_left(cluster: &PrivateCluster, prefix: &str) {
    let mut redis = cluster
        .client(SUITE_REDIS_TIMEOUT)
        .get_connection()
        .unwrap();
    for pending in pending_keys(prefix) {
        let batches = pending.replace(":pending", ":batches");
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&pending)
            .query(&mut redis)
            .unwrap();
        let open: i64 = redis::cmd("SCARD").arg(&batches).query(&mut redis).unwrap();
        assert_eq!((exists, open), (0, 0), "{pending}");
    }
}

#[test]
fn a_sharded_counter_spreads_over_every_master() {
    let cluster = PrivateCluster::start();
    // A fixed prefix: which master serves a tag depends on its hash slot, so a random prefix
    // would leave a master without a shard in about 1 run of 200 ((2/3)^16 per master).
    // `--cluster create` splits the slots evenly in three, so this is the same every run.
    let mut per_master = BTreeMap::<u16, usize>::new();
    for key in pending_keys("article-likes") {
        *per_master.entry(cluster.master_of(&key)).or_default() += 1;
    }
    assert_eq!(
        per_master.len(),
        3,
        "16 shards over 3 masters: {per_master:?}"
    );
}

#[test]
fn blocking_adders_and_flushers_on_a_cluster_are_exact() {
    let cluster = PrivateCluster::start();
    let (db, page) = database();
    let (views, prefix) = sharded_views();
    let client = cluster.client(SUITE_REDIS_TIMEOUT);
    const ADDERS: usize = 8;
    const ADDS: usize = 400;
    let added = Mutex::new(BTreeMap::<i32, i64>::new());
    let adders_left = AtomicUsize::new(ADDERS);
    let flushes = AtomicUsize::new(0);
    beside_busy_threads(BUSY_THREADS, || {
        std::thread::scope(|s| {
            for worker in 0..ADDERS {
                let (views, client, added, left) = (&views, &client, &added, &adders_left);
                s.spawn(move || {
                    // The flushers stop when every adder is done, or has panicked.
                    let _done = Done(left);
                    let mut redis = client.get_connection().unwrap();
                    let mut rng = rand::rng();
                    let mut mine = BTreeMap::<i32, i64>::new();
                    for i in 0..ADDS {
                        let n = rng.random_range(1..=3);
                        let day = some_day(&mut rng);
                        match i % 10 {
                            // An add_once, retried once with its id: counted once.
                            0 => {
                                let id = format!("w{worker}-{i}");
                                views.add_once(&mut redis, &(page, day), n, &id).unwrap();
                                views.add_once(&mut redis, &(page, day), n, &id).unwrap();
                                *mine.entry(day).or_default() += n;
                            }
                            // Three keys at once (usually three shards).
                            1 => {
                                let days = [day, (day + 7) % DAYS, (day + 13) % DAYS];
                                views
                                    .add_all(&mut redis, days.map(|d| ((page, d), n)))
                                    .unwrap();
                                for d in days {
                                    *mine.entry(d).or_default() += n;
                                }
                            }
                            _ => {
                                views.add(&mut redis, &(page, day), n).unwrap();
                                *mine.entry(day).or_default() += n;
                            }
                        }
                    }
                    let mut added = added.lock().unwrap();
                    for (day, n) in mine {
                        *added.entry(day).or_default() += n;
                    }
                });
            }
            for _ in 0..2 {
                let (views, client, db, left, flushes) =
                    (&views, &client, &db, &adders_left, &flushes);
                s.spawn(move || {
                    let mut redis = client.get_connection().unwrap();
                    let mut conn = db.conn();
                    while left.load(Ordering::Acquire) > 0 {
                        let report = views.flush(&mut conn, &mut redis).unwrap();
                        assert!(report.kept.is_empty(), "{:?}", report.kept);
                        flushes.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
    });
    let mut redis = client.get_connection().unwrap();
    views.flush(&mut db.conn(), &mut redis).unwrap();
    let added = added.into_inner().unwrap();
    let stored: BTreeMap<i32, i64> = rows(&db, page)
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .collect();
    assert_eq!(stored, added);
    let total: i64 = added.values().sum();
    assert!(total >= (ADDERS * ADDS) as i64, "{total}");
    assert!(flushes.load(Ordering::Relaxed) > 0);
    nothing_left(&cluster, &prefix);
}

#[test]
fn async_adders_and_flushers_on_a_cluster_are_exact() {
    let cluster = PrivateCluster::start();
    let (db, page) = database();
    let (views, prefix) = sharded_views();
    let client = cluster.client(SUITE_REDIS_TIMEOUT);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    const ADDERS: usize = 8;
    const ADDS: usize = 300;
    let views = std::sync::Arc::new(views);
    let added = beside_busy_threads(BUSY_THREADS, || {
        runtime.block_on(async {
            let left = std::sync::Arc::new(AtomicUsize::new(ADDERS));
            let mut adders = Vec::new();
            for worker in 0..ADDERS {
                let (views, left) = (views.clone(), left.clone());
                let mut redis = client.get_async_connection().await.unwrap();
                adders.push(tokio::spawn(async move {
                    let mut mine = BTreeMap::<i32, i64>::new();
                    for i in 0..ADDS {
                        let (n, day) = {
                            let mut rng = rand::rng();
                            (rng.random_range(1..=3), some_day(&mut rng))
                        };
                        if i % 10 == 0 {
                            let id = format!("w{worker}-{i}");
                            views
                                .add_once(&mut redis, &(page, day), n, &id)
                                .await
                                .unwrap();
                            views
                                .add_once(&mut redis, &(page, day), n, &id)
                                .await
                                .unwrap();
                        } else {
                            views.add(&mut redis, &(page, day), n).await.unwrap();
                        }
                        *mine.entry(day).or_default() += n;
                    }
                    left.fetch_sub(1, Ordering::Release);
                    mine
                }));
            }
            let mut flushers = Vec::new();
            for _ in 0..2 {
                let (views, left) = (views.clone(), left.clone());
                let mut redis = client.get_async_connection().await.unwrap();
                let path = db.path().to_str().unwrap().to_owned();
                flushers.push(tokio::spawn(async move {
                    let mut conn =
                        SyncConnectionWrapper::<diesel::SqliteConnection>::establish(&path)
                            .await
                            .unwrap();
                    let mut flushes = 0;
                    while left.load(Ordering::Acquire) > 0 {
                        views.flush(&mut conn, &mut redis).await.unwrap();
                        flushes += 1;
                    }
                    flushes
                }));
            }
            let mut added = BTreeMap::<i32, i64>::new();
            for adder in adders {
                for (day, n) in adder.await.unwrap() {
                    *added.entry(day).or_default() += n;
                }
            }
            for flusher in flushers {
                assert!(flusher.await.unwrap() > 0);
            }
            let mut redis = client.get_async_connection().await.unwrap();
            let path = db.path().to_str().unwrap();
            let mut conn = SyncConnectionWrapper::<diesel::SqliteConnection>::establish(path)
                .await
                .unwrap();
            views.flush(&mut conn, &mut redis).await.unwrap();
            added
        })
    });
    let stored: BTreeMap<i32, i64> = rows(&db, page)
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .collect();
    assert_eq!(stored, added);
    nothing_left(&cluster, &prefix);
}

/// A manual failover (`CLUSTER FAILOVER` on the replica of the master holding the hot key's
/// shard) while 6 threads add and one flushes, with CPU-bound threads beside them.
/// `add_once` calls (days 0–9), retried with their id until `Ok`, end exactly counted; plain
/// adds (days 10–19) end between what was acknowledged and that plus what failed (a failed
/// add may have been counted); the flusher's errors are typed and its batches are all
/// settled in the end.
#[test]
fn a_failover_mid_load_doubles_nothing_and_loses_nothing_acknowledged() {
    beside_busy_threads(BUSY_THREADS, || {
        failover_under_load(Failover::Manual, &Side::Blocking)
    });
}

/// The same failover with async cluster connections (`redis::cluster_async`), which follow a
/// moved slot and resend on their own, differently from the blocking ones.
#[test]
fn async_a_failover_mid_load_doubles_nothing_and_loses_nothing_acknowledged() {
    beside_busy_threads(BUSY_THREADS, || {
        failover_under_load(Failover::Manual, &Side::asynchronous())
    });
}

/// The hot shard's master killed (`SIGKILL`) mid-load: its replica takes over once the
/// cluster sees it gone (3 s). Replication is asynchronous, so an add the master acknowledged
/// just before dying may be lost (counted, reported); nothing may be counted twice: per key,
/// `add_once` totals at most what was acknowledged, plain adds at most acknowledged + failed.
#[test]
fn a_master_killed_mid_load_doubles_nothing() {
    beside_busy_threads(BUSY_THREADS, || {
        failover_under_load(Failover::Kill, &Side::Blocking)
    });
}

/// The same kill with async cluster connections.
#[test]
fn async_a_master_killed_mid_load_doubles_nothing() {
    beside_busy_threads(BUSY_THREADS, || {
        failover_under_load(Failover::Kill, &Side::asynchronous())
    });
}

/// How the failover scenario calls the counter: written once, each thread's calls go through
/// blocking cluster connections, or through async ones, each call awaited with `block_on` on
/// one shared runtime (which also drives the connections' own tasks).
enum Side {
    Blocking,
    Async(tokio::runtime::Runtime),
}

/// One thread's cluster connection: blocking, or async with the runtime that awaits its calls.
enum Conn<'rt> {
    Blocking(Box<redis::cluster::ClusterConnection>),
    Async(
        &'rt tokio::runtime::Runtime,
        redis::cluster_async::ClusterConnection,
    ),
}

impl Side {
    fn asynchronous() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Side::Async(runtime)
    }

    fn connect(&self, client: &redis::cluster::ClusterClient) -> redis::RedisResult<Conn<'_>> {
        Ok(match self {
            Side::Blocking => Conn::Blocking(Box::new(client.get_connection()?)),
            Side::Async(rt) => Conn::Async(rt, rt.block_on(client.get_async_connection())?),
        })
    }
}

impl Conn<'_> {
    fn add(&mut self, views: &Views, key: &(i64, i32), n: i64) -> Result<i64, AtomicError> {
        match self {
            Conn::Blocking(redis) => views.add(&mut **redis, key, n),
            Conn::Async(rt, redis) => rt.block_on(views.add(redis, key, n)),
        }
    }

    fn add_once(
        &mut self,
        views: &Views,
        key: &(i64, i32),
        n: i64,
        id: &str,
    ) -> Result<i64, AtomicError> {
        match self {
            Conn::Blocking(redis) => views.add_once(&mut **redis, key, n, id),
            Conn::Async(rt, redis) => rt.block_on(views.add_once(redis, key, n, id)),
        }
    }

    /// A flush on a database connection of its own; it must keep nothing.
    fn flush(&mut self, views: &Views, db: &Sqlite) -> Result<(), AtomicError> {
        let report = match self {
            Conn::Blocking(redis) => views.flush(&mut db.conn(), &mut **redis)?,
            Conn::Async(rt, redis) => {
                let path = db.path().to_str().unwrap();
                rt.block_on(async {
                    let mut sqlite =
                        SyncConnectionWrapper::<diesel::SqliteConnection>::establish(path)
                            .await
                            .expect("an async SQLite connection");
                    views.flush(&mut sqlite, redis).await
                })?
            }
        };
        assert!(report.kept.is_empty(), "kept: {:?}", report.kept);
        Ok(())
    }
}

/// How the hot shard's master goes.
#[derive(PartialEq)]
enum Failover {
    /// `CLUSTER FAILOVER` on its replica.
    Manual,
    /// `SIGKILL`.
    Kill,
}

fn failover_under_load(how: Failover, side: &Side) {
    let mut cluster = PrivateCluster::start();
    let (db, page) = database();
    let (views, prefix) = sharded_views();
    // Short replies, so calls caught by the move fail and are seen failing.
    let client = cluster.client(Duration::from_secs(2));
    let views = views.timeout(Duration::from_secs(2));
    let hot_shard = {
        // The shard of (page, 0), found as the counter does: the one whose pending hash
        // holds the key after an add.
        let mut redis = client.get_connection().unwrap();
        views.add(&mut redis, &(page, 0), 1).unwrap();
        pending_keys(&prefix)
            .into_iter()
            .find(|key| {
                let n: Option<i64> = redis::cmd("HGET")
                    .arg(key)
                    .arg(counter_core::RedisKey::field(&(page, 0)))
                    .query(&mut redis)
                    .unwrap();
                n.is_some()
            })
            .expect("the hot key's shard")
    };
    let old_master = cluster.master_of(&hot_shard);
    let replica = cluster.replica_of(old_master);

    let once_added = Mutex::new(BTreeMap::<i32, i64>::from([(0, 1)]));
    let (acked, failed) = (Mutex::new(0i64), Mutex::new(0i64));
    let errors = AtomicUsize::new(0);
    let flush_errors = AtomicUsize::new(0);
    let deadline = Instant::now()
        + match how {
            Failover::Manual => Duration::from_secs(4),
            Failover::Kill => Duration::from_secs(10),
        };
    std::thread::scope(|s| {
        for worker in 0..6 {
            let (views, client) = (&views, &client);
            let (once_added, acked, failed, errors) = (&once_added, &acked, &failed, &errors);
            s.spawn(move || {
                let mut redis = side.connect(client).unwrap();
                let mut rng = rand::rng();
                let mut i = 0;
                while Instant::now() < deadline {
                    i += 1;
                    let n = rng.random_range(1..=3);
                    if worker % 2 == 0 {
                        let day = if rng.random_bool(0.5) {
                            0
                        } else {
                            rng.random_range(0..10)
                        };
                        let id = format!("w{worker}-{i}");
                        let first = Instant::now();
                        loop {
                            match redis.add_once(views, &(page, day), n, &id) {
                                Ok(_) => break,
                                Err(AtomicError::Redis(e)) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                    assert!(
                                        first.elapsed() < Duration::from_secs(60),
                                        "add_once {id} failed for 60 s: {e}"
                                    );
                                    std::thread::sleep(Duration::from_millis(20));
                                    if let Ok(fresh) = side.connect(client) {
                                        redis = fresh;
                                    }
                                }
                                Err(other) => panic!("add_once: {other:?}"),
                            }
                        }
                        *once_added.lock().unwrap().entry(day).or_default() += n;
                    } else {
                        let day = rng.random_range(10..20);
                        match redis.add(views, &(page, day), n) {
                            Ok(_) => *acked.lock().unwrap() += n,
                            Err(AtomicError::Redis(_)) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                *failed.lock().unwrap() += n;
                                std::thread::sleep(Duration::from_millis(20));
                                if let Ok(fresh) = side.connect(client) {
                                    redis = fresh;
                                }
                            }
                            Err(other) => panic!("add: {other:?}"),
                        }
                    }
                }
            });
        }
        let (views, client, db, flush_errors) = (&views, &client, &db, &flush_errors);
        s.spawn(move || {
            let mut redis = side.connect(client).unwrap();
            while Instant::now() < deadline {
                match redis.flush(views, db) {
                    Ok(()) => {}
                    Err(AtomicError::Redis(_)) => {
                        flush_errors.fetch_add(1, Ordering::Relaxed);
                        if let Ok(fresh) = side.connect(client) {
                            redis = fresh;
                        }
                    }
                    Err(other) => panic!("flush: {other:?}"),
                }
                std::thread::sleep(Duration::from_millis(30));
            }
        });
        std::thread::sleep(Duration::from_millis(1_500));
        match how {
            Failover::Manual => cluster.fail_over_to(replica),
            Failover::Kill => {
                cluster.kill(old_master);
                cluster.wait_until_master(replica);
            }
        }
    });
    assert_eq!(
        cluster.master_of(&hot_shard),
        replica,
        "the replica took over"
    );
    if how == Failover::Manual {
        cluster.wait_until_stable();
    }
    // The last flush, retried while the cluster settles.
    let mut settled = None;
    for _ in 0..100 {
        let flushed = side
            .connect(&client)
            .map_err(AtomicError::from)
            .and_then(|mut redis| redis.flush(&views, &db));
        if flushed.is_ok() {
            settled = Some(());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(settled.is_some(), "the last flush never succeeded");
    let stored = rows(&db, page);
    let once_added = once_added.into_inner().unwrap();
    let once_stored: BTreeMap<i32, i64> = stored
        .range(0..10)
        .map(|(&d, &n)| (d, n))
        .filter(|&(_, n)| n > 0)
        .collect();
    let plain: i64 = stored.range(10..20).map(|(_, n)| n).sum();
    let (acked, failed) = (acked.into_inner().unwrap(), failed.into_inner().unwrap());
    match how {
        Failover::Manual => {
            assert_eq!(once_stored, once_added, "add_once: exactly once");
            assert!(
                acked <= plain && plain <= acked + failed,
                "plain adds: {acked} acknowledged, {failed} failed, {plain} stored"
            );
        }
        Failover::Kill => {
            for (day, n) in &once_stored {
                assert!(
                    *n <= once_added[day],
                    "day {day}: {n} > {}",
                    once_added[day]
                );
            }
            assert!(
                plain <= acked + failed,
                "plain adds: {acked} acknowledged, {failed} failed, {plain} stored"
            );
            eprintln!(
                "killed master: add_once lost {}, plain adds lost at least {}",
                once_added.values().sum::<i64>() - once_stored.values().sum::<i64>(),
                (acked - plain).max(0)
            );
        }
    }
    eprintln!(
        "failover: {} add errors, {} flush errors; add_once {} stored; plain adds {acked} \
         acknowledged, {failed} failed, {plain} stored",
        errors.load(Ordering::Relaxed),
        flush_errors.load(Ordering::Relaxed),
        once_added.values().sum::<i64>(),
    );
    nothing_left(&cluster, &prefix);
}
