//! Every operation on the three diesel-async connections, through deadpool and bb8 pools, on a
//! multi-threaded tokio runtime with 16 or more concurrent workers, exact totals.
//!
//! - PostgreSQL: `AsyncPgConnection` in a deadpool pool, on `COUNTER_PG_URL`.
//! - MySQL/MariaDB: `AsyncMysqlConnection` in a bb8 pool, on `COUNTER_MYSQL_URL`.
//! - SQLite: `SyncConnectionWrapper<SqliteConnection>` in a deadpool pool, on a fresh WAL
//!   file with no busy timeout (the library's own waiting must cope), and again on a file in
//!   SQLite's default rollback journal.
//!
//! Each backend's `scenarios` module is the shared source (`counter_tests::scenarios`, the
//! same the blocking suites run) on an [`AsyncClient`](counter_tests::AsyncClient). Beside it,
//! what only async code has: futures dropped at each await, and tasks `tokio::spawn`ed, whose
//! futures must be `Send` (Rust proves that at concrete types only, so these are one macro
//! body instantiated per backend). Rows are made and read back with the blocking harness
//! ([`TestDb`]), independent of the async path under test.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use counter_core::scoped_futures::ScopedFutureExt;
use counter_core::CounterCaches;
use counter_core::{
    transaction_async, transaction_async_local, AsyncBuffer, AtomicError, FlushPolicy, LockMode,
    RetryPolicy,
};
use counter_tests::client::{AsyncPool, MysqlPool, PgPool, SqlitePool};
use counter_tests::models::{Account, DailyView, NewReview, Product, Reviewer, Topic};
use counter_tests::pgbench;
use counter_tests::scenarios::{fresh_views, open_batches};
use counter_tests::schema::{ct_reviewers, ct_topics};
use counter_tests::{
    AsyncMysql, AsyncPostgres, AsyncSqlite, Client, Mysql, Postgres, Sqlite, TestDb,
};

/// Tasks per concurrency scenario.
const TASKS: usize = 16;

/// Both caches of a review: its topic's stars and its reviewer's count.
type Reviews = CounterCaches<NewReview, (ct_topics::stars, ct_reviewers::reviews)>;

/// A published review of `stars` stars on `topic` by `reviewer`.
fn review(topic_id: i64, reviewer_id: i64, stars: i32) -> NewReview {
    NewReview {
        topic_id,
        reviewer_id,
        stars,
        published: true,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Polls `future` until it has returned `Pending` `pendings` times, then drops it: `true` when
/// it finished first (it had fewer await points that waited).
async fn drop_after<F: Future>(future: F, pendings: usize) -> bool {
    let mut future = Box::pin(future);
    let mut seen = 0;
    std::future::poll_fn(
        move |cx: &mut Context<'_>| match Pin::as_mut(&mut future).poll(cx) {
            Poll::Ready(_) => Poll::Ready(true),
            Poll::Pending if seen + 1 >= pendings => Poll::Ready(false),
            Poll::Pending => {
                seen += 1;
                Poll::Pending
            }
        },
    )
    .await
}

/// The PostgreSQL deadpool (the blocking harness created the tables).
async fn pg_pool(db: &Postgres, max: usize) -> PgPool {
    <PgPool as AsyncPool<Postgres>>::open(db, max).await
}

/// The MySQL bb8 pool.
async fn mysql_pool(db: &Mysql, max: usize) -> MysqlPool {
    <MysqlPool as AsyncPool<Mysql>>::open(db, max).await
}

/// A deadpool of wrapped connections on the harness's SQLite file.
async fn sqlite_pool(db: &Sqlite, max: usize) -> SqlitePool {
    <SqlitePool as AsyncPool<Sqlite>>::open(db, max).await
}

/// The row of a page's day seen first by a buffer.
fn daily_row(&(page_id, day): &(i64, i32), views: i64) -> DailyView {
    DailyView {
        page_id,
        day,
        views,
    }
}

/// Rows `(page, day)` at 0 views, through the blocking harness.
fn daily_rows<B: TestDb>(db: &B, page: i64, days: std::ops::Range<i32>) {
    counter_tests::scenarios::daily_rows(db, page, days, 0);
}

/// An async Redis connection to `url`.
async fn async_redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("Redis URL")
        .get_multiplexed_async_connection_with_config(&counter_tests::db::redis_async_config())
        .await
        .unwrap_or_else(|e| panic!("Redis at {url}: {e}"))
}

/// The rows of `page` as `day -> views`, through the blocking harness.
fn views_of<B: TestDb>(db: &B, page: i64) -> BTreeMap<i32, i64> {
    db.daily_views(&[page])
        .into_iter()
        .map(|(_, day, views)| (day, views))
        .collect()
}

/// The scenarios, for one backend: `$open` opens its blocking harness (before the runtime
/// starts: without a URL it starts a container, which blocks), `$pool(&db, max)` its pool.
macro_rules! async_scenarios {
    ($backend:ident, $open:expr, $pool:ident, $client:ty) => {
        mod $backend {
            use super::*;

            /// Every shared scenario (`counter_tests::scenarios`), on this backend's async
            /// connections.
            mod scenarios {
                use super::*;
                counter_tests::backend_tests!(<$client>::on($open));
            }

            /// 32 tasks try 20 sales each of a stock of 300: exactly 300 succeed, every other
            /// is `Insufficient` with nothing available, and `sold` counts the sales.
            #[test]
            fn concurrent_sales_never_oversell() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, TASKS + 4).await;
                    let id = db.new_product(300, 0);
                    let mut tasks = Vec::new();
                    for _ in 0..32 {
                        let pool = pool.clone();
                        tasks.push(tokio::spawn(async move {
                            let (mut sold, mut refused) = (0, 0);
                            for _ in 0..20 {
                                let mut conn = pool.get().await.expect("pooled connection");
                                match Product::decrement_stock_if_at_least(&mut conn, id, 1).await {
                                    Ok(_) => {
                                        Product::increment_sold(&mut conn, id, 1).await.unwrap();
                                        sold += 1;
                                    }
                                    Err(AtomicError::Insufficient {
                                        available: 0,
                                        requested: 1,
                                    }) => refused += 1,
                                    Err(other) => panic!("unexpected {other:?}"),
                                }
                            }
                            (sold, refused)
                        }));
                    }
                    let (mut sold, mut refused) = (0, 0);
                    for task in tasks {
                        let (s, r) = task.await.unwrap();
                        sold += s;
                        refused += r;
                    }
                    assert_eq!((sold, refused), (300, 340));
                    assert_eq!(db.product(id), (0, 300));
                });
            }

            /// A flush dropped at each point where it waited keeps every count, and its rows
            /// were written whole or not at all: written only when its COMMIT was under way
            /// (which wait that is varies from run to run). Either way the next flush leaves
            /// each count written exactly once: it writes the kept batch under its id, which
            /// the flush ledger refuses when the dropped flush had committed it. A panicking
            /// `new_row` fails the flush and keeps the counts too.
            #[test]
            fn async_buffer_flush_dropped_or_panicking_keeps_its_counts() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, 4).await;
                    let views = AsyncBuffer::new(
                        pool.clone(),
                        DailyView::atomic_views(),
                        daily_row,
                        FlushPolicy::MANUAL,
                    );
                    let mut pendings = 1;
                    let mut written_when_dropped = Vec::new();
                    loop {
                        let page = counter_tests::next_id();
                        daily_rows(&db, page, 0..1);
                        views.add((page, 0), 4).unwrap();
                        views.add((page, 1), 5).unwrap();
                        if drop_after(views.flush(), pendings).await {
                            assert_eq!(views.pending(), 0);
                            assert_eq!(views_of(&db, page), BTreeMap::from([(0, 4), (1, 5)]));
                            break;
                        }
                        assert_eq!(views.pending(), 9, "after {pendings} waits");
                        // Whole or nothing; a COMMIT sent before the drop may land later still.
                        let rows = views_of(&db, page);
                        let seen_written = rows == BTreeMap::from([(0, 4), (1, 5)]);
                        assert!(
                            seen_written || rows == BTreeMap::from([(0, 0)]),
                            "after {pendings} waits: {rows:?}"
                        );
                        // The next flush writes the kept batch under its id: once, whether
                        // or not the dropped flush's COMMIT had landed (the ledger says).
                        assert_eq!(views.flush().await.unwrap().written, 2);
                        assert_eq!(views.pending(), 0, "after {pendings} waits");
                        let rows = views_of(&db, page);
                        assert_eq!(rows, BTreeMap::from([(0, 4), (1, 5)]), "after {pendings} waits");
                        if seen_written {
                            written_when_dropped.push(pendings);
                        }
                        pendings += 1;
                        assert!(pendings < 200, "the flush never completed");
                    }
                    assert!(pendings > 1, "the flush never waited");
                    println!(
                        "{}: the flush finished within {pendings} waits; dropped flushes that \
                         wrote: after {written_when_dropped:?} waits",
                        stringify!($backend)
                    );
                    assert!(
                        written_when_dropped.len() < pendings - 1
                            && !written_when_dropped.contains(&1),
                        "written by flushes dropped after {written_when_dropped:?} of {pendings} waits"
                    );

                    let panicking = AsyncBuffer::new(
                        pool,
                        DailyView::atomic_views(),
                        |_: &(i64, i32), _: i64| -> DailyView { panic!("no row for this key") },
                        FlushPolicy::MANUAL,
                    );
                    let page = counter_tests::next_id();
                    daily_rows(&db, page, 0..1);
                    panicking.add((page, 0), 2).unwrap();
                    panicking.add((page, 1), 3).unwrap();
                    let error = panicking.flush().await.unwrap_err();
                    assert!(error.to_string().contains("panicked"), "{error}");
                    assert_eq!(panicking.pending(), 5);
                    assert!(panicking.last_error().is_some());
                    assert_eq!(views_of(&db, page), BTreeMap::from([(0, 0)]));
                });
            }

            /// A Redis counter's flush dropped at each point where it waited, on async
            /// connections: the next flush finishes what it left, and every row holds each
            /// count exactly once, even where the dropped flush's COMMIT had landed (the
            /// ledger says so), with nothing left pending or in a batch.
            #[test]
            fn redis_flush_dropped_at_each_await_counts_once() {
                let db = $open;
                let url = counter_tests::db::redis_url();
                runtime().block_on(async {
                    let pool = $pool(&db, 4).await;
                    let page = counter_tests::next_id();
                    daily_rows(&db, page, 0..3);
                    let (views, prefix) = fresh_views();
                    let mut redis = async_redis(url).await;
                    let mut expected = BTreeMap::from([(0, 0), (1, 0), (2, 0)]);
                    let mut pendings = 1;
                    loop {
                        for day in 0..3 {
                            views.add(&mut redis, &(page, day), i64::from(day) + 1).await.unwrap();
                            *expected.get_mut(&day).unwrap() += i64::from(day) + 1;
                        }
                        let mut conn = pool.get().await.expect("pooled connection");
                        let finished = drop_after(views.flush(&mut conn, &mut redis), pendings).await;
                        drop(conn);
                        if !finished {
                            let mut conn = pool.get().await.expect("pooled connection");
                            views.flush(&mut conn, &mut redis).await.unwrap();
                        }
                        assert_eq!(views_of(&db, page), expected, "after {pendings} waits");
                        assert_eq!(open_batches(&mut counter_tests::db::redis_connection(), &prefix), Vec::<String>::new());
                        if finished {
                            break;
                        }
                        pendings += 1;
                        assert!(pendings < 400, "the flush never completed");
                    }
                    assert!(pendings > 1, "the flush never waited");
                    println!("{}: the Redis flush finished within {pendings} waits", stringify!($backend));
                });
            }

            /// A connection kept by the caller after an operation on it was dropped half-way
            /// refuses further work (`BrokenTransactionManager`) instead of running inside a
            /// transaction nobody will commit, or reading the cut-off statement's answer. An
            /// operation dropped before any statement (waiting for its turn among a SQLite
            /// file's writers, which this process has met busy) ran nothing and leaves the
            /// connection clean: the next call works and sees the row as before.
            #[test]
            fn a_connection_whose_operation_was_dropped_refuses_further_work() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, 4).await;
                    let id = db.new_product(10, 0);
                    let mut pendings = 1;
                    let mut clean = 0_i64;
                    loop {
                        let mut conn = pool.get().await.expect("pooled connection");
                        let before = db.product(id).1;
                        let op = Product::update_sold_locked(&mut conn, id, |v| Ok(v + 1));
                        if drop_after(op, pendings).await {
                            break;
                        }
                        match Product::increment_sold(&mut conn, id, 1).await {
                            Err(AtomicError::Database(
                                diesel::result::Error::BrokenTransactionManager,
                            )) => {}
                            // Dropped before its first statement: nothing of it ran.
                            Ok(sold) if stringify!($backend).starts_with("sqlite") => {
                                assert_eq!(sold, before + 1, "after {pendings} waits");
                                clean += 1;
                            }
                            next => panic!("after {pendings} waits: {next:?}"),
                        }
                        pendings += 1;
                        assert!(pendings < 200, "the operation never completed");
                    }
                    assert!(pendings > 1, "the operation never waited");
                    // A future dropped while its COMMIT was under way may have committed
                    // (SQLite's wrapper also finishes a statement on its blocking thread):
                    // each operation wrote at most once, the one that finished exactly once.
                    let (stock, sold) = db.product(id);
                    assert_eq!(stock, 10);
                    assert!(
                        (1 + clean..=pendings as i64 + clean).contains(&sold),
                        "{sold} after {pendings}, {clean} on clean connections"
                    );
                });
            }

            /// A locked update, a transfer and a transaction (`transaction_async`, and
            /// `transaction_async_local`), each dropped at every await point
            /// where it waited: the pool never hands out a connection with the transaction
            /// still open, no row stays locked, and each change happened once or not at all.
            #[test]
            fn futures_dropped_at_each_await_leave_no_transaction_open() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, 2).await;
                    let a = db.new_account(1000);
                    let b = db.new_account(0);
                    let id = db.new_product(500, 0);
                    let mut finished = [false; 4];
                    let mut pendings = 1;
                    while !finished.iter().all(|&f| f) {
                        for (op, done) in finished.iter_mut().enumerate() {
                            let before = (db.product(id), db.account(a) + db.account(b));
                            let a_before = db.account(a);
                            let mut conn = pool.get().await.expect("pooled connection");
                            let complete = match op {
                                0 => {
                                    drop_after(
                                        Product::update_sold_locked(&mut conn, id, |v| Ok(v + 1)),
                                        pendings,
                                    )
                                    .await
                                }
                                1 => {
                                    drop_after(
                                        Account::transfer_balance(&mut conn, a, b, 1),
                                        pendings,
                                    )
                                    .await
                                }
                                2 => {
                                    drop_after(
                                        transaction_async(&mut conn, RetryPolicy::DEFAULT, |c| {
                                            async move {
                                                Product::decrement_stock(c, id, 1).await?;
                                                Product::increment_sold(c, id, 1).await
                                            }
                                            .scope_boxed()
                                        }),
                                        pendings,
                                    )
                                    .await
                                }
                                _ => {
                                    drop_after(
                                        transaction_async_local(
                                            &mut conn,
                                            RetryPolicy::DEFAULT,
                                            |c| {
                                                async move {
                                                    Product::decrement_stock(c, id, 1).await?;
                                                    Product::increment_sold(c, id, 1).await
                                                }
                                                .scope_boxed_local()
                                            },
                                        ),
                                        pendings,
                                    )
                                    .await
                                }
                            };
                            *done |= complete;
                            drop(conn);
                            // Every row can be locked at once by another connection: nothing
                            // stayed locked (a kept transaction would hold it).
                            // (A discarded connection's transaction ends when the server sees
                            // the socket close: allow it a moment.)
                            let mut other = pool.get().await.expect("pooled connection");
                            let product = Product::atomic_sold().lock(LockMode::NoWait);
                            let account = Account::atomic_balance().lock(LockMode::NoWait);
                            let mut tries = 0;
                            loop {
                                tries += 1;
                                let locked = (
                                    product.update_locked(&mut other, id, Ok).await,
                                    account.update_locked(&mut other, a, Ok).await,
                                );
                                match locked {
                                    (Ok(_), Ok(_)) => break,
                                    (Err(AtomicError::Locked), _)
                                    | (_, Err(AtomicError::Locked))
                                        if tries < 500 =>
                                    {
                                        tokio::time::sleep(std::time::Duration::from_millis(10))
                                            .await
                                    }
                                    other => panic!("op {op} after {pendings} waits: {other:?}"),
                                }
                            }
                            // A write on a pooled connection is committed (not inside a
                            // transaction left open), and every change happened at most once.
                            let written = Product::increment_sold(&mut other, id, 0).await;
                            assert!(
                                written.is_ok(),
                                "op {op} after {pendings} waits: {written:?}"
                            );
                            let after = (db.product(id), db.account(a) + db.account(b));
                            assert_eq!(
                                after.1, 1000,
                                "the transfer moved money once or not at all"
                            );
                            let (stock, sold) = after.0;
                            let (stock0, sold0) = before.0;
                            assert!(
                                (stock, sold) == (stock0, sold0)
                                    || (op == 0 && (stock, sold) == (stock0, sold0 + 1))
                                    || (op >= 2 && (stock, sold) == (stock0 - 1, sold0 + 1)),
                                "op {op} after {pendings} waits: {:?} -> {:?}",
                                before.0,
                                after.0
                            );
                            let a_after = db.account(a);
                            assert!(a_after == a_before || (op == 1 && a_after == a_before - 1));
                            if complete {
                                let changed = if op == 1 {
                                    a_after != a_before
                                } else {
                                    after.0 != before.0
                                };
                                assert!(
                                    changed,
                                    "op {op} completed after {pendings} waits but changed nothing"
                                );
                            }
                        }
                        pendings += 1;
                        assert!(pendings < 200, "the operations never completed");
                    }
                });
            }
            /// A counted insert, move and delete of a review (two caches: its topic's stars and
            /// its reviewer's count), each dropped at every await point where it waited: every
            /// parent still equals its children (both caches and the row, or none of them), the
            /// row is as before or as asked, nothing stays locked, and an operation that
            /// finished changed the row.
            #[test]
            fn counted_caches_dropped_at_each_await_change_all_or_nothing() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, 2).await;
                    let topics = [db.new_topic(), db.new_topic()];
                    let reviewer = db.new_reviewer();
                    let caches = Reviews::new();
                    let mut finished = [false; 3];
                    let mut pendings = 1;
                    while !finished.iter().all(|&f| f) {
                        for (op, done) in finished.iter_mut().enumerate() {
                            let first = review(topics[0], reviewer, 3);
                            let mut conn = pool.get().await.expect("pooled connection");
                            let key = caches.insert(&mut conn, &first).await.unwrap().key;
                            let reviews_before = db.reviewer(reviewer).0;
                            let moved = review(topics[1], reviewer, 4);
                            let complete = match op {
                                0 => drop_after(caches.insert(&mut conn, &moved), pendings).await,
                                1 => {
                                    drop_after(caches.update(&mut conn, key, &moved), pendings)
                                        .await
                                }
                                _ => drop_after(caches.delete(&mut conn, key), pendings).await,
                            };
                            *done |= complete;
                            drop(conn);
                            // Every parent can be locked at once by another connection.
                            let mut other = pool.get().await.expect("pooled connection");
                            let stars = Topic::atomic_stars().lock(LockMode::NoWait);
                            let count = Reviewer::atomic_reviews().lock(LockMode::NoWait);
                            let mut tries = 0;
                            loop {
                                tries += 1;
                                let locked = (
                                    stars.update_locked(&mut other, topics[0], Ok).await,
                                    stars.update_locked(&mut other, topics[1], Ok).await,
                                    count.update_locked(&mut other, reviewer, Ok).await,
                                );
                                match locked {
                                    (Ok(_), Ok(_), Ok(_)) => break,
                                    (Err(AtomicError::Locked), _, _)
                                    | (_, Err(AtomicError::Locked), _)
                                    | (_, _, Err(AtomicError::Locked))
                                        if tries < 500 =>
                                    {
                                        tokio::time::sleep(std::time::Duration::from_millis(10))
                                            .await
                                    }
                                    other => panic!("op {op} after {pendings} waits: {other:?}"),
                                }
                            }
                            for topic in topics {
                                assert_eq!(
                                    db.topic(topic),
                                    db.topic_children(topic),
                                    "op {op} after {pendings} waits: topic {topic}"
                                );
                            }
                            let (reviews, rows) = db.reviewer(reviewer);
                            assert_eq!(reviews, rows, "op {op} after {pendings} waits");
                            let row = db.review(key);
                            let changed = match op {
                                0 => reviews == reviews_before + 1,
                                1 => row == Some((topics[1], reviewer, 4, true)),
                                _ => row.is_none(),
                            };
                            assert!(
                                changed || row == Some((topics[0], reviewer, 3, true)),
                                "op {op} after {pendings} waits: {row:?}"
                            );
                            assert!(
                                !complete || changed,
                                "op {op} completed after {pendings} waits but changed nothing"
                            );
                        }
                        pendings += 1;
                        assert!(pendings < 200, "the operations never completed");
                    }
                    // Each operation waits at several awaits (a transaction's statements).
                    assert!(pendings > 3, "the operations never waited: {pendings}");
                });
            }
        }
    };
}

async_scenarios!(postgres, Postgres::open(), pg_pool, AsyncPostgres);
async_scenarios!(mysql, Mysql::open(), mysql_pool, AsyncMysql);
async_scenarios!(sqlite, Sqlite::open(), sqlite_pool, AsyncSqlite);

/// The scenarios that need a server (a connection to cut, a row lock to wait for), on the
/// async clients of the servers.
mod postgres_server {
    use counter_tests::TestDb;
    counter_tests::buffer_server_fault_tests!(counter_tests::AsyncPostgres::on(
        counter_tests::Postgres::open()
    ));
    counter_tests::touch_server_tests!(counter_tests::AsyncPostgres::on(
        counter_tests::Postgres::open()
    ));
    counter_tests::decimal_server_tests!(counter_tests::AsyncPostgres::on(
        counter_tests::Postgres::open()
    ));
}
mod mysql_server {
    use counter_tests::TestDb;
    counter_tests::buffer_server_fault_tests!(counter_tests::AsyncMysql::on(
        counter_tests::Mysql::open()
    ));
    counter_tests::touch_server_tests!(counter_tests::AsyncMysql::on(counter_tests::Mysql::open()));
    counter_tests::decimal_server_tests!(counter_tests::AsyncMysql::on(
        counter_tests::Mysql::open()
    ));
}
// SQLite's default rollback journal, where a reader blocks a writer's commit (WAL hides that).
async_scenarios!(
    sqlite_rollback_journal,
    Sqlite::open_rollback_journal(),
    sqlite_pool,
    AsyncSqlite
);

/// Writers take turns in WAL too.
mod sqlite_wal_writers {
    use super::*;
    counter_tests::sqlite_writer_tests!(AsyncSqlite::on(Sqlite::open()));
}

/// Writers take turns on async connections too (a task waits for its turn without blocking its
/// runtime thread).
mod sqlite_rollback_journal_writers {
    use super::*;
    counter_tests::sqlite_writer_tests!(AsyncSqlite::on(Sqlite::open_rollback_journal()));

    /// A call dropped while it waits in line (a request's timeout) leaves the line: the writer
    /// after it gets its turn as soon as the one ahead ends, not after `busy_timeout`; and its
    /// connection, which had no statement under way, is fit for that next call.
    #[test]
    fn a_call_dropped_in_line_leaves_no_hole() {
        use std::time::Duration;
        let db = Sqlite::open_rollback_journal();
        runtime().block_on(async {
            let pool = sqlite_pool(&db, 4).await;
            let id = db.new_product(0, 0);
            let (held, is_held) = tokio::sync::oneshot::channel();
            let holder = {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut conn = pool.get().await.expect("pooled connection");
                    let mut held = Some(held);
                    Product::update_sold_locked(&mut conn, id, |v| {
                        if let Some(held) = held.take() {
                            held.send(()).unwrap();
                        }
                        std::thread::sleep(Duration::from_millis(300));
                        Ok(v + 1)
                    })
                    .await
                })
            };
            is_held.await.unwrap();
            let mut conn = pool.get().await.expect("pooled connection");
            let waited = tokio::time::timeout(
                Duration::from_millis(50),
                Product::increment_sold(&mut conn, id, 10),
            )
            .await;
            assert!(waited.is_err(), "the call waited in line and was dropped");
            // No statement was under way: the connection is as it was, and serves the next
            // call (a call dropped mid-statement marks its connection broken instead).
            let policy = RetryPolicy::DEFAULT.with_busy_timeout(Duration::from_secs(2));
            assert_eq!(
                Product::atomic_sold()
                    .retry(policy)
                    .increment(&mut conn, id, 100)
                    .await
                    .unwrap(),
                101
            );
            assert_eq!(holder.await.unwrap().unwrap(), 1);
            assert_eq!(db.product(id), (0, 101));
        });
    }
}

/// The async connections get the isolation level the URL asks for, the same as the blocking
/// ones (`tests/postgres.rs` checks those against the URL): `.ci/run` runs the PostgreSQL
/// scenarios here a second time under a SERIALIZABLE URL.
#[test]
fn postgres_async_connections_get_the_urls_isolation_level() {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Level {
        #[diesel(sql_type = diesel::sql_types::Text)]
        level: String,
    }
    const SQL: &str = "SELECT current_setting('transaction_isolation') AS level";
    let db = Postgres::open();
    let blocking = diesel::sql_query(SQL)
        .get_result::<Level>(&mut *db.conn())
        .unwrap()
        .level;
    runtime().block_on(async {
        let pool = pg_pool(&db, 2).await;
        let mut conn = pool.get().await.unwrap();
        let level =
            diesel_async::RunQueryDsl::get_result::<Level>(diesel::sql_query(SQL), &mut conn)
                .await
                .unwrap()
                .level;
        assert_eq!(level, blocking);
    });
}

/// The foreign writer against the async path: the real `pgbench` on the same row as 16
/// workers on the deadpool (the scenario the blocking suite runs too).
#[test]
fn postgres_foreign_writer_pgbench_on_the_same_row() {
    let client = AsyncPostgres::on(Postgres::open());
    client.block_on(pgbench::foreign_writer_pgbench_on_the_same_row(&client));
}
