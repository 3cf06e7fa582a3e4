//! `counter_core::Buffer`: in-memory adds, flushed in sorted batches; nothing lost when a
//! flush fails.

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use counter_core::{
    AtomicFieldOn, BackendOf, BlockingConnection, Buffer, FlushPolicy, NewRow, RawConnection,
};

use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};

use super::harness::{beside_busy_threads, BUSY_THREADS};
use crate::client::{on_n_workers, Client, TestBuffer};
use crate::db::{next_id, DbOf, TestDb};
use crate::models::DailyView;
use crate::schema::ct_daily_views;

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! buffer_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            buffer_counts_every_add,
            two_buffers_flush_overlapping_keys,
            panicking_new_row_keeps_the_counts,
        );
    };
}

/// This file's blocking-only scenarios as `#[test]`s for
/// [`blocking_tests!`](crate::blocking_tests).
#[macro_export]
macro_rules! buffer_blocking_tests {
    ($backend:ty) => {
        $crate::blocking_scenario_tests!($backend;
            dropped_buffer_flushes,
        );
    };
}

/// Threads adding to a buffer.
const ADDERS: usize = 16;

/// A buffer of daily views on `pool`: the one buffer every buffer test (and the checker) uses.
pub fn daily_views_buffer<C>(
    pool: Pool<ConnectionManager<C>>,
    policy: FlushPolicy,
) -> Buffer<(i64, i32), i64>
where
    C: BlockingConnection<Raw = C>
        + RawConnection<Db = <C as diesel::Connection>::Backend>
        + R2D2Connection
        + Send
        + 'static,
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<C>>
        + NewRow<DailyView, ct_daily_views::views, BackendOf<C>>,
{
    Buffer::new(
        pool,
        DailyView::atomic_views(),
        |&(page_id, day): &(i64, i32), views| DailyView {
            page_id,
            day,
            views,
        },
        policy,
    )
}

/// The row of a page's day seen first by a buffer.
fn daily_row(&(page_id, day): &(i64, i32), views: i64) -> DailyView {
    DailyView {
        page_id,
        day,
        views,
    }
}

/// [`daily_views_buffer`] of the client's kind.
fn daily_buffer<C: Client>(client: &C, policy: FlushPolicy) -> impl TestBuffer<(i64, i32), i64> + '_
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>
        + NewRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    client.buffer(DailyView::atomic_views(), daily_row, policy)
}

/// The rows of `pages` as a map `(page, day) -> views`.
fn views<B: TestDb>(db: &B, pages: &[i64]) -> BTreeMap<(i64, i32), i64> {
    db.daily_views(pages)
        .into_iter()
        .map(|(page, day, views)| ((page, day), views))
        .collect()
}

/// 16 workers × 100,000 adds over 50 keys `(page, day)` while the flusher flushes every
/// 20 ms and at 50,000 pending adds; after `flush()` every key is exact.
pub async fn buffer_counts_every_add<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>
        + NewRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let pages: Vec<i64> = (0..10).map(|_| next_id()).collect();
    let buffer = daily_buffer(
        client,
        FlushPolicy {
            interval: Some(Duration::from_millis(20)),
            max_pending_adds: Some(50_000),
            ..FlushPolicy::MANUAL
        },
    );
    let per_worker = 100_000;
    let counted = on_n_workers(client, ADDERS, async |worker, _| {
        let mut counted: BTreeMap<(i64, i32), i64> = BTreeMap::new();
        for i in 0..per_worker {
            let key = (pages[(i + worker) % 10], ((i / 10) % 5) as i32);
            let n = 1 + (i % 3) as i64;
            buffer.add(key, n).expect("add");
            *counted.entry(key).or_default() += n;
        }
        counted
    });
    let mut expected: BTreeMap<(i64, i32), i64> = BTreeMap::new();
    for counted in counted {
        for (key, n) in counted {
            *expected.entry(key).or_default() += n;
        }
    }
    buffer.flush().await.expect("final flush");
    assert_eq!(buffer.pending(), 0);
    assert_eq!(buffer.last_error(), None);
    assert_eq!(expected.len(), 50);
    assert_eq!(views(db, &pages), expected);
    buffer.shutdown().await.expect("shutdown");
}

/// Two buffers (two app servers) add to the same 20 keys, one in ascending and one in
/// descending key order, and flush after every round, from two workers at once beside
/// CPU-bound threads: both sort their batches, so no deadlock or other error surfaces (nor a
/// refused row), and the totals are exact.
pub async fn two_buffers_flush_overlapping_keys<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>
        + NewRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let pages: Vec<i64> = (0..4).map(|_| next_id()).collect();
    let keys: Vec<(i64, i32)> = pages
        .iter()
        .flat_map(|&page| (0..5).map(move |day| (page, day)))
        .collect();
    let rounds = 40;
    let buffers = [
        daily_buffer(client, FlushPolicy::MANUAL),
        daily_buffer(client, FlushPolicy::MANUAL),
    ];
    let errors = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, 2, async |worker, _| {
            let buffer = &buffers[worker];
            let mut errors = Vec::new();
            for _ in 0..rounds {
                let order: Vec<&(i64, i32)> = if worker == 0 {
                    keys.iter().collect()
                } else {
                    keys.iter().rev().collect()
                };
                for key in order {
                    buffer.add(*key, 1).unwrap();
                }
                match buffer.flush().await {
                    Err(e) => errors.push(e.to_string()),
                    Ok(report) if !report.is_clean() => errors.push(format!("{report:?}")),
                    Ok(_) => {}
                }
            }
            errors
        })
    });
    assert_eq!(errors, vec![Vec::<String>::new(), Vec::new()]);
    let expected: BTreeMap<(i64, i32), i64> = keys.iter().map(|&k| (k, 2 * rounds)).collect();
    assert_eq!(views(db, &pages), expected);
}

/// Dropping a (blocking) buffer flushes what it holds. (An `AsyncBuffer` cannot await in
/// `Drop`: it says so, and flushes on `shutdown`.)
pub fn dropped_buffer_flushes<B: TestDb>()
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<B>>
        + NewRow<DailyView, ct_daily_views::views, DbOf<B>>,
{
    let db = B::open();
    let page = next_id();
    {
        let buffer = daily_views_buffer(db.pool().clone(), FlushPolicy::DEFAULT);
        for day in 0..3 {
            buffer.add((page, day), 7).unwrap();
        }
        assert_eq!(buffer.pending(), 21);
    }
    assert_eq!(
        db.daily_views(&[page]),
        vec![(page, 0, 7), (page, 1, 7), (page, 2, 7)]
    );
}

/// A `new_row` that panics fails the flush like a database error: the counts stay, the
/// buffer goes on, and the next flush writes them once.
pub async fn panicking_new_row_keeps_the_counts<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>
        + NewRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let page = next_id();
    let panics = Arc::new(AtomicBool::new(true));
    let buffer = client.buffer(
        DailyView::atomic_views(),
        {
            let panics = Arc::clone(&panics);
            move |key: &(i64, i32), views| {
                assert!(
                    !panics.load(Ordering::Relaxed),
                    "new_row refuses (the test's panic)"
                );
                daily_row(key, views)
            }
        },
        FlushPolicy::MANUAL,
    );
    buffer.add((page, 1), 4).unwrap();
    buffer.add((page, 2), 1).unwrap();
    let error = buffer.flush().await.unwrap_err();
    assert!(error.to_string().contains("panicked"), "{error}");
    assert_eq!(buffer.pending(), 5);
    assert_eq!(db.daily_views(&[page]), vec![]);
    panics.store(false, Ordering::Relaxed);
    assert_eq!(buffer.flush().await.unwrap().written, 2);
    assert_eq!(db.daily_views(&[page]), vec![(page, 1, 4), (page, 2, 1)]);
    buffer.shutdown().await.unwrap();
}
