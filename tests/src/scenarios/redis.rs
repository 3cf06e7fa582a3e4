//! `counter_core::RedisCounter`: adds in Redis, moved into the database exactly once, whatever
//! crashes. The counted field is `DailyView.views` (a composite key, `min = 0`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use counter_core::{AtomicError, AtomicFieldOn, FlushReport, RedisCounter, RedisKey};
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
            redis_refuses_bad_input_and_keeps_what_it_cannot_write,
            redis_keeps_thousands_of_keys_without_rows,
            redis_counts_every_spelling_of_a_case_insensitive_key,
        );
    };
}

/// The counter every Redis test uses, on a prefix of its own.
pub type Views = RedisCounter<DailyView, ct_daily_views::views>;

/// A counter on a fresh prefix, so tests (and runs) never share Redis keys.
pub fn fresh_views() -> (Views, String) {
    let prefix = format!("counter-tests-{}", next_id());
    (Views::new(&prefix), prefix)
}

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
    let again = Views::new(&prefix);
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

/// Bad input: negative amounts are refused (by `add_all` before anything is sent); keys with
/// no row, a row that cannot take its count, and a field nobody should have written are
/// reported by the flush and kept, while the other keys are written; `current` is the row plus
/// what is pending; a flush inside the caller's transaction is refused.
pub async fn redis_refuses_bad_input_and_keeps_what_it_cannot_write<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let page = next_id();
    daily_rows(db, page, 1..=2, 0);
    daily_rows(db, page, [4], i64::MAX - 5);
    let (views, prefix) = fresh_views();
    let mut redis = client.redis().await;
    let mut conn = client.conn().await;

    assert!(matches!(
        C::done(views.add(&mut redis, &(page, 1), -1)).await,
        Err(AtomicError::NegativeAmount { amount: -1 })
    ));
    assert!(matches!(
        C::done(views.add_all(&mut redis, [((page, 1), 4), ((page, 2), -2)])).await,
        Err(AtomicError::NegativeAmount { amount: -2 })
    ));
    assert_eq!(
        C::done(views.pending(&mut redis, &(page, 1)))
            .await
            .unwrap(),
        0
    );

    C::done(views.add_all(&mut redis, [((page, 1), 4), ((page, 2), 6), ((page, 3), 9)]))
        .await
        .unwrap();
    C::done(views.add(&mut redis, &(page, 4), 10))
        .await
        .unwrap();
    let hset = |redis: &mut redis::Connection, hash: &str, field: &str, value: &str| {
        redis::cmd("HSET")
            .arg(format!("{{{prefix}}}:{hash}"))
            .arg(field)
            .arg(value)
            .query::<()>(redis)
            .unwrap();
    };
    hset(&mut redis_connection(), "pending", "not-a-key", "3");
    // Another spelling of (page, 3), with a leading zero: it names no key, since two fields
    // for one key would overwrite each other in a batch.
    hset(
        &mut redis_connection(),
        "pending",
        &other_spelling(page),
        "2",
    );
    assert_eq!(
        C::done(views.current(&mut conn, &mut redis, &(page, 1)))
            .await
            .unwrap(),
        4
    );

    let report = C::done(views.flush(&mut conn, &mut redis)).await.unwrap();
    let written: BTreeMap<(i64, i32), i64> = report.written.iter().copied().collect();
    assert_eq!(written, BTreeMap::from([((page, 1), 4), ((page, 2), 6)]));
    let mut kept: Vec<String> = report
        .kept
        .iter()
        .map(|k| format!("{} {:?} {:?}", k.field, k.count, short(&k.error)))
        .collect();
    kept.sort();
    assert_eq!(kept, expected_kept(page));
    assert_eq!(
        rows(db, page),
        BTreeMap::from([(1, 4), (2, 6), (4, i64::MAX - 5)])
    );
    assert_eq!(
        C::done(views.pending(&mut redis, &(page, 3)))
            .await
            .unwrap(),
        9
    );
    assert_eq!(
        C::done(views.pending(&mut redis, &(page, 4)))
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        open_batches(&mut redis_connection(), &prefix),
        Vec::<String>::new()
    );

    // The row appears: the next flush writes the kept count; the others stay kept.
    daily_rows(db, page, [3], 100);
    let report = C::done(views.flush(&mut conn, &mut redis)).await.unwrap();
    assert_eq!(report.written, vec![((page, 3), 9)]);
    let still: Vec<&str> = report.kept.iter().map(|k| k.field.as_str()).collect();
    assert_eq!(
        still,
        [
            (page, 4).field().as_str(),
            &other_spelling(page),
            "not-a-key"
        ],
        "kept again: keys in order, then the fields that name none, sorted"
    );
    assert_eq!(rows(db, page)[&3], 109);
    assert_eq!(
        C::done(views.current(&mut conn, &mut redis, &(page, 3)))
            .await
            .unwrap(),
        109
    );
    assert!(matches!(
        C::done(views.current(&mut conn, &mut redis, &(page, 9))).await,
        Err(AtomicError::NotFound)
    ));

    // Inside the caller's transaction: refused, nothing taken.
    C::done(views.add(&mut redis, &(page, 1), 1)).await.unwrap();
    let refused = C::own_transaction(&mut conn, async |c| {
        Ok(C::done(views.flush(c, &mut redis)).await)
    })
    .await
    .unwrap();
    assert!(
        matches!(refused, Err(AtomicError::Unsupported { .. })),
        "{refused:?}"
    );
    assert_eq!(
        C::done(views.pending(&mut redis, &(page, 1)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        open_batches(&mut redis_connection(), &prefix),
        Vec::<String>::new()
    );
    let report: FlushReport<(i64, i32)> =
        C::done(views.flush(&mut conn, &mut redis)).await.unwrap();
    assert_eq!((report.recovered, report.applied), (0, 1));
    assert_eq!(rows(db, page)[&1], 5);

    // A kept count whose pending field a foreign writer made a non-integer meanwhile: the
    // finish cannot add it back, so it goes to the invalid hash; nothing fails half-way.
    C::done(views.add(&mut redis, &(page, 9), 5)).await.unwrap();
    let batch = C::done(views.take(&mut redis))
        .await
        .unwrap()
        .expect("a batch");
    let applied = C::done(views.apply(&mut conn, &mut redis, &batch))
        .await
        .unwrap();
    assert!(applied.kept.iter().any(|k| k.key == Some((page, 9))));
    hset(&mut redis_connection(), "pending", &(page, 9).field(), "x");
    C::done(views.settle(&mut conn, &mut redis, &batch))
        .await
        .unwrap();
    let invalid: Option<String> = redis::cmd("HGET")
        .arg(format!("{{{prefix}}}:invalid"))
        .arg((page, 9).field())
        .query(&mut redis_connection())
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("5"));
    assert_eq!(
        open_batches(&mut redis_connection(), &prefix),
        Vec::<String>::new()
    );
}

/// `(page, 3)` spelled with a leading zero in the page.
fn other_spelling(page: i64) -> String {
    let p = format!("0{page}");
    format!("{}:{p}1:3", p.len())
}

/// The kept fields of [`redis_refuses_bad_input_and_keeps_what_it_cannot_write`], sorted.
fn expected_kept(page: i64) -> Vec<String> {
    let p = page.to_string();
    let mut kept = vec![
        format!("{}:{p}1:3 Some(9) \"NotFound\"", p.len()),
        format!("{}:{p}1:4 Some(10) \"OutOfRange\"", p.len()),
        "not-a-key Some(3) \"Custom\"".to_owned(),
        format!("{} Some(2) \"Custom\"", other_spelling(page)),
    ];
    kept.sort();
    kept
}

/// The variant's name.
fn short(error: &AtomicError) -> &'static str {
    match error {
        AtomicError::NotFound => "NotFound",
        AtomicError::OutOfRange { .. } => "OutOfRange",
        AtomicError::Custom(_) => "Custom",
        _ => "other",
    }
}

/// 8,000 keys without rows in one batch: all kept (the ledger's list of them is over 100 KB,
/// past MySQL's `TEXT`), all still pending after the flush, and `discard` drops one.
pub async fn redis_keeps_thousands_of_keys_without_rows<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
{
    const KEYS: i32 = 8_000;
    let db = client.db();
    let page = next_id();
    let (views, prefix) = fresh_views();
    let mut redis = client.redis().await;
    C::done(views.add_all(
        &mut redis,
        (0..KEYS).map(|day| ((page, day), i64::from(day % 7) + 1)),
    ))
    .await
    .unwrap();
    let report = C::done(views.flush(&mut client.conn().await, &mut redis))
        .await
        .unwrap();
    assert_eq!((report.applied, report.written.len()), (1, 0));
    assert_eq!(report.kept.len(), KEYS as usize);
    assert!(report
        .kept
        .iter()
        .all(|k| matches!(k.error, AtomicError::NotFound)));
    for day in [0, 1, 4_321, KEYS - 1] {
        assert_eq!(
            C::done(views.pending(&mut redis, &(page, day)))
                .await
                .unwrap(),
            i64::from(day % 7) + 1
        );
    }
    assert_eq!(
        open_batches(&mut redis_connection(), &prefix),
        Vec::<String>::new()
    );
    assert_eq!(
        C::done(views.discard(&mut redis, &(page, 4_321)))
            .await
            .unwrap(),
        4_321 % 7 + 1
    );
    assert_eq!(
        C::done(views.pending(&mut redis, &(page, 4_321)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(views.discard(&mut redis, &(page, 4_321)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(rows(db, page), BTreeMap::new());
}

/// A key whose increment fails with a database error of its own (`refusal(page)` gives the
/// SQL that makes the update of `(page, 2)` fail, and the SQL that undoes it) is kept and
/// reported with that error while the batch's other keys are written. When it is the only key
/// of a batch, the flush still finishes (it is kept again), so the counter is never stuck:
/// adds to other keys meanwhile are written by the next flush.
pub fn redis_flush_keeps_a_key_its_row_refuses<B: TestDb>(refusal: impl Fn(i64) -> (String, String))
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<B>>,
{
    let db = B::open();
    let page = next_id();
    daily_rows(&db, page, 1..=3, 0);
    let (refuse, allow) = refusal(page);
    harness_sql(&db, &refuse, "the refusal");
    let (views, prefix) = fresh_views();
    let mut redis = redis_connection();
    views
        .add_all(&mut redis, [((page, 1), 4), ((page, 2), 5), ((page, 3), 6)])
        .unwrap();
    let report = views.flush(&mut db.conn(), &mut redis);
    let closed = |e: &AtomicError| matches!(e, AtomicError::Database(e) if e.to_string().contains("day 2 is closed"));
    let report = report.unwrap();
    assert_eq!(report.written, vec![((page, 1), 4), ((page, 3), 6)]);
    assert_eq!(report.kept.len(), 1);
    let kept = &report.kept[0];
    assert_eq!((kept.key, kept.count), (Some((page, 2)), Some(5)));
    assert!(closed(&kept.error), "{}", kept.error);
    assert_eq!(rows(&db, page), BTreeMap::from([(1, 4), (2, 0), (3, 6)]));
    assert_eq!(views.pending(&mut redis, &(page, 2)).unwrap(), 5);

    // Only the refused key in the batch: kept again, the batch finished, nothing stuck.
    let report = views.flush(&mut db.conn(), &mut redis).unwrap();
    assert_eq!(
        (report.applied, report.written.len(), report.kept.len()),
        (1, 0, 1)
    );
    assert!(closed(&report.kept[0].error), "{}", report.kept[0].error);
    assert_eq!(open_batches(&mut redis, &prefix), Vec::<String>::new());
    views.add(&mut redis, &(page, 3), 1).unwrap();
    let report = views.flush(&mut db.conn(), &mut redis).unwrap();
    assert_eq!(report.written, vec![((page, 3), 1)]);
    assert_eq!(rows(&db, page), BTreeMap::from([(1, 4), (2, 0), (3, 7)]));
    assert_eq!(views.pending(&mut redis, &(page, 2)).unwrap(), 5);

    harness_sql(&db, &allow, "undo the refusal");
    let report = views.flush(&mut db.conn(), &mut redis).unwrap();
    assert_eq!(
        (report.written, report.kept.len()),
        (vec![((page, 2), 5)], 0)
    );
    assert_eq!(rows(&db, page), BTreeMap::from([(1, 4), (2, 5), (3, 7)]));
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
    let counter = RedisCounter::<CkName, ck_texts::v>::new(&format!("counter-tests-{}", next_id()));
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
