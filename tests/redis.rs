//! Redis itself going away under a `RedisCounter`: every call returns a typed error while it
//! is down (no panic), and the counter works again once it is back. What survives is Redis's
//! persistence: `SHUTDOWN NOSAVE` without AOF loses the pending counts (documented), with
//! `appendonly yes` + `appendfsync always` it loses nothing, not even a batch taken before the
//! shutdown.
//!
//! These tests start their own `redis-server` (on a free port, in a temporary directory), since
//! they shut it down; the database is SQLite. They need the `redis-server` binary
//! (`apt-get install redis-server`, which `.ci/env.sh` does).

use counter_tests::child::{free_port, signal};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use counter_core::AtomicError;
use counter_tests::scenarios::Views;
use counter_tests::scenarios::{daily_rows, fresh_views, rows};
use counter_tests::{next_id, Sqlite, TestDb};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::AsyncConnection;

/// A `redis-server` of this test's own.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
    /// Starts one on `port` with its files in `dir`; `aof`: append-only file, fsync always.
    fn start(port: u16, dir: &Path, aof: bool) -> Self {
        let child = counter_tests::child::without_inherited_fds(&mut Command::new("redis-server"))
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", if aof { "yes" } else { "no" }])
            .args(["--appendfsync", "always", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "these tests start their own redis-server and cannot run it ({e}): install \
                     it (`apt-get install redis-server`; `.ci/env.sh` does)"
                )
            });
        let url = format!("redis://127.0.0.1:{port}/");
        let started = Instant::now();
        while Self::ping(&url).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server on port {port} does not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { child, url }
    }

    fn ping(url: &str) -> redis::RedisResult<()> {
        let mut c = redis::Client::open(url)?.get_connection()?;
        redis::cmd("PING").query::<String>(&mut c).map(drop)
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .expect("a connection to the private redis-server")
    }

    /// `SHUTDOWN NOSAVE`: the server exits at once, keeping only what its AOF has.
    fn shutdown_nosave(mut self) {
        let _ = redis::cmd("SHUTDOWN")
            .arg("NOSAVE")
            .query::<()>(&mut self.connection());
        self.child.wait().expect("redis-server exits");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_redis_error<T: std::fmt::Debug>(result: Result<T, AtomicError>) {
    assert!(
        matches!(result, Err(AtomicError::Redis(_))),
        "while Redis is down: {result:?}"
    );
}

/// Redis restarted with `aof` off or on; returns the row after the last flush, which started
/// at 5 flushed, had 3 + 7 (an `add_once`) pending and a batch of 4 taken at the shutdown, and
/// got the `add_once` again (the same id) and 2 more after.
fn restart(aof: bool) -> i64 {
    let Outage {
        dir,
        port,
        server,
        db,
        page,
        views,
        prefix,
        ..
    } = Outage::start_with(aof);
    let mut conn = db.conn();
    let mut redis = server.connection();
    views.add(&mut redis, &(page, 1), 5).unwrap();
    views.flush(&mut conn, &mut redis).unwrap();
    views.add(&mut redis, &(page, 1), 4).unwrap();
    views
        .take(&mut redis)
        .unwrap()
        .pop()
        .expect("a batch taken, not applied");
    views.add(&mut redis, &(page, 1), 3).unwrap();
    assert_eq!(
        views.add_once(&mut redis, &(page, 1), 7, "once").unwrap(),
        10
    );
    server.shutdown_nosave();

    is_redis_error(views.add(&mut redis, &(page, 1), 1));
    is_redis_error(views.flush(&mut conn, &mut redis));
    is_redis_error(views.current(&mut conn, &mut redis, &(page, 1)));
    is_redis_error(views.pending(&mut redis, &(page, 1)));
    assert!(redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .is_err());
    assert_eq!(rows(&db, page), BTreeMap::from([(1, 5)]));

    let server = PrivateRedis::start(port, dir.path(), aof);
    let mut redis = server.connection();
    // The add of id "once" is retried (its caller never heard back, say): with AOF Redis
    // remembers it and returns the first reply; without, the add and its id were lost
    // together, and the retry counts it, once.
    assert_eq!(
        views.add_once(&mut redis, &(page, 1), 7, "once").unwrap(),
        if aof { 10 } else { 7 }
    );
    views.add(&mut redis, &(page, 1), 2).unwrap();
    let report = views.flush(&mut conn, &mut redis).unwrap();
    assert_eq!(report.recovered, usize::from(aof), "the batch taken before");
    let batches: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{{{prefix}}}:batches"))
        .query(&mut redis)
        .unwrap();
    assert!(batches.is_empty());
    rows(&db, page)[&1]
}

#[test]
fn redis_shutdown_without_persistence_loses_what_was_pending_and_recovers() {
    // 5 flushed + 7 (the add_once, retried) + 2 after the restart; the 4 taken and the 3
    // pending were in Redis only.
    assert_eq!(restart(false), 5 + 7 + 2);
}

#[test]
fn redis_shutdown_with_aof_loses_nothing() {
    assert_eq!(restart(true), 5 + 4 + 3 + 7 + 2);
}

/// The counter's timeout in the tests below, and how long past it a call may take to return
/// (a flush waits for one reply, then fails; the margin absorbs a busy machine).
const TIMEOUT: Duration = Duration::from_millis(300);
const MARGIN: Duration = Duration::from_millis(1_500);

/// `call`'s result, asserted to be `AtomicError::Redis` returned within [`TIMEOUT`] plus
/// [`MARGIN`].
fn fails_fast<T: std::fmt::Debug>(what: &str, call: impl FnOnce() -> Result<T, AtomicError>) {
    let started = Instant::now();
    let result = call();
    failed_fast(what, result, started.elapsed());
}

/// `result`, which took `took`, is `AtomicError::Redis` within [`TIMEOUT`] plus [`MARGIN`].
fn failed_fast<T: std::fmt::Debug>(what: &str, result: Result<T, AtomicError>, took: Duration) {
    assert!(
        matches!(result, Err(AtomicError::Redis(_))),
        "{what} while Redis hangs: {result:?}"
    );
    assert!(took <= TIMEOUT + MARGIN, "{what} took {took:?}");
}

/// What the timeout tests start from: a private `redis-server` (files in `dir`, on `port`),
/// a SQLite database with a row for `(page, 1)`, and one counter on it twice: `views` for the
/// calls that must succeed (the suite's patient timeout: a busy machine can keep a reply past
/// 300 ms), `hurried` for the calls made while Redis is away (timeout [`TIMEOUT`]).
struct Outage {
    dir: tempfile::TempDir,
    port: u16,
    server: PrivateRedis,
    db: Sqlite,
    page: i64,
    views: Views,
    hurried: Views,
    /// The counter's key prefix.
    prefix: String,
}

impl Outage {
    /// Redis without persistence.
    fn start() -> Self {
        Self::start_with(false)
    }

    /// Redis with an append-only file (fsync always) when `aof`.
    fn start_with(aof: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let server = PrivateRedis::start(port, dir.path(), aof);
        let db = Sqlite::open();
        let page = next_id();
        daily_rows(&db, page, [1], 0);
        let (views, prefix) = fresh_views();
        let hurried = Views::new(&prefix).timeout(TIMEOUT);
        Outage {
            dir,
            port,
            server,
            db,
            page,
            views,
            hurried,
            prefix,
        }
    }
}

/// An async connection to `db`.
async fn async_db(db: &Sqlite) -> SyncConnectionWrapper<diesel::SqliteConnection> {
    SyncConnectionWrapper::<diesel::SqliteConnection>::establish(db.path().to_str().unwrap())
        .await
        .unwrap()
}

impl PrivateRedis {
    /// Freezes the server (`SIGSTOP`): connections stay open, no reply comes, as when Redis
    /// hangs or the network drops packets. `resume` (`SIGCONT`) thaws it.
    fn freeze(&self) {
        signal(&self.child, "-STOP");
    }

    fn resume(&self) {
        signal(&self.child, "-CONT");
    }
}

/// While Redis hangs, every call of a blocking counter returns `Redis` within its timeout, on a
/// `redis::Connection` and on a `redis::Client`; once Redis answers again the same connection
/// and client work, and no count was lost or doubled: the adds that returned errors while it
/// hung never reached it (a frozen server reads nothing).
#[test]
fn blocking_calls_fail_within_the_timeout_while_redis_hangs() {
    let Outage {
        dir: _dir,
        server,
        db,
        page,
        views,
        hurried,
        ..
    } = Outage::start();
    let mut conn = db.conn();
    let mut redis = server.connection();
    let mut client = redis::Client::open(server.url.as_str()).unwrap();
    views.add(&mut redis, &(page, 1), 1).unwrap();

    server.freeze();
    fails_fast("add", || hurried.add(&mut redis, &(page, 1), 10));
    fails_fast("add_once", || {
        hurried.add_once(&mut redis, &(page, 1), 10, "x")
    });
    fails_fast("pending", || hurried.pending(&mut redis, &(page, 1)));
    fails_fast("current", || {
        hurried.current(&mut conn, &mut redis, &(page, 1))
    });
    fails_fast("flush", || hurried.flush(&mut conn, &mut redis));
    fails_fast("add on a Client", || {
        hurried.add(&mut client, &(page, 1), 10)
    });
    fails_fast("flush on a Client", || {
        hurried.flush(&mut conn, &mut client)
    });
    server.resume();

    // The commands sent while it hung reach it now: the connection's late replies are skipped.
    // Only a Client's connections were closed before it read them.
    views.add(&mut redis, &(page, 1), 2).unwrap();
    views.add(&mut client, &(page, 1), 3).unwrap();
    let report = views.flush(&mut conn, &mut redis).unwrap();
    assert!(report.kept.is_empty(), "{report:?}");
    let flushed = rows(&db, page)[&1];
    // 1 + 2 + 3, plus whatever of the frozen connection's add (10) and add_once (10) Redis ran
    // on waking: a timed-out add has an unknown outcome, which is the documented caveat.
    assert!(
        [6, 16, 26].contains(&flushed),
        "flushed {flushed}: 6, plus 10 per late add"
    );
    assert_eq!(views.pending(&mut redis, &(page, 1)).unwrap(), 0);
}

/// [`fails_fast`] for a future.
async fn fails_fast_async<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, AtomicError>>,
) {
    let started = Instant::now();
    let result = call.await;
    failed_fast(what, result, started.elapsed());
}

/// Every call of `views` (with the short [`TIMEOUT`]) on async Redis connection `redis` fails
/// within the timeout while the server is away.
async fn async_calls_fail_fast<R>(
    views: &Views,
    conn: &mut SyncConnectionWrapper<diesel::SqliteConnection>,
    redis: &mut R,
    page: i64,
) where
    R: counter_core::RedisConnection<Mode = counter_core::Awaited>,
{
    fails_fast_async("add", views.add(redis, &(page, 1), 10)).await;
    fails_fast_async("add_once", views.add_once(redis, &(page, 1), 10, "x")).await;
    fails_fast_async("pending", views.pending(redis, &(page, 1))).await;
    fails_fast_async("current", views.current(conn, redis, &(page, 1))).await;
    fails_fast_async("flush", views.flush(conn, redis)).await;
}

/// The same on the async connections: a `ConnectionManager` and a `MultiplexedConnection`,
/// configured without a response timeout of their own. While Redis hangs every call returns within
/// the counter's timeout (an earlier release hung until Redis came back: 9.4 s for an 8 s
/// outage); afterwards both work again without being made anew.
#[test]
fn async_calls_fail_within_the_timeout_while_redis_hangs() {
    let Outage {
        dir: _dir,
        server,
        db,
        page,
        views,
        hurried,
        ..
    } = Outage::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // No response timeout of their own (redis-rs's defaults have one, 500 ms, which a
        // user may lift): the counter's timeout is what must end the calls.
        let client = redis::Client::open(server.url.as_str()).unwrap();
        let mut manager = redis::aio::ConnectionManager::new_with_config(
            client.clone(),
            redis::aio::ConnectionManagerConfig::new().set_response_timeout(None),
        )
        .await
        .unwrap();
        let mut multiplexed = client
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new().set_response_timeout(None),
            )
            .await
            .unwrap();
        let mut conn = async_db(&db).await;
        views.add(&mut manager, &(page, 1), 1).await.unwrap();

        server.freeze();
        async_calls_fail_fast(&hurried, &mut conn, &mut manager, page).await;
        async_calls_fail_fast(&hurried, &mut conn, &mut multiplexed, page).await;
        server.resume();

        views.add(&mut manager, &(page, 1), 2).await.unwrap();
        views.add(&mut multiplexed, &(page, 1), 3).await.unwrap();
        let report = views.flush(&mut conn, &mut manager).await.unwrap();
        assert!(report.kept.is_empty(), "{report:?}");
    });
    // 1 + 2 + 3, plus 10 for each frozen add and add_once that Redis ran on waking (unknown
    // outcomes: their futures gave up, their commands had been written).
    let flushed = rows(&db, page)[&1];
    assert!(
        [6, 16, 26, 36, 46].contains(&flushed),
        "flushed {flushed}: 6, plus 10 per late add"
    );
}

/// A reply lost after Redis ran the command (the proxy swallows it and cuts the connection):
/// the plain `add` returned an error yet was counted, so its retry counts it twice, which is
/// the unknown outcome its docs state; `add_once` retried with the same id counts it once and
/// returns the first call's answer.
#[test]
fn a_lost_reply_doubles_a_retried_add_and_not_an_add_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = PrivateRedis::start(port, dir.path(), false);
    let proxy = counter_tests::proxy::LossyProxy::to(([127, 0, 0, 1], port).into());
    let url = format!("redis://127.0.0.1:{}/", proxy.port());
    let through = || {
        redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .expect("a connection through the proxy")
    };
    let (views, _) = fresh_views();
    let page = next_id();
    // Loads the script, so that the reply lost below is the add's own.
    views
        .add_once(&mut through(), &(page, 9), 1, "warm-up")
        .unwrap();

    let mut redis = through();
    proxy.lose_next_reply();
    is_redis_error(views.add(&mut redis, &(page, 1), 5));
    assert_eq!(proxy.replies_lost(), 1);
    assert_eq!(
        views.add(&mut through(), &(page, 1), 5).unwrap(),
        10,
        "counted twice"
    );

    let mut redis = through();
    proxy.lose_next_reply();
    is_redis_error(views.add_once(&mut redis, &(page, 2), 5, "order-7"));
    assert_eq!(proxy.replies_lost(), 2);
    let mut redis = through();
    assert_eq!(
        views
            .add_once(&mut redis, &(page, 2), 5, "order-7")
            .unwrap(),
        5
    );
    assert_eq!(
        views
            .add_once(&mut redis, &(page, 2), 5, "order-7")
            .unwrap(),
        5
    );
    assert_eq!(
        views.pending(&mut redis, &(page, 2)).unwrap(),
        5,
        "counted once"
    );
    // Another id is another add.
    assert_eq!(
        views
            .add_once(&mut redis, &(page, 2), 5, "order-8")
            .unwrap(),
        10
    );
    // Ids are checked before anything is sent.
    assert!(matches!(
        views.add_once(&mut redis, &(page, 2), 5, ""),
        Err(AtomicError::Custom(_))
    ));
    assert!(matches!(
        views.add_once(&mut redis, &(page, 2), 5, &"x".repeat(201)),
        Err(AtomicError::Custom(_))
    ));
    assert_eq!(views.pending(&mut redis, &(page, 2)).unwrap(), 10);
}

/// Redis stopped (`SHUTDOWN NOSAVE`) for a while under a `ConnectionManager` with redis-rs's
/// default configuration, then started again on the same port: while it is down every call
/// returns `Redis` within the counter's timeout, and once it is back the same manager works
/// again on its own (it reconnects), the counts added after the restart all there.
#[test]
fn a_connection_manager_fails_fast_while_redis_is_down_and_recovers_on_its_own() {
    let Outage {
        dir,
        port,
        server,
        db,
        page,
        views,
        hurried,
        ..
    } = Outage::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = redis::Client::open(server.url.as_str()).unwrap();
        let mut manager = redis::aio::ConnectionManager::new(client).await.unwrap();
        let mut conn = async_db(&db).await;
        views.add(&mut manager, &(page, 1), 1).await.unwrap();
        views.flush(&mut conn, &mut manager).await.unwrap();

        server.shutdown_nosave();
        for _ in 0..3 {
            async_calls_fail_fast(&hurried, &mut conn, &mut manager, page).await;
        }
        let _server = PrivateRedis::start(port, dir.path(), false);
        // The manager reconnects in the background: the first calls may still fail, fast.
        let started = Instant::now();
        loop {
            match views.add_once(&mut manager, &(page, 1), 5, "after").await {
                Ok(n) => {
                    assert_eq!(n, 5);
                    break;
                }
                Err(AtomicError::Redis(_)) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "the manager never recovered"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        views.add(&mut manager, &(page, 1), 2).await.unwrap();
        views.flush(&mut conn, &mut manager).await.unwrap();
    });
    // 1 before; 5 (once, however many tries) and 2 after; nothing was pending at the stop.
    assert_eq!(rows(&db, page)[&1], 1 + 5 + 2);
}
