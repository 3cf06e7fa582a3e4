//! `counter_core::MemcachedCounter`: adds `incr`'ed in Memcached reach the rows exactly once,
//! on SQLite, PostgreSQL and MariaDB, blocking and async, whatever the flushers do: run two at
//! once beside busy adders and CPU-bound threads, or are dropped after any number of polls.
//! What Memcached forgets (a restart, an evicted item) loses exactly the counts not yet
//! flushed, never doubles any; while it is down every call fails with a typed error, and works
//! again once it is back.
//!
//! These tests start their own `memcached` (on a free loopback port), since they kill and
//! restart it. They need the binary (`apt-get install memcached`, which `.ci/env.sh` does).

use counter_tests::child::{free_port, signal};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use counter_core::RedisKey;
use counter_core::{
    AtomicConnection, AtomicError, AtomicFieldOn, Awaited, BackendOf, Blocking, CallMode,
    MemcachedConnection, MemcachedCounter, NewRow, RetryPolicy, UnknownKeys,
};
use counter_tests::db::{mysql_url, pg_url};
use counter_tests::models::DailyView;
use counter_tests::scenarios::{daily_rows, harness_sql, rows};
use counter_tests::schema::ct_daily_views;
use counter_tests::{next_id, Mysql, Postgres, Sqlite, TestDb};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, AsyncPgConnection};
use memcache::exp::{AsyncMetaClient, Delete, MetaClient};
use rand::{Rng, SeedableRng};

/// The counter every test uses, on a name of its own.
type Views = MemcachedCounter<DailyView, ct_daily_views::views>;

/// A counter on a fresh name, so tests never share Memcached items or ledger rows.
fn fresh_views() -> Views {
    named_views().0
}

/// [`fresh_views`] and its name.
fn named_views() -> (Views, String) {
    let name = format!("ct-mc-{}", next_id());
    (Views::new(&name).timeout(SUITE_TIMEOUT), name)
}

/// The count item of `key` of the counter named `name`.
fn item(name: &str, key: &(i64, i32)) -> String {
    format!("{name}:c:{}", key.field())
}

/// The clients' and the counter's patience in the tests that must succeed: the 2-core
/// machine under the whole suite can keep a reply past a second.
const SUITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The timeouts of the clients used while Memcached is away, and how long past them a call
/// may take to return on a busy machine.
const HURRIED: Duration = Duration::from_millis(300);
const MARGIN: Duration = Duration::from_millis(2_500);

/// A `memcached` of this test's own.
struct PrivateMemcached {
    child: Child,
    port: u16,
}

impl PrivateMemcached {
    /// Starts one on a free port.
    fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts one on `port` (TCP only, on loopback, 64 MB).
    fn start_on(port: u16) -> Self {
        let child = counter_tests::memcached::start_memcached(port, 64)
            .unwrap_or_else(|e| panic!("these tests start their own memcached: {e}"));
        PrivateMemcached { child, port }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A blocking client waiting at most `timeout` per exchange.
    fn client_within(&self, timeout: Duration) -> MetaClient {
        MetaClient::builder()
            .io_timeout(Some(timeout))
            .connect_timeout(Some(timeout))
            .connect(self.addr())
            .expect("a client of the private memcached")
    }

    fn client(&self) -> MetaClient {
        self.client_within(SUITE_TIMEOUT)
    }

    /// An async client waiting at most `timeout` per exchange.
    async fn async_client_within(&self, timeout: Duration) -> AsyncMetaClient {
        MetaClient::builder()
            .io_timeout(Some(timeout))
            .connect_timeout(Some(timeout))
            .connect_async(self.addr())
            .await
            .expect("an async client of the private memcached")
    }

    /// Kills it (SIGKILL: everything it held is gone).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills it and starts a new, empty one on the same port.
    fn restart(&mut self) {
        self.kill();
        *self = Self::start_on(self.port);
    }

    /// Freezes it (`SIGSTOP`): connections stay open, no reply comes. `resume` thaws it.
    /// Returns once every thread is stopped: `kill` returns before they are, and a command
    /// sent in between was seen answered.
    fn freeze(&self) {
        signal(&self.child, "-STOP");
        let tasks = format!("/proc/{}/task", self.child.id());
        let started = Instant::now();
        loop {
            let stopped = std::fs::read_dir(&tasks).expect("its threads").all(|task| {
                let stat = task
                    .map(|t| t.path().join("stat"))
                    .and_then(std::fs::read_to_string);
                // `pid (comm) S …`: the state follows the last `)`.
                stat.is_ok_and(|s| {
                    s.rsplit(')')
                        .next()
                        .is_some_and(|t| t.trim_start().starts_with('T'))
                })
            });
            if stopped {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "memcached does not stop"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn resume(&self) {
        signal(&self.child, "-CONT");
    }
}

impl Drop for PrivateMemcached {
    fn drop(&mut self) {
        self.resume_quietly();
        self.kill();
    }
}

impl PrivateMemcached {
    fn resume_quietly(&self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `future` to its end on a runtime of this thread's own (a blocking side's futures are
/// ready at their first poll).
fn run<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// One backend with one kind of connection, as the scenarios need it.
trait Side: Sync {
    type Db: TestDb;
    type Mode: CallMode;
    type Conn: AtomicConnection<Mode = Self::Mode>;
    type Mc: MemcachedConnection<Mode = Self::Mode>;

    fn db(&self) -> &Self::Db;
    fn conn(&self) -> impl Future<Output = Self::Conn>;
    fn mc(&self, server: &PrivateMemcached, timeout: Duration) -> impl Future<Output = Self::Mc>;
}

/// What a call on side `S` returned, as a future.
fn done<S: Side, F: Future>(out: <S::Mode as CallMode>::Out<F>) -> impl Future<Output = F::Output> {
    S::Mode::into_future(out)
}

/// Blocking: a pooled connection of the backend, a `MetaClient`.
struct BlockingSide<B>(B);

impl<B: TestDb> Side for BlockingSide<B> {
    type Db = B;
    type Mode = Blocking;
    type Conn = B::Pooled;
    type Mc = MetaClient;

    fn db(&self) -> &B {
        &self.0
    }

    async fn conn(&self) -> B::Pooled {
        self.0.conn()
    }

    async fn mc(&self, server: &PrivateMemcached, timeout: Duration) -> MetaClient {
        server.client_within(timeout)
    }
}

/// Async: a diesel-async connection of the backend, an `AsyncMetaClient`.
macro_rules! async_side {
    ($side:ident, $db:ty, $conn:ty, |$this:ident| $url:expr) => {
        struct $side($db);

        impl Side for $side {
            type Db = $db;
            type Mode = Awaited;
            type Conn = $conn;
            type Mc = AsyncMetaClient;

            fn db(&self) -> &$db {
                &self.0
            }

            async fn conn(&self) -> $conn {
                let $this = self;
                <$conn>::establish($url)
                    .await
                    .expect("an async database connection")
            }

            async fn mc(&self, server: &PrivateMemcached, timeout: Duration) -> AsyncMetaClient {
                server.async_client_within(timeout).await
            }
        }
    };
}
async_side!(
    AsyncSqlite,
    Sqlite,
    SyncConnectionWrapper<diesel::SqliteConnection>,
    |s| s.0.path().to_str().expect("a UTF-8 path")
);
async_side!(AsyncPostgres, Postgres, AsyncPgConnection, |_s| pg_url());
async_side!(AsyncMysql, Mysql, AsyncMysqlConnection, |_s| mysql_url());

/// Counts an adder out when dropped, panicking or not.
struct CountDown<'a>(&'a AtomicUsize);

impl Drop for CountDown<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A barrier that gives up: a worker that panicked before reaching it (no connection from a
/// busy pool, say) fails the test after a minute instead of hanging it.
struct Ready {
    arrived: AtomicUsize,
    all: usize,
}

impl Ready {
    fn new(all: usize) -> Self {
        Ready {
            arrived: AtomicUsize::new(0),
            all,
        }
    }

    fn wait(&self) {
        self.arrived.fetch_add(1, Ordering::AcqRel);
        let started = Instant::now();
        while self.arrived.load(Ordering::Acquire) < self.all {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "a worker never got ready"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// 8 adders × 300 adds (1 to 3) over 4 days, day 0 taking half of them, while 2 flushers
/// flush in a loop and 2 threads burn CPU beside them; then a last flush. Every row holds
/// exactly what the adds that returned `Ok` added, and the flush reports together wrote
/// exactly that much (so no count was applied twice).
fn concurrent_adds_and_flushes_are_exact<S: Side>(side: &S)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<S::Conn>>,
{
    const ADDERS: usize = 8;
    const ADDS: usize = 300;
    const FLUSHERS: usize = 2;
    const BURNERS: usize = 2;
    const DAYS: i32 = 4;
    let server = PrivateMemcached::start();
    let db = side.db();
    let page = next_id();
    daily_rows(db, page, 0..DAYS, 0);
    let views = fresh_views();
    let adders_left = AtomicUsize::new(ADDERS);
    // Everyone connected before the first add: the flushers run beside the adders.
    let ready = Ready::new(ADDERS + FLUSHERS);
    let mut added: BTreeMap<i32, i64> = BTreeMap::new();
    let mut written = 0_i128;
    let mut flushes = 0_usize;
    std::thread::scope(|s| {
        for _ in 0..BURNERS {
            s.spawn(|| {
                let mut x = 1_u64;
                while adders_left.load(Ordering::Acquire) > 0 {
                    for _ in 0..10_000 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    }
                }
                std::hint::black_box(x);
            });
        }
        let flushers: Vec<_> = (0..FLUSHERS)
            .map(|_| {
                s.spawn(|| {
                    run(async {
                        let mut conn = side.conn().await;
                        let mc = side.mc(&server, SUITE_TIMEOUT).await;
                        ready.wait();
                        let (mut written, mut flushes) = (0_i128, 0_usize);
                        loop {
                            let last = adders_left.load(Ordering::Acquire) == 0;
                            let report = done::<S, _>(views.flush(&mut conn, &mc))
                                .await
                                .expect("a flush");
                            assert!(report.kept.is_empty(), "kept: {:?}", report.kept);
                            assert!(report.recreated.is_empty(), "{:?}", report.recreated);
                            written += report.total_written();
                            flushes += 1;
                            if last {
                                return (written, flushes);
                            }
                        }
                    })
                })
            })
            .collect();
        let adders: Vec<_> = (0..ADDERS)
            .map(|worker| {
                let (views, adders_left, server, ready) = (&views, &adders_left, &server, &ready);
                s.spawn(move || {
                    // Counted down even when the adder panics: the flushers and burners stop.
                    let _done = CountDown(adders_left);
                    let added = run(async {
                        let mc = side.mc(server, SUITE_TIMEOUT).await;
                        ready.wait();
                        let mut rng = rand::rngs::StdRng::seed_from_u64(worker as u64);
                        let mut added: BTreeMap<i32, i64> = BTreeMap::new();
                        for _ in 0..ADDS {
                            let day = if rng.random_bool(0.5) {
                                0
                            } else {
                                rng.random_range(1..DAYS)
                            };
                            let n = rng.random_range(1..=3);
                            let value = done::<S, _>(views.add(&mc, &(page, day), n))
                                .await
                                .expect("an add");
                            assert!(value >= n as u64, "item {value} after adding {n}");
                            *added.entry(day).or_default() += n;
                        }
                        added
                    });
                    added
                })
            })
            .collect();
        for adder in adders {
            for (day, n) in adder.join().expect("an adder") {
                *added.entry(day).or_default() += n;
            }
        }
        for flusher in flushers {
            let (w, f) = flusher.join().expect("a flusher");
            written += w;
            flushes += f;
        }
    });
    let last = run(async {
        let mut conn = side.conn().await;
        let mc = side.mc(&server, SUITE_TIMEOUT).await;
        done::<S, _>(views.flush(&mut conn, &mc)).await.unwrap()
    });
    written += last.total_written();
    let total: i64 = added.values().sum();
    assert!(
        total >= (ADDERS * ADDS) as i64,
        "at least 1 per add: {total}"
    );
    assert_eq!(rows(db, page), added, "after {flushes} concurrent flushes");
    assert_eq!(written, i128::from(total), "every count written once");
}

/// A future that gives up (returns `None`, dropping `inner`) when polled once more after
/// `polls` polls: a flusher killed at that point.
struct Killed<F> {
    inner: Pin<Box<F>>,
    polls: usize,
}

impl<F: Future> Future for Killed<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls == 0 {
            return Poll::Ready(None);
        }
        self.polls -= 1;
        self.inner.as_mut().poll(cx).map(Some)
    }
}

/// A flush dropped after its k-th poll, for k = 1, 2, 3, … until one completes, each drop
/// followed by a clean flush on a new connection: after each, every row holds exactly what
/// was added so far (nothing lost at any point of the flush, nothing doubled).
async fn flush_killed_after_each_poll_counts_once<S: Side<Mode = Awaited>>(side: &S)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<S::Conn>>,
{
    let server = PrivateMemcached::start();
    let db = side.db();
    let page = next_id();
    daily_rows(db, page, 0..3, 0);
    let (views, name) = named_views();
    let mc = side.mc(&server, SUITE_TIMEOUT).await;
    let foreign = server.client();
    let mut added: BTreeMap<i32, i64> = BTreeMap::from([(0, 0), (1, 0), (2, 0)]);
    for k in 1..=500 {
        // Something new on each key, and a key new to Memcached every time (day 2 is
        // deleted, as if evicted, so its next add creates its item and indexes it again).
        for (day, n) in [(0, 1 + k as i64 % 3), (1, 2), (2, 1)] {
            views.add(&mc, &(page, day), n).await.unwrap();
            *added.get_mut(&day).unwrap() += n;
        }
        let mut conn = side.conn().await;
        let flush = Killed {
            inner: Box::pin(views.flush(&mut conn, &mc)),
            polls: k,
        }
        .await;
        drop(conn);
        let completed = match flush {
            None => false,
            Some(result) => {
                result.expect("a flush that ran to its end");
                true
            }
        };
        let mut clean = side.conn().await;
        let report = views.flush(&mut clean, &mc).await.expect("a clean flush");
        assert!(report.kept.is_empty(), "{report:?}");
        assert_eq!(rows(db, page), added, "after a flush killed at poll {k}");
        if completed {
            assert!(
                k >= 3,
                "only {} flushes were killed before one completed",
                k - 1
            );
            return;
        }
        // Day 2's item goes (its count is in the rows now), as if evicted: the next round
        // creates it again, with a new nonce, and indexes it again.
        let evicted = foreign.run(Delete::new(item(&name, &(page, 2)))).unwrap();
        assert!(evicted.applied());
    }
    panic!("no flush completed within 500 polls");
}

/// A side's connection and client, and a call's result awaited: the scenarios below are
/// written once for both kinds.
macro_rules! call {
    ($s:ty, $out:expr) => {
        done::<$s, _>($out).await
    };
}

/// `result` is `AtomicError::Memcached`, returned within `took` ≤ [`HURRIED`] + [`MARGIN`].
fn failed_fast<T: std::fmt::Debug>(what: &str, result: Result<T, AtomicError>, took: Duration) {
    assert!(
        matches!(result, Err(AtomicError::Memcached(_))),
        "{what} while Memcached is away: {result:?}"
    );
    assert!(took <= HURRIED + MARGIN, "{what} took {took:?}");
}

/// Memcached killed and started again, empty, between adds and a flush: the counts flushed
/// before are in the rows once, the ones pending at the kill are lost (exactly those), the
/// ones added after arrive in full on a new item (reported as re-created), nothing doubles.
/// The same client works again on its own.
async fn restart_loses_exactly_what_was_pending<S: Side>(side: &S)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<S::Conn>>,
{
    let mut server = PrivateMemcached::start();
    let db = side.db();
    let page = next_id();
    daily_rows(db, page, 0..2, 0);
    let views = fresh_views();
    let mc = side.mc(&server, SUITE_TIMEOUT).await;
    let mut conn = side.conn().await;
    call!(S, views.add(&mc, &(page, 0), 5)).unwrap();
    call!(S, views.add(&mc, &(page, 1), 1)).unwrap();
    call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(
        call!(S, views.add(&mc, &(page, 0), 4)).unwrap(),
        9,
        "pending: 4"
    );
    server.restart();
    // The async client's pooled connection finds the old server gone on its first use (the
    // blocking one probes it first and dials again): a read, safe to repeat, until it has.
    let mut reconnected = false;
    for _ in 0..5 {
        if call!(S, views.pending(&mut conn, &mc, &(page, 1))).is_ok() {
            reconnected = true;
            break;
        }
    }
    assert!(reconnected, "the client works again after the restart");
    // A new item, a new nonce: its value is all new.
    assert_eq!(call!(S, views.add(&mc, &(page, 0), 2)).unwrap(), 2);
    let report = call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(report.written, [((page, 0), 2)]);
    assert_eq!(report.recreated, [(page, 0)]);
    assert_eq!(rows(db, page), BTreeMap::from([(0, 5 + 2), (1, 1)]));
    let again = call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert!(
        again.written.is_empty() && again.recreated.is_empty(),
        "{again:?}"
    );
    assert_eq!(rows(db, page), BTreeMap::from([(0, 7), (1, 1)]));
}

/// One count item evicted (deleted by another client) between adds and a flush: that key
/// loses exactly its counts not yet flushed, the other key loses nothing. The index item
/// evicted: a key flushed before is still flushed (through its ledger row); a key never
/// flushed is found again once its item is created again, and `flush_keys` finds it before.
async fn evictions_lose_exactly_what_was_pending<S: Side>(side: &S)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<S::Conn>>,
{
    let server = PrivateMemcached::start();
    let foreign = server.client();
    let db = side.db();
    let page = next_id();
    daily_rows(db, page, 0..4, 0);
    let (views, name) = named_views();
    let mc = side.mc(&server, SUITE_TIMEOUT).await;
    let mut conn = side.conn().await;
    for day in [0, 1] {
        call!(S, views.add(&mc, &(page, day), 5)).unwrap();
    }
    call!(S, views.flush(&mut conn, &mc)).unwrap();
    for day in [0, 1] {
        call!(S, views.add(&mc, &(page, day), 3)).unwrap();
    }
    assert!(foreign
        .run(Delete::new(item(&name, &(page, 0))))
        .unwrap()
        .applied());
    call!(S, views.add(&mc, &(page, 0), 2)).unwrap();
    let report = call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(report.recreated, [(page, 0)]);
    assert_eq!(
        rows(db, page),
        BTreeMap::from([(0, 7), (1, 8), (2, 0), (3, 0)])
    );

    // Day 2 is counted and never flushed, then the index goes.
    call!(S, views.add(&mc, &(page, 2), 4)).unwrap();
    assert!(foreign
        .run(Delete::new(format!("{name}:keys")))
        .unwrap()
        .applied());
    call!(S, views.add(&mc, &(page, 1), 1)).unwrap();
    call!(S, views.add(&mc, &(page, 3), 6)).unwrap(); // a new key: a new index
    let report = call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(report.written, [((page, 1), 1), ((page, 3), 6)]);
    assert_eq!(
        rows(db, page),
        BTreeMap::from([(0, 7), (1, 9), (2, 0), (3, 6)])
    );
    // Day 2 waits in its item: a flush of the key finds it.
    assert_eq!(
        call!(S, views.pending(&mut conn, &mc, &(page, 2))).unwrap(),
        4
    );
    let report = call!(S, views.flush_keys(&mut conn, &mc, &[(page, 2)])).unwrap();
    assert_eq!(report.written, [((page, 2), 4)]);
    call!(S, views.add(&mc, &(page, 2), 1)).unwrap();
    call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(
        rows(db, page),
        BTreeMap::from([(0, 7), (1, 9), (2, 5), (3, 6)])
    );
}

/// Memcached killed: `add`, `flush`, `current` and `pending` fail with
/// `AtomicError::Memcached` within the client's timeout, nothing is written; once a new one
/// runs on the same port, the same client and counter work again. Memcached frozen
/// (`SIGSTOP`): the same, within the timeout.
async fn memcached_down_fails_fast_and_recovers<S: Side>(side: &S)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<S::Conn>>,
{
    let mut server = PrivateMemcached::start();
    let db = side.db();
    let page = next_id();
    daily_rows(db, page, 0..1, 0);
    let views = fresh_views().timeout(HURRIED);
    let mc = side.mc(&server, HURRIED).await;
    let mut conn = side.conn().await;
    call!(S, views.add(&mc, &(page, 0), 5)).unwrap();
    call!(S, views.flush(&mut conn, &mc)).unwrap();

    server.kill();
    let started = Instant::now();
    let result = call!(S, views.add(&mc, &(page, 0), 1));
    failed_fast("add", result, started.elapsed());
    let started = Instant::now();
    let result = call!(S, views.flush(&mut conn, &mc));
    failed_fast("flush", result, started.elapsed());
    let started = Instant::now();
    let result = call!(S, views.current(&mut conn, &mc, &(page, 0)));
    failed_fast("current", result, started.elapsed());
    assert_eq!(rows(db, page), BTreeMap::from([(0, 5)]));

    server = PrivateMemcached::start_on(server.port);
    call!(S, views.add(&mc, &(page, 0), 2)).unwrap();
    call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(rows(db, page), BTreeMap::from([(0, 7)]));

    server.freeze();
    let started = Instant::now();
    let result = call!(S, views.add(&mc, &(page, 0), 10));
    failed_fast("add while frozen", result, started.elapsed());
    let started = Instant::now();
    let result = call!(S, views.flush(&mut conn, &mc));
    failed_fast("flush while frozen", result, started.elapsed());
    server.resume();
    // The add sent to the frozen server may run when it wakes: a timed-out add has an
    // unknown outcome (the documented caveat). Nothing else changes.
    let mut flushed = None;
    for _ in 0..100 {
        match call!(S, views.flush(&mut conn, &mc)) {
            Ok(_) => {
                flushed = Some(rows(db, page)[&0]);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let flushed = flushed.expect("flushes work again after the resume");
    assert!(
        [7, 17].contains(&flushed),
        "flushed {flushed}: 7, plus 10 if the late add ran"
    );
}

/// What a flush does with what it cannot write: a negative amount is refused before anything
/// is sent; a key without a row is reported once and dropped (`Drop`), or reported by every
/// flush and written once the row exists (`Keep`), or inserted (`inserting`); a row at its
/// bound keeps its count in Memcached, reported by each flush, written once the row can take
/// it; the other keys are written meanwhile.
async fn refusals_are_reported_and_kept<S: Side>(side: &S)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<S::Conn>>,
    DailyView: NewRow<DailyView, ct_daily_views::views, BackendOf<S::Conn>>,
{
    let server = PrivateMemcached::start();
    let db = side.db();
    let page = next_id();
    daily_rows(db, page, 0..1, 0);
    daily_rows(db, page, 1..2, i64::MAX - 2);
    let views = fresh_views();
    let mc = side.mc(&server, SUITE_TIMEOUT).await;
    let mut conn = side.conn().await;
    let negative = call!(S, views.add(&mc, &(page, 0), -1));
    assert!(
        matches!(negative, Err(AtomicError::NegativeAmount { amount: -1 })),
        "{negative:?}"
    );

    // Drop: day 5 has no row.
    call!(S, views.add(&mc, &(page, 0), 1)).unwrap();
    call!(S, views.add(&mc, &(page, 5), 3)).unwrap();
    // The bound: day 1 is 2 below i64::MAX.
    call!(S, views.add(&mc, &(page, 1), 5)).unwrap();
    let report = call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(report.written, [((page, 0), 1)]);
    assert_eq!(report.unknown, [((page, 5), 3)]);
    assert_eq!(report.kept.len(), 1, "{report:?}");
    assert_eq!(
        (report.kept[0].key, report.kept[0].count),
        (Some((page, 1)), 5)
    );
    assert!(
        matches!(report.kept[0].error, AtomicError::OutOfRange { .. }),
        "{report:?}"
    );
    let again = call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert!(
        again.unknown.is_empty() && again.written.is_empty(),
        "dropped: {again:?}"
    );
    assert_eq!(again.kept.len(), 1, "kept again: {again:?}");
    harness_sql(
        db,
        &format!("UPDATE ct_daily_views SET views = 0 WHERE page_id = {page} AND day = 1"),
        "lower the row",
    );
    let report = call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(report.written, [((page, 1), 5)]);
    assert!(report.kept.is_empty(), "{report:?}");
    daily_rows(db, page, 5..6, 0);
    call!(S, views.add(&mc, &(page, 5), 1)).unwrap();
    call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(
        rows(db, page),
        BTreeMap::from([(0, 1), (1, 5), (5, 1)]),
        "only the new 1"
    );

    // Keep: day 6 has no row until the third flush.
    let keeping = fresh_views().unknown_keys(UnknownKeys::Keep);
    call!(S, keeping.add(&mc, &(page, 6), 3)).unwrap();
    for _ in 0..2 {
        let report = call!(S, keeping.flush(&mut conn, &mc)).unwrap();
        assert_eq!(report.unknown, [((page, 6), 3)]);
    }
    daily_rows(db, page, 6..7, 0);
    let report = call!(S, keeping.flush(&mut conn, &mc)).unwrap();
    assert_eq!(report.written, [((page, 6), 3)]);
    assert!(report.unknown.is_empty());
    assert_eq!(rows(db, page)[&6], 3);

    // Inserting: day 7 has no row; the flush inserts it with its count, then adds to it.
    let inserting = fresh_views().inserting(|&(page_id, day): &(i64, i32), views| DailyView {
        page_id,
        day,
        views,
    });
    call!(S, inserting.add(&mc, &(page, 7), 4)).unwrap();
    let report = call!(S, inserting.flush(&mut conn, &mc)).unwrap();
    assert_eq!(report.written, [((page, 7), 4)]);
    assert!(
        report.unknown.is_empty() && report.kept.is_empty(),
        "{report:?}"
    );
    call!(S, inserting.add(&mc, &(page, 7), 1)).unwrap();
    call!(S, inserting.flush(&mut conn, &mc)).unwrap();
    assert_eq!(rows(db, page)[&7], 5);
}

/// `current` is the row plus what the database has not taken; `pending` that alone.
async fn current_adds_the_row_and_the_pending_count<S: Side>(side: &S)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<S::Conn>>,
{
    let server = PrivateMemcached::start();
    let db = side.db();
    let page = next_id();
    daily_rows(db, page, 0..1, 10);
    let views = fresh_views();
    let mc = side.mc(&server, SUITE_TIMEOUT).await;
    let mut conn = side.conn().await;
    let key = (page, 0);
    assert_eq!(call!(S, views.current(&mut conn, &mc, &key)).unwrap(), 10);
    call!(S, views.add(&mc, &key, 3)).unwrap();
    assert_eq!(call!(S, views.pending(&mut conn, &mc, &key)).unwrap(), 3);
    assert_eq!(call!(S, views.current(&mut conn, &mc, &key)).unwrap(), 13);
    call!(S, views.flush(&mut conn, &mc)).unwrap();
    call!(S, views.add(&mc, &key, 4)).unwrap();
    assert_eq!(call!(S, views.pending(&mut conn, &mc, &key)).unwrap(), 4);
    assert_eq!(call!(S, views.current(&mut conn, &mc, &key)).unwrap(), 17);
    let missing = call!(S, views.current(&mut conn, &mc, &(page, 9)));
    assert!(matches!(missing, Err(AtomicError::NotFound)), "{missing:?}");
}

/// The index item lists the keys a flush must look for: after a flush it keeps only the keys
/// the ledger does not have (none: it is deleted), and a new key is indexed again; a key
/// flushed once is flushed through its ledger row without the index.
async fn the_index_keeps_only_keys_never_flushed<S: Side>(side: &S)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<S::Conn>>,
{
    let server = PrivateMemcached::start();
    let foreign = server.client();
    let db = side.db();
    let page = next_id();
    daily_rows(db, page, 0..4, 0);
    let (views, name) = named_views();
    let mc = side.mc(&server, SUITE_TIMEOUT).await;
    let mut conn = side.conn().await;
    let index = |foreign: &MetaClient| {
        let got = foreign
            .run(memcache::exp::Get::new(format!("{name}:keys")))
            .unwrap();
        got.value.map(|v| String::from_utf8(v).unwrap())
    };
    for day in 0..3 {
        call!(S, views.add(&mc, &(page, day), 1)).unwrap();
    }
    let part = |day: i32| {
        let field = (page, day).field();
        format!("{}:{field}", field.len())
    };
    assert_eq!(index(&foreign), Some([0, 1, 2].map(part).concat()));
    call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(index(&foreign), None, "every key has a ledger row");
    call!(S, views.add(&mc, &(page, 3), 1)).unwrap();
    call!(S, views.add(&mc, &(page, 0), 1)).unwrap();
    assert_eq!(index(&foreign), Some(part(3)));
    let report = call!(S, views.flush(&mut conn, &mc)).unwrap();
    assert_eq!(report.written, [((page, 0), 1), ((page, 3), 1)]);
    assert_eq!(
        rows(db, page),
        BTreeMap::from([(0, 2), (1, 1), (2, 1), (3, 1)])
    );
}

/// A flush inside the caller's transaction commits or rolls back with it: Memcached is not
/// changed by a flush, so the counts of a flush rolled back are still there, and the next
/// flush takes them, once.
fn a_flush_rolled_back_with_the_callers_transaction_is_taken_again<B: TestDb>(db: &B)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, counter_tests::db::DbOf<B>>,
{
    let server = PrivateMemcached::start();
    let page = next_id();
    daily_rows(db, page, 0..2, 0);
    let views = fresh_views();
    let mc = server.client();
    let mut conn = db.conn();
    views.add(&mc, &(page, 0), 5).unwrap();
    views.add(&mc, &(page, 1), 2).unwrap();
    let rolled_back: Result<(), AtomicError> =
        counter_core::transaction(&mut conn, RetryPolicy::DEFAULT, |c| {
            let report = views.flush(c, &mc)?;
            assert_eq!(report.total_written(), 7);
            Err(AtomicError::custom("the caller rolls back"))
        });
    assert!(
        matches!(rolled_back, Err(AtomicError::Custom(_))),
        "{rolled_back:?}"
    );
    assert_eq!(rows(db, page), BTreeMap::from([(0, 0), (1, 0)]));
    let committed =
        counter_core::transaction(&mut conn, RetryPolicy::DEFAULT, |c| views.flush(c, &mc))
            .unwrap();
    assert_eq!(committed.total_written(), 7);
    let again = views.flush(&mut conn, &mc).unwrap();
    assert!(again.written.is_empty(), "{again:?}");
    assert_eq!(rows(db, page), BTreeMap::from([(0, 5), (1, 2)]));
}

#[test]
fn sqlite_flush_rolled_back_with_the_callers_transaction() {
    a_flush_rolled_back_with_the_callers_transaction_is_taken_again(&Sqlite::open());
}

#[test]
fn postgres_flush_rolled_back_with_the_callers_transaction() {
    a_flush_rolled_back_with_the_callers_transaction_is_taken_again(&Postgres::open());
}

#[test]
fn mariadb_flush_rolled_back_with_the_callers_transaction() {
    a_flush_rolled_back_with_the_callers_transaction_is_taken_again(&Mysql::open());
}

/// MariaDB Connector/C leaves a prepared statement whose error arrived after its result set
/// began waiting forever on its next execution. A flush locks its ledger rows in one read of
/// several rows: when that read times out on a later row (here the last one, held by another
/// transaction), the next flush on the same connection must still run. Before the lock read
/// was prepared afresh each time, two concurrent flushes hung this way after a deadlock.
#[test]
fn mariadb_a_flush_that_timed_out_on_a_ledger_row_leaves_the_connection_working() {
    use diesel::connection::{SimpleConnection, TransactionManager};
    use diesel::{Connection, MysqlConnection};

    let server = PrivateMemcached::start();
    let db = Mysql::open();
    let page = next_id();
    daily_rows(&db, page, 0..3, 0);
    let (views, name) = named_views();
    let views = views.retry(RetryPolicy::NEVER);
    let mc = server.client();
    let mut victim = MysqlConnection::establish(mysql_url()).expect("a connection");
    victim
        .batch_execute("SET SESSION innodb_lock_wait_timeout = 1")
        .unwrap();
    for day in 0..3 {
        views.add(&mc, &(page, day), 1).unwrap();
    }
    assert_eq!(views.flush(&mut victim, &mc).unwrap().total_written(), 3);
    for day in 0..3 {
        views.add(&mc, &(page, day), 2).unwrap();
    }

    let mut blocker = db.conn();
    <MysqlConnection as Connection>::TransactionManager::begin_transaction(&mut *blocker).unwrap();
    blocker
        .batch_execute(&format!(
            "SELECT applied FROM counter_memcached WHERE counter = '{name}' \
             ORDER BY field DESC LIMIT 1 FOR UPDATE"
        ))
        .unwrap();
    match views.flush(&mut victim, &mc) {
        Err(AtomicError::Conflict { attempts: 1, .. }) => {}
        other => panic!("behind a locked ledger row: {other:?}"),
    }
    <MysqlConnection as Connection>::TransactionManager::rollback_transaction(&mut *blocker)
        .unwrap();

    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(views.flush(&mut victim, &mc).map(|r| r.total_written()));
    });
    let written = receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("the next flush on the connection hung");
    assert_eq!(written.unwrap(), 6);
    assert_eq!(rows(&db, page), BTreeMap::from([(0, 3), (1, 3), (2, 3)]));
}

macro_rules! each_side {
    ($($test:ident: $side:expr;)*) => {$(
        mod $test {
            use super::*;

            #[test]
            fn concurrent_adds_and_flushes_are_exact() {
                super::concurrent_adds_and_flushes_are_exact(&$side);
            }

            #[test]
            fn restart_loses_exactly_what_was_pending() {
                run(super::restart_loses_exactly_what_was_pending(&$side));
            }

            #[test]
            fn evictions_lose_exactly_what_was_pending() {
                run(super::evictions_lose_exactly_what_was_pending(&$side));
            }

            #[test]
            fn memcached_down_fails_fast_and_recovers() {
                run(super::memcached_down_fails_fast_and_recovers(&$side));
            }

            #[test]
            fn refusals_are_reported_and_kept() {
                run(super::refusals_are_reported_and_kept(&$side));
            }

            #[test]
            fn the_index_keeps_only_keys_never_flushed() {
                run(super::the_index_keeps_only_keys_never_flushed(&$side));
            }

            #[test]
            fn current_adds_the_row_and_the_pending_count() {
                run(super::current_adds_the_row_and_the_pending_count(&$side));
            }
        }
    )*};
}

each_side! {
    sqlite_blocking: BlockingSide(Sqlite::open());
    postgres_blocking: BlockingSide(Postgres::open());
    mariadb_blocking: BlockingSide(Mysql::open());
    sqlite_async: AsyncSqlite(Sqlite::open());
    postgres_async: AsyncPostgres(Postgres::open());
    mariadb_async: AsyncMysql(Mysql::open());
}

macro_rules! each_async_side {
    ($($test:ident: $side:expr;)*) => {$(
        #[test]
        fn $test() {
            run(flush_killed_after_each_poll_counts_once(&$side));
        }
    )*};
}

each_async_side! {
    sqlite_flush_killed_after_each_poll_counts_once: AsyncSqlite(Sqlite::open());
    postgres_flush_killed_after_each_poll_counts_once: AsyncPostgres(Postgres::open());
    mariadb_flush_killed_after_each_poll_counts_once: AsyncMysql(Mysql::open());
}
