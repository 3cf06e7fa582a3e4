//! Every operation on the three diesel-async connections, through deadpool and bb8 pools, on a
//! multi-threaded tokio runtime with 16 or more concurrent tasks, exact totals.
//!
//! - PostgreSQL: `AsyncPgConnection` in a deadpool pool, on [`pg_url`].
//! - MySQL/MariaDB: `AsyncMysqlConnection` in a bb8 pool, on [`mysql_url`].
//! - SQLite: `SyncConnectionWrapper<SqliteConnection>` in a deadpool pool, on a fresh WAL
//!   file with no busy timeout (the library's own waiting must cope).
//!
//! Rows are made and read back with the blocking harness ([`TestDb`]), independent of the
//! async path under test. The scenarios are one macro body instantiated per backend: spawned
//! tasks must be `Send`, which Rust proves on concrete types only.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use counter_core::scoped_futures::ScopedFutureExt;
use counter_core::{
    transaction_async, AsyncBuffer, AtomicError, ChangeColumn, FlushPolicy, LockMode, RetryPolicy,
};
use counter_tests::db::{mysql_url, pg_url};
use counter_tests::models::{Account, Article, CartLine, DailyView, NewCartLine, Product};
use counter_tests::pgbench::run_pgbench;
use counter_tests::scenarios::{fresh_views, open_batches};
use counter_tests::schema::ct_products;
use counter_tests::{Mysql, Postgres, Sqlite, TestDb};
use diesel::SqliteConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncMysqlConnection, AsyncPgConnection};

/// Tasks per concurrency scenario.
const TASKS: usize = 16;

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

type PgPool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
type MysqlPool = diesel_async::pooled_connection::bb8::Pool<AsyncMysqlConnection>;
type SqlitePool =
    diesel_async::pooled_connection::deadpool::Pool<SyncConnectionWrapper<SqliteConnection>>;

/// The PostgreSQL deadpool (the blocking harness created the tables).
async fn pg_pool(_: &Postgres, max: usize) -> PgPool {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(pg_url());
    PgPool::builder(manager)
        .max_size(max)
        .build()
        .expect("deadpool of AsyncPgConnection")
}

/// The MySQL bb8 pool.
async fn mysql_pool(_: &Mysql, max: usize) -> MysqlPool {
    let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(mysql_url());
    MysqlPool::builder()
        .max_size(max as u32)
        .build(manager)
        .await
        .expect("bb8 pool of AsyncMysqlConnection")
}

/// A fresh SQLite file and a deadpool of wrapped connections on it.
async fn sqlite_pool(db: &Sqlite, max: usize) -> SqlitePool {
    let url = db.path().to_str().expect("UTF-8 path").to_owned();
    let manager = AsyncDieselConnectionManager::<SyncConnectionWrapper<SqliteConnection>>::new(url);
    SqlitePool::builder(manager)
        .max_size(max)
        .build()
        .expect("deadpool of SyncConnectionWrapper<SqliteConnection>")
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
        .get_multiplexed_async_connection()
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
    ($backend:ident, $open:expr, $pool:ident) => {
        mod $backend {
            use super::*;

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

            /// Increments, locked read-modify-writes, takes and several-column changes from 16
            /// tasks on one row: the exact sum of what each returned.
            #[test]
            fn every_single_row_operation_adds_up() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, TASKS + 4).await;
                    let id = db.new_product(1000, 0);
                    let mut tasks = Vec::new();
                    for task in 0..TASKS {
                        let pool = pool.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut conn = pool.get().await.expect("pooled connection");
                            let (mut taken, mut sales) = (0i64, 0i64);
                            for i in 0..10 {
                                Product::increment_sold(&mut conn, id, 1).await.unwrap();
                                Product::update_sold_locked(&mut conn, id, |v| Ok(v + 2))
                                    .await
                                    .unwrap();
                                let n = Product::take_stock_up_to(&mut conn, id, 3).await.unwrap();
                                taken += i64::from(n);
                                if (task + i) % 2 == 0 {
                                    let sale = (
                                        ct_products::stock.decrement_if_at_least(2),
                                        ct_products::sold.increment(5),
                                    );
                                    match Product::update_atomic(&mut conn, id, sale).await {
                                        Ok(_) => sales += 1,
                                        Err(AtomicError::InColumn {
                                            column: "stock", ..
                                        }) => {}
                                        Err(other) => panic!("unexpected {other:?}"),
                                    }
                                }
                            }
                            (taken, sales)
                        }));
                    }
                    let (mut taken, mut sales) = (0, 0);
                    for task in tasks {
                        let (t, s) = task.await.unwrap();
                        taken += t;
                        sales += s;
                    }
                    // 16 × 10 takes of 3 and 80 sales of 2 fit in 1000: nothing ran short.
                    assert_eq!((taken, sales), (480, 80));
                    assert_eq!(db.product(id), (1000 - 480 - 160, 16 * 10 * 3 + 5 * 80));
                    let mut conn = pool.get().await.unwrap();
                    assert_eq!(Product::current_sold(&mut conn, id).await.unwrap(), 880);
                });
            }

            /// Random transfers among four accounts from 16 tasks: the total never changes,
            /// and each refusal is `Insufficient` against the `min = -500` bound.
            #[test]
            fn transfers_conserve_the_total() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, TASKS + 4).await;
                    let ids: Arc<Vec<i64>> =
                        Arc::new((0..4).map(|_| db.new_account(100)).collect());
                    let mut tasks = Vec::new();
                    for task in 0..TASKS {
                        let (pool, ids) = (pool.clone(), Arc::clone(&ids));
                        tasks.push(tokio::spawn(async move {
                            let mut conn = pool.get().await.expect("pooled connection");
                            for i in 0..15 {
                                let from = ids[(task + i) % 4];
                                let to = ids[(task * 3 + i + 1) % 4];
                                if from == to {
                                    continue;
                                }
                                let amount = ((task + i) % 7 * 40) as i64;
                                match Account::transfer_balance(&mut conn, from, to, amount).await {
                                    Ok(_) | Err(AtomicError::Insufficient { .. }) => {}
                                    Err(other) => panic!("unexpected {other:?}"),
                                }
                            }
                        }));
                    }
                    for task in tasks {
                        task.await.unwrap();
                    }
                    let balances: Vec<i64> = ids.iter().map(|&id| db.account(id)).collect();
                    assert_eq!(balances.iter().sum::<i64>(), 400, "{balances:?}");
                    assert!(balances.iter().all(|&b| b >= -500), "{balances:?}");
                });
            }

            /// The add-to-cart on a composite key from 16 tasks: lines created once, each
            /// quantity exact, the `max = 40` bound refusing past it.
            #[test]
            fn add_to_cart_on_composite_keys() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, TASKS + 4).await;
                    let cart = counter_tests::next_id();
                    let mut tasks = Vec::new();
                    for _ in 0..TASKS {
                        let pool = pool.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut conn = pool.get().await.expect("pooled connection");
                            let mut refused = 0;
                            for product in 0..3i64 {
                                let row = NewCartLine {
                                    cart_id: cart,
                                    product_id: product,
                                    quantity: 1,
                                };
                                match CartLine::increment_quantity_or_insert(&mut conn, &row, 1)
                                    .await
                                {
                                    Ok(_) => {}
                                    Err(AtomicError::OutOfRange { .. }) => refused += 1,
                                    Err(other) => panic!("unexpected {other:?}"),
                                }
                                // Line 2 gets three at a time: 16 × 3 = 48 passes 40.
                                if product == 2 {
                                    for _ in 0..2 {
                                        match CartLine::increment_quantity(&mut conn, (cart, 2), 1)
                                            .await
                                        {
                                            Ok(_) => {}
                                            Err(AtomicError::OutOfRange { .. }) => refused += 1,
                                            Err(other) => panic!("unexpected {other:?}"),
                                        }
                                    }
                                }
                            }
                            refused
                        }));
                    }
                    let mut refused = 0;
                    for task in tasks {
                        refused += task.await.unwrap();
                    }
                    let lines: Vec<(i64, i32)> = db
                        .cart_lines(&[cart])
                        .into_iter()
                        .map(|l| (l.product_id, l.quantity))
                        .collect();
                    assert_eq!(lines, vec![(0, 16), (1, 16), (2, 40)]);
                    assert_eq!(refused, 8);
                });
            }

            /// A slotted counter from 16 tasks, compacted while they run: the exact sum.
            #[test]
            fn slotted_increments_and_compactions() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, TASKS + 4).await;
                    let id = counter_tests::next_id();
                    let mut tasks = Vec::new();
                    for task in 0..TASKS {
                        let pool = pool.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut conn = pool.get().await.expect("pooled connection");
                            for i in 0..20 {
                                Article::increment_likes(&mut conn, id, 2).await.unwrap();
                                if (task + i) % 10 == 0 {
                                    Article::compact_likes(&mut conn, id).await.unwrap();
                                }
                            }
                        }));
                    }
                    for task in tasks {
                        task.await.unwrap();
                    }
                    let mut conn = pool.get().await.unwrap();
                    assert_eq!(Article::current_likes(&mut conn, id).await.unwrap(), 640);
                    assert_eq!(Article::compact_likes(&mut conn, id).await.unwrap(), 640);
                    assert_eq!(Article::current_likes(&mut conn, id).await.unwrap(), 640);
                });
            }

            /// An `AsyncBuffer` fed by 16 tasks (300 adds each over 10 keys, half with rows)
            /// while its spawned flusher flushes every 20 ms and at 500 adds, and one task
            /// flushes by hand: after `shutdown` every row holds exactly what was added.
            #[test]
            fn async_buffer_counts_every_add() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, 4).await;
                    let page = counter_tests::next_id();
                    daily_rows(&db, page, 0..5);
                    let policy = FlushPolicy {
                        interval: Some(Duration::from_millis(20)),
                        max_pending_adds: Some(500),
                    };
                    let views = AsyncBuffer::new(pool, DailyView::atomic_views(), daily_row, policy);
                    let flusher = tokio::spawn(views.flusher());
                    let mut tasks = Vec::new();
                    for task in 0..TASKS {
                        let views = views.clone();
                        tasks.push(tokio::spawn(async move {
                            for i in 0..300 {
                                let day = ((task + i) % 10) as i32;
                                views.add((page, day), (i % 3 + 1) as i64).unwrap();
                                if i % 50 == 0 {
                                    tokio::task::yield_now().await;
                                }
                            }
                        }));
                    }
                    let by_hand = {
                        let views = views.clone();
                        tokio::spawn(async move {
                            for _ in 0..20 {
                                views.flush().await.unwrap();
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        })
                    };
                    for task in tasks {
                        task.await.unwrap();
                    }
                    by_hand.await.unwrap();
                    views.shutdown().await.unwrap();
                    flusher.await.unwrap();
                    assert_eq!((views.pending(), views.last_error()), (0, None));
                    let mut expected = BTreeMap::new();
                    for task in 0..TASKS {
                        for i in 0..300 {
                            *expected.entry(((task + i) % 10) as i32).or_insert(0) +=
                                (i % 3 + 1) as i64;
                        }
                    }
                    assert_eq!(views_of(&db, page), expected);
                });
            }

            /// A flush dropped at each point where it waited puts every count back, and its
            /// rows were written whole or not at all: written only when its COMMIT was under
            /// way, and then the next flush writes the counts again (the window of any write
            /// whose answer is lost; which wait that is varies from run to run). A panicking
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
                        assert_eq!(views.flush().await.unwrap(), 2);
                        let rows = views_of(&db, page);
                        if rows == BTreeMap::from([(0, 8), (1, 10)]) {
                            written_when_dropped.push(pendings);
                        } else {
                            assert!(!seen_written, "after {pendings} waits: {rows:?}");
                            assert_eq!(rows, BTreeMap::from([(0, 4), (1, 5)]), "after {pendings} waits");
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

            /// A `RedisCounter` on async Redis and database connections: 16 tasks × 200 adds
            /// (1 to 3) over 8 keys while 2 tasks flush in a loop; after a last flush every
            /// row holds exactly what was added, nothing is pending, no batch is left, and the
            /// flush reports together wrote exactly the sum of the adds (none applied twice).
            #[test]
            fn redis_counter_counts_every_add_exactly() {
                let db = $open;
                let url = counter_tests::db::redis_url();
                runtime().block_on(async {
                    let pool = $pool(&db, 4).await;
                    let page = counter_tests::next_id();
                    daily_rows(&db, page, 0..8);
                    let (views, prefix) = fresh_views();
                    let views = Arc::new(views);
                    let adding = Arc::new(std::sync::atomic::AtomicUsize::new(TASKS));
                    let mut tasks = Vec::new();
                    for task in 0..TASKS {
                        let (views, adding) = (Arc::clone(&views), Arc::clone(&adding));
                        tasks.push(tokio::spawn(async move {
                            let mut redis = async_redis(url).await;
                            for i in 0..200 {
                                let key = (page, ((task + i) % 8) as i32);
                                views.add(&mut redis, &key, (i % 3 + 1) as i64).await.unwrap();
                            }
                            adding.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                        }));
                    }
                    let mut flushers = Vec::new();
                    for _ in 0..2 {
                        let (views, adding, pool) =
                            (Arc::clone(&views), Arc::clone(&adding), pool.clone());
                        flushers.push(tokio::spawn(async move {
                            let mut redis = async_redis(url).await;
                            let mut written = 0_i128;
                            while adding.load(std::sync::atomic::Ordering::Acquire) > 0 {
                                let mut conn = pool.get().await.expect("pooled connection");
                                let report = views.flush(&mut conn, &mut redis).await.unwrap();
                                assert!(report.kept.is_empty(), "{:?}", report.kept);
                                written += report.total_written();
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                            written
                        }));
                    }
                    for task in tasks {
                        task.await.unwrap();
                    }
                    let mut written = 0_i128;
                    for flusher in flushers {
                        written += flusher.await.unwrap();
                    }
                    let mut redis = async_redis(url).await;
                    let mut conn = pool.get().await.expect("pooled connection");
                    written += views.flush(&mut conn, &mut redis).await.unwrap().total_written();
                    let mut expected = BTreeMap::new();
                    for task in 0..TASKS {
                        for i in 0..200 {
                            *expected.entry(((task + i) % 8) as i32).or_insert(0) +=
                                (i % 3 + 1) as i64;
                        }
                    }
                    let total: i64 = expected.values().sum();
                    assert_eq!(views_of(&db, page), expected);
                    assert_eq!(written, i128::from(total));
                    for day in 0..8 {
                        assert_eq!(views.pending(&mut redis, &(page, day)).await.unwrap(), 0);
                    }
                    assert_eq!(open_batches(&mut counter_tests::db::redis_connection(), &prefix), Vec::<String>::new());
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

            /// `transaction_async` from 16 tasks: each sells 3 and counts them in one
            /// transaction; an error inside rolls back what came before it.
            #[test]
            fn transactions_are_all_or_nothing() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, TASKS + 4).await;
                    let id = db.new_product(40, 0);
                    let mut tasks = Vec::new();
                    for _ in 0..TASKS {
                        let pool = pool.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut conn = pool.get().await.expect("pooled connection");
                            transaction_async(&mut conn, RetryPolicy::DEFAULT, |c| {
                                async move {
                                    Product::increment_sold(c, id, 3).await?;
                                    Product::decrement_stock_if_at_least(c, id, 3).await
                                }
                                .scope_boxed()
                            })
                            .await
                        }));
                    }
                    let mut outcomes = (0, 0);
                    for task in tasks {
                        match task.await.unwrap() {
                            Ok(_) => outcomes.0 += 1,
                            Err(AtomicError::Insufficient {
                                available: 1,
                                requested: 3,
                            }) => outcomes.1 += 1,
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                    assert_eq!(outcomes, (13, 3));
                    assert_eq!(db.product(id), (1, 39));
                });
            }

            /// The errors of the blocking API, the same on the async one.
            #[test]
            fn errors_are_the_same() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, 4).await;
                    let id = db.new_product(5, 0);
                    let missing = counter_tests::next_id();
                    let mut c = pool.get().await.unwrap();
                    assert!(matches!(
                        Product::increment_stock(&mut c, missing, 1).await,
                        Err(AtomicError::NotFound)
                    ));
                    assert!(matches!(
                        Product::decrement_stock_if_at_least(&mut c, id, 6).await,
                        Err(AtomicError::Insufficient {
                            available: 5,
                            requested: 6
                        })
                    ));
                    assert!(matches!(
                        Product::increment_stock(&mut c, id, 996).await,
                        Err(AtomicError::OutOfRange {
                            current: 5,
                            attempted: 1001,
                            ..
                        })
                    ));
                    assert!(matches!(
                        Product::increment_stock(&mut c, id, -1).await,
                        Err(AtomicError::NegativeAmount { .. })
                    ));
                    assert!(matches!(
                        Product::transfer_stock(&mut c, id, id, 1).await,
                        Err(AtomicError::SameRow)
                    ));
                    assert!(matches!(
                        Product::update_stock_locked(&mut c, id, |_| Err(AtomicError::custom(
                            "no"
                        )))
                        .await,
                        Err(AtomicError::Custom(_))
                    ));
                    assert_eq!(db.product(id), (5, 0));
                });
            }

            /// A connection kept by the caller after an operation on it was dropped half-way
            /// refuses further work (`BrokenTransactionManager`) instead of running inside a
            /// transaction nobody will commit, or reading the cut-off statement's answer.
            #[test]
            fn a_connection_whose_operation_was_dropped_refuses_further_work() {
                let db = $open;
                runtime().block_on(async {
                    let pool = $pool(&db, 4).await;
                    let id = db.new_product(10, 0);
                    let mut pendings = 1;
                    loop {
                        let mut conn = pool.get().await.expect("pooled connection");
                        let op = Product::update_sold_locked(&mut conn, id, |v| Ok(v + 1));
                        if drop_after(op, pendings).await {
                            break;
                        }
                        let next = Product::increment_sold(&mut conn, id, 1).await;
                        assert!(
                            matches!(
                                next,
                                Err(AtomicError::Database(
                                    diesel::result::Error::BrokenTransactionManager
                                ))
                            ),
                            "after {pendings} waits: {next:?}"
                        );
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
                        (1..=pendings as i64).contains(&sold),
                        "{sold} after {pendings}"
                    );
                });
            }

            /// A locked update, a transfer and a transaction, each dropped at every await point
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
                    let mut finished = [false; 3];
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
                                _ => {
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
                                    || (op == 2 && (stock, sold) == (stock0 - 1, sold0 + 1)),
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
        }
    };
}

async_scenarios!(postgres, Postgres::open(), pg_pool);
async_scenarios!(mysql, Mysql::open(), mysql_pool);
async_scenarios!(sqlite, Sqlite::open(), sqlite_pool);
// SQLite's default rollback journal, where a reader blocks a writer's commit (WAL hides that).
async_scenarios!(
    sqlite_rollback_journal,
    Sqlite::open_rollback_journal(),
    sqlite_pool
);

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

/// The foreign writer against the async path: while 16 tasks increment `sold` of one row
/// through the deadpool, the real `pgbench` (4 clients, 3 s) runs
/// `UPDATE ct_products SET sold = sold + 1 WHERE id = N` on the same row. The final value is
/// exactly the initial one plus the library's successes plus pgbench's transactions.
#[test]
fn postgres_foreign_writer_pgbench_on_the_same_row() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let db = Postgres::open();
    let initial = 1_000_000_i64;
    let id = db.new_product(0, initial);
    let script = format!("UPDATE ct_products SET sold = sold + 1 WHERE id = {id};\n");
    runtime().block_on(async {
        let pool = pg_pool(&db, TASKS).await;
        let done = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let (pool, done) = (pool.clone(), Arc::clone(&done));
            tasks.push(tokio::spawn(async move {
                let mut conn = pool.get().await.expect("pooled connection");
                let mut ok = 0_i64;
                loop {
                    Product::increment_sold(&mut conn, id, 1).await.unwrap();
                    ok += 1;
                    if done.load(Ordering::SeqCst) {
                        break ok;
                    }
                }
            }));
        }
        let report = tokio::task::spawn_blocking(move || run_pgbench(&script, 4, 3))
            .await
            .unwrap();
        done.store(true, Ordering::SeqCst);
        let mut library = 0;
        for task in tasks {
            library += task.await.unwrap();
        }
        println!("pgbench: {report:?}; library (async): {library} increments");
        assert!(report.processed > 0 && library > 0);
        assert_eq!(
            db.product(id).1,
            initial + library + report.processed as i64
        );
    });
}
