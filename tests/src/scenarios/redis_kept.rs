//! What a `RedisCounter` flush cannot write: refused input, rows that refuse their count (each
//! reported and kept in Redis while the batch's other keys are written), and keys without rows
//! (reported, then dropped, kept or inserted, as the counter says).

use std::collections::BTreeMap;

use counter_core::{AtomicError, AtomicFieldOn, FlushReport, NewRow, RedisKey, UnknownKeys};

use super::redis::{daily_rows, fresh_views, harness_sql, open_batches, rows};
use crate::client::Client;
use crate::db::{next_id, redis_connection, DbOf, TestDb};
use crate::models::DailyView;
use crate::schema::ct_daily_views;

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! redis_kept_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            redis_refuses_bad_input_and_keeps_what_it_cannot_write,
            redis_keeps_thousands_of_keys_without_rows,
            redis_unknown_keys_dropped_kept_or_inserted,
        );
    };
}

/// Bad input: negative amounts are refused (by `add_all` before anything is sent); a row that
/// cannot take its count and a field nobody should have written are reported by the flush and
/// kept, a key with no row is reported as unknown and kept (`UnknownKeys::Keep`), while the
/// other keys are written; `current` is the row plus what is pending; a flush inside the
/// caller's transaction is refused.
pub async fn redis_refuses_bad_input_and_keeps_what_it_cannot_write<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let page = next_id();
    daily_rows(db, page, 1..=2, 0);
    daily_rows(db, page, [4], i64::MAX - 5);
    let (views, prefix) = fresh_views();
    let views = views.unknown_keys(UnknownKeys::Keep);
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
    assert_eq!(report.unknown, vec![((page, 3), 9)]);
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
    assert_eq!(report.unknown, vec![]);
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
        .pop()
        .expect("a batch");
    let applied = C::done(views.apply(&mut conn, &mut redis, &batch))
        .await
        .unwrap();
    assert_eq!(applied.unknown, vec![((page, 9), 5)]);
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

/// 8,000 keys without rows in one batch under `UnknownKeys::Keep`: all reported and kept (the
/// ledger's list of them is over 100 KB, past MySQL's `TEXT`), all still pending after the
/// flush, and `discard` drops one.
pub async fn redis_keeps_thousands_of_keys_without_rows<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
{
    const KEYS: i32 = 8_000;
    let db = client.db();
    let page = next_id();
    let (views, prefix) = fresh_views();
    let views = views.unknown_keys(UnknownKeys::Keep);
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
    assert_eq!(report.kept.len(), 0);
    let unknown: Vec<((i64, i32), i64)> = (0..KEYS)
        .map(|day| ((page, day), i64::from(day % 7) + 1))
        .collect();
    assert_eq!(report.unknown, unknown);
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
/// SQL that makes the update of `(page, 2)` fail with a message that says "closed": a trigger,
/// a `CHECK`; and the SQL that undoes it) is kept and
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
    let closed =
        |e: &AtomicError| matches!(e, AtomicError::Database(e) if e.to_string().contains("closed"));
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

/// Keys without a row, each way a counter can treat them, beside a key with a row:
///
/// - `UnknownKeys::Drop` (the default): reported once with its count, no row created, the
///   count gone from Redis; the next flush reports nothing.
/// - `UnknownKeys::Keep`: reported by each flush, the count pending, until the row exists;
///   then written.
/// - `inserting(new_row)`: the row inserted with the count; reported as written.
pub async fn redis_unknown_keys_dropped_kept_or_inserted<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>
        + NewRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let page = next_id();
    daily_rows(db, page, [1], 10);
    let mut redis = client.redis().await;
    let mut conn = client.conn().await;

    // Drop: reported once, then forgotten.
    let (views, prefix) = fresh_views();
    C::done(views.add_all(&mut redis, [((page, 1), 2), ((page, 2), 3), ((page, 3), 4)]))
        .await
        .unwrap();
    let report = C::done(views.flush(&mut conn, &mut redis)).await.unwrap();
    assert_eq!(report.written, vec![((page, 1), 2)]);
    assert_eq!(report.unknown, vec![((page, 2), 3), ((page, 3), 4)]);
    assert!(report.kept.is_empty(), "{:?}", report.kept);
    assert_eq!(rows(db, page), BTreeMap::from([(1, 12)]), "no phantom row");
    for day in [2, 3] {
        let pending = C::done(views.pending(&mut redis, &(page, day))).await;
        assert_eq!(pending.unwrap(), 0);
    }
    let again = C::done(views.flush(&mut conn, &mut redis)).await.unwrap();
    assert_eq!(
        (again.applied, again.unknown.len()),
        (0, 0),
        "reported once"
    );
    assert_eq!(
        open_batches(&mut redis_connection(), &prefix),
        Vec::<String>::new()
    );

    // Keep: reported by every flush while pending; written once the row exists.
    let (views, _) = fresh_views();
    let views = views.unknown_keys(UnknownKeys::Keep);
    C::done(views.add_all(&mut redis, [((page, 1), 1), ((page, 4), 5)]))
        .await
        .unwrap();
    for _ in 0..2 {
        let report = C::done(views.flush(&mut conn, &mut redis)).await.unwrap();
        assert_eq!(report.unknown, vec![((page, 4), 5)]);
        assert!(report.kept.is_empty(), "{:?}", report.kept);
        let pending = C::done(views.pending(&mut redis, &(page, 4))).await;
        assert_eq!(pending.unwrap(), 5);
    }
    assert_eq!(rows(db, page), BTreeMap::from([(1, 13)]), "no phantom row");
    daily_rows(db, page, [4], 100);
    let report = C::done(views.flush(&mut conn, &mut redis)).await.unwrap();
    assert_eq!(
        (report.written, report.unknown),
        (vec![((page, 4), 5)], vec![])
    );
    assert_eq!(rows(db, page), BTreeMap::from([(1, 13), (4, 105)]));

    // Inserting: the row is created with the count.
    let (views, _) = fresh_views();
    let views = views.inserting(|&(page_id, day): &(i64, i32), views| DailyView {
        page_id,
        day,
        views,
    });
    C::done(views.add_all(&mut redis, [((page, 1), 1), ((page, 5), 6), ((page, 6), 7)]))
        .await
        .unwrap();
    C::done(views.add(&mut redis, &(page, 5), 2)).await.unwrap();
    let report = C::done(views.flush(&mut conn, &mut redis)).await.unwrap();
    assert_eq!(
        report.written,
        vec![((page, 1), 1), ((page, 5), 8), ((page, 6), 7)]
    );
    assert!(
        report.unknown.is_empty() && report.kept.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        rows(db, page),
        BTreeMap::from([(1, 14), (4, 105), (5, 8), (6, 7)])
    );
}
