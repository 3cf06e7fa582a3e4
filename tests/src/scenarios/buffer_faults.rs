//! A buffer while its database is down or its connection dies: the bound on what waits in
//! memory refuses adds (typed, nothing taken) instead of growing, a failed flush keeps every
//! count, and once the database is back every count taken is written exactly once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use counter_core::{AtomicError, AtomicFieldOn, ErrorKind, FlushPolicy, NewRow};
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::Connection;

use crate::client::{Client, TestBuffer};
use crate::db::{next_id, DbOf, TestDb};
use crate::models::DailyView;
use crate::schema::ct_daily_views;

/// This file's scenarios on every backend, for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! buffer_fault_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            bound_holds_while_the_database_is_down,
        );
    };
}

/// This file's scenarios on a server (a connection to kill), for `tests/postgres.rs`,
/// `tests/mysql.rs` and their async clients in `tests/async.rs`.
#[macro_export]
macro_rules! buffer_server_fault_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            killed_connection_mid_flush_writes_nothing_of_its_batch,
        );
    };
}

/// The row of a page's day seen first by a buffer.
fn daily_row(&(page_id, day): &(i64, i32), views: i64) -> DailyView {
    DailyView {
        page_id,
        day,
        views,
    }
}

/// Is `result` the refusal of an add at the bound, with these counters?
fn full(result: Result<(), AtomicError>, keys: usize, adds: u64) -> bool {
    match result {
        Err(error @ AtomicError::BufferFull { .. }) => {
            assert_eq!(error.kind(), ErrorKind::Transient);
            matches!(error, AtomicError::BufferFull { keys: k, adds: a } if k == keys && a == adds)
        }
        _ => false,
    }
}

/// The database goes down (servers: a proxy refuses and closes connections; SQLite: another
/// connection holds the file's write lock) under a buffer bounded to 10 keys and 25 adds: the
/// 11th key and the 26th add are refused with `BufferFull` and not taken; a flush fails and
/// keeps every count, so the bound still holds; once the database is back, one flush writes
/// every count taken, exactly once, and adds are taken again.
pub async fn bound_holds_while_the_database_is_down<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>
        + NewRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let gate = db.gate();
    let page = next_id();
    let policy = FlushPolicy {
        max_keys: Some(10),
        max_adds: Some(25),
        ..FlushPolicy::MANUAL
    };
    let buffer = client.buffer_at(
        Some(gate.url()),
        DailyView::atomic_views(),
        daily_row,
        policy,
    );
    gate.down();
    let mut taken: BTreeMap<(i64, i32), i64> = BTreeMap::new();
    for day in 0..10 {
        buffer.add((page, day), 1).unwrap();
        *taken.entry((page, day)).or_default() += 1;
    }
    assert!(full(buffer.add((page, 10), 1), 10, 10), "an 11th key");
    for i in 0..15 {
        let key = (page, i % 10);
        buffer.add(key, 2).unwrap();
        *taken.entry(key).or_default() += 2;
    }
    assert!(full(buffer.add((page, 0), 1), 10, 25), "a 26th add");
    assert_eq!(buffer.pending(), 40, "nothing of a refused add was taken");

    let error = buffer.flush().await.unwrap_err();
    assert_eq!(
        buffer.pending(),
        40,
        "{}: kept after {error}",
        client.name()
    );
    assert!(buffer.last_error().is_some());
    assert!(full(buffer.add((page, 3), 1), 10, 25), "still held");

    gate.up();
    assert_eq!(
        db.daily_views(&[page]),
        vec![],
        "nothing written while down"
    );
    let report = buffer.flush().await.unwrap();
    assert_eq!(
        (report.written, report.counted),
        (10, 40),
        "{}",
        client.name()
    );
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((buffer.pending(), buffer.last_error()), (0, None));
    let rows: BTreeMap<(i64, i32), i64> = db
        .daily_views(&[page])
        .into_iter()
        .map(|(page, day, views)| ((page, day), views))
        .collect();
    assert_eq!(rows, taken);
    assert_eq!(buffer.flush().await.unwrap().written, 0, "written once");
    buffer.add((page, 10), 1).unwrap();
    assert_eq!(buffer.shutdown().await.unwrap().written, 1);
    assert_eq!(db.daily_views(&[page]).len(), 11);
}

/// A flush's connection is cut (as a killed session or a network failure would) while the
/// flush waits for a row lock another transaction holds, after it wrote the batch's first row:
/// the flush fails, nothing of the batch is written, every count is kept, and the next flush,
/// on a new connection, writes the batch exactly once.
pub async fn killed_connection_mid_flush_writes_nothing_of_its_batch<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>
        + NewRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let gate = db.gate();
    assert!(gate.can_cut(), "{}: a server", client.name());
    let page = next_id();
    let buffer = client.buffer_at(
        Some(gate.url()),
        DailyView::atomic_views(),
        daily_row,
        FlushPolicy::MANUAL,
    );
    buffer.add((page, 1), 5).unwrap();
    assert_eq!(buffer.flush().await.unwrap().written, 1);

    // Another transaction holds row (page, 1): the flush writes (page, 0), then waits.
    let mut holder = db.conn();
    type Manager<B> = <<B as TestDb>::Conn as Connection>::TransactionManager;
    Manager::<C::Db>::begin_transaction(&mut *holder).unwrap();
    holder
        .batch_execute(&format!(
            "SELECT views FROM ct_daily_views WHERE page_id = {page} AND day = 1 FOR UPDATE"
        ))
        .unwrap();
    buffer.add((page, 0), 2).unwrap();
    buffer.add((page, 1), 2).unwrap();
    buffer.add((page, 2), 3).unwrap();
    let failed = std::thread::scope(|scope| {
        let flush = scope.spawn(|| client.block_on(buffer.flush()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while <C::Db as TestDb>::lock_waiters(&mut holder) == 0 {
            if flush.is_finished() {
                let finished = flush.join().expect("the flush's thread");
                panic!(
                    "{}: the flush ended without waiting: {finished:?}",
                    client.name()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the flush never waited for the lock"
            );
            // No sleep: `lock_waiters` paces its reads (MariaDB's cache of them).
        }
        gate.cut();
        flush.join().expect("the flush's thread")
    });
    Manager::<C::Db>::rollback_transaction(&mut *holder).unwrap();
    drop(holder);
    let error = failed.expect_err("the cut flush fails");
    assert_eq!(buffer.pending(), 7, "{}: kept after {error}", client.name());
    assert!(buffer.last_error().is_some());
    assert_eq!(
        db.daily_views(&[page]),
        vec![(page, 1, 5)],
        "nothing of the batch"
    );

    let report = buffer.flush().await.unwrap();
    assert_eq!(
        (report.written, report.counted),
        (3, 7),
        "{}",
        client.name()
    );
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        db.daily_views(&[page]),
        vec![(page, 0, 2), (page, 1, 7), (page, 2, 3)]
    );
    assert_eq!(buffer.flush().await.unwrap().written, 0, "written once");
    buffer.shutdown().await.unwrap();
}
