//! `counter_core::RedisCounter`: adds in Redis, moved into the database exactly once, whatever
//! crashes. The counted field is `DailyView.views` (a composite key, `min = 0`). Also the
//! helpers every Redis scenario uses (here and in [`redis_kept`](super::redis_kept)).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use counter_core::{AtomicError, AtomicFieldOn, RedisCounter};
use diesel::connection::SimpleConnection;
use rand::{Rng, SeedableRng};

use crate::client::{on_n_workers, Client};
use crate::db::{next_id, redis_connection, settle, DbOf, TestDb};
use crate::models::{CkName, DailyView};
use crate::schema::{ck_texts, ct_daily_views};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! redis_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            redis_counts_every_add_exactly,
            redis_flush_crashed_after_each_step,
            redis_counts_every_spelling_of_a_case_insensitive_key,
            redis_flusher_flushes_on_interval_and_at_shutdown,
        );
    };
}

/// The counter every Redis test uses, on a prefix of its own.
pub type Views = RedisCounter<DailyView, ct_daily_views::views>;

/// A counter on a fresh prefix, so tests (and runs) never share Redis keys.
pub fn fresh_views() -> (Views, String) {
    let prefix = format!("counter-tests-{}", next_id());
    (Views::new(&prefix).timeout(SUITE_REDIS_TIMEOUT), prefix)
}

/// The scenarios' wait for a reply of the suite's Redis: 30 s, as the suite's connections
/// (`redis_async_config`), not the counter's 2 s default. The whole suite on the 2-core machine
/// has kept a reply waiting past 500 ms (`.ci/run`); what these scenarios test is what the
/// calls did. The outage tests (`tests/redis_outage.rs`) test the timeout itself.
pub const SUITE_REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Creates the rows `(page, day)` for `days`, each at `views`.
pub fn daily_rows<B: TestDb>(db: &B, page: i64, days: impl IntoIterator<Item = i32>, views: i64) {
    let values: Vec<String> = days
        .into_iter()
        .map(|day| format!("({page}, {day}, {views})"))
        .collect();
    harness_sql(
        db,
        &format!(
            "INSERT INTO ct_daily_views (page_id, day, views) VALUES {}",
            values.join(", ")
        ),
        "insert daily rows",
    );
}

/// Runs SQL of the harness itself through [`settle`]: under SERIALIZABLE even a plain `INSERT`
/// can fail because of the tests running beside it.
pub fn harness_sql<B: TestDb>(db: &B, sql: &str, what: &str) {
    let mut conn = db.conn();
    settle(|| conn.batch_execute(sql)).unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// The rows of `page` as `day -> views`.
pub fn rows<B: TestDb>(db: &B, page: i64) -> BTreeMap<i32, i64> {
    db.daily_views(&[page])
        .into_iter()
        .map(|(_, day, views)| (day, views))
        .collect()
}

/// The ids of the batches in Redis for `prefix` (none once every flush finished).
pub fn open_batches(redis: &mut redis::Connection, prefix: &str) -> Vec<String> {
    redis::cmd("SMEMBERS")
        .arg(format!("{{{prefix}}}:batches"))
        .query(redis)
        .expect("SMEMBERS")
}

/// 16 workers × 10,000 adds (1 to 3) over 20 keys while two more flush in a loop; then a
/// last flush. Every row holds exactly what was added, nothing is pending, and the flush
/// reports together wrote exactly the sum of the adds (so no count was applied twice).
pub async fn redis_counts_every_add_exactly<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
{
    const FLUSHERS: usize = 2;
    const ADDERS: usize = 16;
    const ADDS: usize = 10_000;
    const DAYS: i32 = 20;
    let db = client.db();
    let page = next_id();
    daily_rows(db, page, 0..DAYS, 0);
    let (views, prefix) = fresh_views();
    let adders_left = AtomicUsize::new(ADDERS);
    let results = on_n_workers(client, FLUSHERS + ADDERS, async |worker, conn| {
        let mut redis = client.redis().await;
        let mut added: BTreeMap<i32, i64> = BTreeMap::new();
        let mut written = 0_i128;
        if worker < FLUSHERS {
            let mut flushes = 0;
            while adders_left.load(Ordering::Acquire) > 0 || flushes == 0 {
                // Also under PostgreSQL SERIALIZABLE: the flush's transaction is READ
                // COMMITTED whatever the session's default, so flushers do not starve.
                let report = C::done(views.flush(conn, &mut redis))
                    .await
                    .expect("a flush");
                assert!(report.kept.is_empty(), "kept: {:?}", report.kept);
                written += report.total_written();
                flushes += 1;
            }
            return (added, written);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(worker as u64);
        for _ in 0..ADDS {
            let day = rng.random_range(0..DAYS);
            let n = rng.random_range(1..=3);
            let pending = C::done(views.add(&mut redis, &(page, day), n))
                .await
                .expect("an add");
            assert!(pending >= n, "pending {pending} after adding {n}");
            *added.entry(day).or_default() += n;
        }
        adders_left.fetch_sub(1, Ordering::AcqRel);
        (added, written)
    });
    let mut added: BTreeMap<i32, i64> = BTreeMap::new();
    let mut written = 0_i128;
    for (by_worker, wrote) in results {
        written += wrote;
        for (day, n) in by_worker {
            *added.entry(day).or_default() += n;
        }
    }
    let mut redis = client.redis().await;
    let last = C::done(views.flush(&mut client.conn().await, &mut redis))
        .await
        .expect("the last flush");
    let total: i64 = added.values().sum();
    assert_eq!(written + last.total_written(), i128::from(total));
    assert_eq!(rows(db, page), added);
    for day in 0..DAYS {
        assert_eq!(
            C::done(views.pending(&mut redis, &(page, day)))
                .await
                .unwrap(),
            0
        );
    }
    assert_eq!(
        open_batches(&mut redis_connection(), &prefix),
        Vec::<String>::new()
    );
}

/// A flush that stopped after each of its steps (the batch taken and never applied; applied
/// and committed but not finished), then a new counter on the same prefix (another process):
/// every row exact, nothing lost, nothing twice.
pub async fn redis_flush_crashed_after_each_step<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let page = next_id();
    daily_rows(db, page, 1..=3, 0);
    let (views, prefix) = fresh_views();
    let mut redis = client.redis().await;
    let mut conn = client.conn().await;

    // Taken, then the process died: the counts are only in the batch.
    C::done(views.add(&mut redis, &(page, 1), 5)).await.unwrap();
    C::done(views.add(&mut redis, &(page, 2), 7)).await.unwrap();
    let taken = C::done(views.take(&mut redis))
        .await
        .unwrap()
        .pop()
        .expect("a batch");
    assert_eq!(
        C::done(views.pending(&mut redis, &(page, 1)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(rows(db, page), BTreeMap::from([(1, 0), (2, 0), (3, 0)]));

    // Committed, then the process died before deleting the batch.
    C::done(views.add(&mut redis, &(page, 2), 1)).await.unwrap();
    C::done(views.add(&mut redis, &(page, 3), 4)).await.unwrap();
    let committed = C::done(views.take(&mut redis))
        .await
        .unwrap()
        .pop()
        .expect("a batch");
    let applied = C::done(views.apply(&mut conn, &mut redis, &committed))
        .await
        .unwrap();
    assert_eq!(applied.total_written(), 5);
    assert_eq!(rows(db, page), BTreeMap::from([(1, 0), (2, 1), (3, 4)]));
    let mut open = open_batches(&mut redis_connection(), &prefix);
    open.sort();
    let mut expected = vec![taken, committed];
    expected.sort();
    assert_eq!(open, expected);

    // Counts added meanwhile stay pending; a new counter (another process) settles both.
    C::done(views.add(&mut redis, &(page, 3), 10))
        .await
        .unwrap();
    let again = Views::new(&prefix).timeout(SUITE_REDIS_TIMEOUT);
    let report = C::done(again.flush(&mut conn, &mut redis)).await.unwrap();
    assert_eq!(report.recovered, 2);
    assert_eq!(report.applied, 2, "the taken batch and the new one");
    assert_eq!(report.total_written(), 12 + 10);
    assert_eq!(rows(db, page), BTreeMap::from([(1, 5), (2, 8), (3, 14)]));
    assert_eq!(
        open_batches(&mut redis_connection(), &prefix),
        Vec::<String>::new()
    );
    // Applying a settled batch again does nothing: it is gone from Redis.
    let replay = C::done(again.apply(&mut conn, &mut redis, &expected[0]))
        .await
        .unwrap();
    assert_eq!((replay.applied, replay.total_written()), (0, 0));
    assert_eq!(rows(db, page), BTreeMap::from([(1, 5), (2, 8), (3, 14)]));
}

/// The flusher's database connection is killed while its transaction waits for a row lock
/// (the ledger row and the first key already written in it): the flush fails, nothing of the
/// batch is in the database, and a flush on a new connection writes it exactly once.
/// `kill` runs on another thread while the flusher waits and kills the waiting session.
pub fn redis_flush_killed_mid_transaction<B: TestDb>(
    flusher: B::Conn,
    hold_row: impl Fn(i64, i32) -> String,
    kill: impl FnOnce(&B) + Send,
) where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<B>>,
{
    use diesel::connection::TransactionManager;
    use diesel::Connection;

    let db = B::open();
    let page = next_id();
    daily_rows(&db, page, 1..=3, 0);
    let (views, prefix) = fresh_views();
    let mut redis = redis_connection();
    for day in 1..=3 {
        views
            .add(&mut redis, &(page, day), 10 * i64::from(day))
            .unwrap();
    }
    let mut blocker = db.conn();
    <B::Conn as Connection>::TransactionManager::begin_transaction(&mut *blocker).unwrap();
    blocker.batch_execute(&hold_row(page, 2)).unwrap();
    let failed = std::thread::scope(|scope| {
        let flush = scope.spawn(|| {
            let mut flusher = flusher;
            let mut redis = redis_connection();
            views.flush(&mut flusher, &mut redis)
        });
        kill(&db);
        flush.join().expect("the flusher")
    });
    <B::Conn as Connection>::TransactionManager::rollback_transaction(&mut *blocker).unwrap();
    drop(blocker);
    let error = failed.expect_err("a flush whose connection was killed");
    assert_eq!(
        rows(&db, page),
        BTreeMap::from([(1, 0), (2, 0), (3, 0)]),
        "after {error}"
    );
    assert_eq!(open_batches(&mut redis, &prefix).len(), 1);
    let report = views.flush(&mut db.conn(), &mut redis).unwrap();
    assert_eq!((report.recovered, report.total_written()), (1, 60));
    assert_eq!(rows(&db, page), BTreeMap::from([(1, 10), (2, 20), (3, 30)]));
    assert_eq!(open_batches(&mut redis, &prefix), Vec::<String>::new());
}

/// A key the database compares case-insensitively (`ck_texts.name`: NOCASE, an ICU collation,
/// `utf8mb4_general_ci`): Redis keeps `name` and `NAME` as two fields, and a flush adds both
/// to the one row, each within the row's bound (`v` has `max = 100`), in key order.
pub async fn redis_counts_every_spelling_of_a_case_insensitive_key<C: Client>(client: &C)
where
    CkName: AtomicFieldOn<ck_texts::v, DbOf<C::Db>>,
{
    let db = client.db();
    let lower = format!("ci-{}", next_id());
    let upper = lower.to_uppercase();
    harness_sql(
        db,
        &format!("INSERT INTO ck_texts (name, v, w) VALUES ('{lower}', 0, 0)"),
        "the row",
    );
    let counter = RedisCounter::<CkName, ck_texts::v>::new(&format!("counter-tests-{}", next_id()))
        .timeout(SUITE_REDIS_TIMEOUT);
    let mut redis = client.redis().await;
    let mut conn = client.conn().await;

    C::done(counter.add(&mut redis, &lower, 3)).await.unwrap();
    C::done(counter.add(&mut redis, &upper, 4)).await.unwrap();
    let report = C::done(counter.flush(&mut conn, &mut redis)).await.unwrap();
    assert_eq!(report.written, vec![(upper.clone(), 4), (lower.clone(), 3)]);
    assert!(report.kept.is_empty(), "{:?}", report.kept);
    assert_eq!(
        C::done(CkName::current_v(&mut conn, lower.clone()))
            .await
            .expect("the row"),
        7
    );

    // 7 + 60 fits under 100, 67 + 60 does not: the second spelling's count is kept.
    C::done(counter.add(&mut redis, &lower, 60)).await.unwrap();
    C::done(counter.add(&mut redis, &upper, 60)).await.unwrap();
    let report = C::done(counter.flush(&mut conn, &mut redis)).await.unwrap();
    assert_eq!(report.written, vec![(upper.clone(), 60)]);
    assert_eq!(report.kept.len(), 1);
    assert_eq!(report.kept[0].key.as_deref(), Some(lower.as_str()));
    assert!(matches!(
        report.kept[0].error,
        AtomicError::OutOfRange { .. }
    ));
    assert_eq!(
        C::done(CkName::current_v(&mut conn, lower.clone()))
            .await
            .expect("the row"),
        67
    );
    assert_eq!(
        C::done(counter.pending(&mut redis, &lower)).await.unwrap(),
        60
    );
    assert_eq!(
        C::done(counter.pending(&mut redis, &upper)).await.unwrap(),
        0
    );
}
