//! The hot-counter strategies on every cell: slotted counters, the write-behind buffer, the
//! Redis counter and the Memcached counter.
//!
//! Their calls return no value that says where in an order they ran (an increment of a slot
//! returns nothing, an add to a buffer is memory), so the history is not ordered; what their
//! semantics promise is checked instead:
//! - slotted (`Article.likes`, `allow_decrement`): random increments and decrements (amounts
//!   0..=10 and negatives), reads and compactions from every thread on two keys. A negative
//!   amount is `NegativeAmount`; every read and every compaction returns a value between the
//!   sum of all decrements and the sum of all increments of the history; the final value is
//!   exactly the sum of the calls that returned `Ok`, and a compaction at the end returns it.
//! - buffer (`DailyView.views`): random adds to six keys from every thread while a background
//!   flusher runs every few milliseconds and threads flush by hand now and then; after
//!   `shutdown` every key holds exactly the sum of the adds that returned `Ok`.
//! - Redis counter (`DailyView.views` of six existing rows): random `add`s, `add_once`s (new
//!   ids, and replays of ids any thread already got an answer for: the replay must return
//!   that answer and add nothing), `add_all`s of two
//!   keys (negatives refused, all or nothing), `discard`s and flushes from every thread, on
//!   the thread's own connections; after a last flush every row holds exactly the adds that
//!   returned `Ok` less what the discards returned, no flush kept a count, and the flush
//!   reports together wrote exactly that sum (no batch applied twice).
//! - Memcached counter (`DailyView.views` of six other existing rows, on the process's own
//!   `memcached`): random `add`s (negatives refused) and flushes from every thread, on the
//!   thread's own clients; after a last flush every row holds exactly the adds that returned
//!   `Ok`, no flush kept a count, and the reports together wrote exactly that sum.
//!
//! One body of calls (`thread_calls`) serves both kinds of connection: [`run_hot`] drives it
//! on blocking connections with [`Buffer`], [`run_hot_async`] on diesel-async and async Redis
//! connections with [`AsyncBuffer`].

use std::collections::BTreeMap;
use std::time::Duration;

use std::future::Future;

use counter_core::{
    AsyncBuffer, AsyncConnection, AtomicConnection, AtomicError, AtomicFieldOn, BackendOf,
    Blocking, Buffer, CallMode, ConnectionPool, FlushPolicy, MemcachedConnection, MemcachedCounter,
    NewRow, RawConnection, RedisConnection, SlottedOn,
};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use memcache::exp::{MetaClient, MetaClientBuilder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::watchdog::Watchdog;
use super::{CheckConn, Plan, THREADS};
use crate::db::{redis_connection, settle};
use crate::models::{Article, DailyView};
use crate::next_id;
use crate::scenarios::{daily_views_buffer, fresh_views, Views};
use crate::schema::{ct_articles, ct_daily_views};

/// What one thread saw.
#[derive(Default)]
struct Seen {
    /// Per article: the deltas of the calls that returned `Ok`.
    applied: BTreeMap<i64, i64>,
    /// Per article: every positive and every negative delta tried (`Ok` or not).
    up: BTreeMap<i64, i64>,
    down: BTreeMap<i64, i64>,
    /// `(article, value)` of every read and compaction.
    observed: Vec<(i64, i64)>,
    /// Per buffer key: the adds that returned `Ok`.
    added: BTreeMap<(i64, i32), i64>,
    /// Per Redis counter key: the adds (and `add_all`s) that returned `Ok`, less what
    /// `discard` dropped.
    redis_added: BTreeMap<(i64, i32), i64>,
    /// What this thread's Redis flushes reported written.
    redis_written: i128,
    /// Per Memcached counter key: the adds that returned `Ok`.
    mc_added: BTreeMap<(i64, i32), i64>,
    /// What this thread's Memcached flushes reported written.
    mc_written: i128,
    /// Anything that broke a promise.
    anomalies: Vec<String>,
}

/// The rows, keys and counter of one hot history.
struct Ctx {
    seed: u64,
    plan: Plan,
    articles: [i64; 2],
    /// The buffer's page.
    page: i64,
    /// The Redis counter's page (six existing rows).
    redis_page: i64,
    views: Views,
    /// The Memcached counter's page (six existing rows) and the counter, on a name of its own.
    mc_page: i64,
    mc_views: McViews,
    /// `add_once` calls that returned `Ok`: replayed by any thread.
    answered: std::sync::Mutex<Vec<Answered>>,
}

/// An `add_once` that returned `Ok`: its id, key, amount and answer.
#[derive(Clone)]
struct Answered {
    id: String,
    key: (i64, i32),
    n: i64,
    answer: i64,
}

/// The Memcached counter of a hot history.
type McViews = MemcachedCounter<DailyView, ct_daily_views::views>;

/// How long the checker's Memcached calls may take (a busy 2-core machine).
const MC_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of the process's `memcached` waiting at most [`MC_TIMEOUT`], blocking
/// (`.connect`) or async (`.connect_async`).
fn mc_builder() -> MetaClientBuilder {
    MetaClient::builder()
        .io_timeout(Some(MC_TIMEOUT))
        .connect_timeout(Some(MC_TIMEOUT))
}

/// A blocking client of the process's `memcached`.
fn mc_client() -> MetaClient {
    mc_builder()
        .connect(crate::memcached::shared_memcached())
        .expect("checker: a memcached client")
}

/// How often the buffers of a hot history flush in the background.
const HOT_FLUSH: FlushPolicy = FlushPolicy {
    interval: Some(Duration::from_millis(5)),
    max_pending_adds: Some(40),
    ..FlushPolicy::MANUAL
};

/// A fresh history's keys, and the Redis and Memcached counters' rows (a flush only
/// increments).
fn setup<C: CheckConn>(pool: &Pool<ConnectionManager<C>>, plan: Plan, cell: &str) -> Ctx {
    let (redis_page, mc_page) = (next_id(), next_id());
    let rows: Vec<String> = [redis_page, mc_page]
        .into_iter()
        .flat_map(|page| (0..6).map(move |day| format!("({page}, {day}, 0)")))
        .collect();
    let insert = format!(
        "INSERT INTO ct_daily_views (page_id, day, views) VALUES {}",
        rows.join(", ")
    );
    let mut conn = pool.get().expect("checker: a connection");
    settle(|| conn.batch_execute(&insert)).expect("checker: the counters' rows");
    // Before the watchdog starts: without COUNTER_REDIS_URL this starts a container; the
    // process's memcached starts on first use.
    crate::db::redis_url();
    crate::memcached::shared_memcached();
    Ctx {
        seed: plan.seed,
        plan,
        articles: [next_id(), next_id()],
        page: next_id(),
        redis_page,
        // About half the cells shard the counter, which half depending on the seed: 4
        // shards on the one Redis (all on one server, but every step of the protocol per
        // shard, and the keys spread over them).
        views: match (plan.seed as usize).wrapping_add(cell.len()) % 2 {
            1 => fresh_views().0.shards(4),
            _ => fresh_views().0,
        },
        mc_page,
        mc_views: McViews::new(&format!("ct-check-{}", next_id())).timeout(MC_TIMEOUT),
        answered: Default::default(),
    }
}

/// The write-behind buffer of a hot history: [`Buffer`] or [`AsyncBuffer`], one body of calls.
pub trait HotBuffer: Sync {
    /// `add`.
    fn add_one(&self, key: (i64, i32), n: i64) -> Result<(), AtomicError>;
    /// `flush`, awaited or not.
    fn flush_all(&self) -> impl Future<Output = Result<usize, AtomicError>>;
}

impl HotBuffer for Buffer<(i64, i32), i64> {
    fn add_one(&self, key: (i64, i32), n: i64) -> Result<(), AtomicError> {
        self.add(key, n)
    }

    async fn flush_all(&self) -> Result<usize, AtomicError> {
        self.flush().map(|report| report.written)
    }
}

impl<P, F> HotBuffer for AsyncBuffer<P, DailyView, ct_daily_views::views, F>
where
    P: ConnectionPool,
    DailyView: AtomicFieldOn<ct_daily_views::views, <P::Conn as RawConnection>::Db>
        + NewRow<DailyView, ct_daily_views::views, <P::Conn as RawConnection>::Db>,
    F: Fn(&(i64, i32), i64) -> DailyView + Sync + Send,
{
    fn add_one(&self, key: (i64, i32), n: i64) -> Result<(), AtomicError> {
        self.add(key, n)
    }

    async fn flush_all(&self) -> Result<usize, AtomicError> {
        self.flush().await.map(|report| report.written)
    }
}

/// One thread's random calls on its own connections, written once for blocking and async
/// connections (each call awaited through `CallMode::into_future`).
async fn thread_calls<C, R, M, B>(
    ctx: &Ctx,
    thread: usize,
    watchdog: &Watchdog,
    conn: &mut C,
    redis: &mut R,
    mc: &M,
    buffer: &B,
) -> Seen
where
    C: AtomicConnection,
    R: RedisConnection<Mode = C::Mode>,
    M: MemcachedConnection<Mode = C::Mode>,
    B: HotBuffer,
    Article: SlottedOn<ct_articles::likes, BackendOf<C>>,
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<C>>,
{
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ ((thread as u64 + 7) << 48));
    let mut seen = Seen::default();
    for _ in 0..ctx.plan.ops_per_thread {
        let id = ctx.articles[rng.random_range(0..2)];
        let n: i64 = match rng.random_range(0..10) {
            0 => 0,
            1 => -rng.random_range(1..=3),
            _ => rng.random_range(1..=10),
        };
        let roll = rng.random_range(0..100);
        let call = match roll {
            0..30 => "increment_likes",
            30..50 => "decrement_likes",
            50..62 => "current_likes",
            62..70 => "compact_likes",
            70..84 => "buffer.add",
            84..86 => "buffer.flush",
            86..88 => "redis.add",
            88..90 => "redis.add_once",
            90..92 => "redis.add_all",
            92..93 => "redis.discard",
            93..95 => "redis.flush",
            95..98 => "memcached.add",
            _ => "memcached.flush",
        };
        let one = async {
            match roll {
                0..30 => {
                    *seen.up.entry(id).or_default() += n.max(0);
                    let result = C::Mode::into_future(Article::increment_likes(conn, id, n)).await;
                    seen.slot_call(id, n, n < 0, result);
                }
                30..50 => {
                    *seen.down.entry(id).or_default() += n.max(0);
                    let result = C::Mode::into_future(Article::decrement_likes(conn, id, n)).await;
                    seen.slot_call(id, -n, n < 0, result.map_err(|e| negate(e, n)));
                }
                50..62 => seen.observe(
                    id,
                    C::Mode::into_future(Article::current_likes(conn, id)).await,
                ),
                62..70 => seen.observe(
                    id,
                    C::Mode::into_future(Article::compact_likes(conn, id)).await,
                ),
                70..84 => {
                    let key = (ctx.page, rng.random_range(0..6));
                    match buffer.add_one(key, n) {
                        Ok(()) => *seen.added.entry(key).or_default() += n,
                        Err(AtomicError::NegativeAmount { amount }) if n < 0 => {
                            assert_eq!(amount, i128::from(n));
                        }
                        Err(e) => seen.anomalies.push(format!("add {n}: {e}")),
                    }
                }
                84..86 => {
                    if let Err(e) = buffer.flush_all().await {
                        seen.anomalies.push(format!("flush: {e}"));
                    }
                }
                88..90 => {
                    let replay = {
                        let answered = ctx.answered.lock().unwrap();
                        (!answered.is_empty() && rng.random_bool(0.5))
                            .then(|| answered[rng.random_range(0..answered.len())].clone())
                    };
                    match replay {
                        // Already answered: the same answer, nothing added.
                        Some(Answered {
                            id,
                            key,
                            n: m,
                            answer,
                        }) => {
                            match C::Mode::into_future(ctx.views.add_once(redis, &key, m, &id))
                                .await
                            {
                                Ok(again) if again == answer => {}
                                other => seen.anomalies.push(format!(
                                    "redis add_once replay {id} ({m}): {other:?}, first {answer}"
                                )),
                            }
                        }
                        None => {
                            let key = (ctx.redis_page, rng.random_range(0..6));
                            let id = format!("{}-{thread}-{}", ctx.seed, rng.random::<u64>());
                            match C::Mode::into_future(ctx.views.add_once(redis, &key, n, &id))
                                .await
                            {
                                Ok(pending) if pending >= n => {
                                    *seen.redis_added.entry(key).or_default() += n;
                                    ctx.answered.lock().unwrap().push(Answered {
                                        id,
                                        key,
                                        n,
                                        answer: pending,
                                    });
                                }
                                Err(AtomicError::NegativeAmount { amount }) if n < 0 => {
                                    assert_eq!(amount, i128::from(n));
                                }
                                other => seen
                                    .anomalies
                                    .push(format!("redis add_once {id} ({n}): {other:?}")),
                            }
                        }
                    }
                }
                86..88 => {
                    let key = (ctx.redis_page, rng.random_range(0..6));
                    match C::Mode::into_future(ctx.views.add(redis, &key, n)).await {
                        Ok(pending) if pending >= n => {
                            *seen.redis_added.entry(key).or_default() += n;
                        }
                        Ok(pending) => seen
                            .anomalies
                            .push(format!("redis add {n}: pending {pending}")),
                        Err(AtomicError::NegativeAmount { amount }) if n < 0 => {
                            assert_eq!(amount, i128::from(n));
                        }
                        Err(e) => seen.anomalies.push(format!("redis add {n}: {e}")),
                    }
                }
                90..92 => {
                    // Two keys in one MULTI: both or, with a negative, neither.
                    let keys = [0, 1].map(|_| (ctx.redis_page, rng.random_range(0..6)));
                    let m: i64 = rng.random_range(1..=5);
                    match C::Mode::into_future(
                        ctx.views.add_all(redis, [(keys[0], m), (keys[1], n)]),
                    )
                    .await
                    {
                        Ok(()) if n >= 0 => {
                            *seen.redis_added.entry(keys[0]).or_default() += m;
                            *seen.redis_added.entry(keys[1]).or_default() += n;
                        }
                        Err(AtomicError::NegativeAmount { amount }) if n < 0 => {
                            assert_eq!(amount, i128::from(n));
                        }
                        other => seen
                            .anomalies
                            .push(format!("redis add_all {m}, {n}: {other:?}")),
                    }
                }
                92..93 => {
                    // What it drops never reaches the row: subtracted from the adds.
                    let key = (ctx.redis_page, rng.random_range(0..6));
                    match C::Mode::into_future(ctx.views.discard(redis, &key)).await {
                        Ok(dropped) if dropped >= 0 => {
                            *seen.redis_added.entry(key).or_default() -= dropped;
                        }
                        other => seen.anomalies.push(format!("redis discard: {other:?}")),
                    }
                }
                93..95 => match C::Mode::into_future(ctx.views.flush(conn, redis)).await {
                    Ok(report) if report.kept.is_empty() => {
                        seen.redis_written += report.total_written();
                    }
                    Ok(report) => seen
                        .anomalies
                        .push(format!("redis flush kept {:?}", report.kept)),
                    Err(e) => seen.anomalies.push(format!("redis flush: {e}")),
                },
                95..98 => {
                    let key = (ctx.mc_page, rng.random_range(0..6));
                    match M::Mode::into_future(ctx.mc_views.add(mc, &key, n)).await {
                        Ok(value) if value >= n.max(0) as u64 => {
                            *seen.mc_added.entry(key).or_default() += n;
                        }
                        Ok(value) => seen
                            .anomalies
                            .push(format!("memcached add {n}: item {value}")),
                        Err(AtomicError::NegativeAmount { amount }) if n < 0 => {
                            assert_eq!(amount, i128::from(n));
                        }
                        Err(e) => seen.anomalies.push(format!("memcached add {n}: {e}")),
                    }
                }
                _ => match C::Mode::into_future(ctx.mc_views.flush(conn, mc)).await {
                    Ok(report) if report.kept.is_empty() => {
                        seen.mc_written += report.total_written();
                    }
                    Ok(report) => seen
                        .anomalies
                        .push(format!("memcached flush kept {:?}", report.kept)),
                    Err(e) => seen.anomalies.push(format!("memcached flush: {e}")),
                },
            }
        };
        watchdog.watch(thread, &(call, id, n), one).await;
    }
    seen
}

/// One history of the three strategies on blocking connections from `pool`; panics with
/// every anomaly and the seed.
pub fn run_hot<C: CheckConn>(cell: &str, pool: &Pool<ConnectionManager<C>>, plan: Plan)
where
    Article: SlottedOn<ct_articles::likes, BackendOf<C>>,
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<C>>
        + NewRow<DailyView, ct_daily_views::views, BackendOf<C>>,
{
    let ctx = setup(pool, plan, cell);
    let buffer = daily_views_buffer(pool.clone(), HOT_FLUSH);
    let watchdog = Watchdog::start(
        format!("cell {cell}, hot counters, seed {}", ctx.seed),
        THREADS,
    );
    let seen: Vec<Seen> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (ctx, buffer, watchdog) = (&ctx, &buffer, &watchdog);
                scope.spawn(move || {
                    let mut conn = pool.get().expect("checker: a connection");
                    let mut redis = redis_connection();
                    let mc = mc_client();
                    Blocking::drive(thread_calls(
                        ctx, thread, watchdog, &mut *conn, &mut redis, &mc, buffer,
                    ))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a checker thread panicked"))
            .collect()
    });
    buffer.shutdown().expect("the buffer's last flush");
    verify(cell, pool, &ctx, seen, "blocking");
}

/// [`run_hot`] with the library's calls on diesel-async connections of type `A` to `url` (set
/// up with `setup`, one per thread) and async Redis connections, the buffer an
/// [`AsyncBuffer`] on `async_pool`; every thread and the buffer's flusher `block_on` one
/// multi-threaded tokio runtime. The harness's statements go through `pool`.
pub fn run_hot_async<C, A, P>(
    cell: &str,
    pool: &Pool<ConnectionManager<C>>,
    plan: Plan,
    url: &str,
    setup_sql: &str,
    async_pool: P,
) where
    C: CheckConn,
    A: diesel_async::AsyncConnection + AsyncConnection + RawConnection + 'static,
    P: ConnectionPool<Conn = A>,
    Article:
        SlottedOn<ct_articles::likes, BackendOf<A>> + SlottedOn<ct_articles::likes, BackendOf<C>>,
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<A>>
        + NewRow<DailyView, ct_daily_views::views, BackendOf<A>>
        + AtomicFieldOn<ct_daily_views::views, BackendOf<C>>,
{
    let ctx = setup(pool, plan, cell);
    let buffer = AsyncBuffer::new(async_pool, DailyView::atomic_views(), daily_row, HOT_FLUSH);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("checker: a tokio runtime");
    let watchdog = Watchdog::start(
        format!("cell {cell}, async hot counters, seed {}", ctx.seed),
        THREADS,
    );
    let seen: Vec<Seen> = std::thread::scope(|scope| {
        let flusher = scope.spawn(|| runtime.block_on(buffer.flusher()));
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (ctx, buffer, watchdog, runtime) = (&ctx, &buffer, &watchdog, &runtime);
                scope.spawn(move || {
                    runtime.block_on(async {
                        let mut conn = A::establish(url).await.unwrap_or_else(|e| {
                            panic!("checker: an async connection to {url}: {e}")
                        });
                        if !setup_sql.is_empty() {
                            conn.batch_execute(setup_sql)
                                .await
                                .unwrap_or_else(|e| panic!("checker: {setup_sql}: {e}"));
                        }
                        let mut redis = redis::Client::open(crate::db::redis_url())
                            .expect("checker: the Redis URL")
                            .get_multiplexed_async_connection_with_config(
                                &crate::db::redis_async_config(),
                            )
                            .await
                            .expect("checker: an async Redis connection");
                        let mc = mc_builder()
                            .connect_async(crate::memcached::shared_memcached())
                            .await
                            .expect("checker: an async memcached client");
                        thread_calls(ctx, thread, watchdog, &mut conn, &mut redis, &mc, buffer)
                            .await
                    })
                })
            })
            .collect();
        let seen = threads
            .into_iter()
            .map(|t| t.join().expect("a checker thread panicked"))
            .collect();
        runtime
            .block_on(buffer.shutdown())
            .expect("the buffer's last flush");
        flusher.join().expect("the buffer's flusher");
        seen
    });
    verify(cell, pool, &ctx, seen, "async");
}

/// The row of a page's day seen first by the async buffer.
fn daily_row(&(page_id, day): &(i64, i32), views: i64) -> DailyView {
    DailyView {
        page_id,
        day,
        views,
    }
}

/// After every thread and the buffer's last flush: the promises of each strategy, through
/// the harness's blocking `pool`.
fn verify<C: CheckConn>(
    cell: &str,
    pool: &Pool<ConnectionManager<C>>,
    ctx: &Ctx,
    seen: Vec<Seen>,
    driver: &str,
) where
    Article: SlottedOn<ct_articles::likes, BackendOf<C>>,
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<C>>,
{
    let (seed, articles, redis_page, views) = (ctx.seed, ctx.articles, ctx.redis_page, &ctx.views);
    let mut anomalies: Vec<String> = seen.iter().flat_map(|s| s.anomalies.clone()).collect();
    let sum = |pick: fn(&Seen) -> &BTreeMap<i64, i64>, id: i64| -> i64 {
        seen.iter()
            .map(|s| pick(s).get(&id).copied().unwrap_or(0))
            .sum()
    };
    let mut conn = pool.get().expect("checker: a connection");
    for id in articles {
        let (lo, hi) = (-sum(|s| &s.down, id), sum(|s| &s.up, id));
        for s in &seen {
            for &(_, v) in s.observed.iter().filter(|(a, _)| *a == id) {
                if !(lo..=hi).contains(&v) {
                    anomalies.push(format!("article {id}: read {v} outside {lo}..={hi}"));
                }
            }
        }
        let expected = sum(|s| &s.applied, id);
        let last = Article::current_likes(&mut *conn, id).expect("final read");
        let folded = Article::compact_likes(&mut *conn, id).expect("final compaction");
        if (last, folded) != (expected, expected) {
            anomalies.push(format!(
                "article {id}: {last} read and {folded} compacted, {expected} applied"
            ));
        }
    }
    let mut redis = redis_connection();
    let last = views
        .flush(&mut *conn, &mut redis)
        .expect("the Redis counter's last flush");
    let redis_added = check_cached_counter(
        "redis",
        &mut *conn,
        redis_page,
        seen.iter().map(|s| (&s.redis_added, s.redis_written)),
        last.total_written(),
        &last.kept,
        &mut anomalies,
    );
    let mc_last = ctx
        .mc_views
        .flush(&mut *conn, &mc_client())
        .expect("the Memcached counter's last flush");
    let mc_added = check_cached_counter(
        "memcached",
        &mut *conn,
        ctx.mc_page,
        seen.iter().map(|s| (&s.mc_added, s.mc_written)),
        mc_last.total_written(),
        &mc_last.kept,
        &mut anomalies,
    );
    let mut added: BTreeMap<(i64, i32), i64> = BTreeMap::new();
    for s in &seen {
        for (key, n) in &s.added {
            *added.entry(*key).or_default() += n;
        }
    }
    for (key, expected) in &added {
        let written = DailyView::current_views(&mut *conn, *key).unwrap_or(0);
        if written != *expected {
            anomalies.push(format!(
                "buffer key {key:?}: {written} written, {expected} added"
            ));
        }
    }
    assert!(
        anomalies.is_empty(),
        "checker, cell {cell}, hot counters ({driver}): {} anomalies (seed {seed}; replay with \
         COUNTER_CHECK_SEED={seed}):\n  {}",
        anomalies.len(),
        anomalies.join("\n  ")
    );
    eprintln!(
        "checker, cell {cell}, hot counters ({driver}): {} calls, {} buffer keys, {} Redis keys and {} Memcached keys exact, 0 anomalies (seed {seed})",
        THREADS * ctx.plan.ops_per_thread,
        added.len(),
        redis_added.len(),
        mc_added.len()
    );
}

/// A decrement's `NegativeAmount` names the amount passed, not the delta.
fn negate(error: AtomicError, n: i64) -> AtomicError {
    match error {
        AtomicError::NegativeAmount { .. } => AtomicError::NegativeAmount {
            amount: i128::from(-n),
        },
        other => other,
    }
}

impl Seen {
    /// A slotted increment (`delta > 0`), decrement (`delta < 0`) or zero: `Ok` counts;
    /// a negative amount must be refused, nothing else may fail.
    fn slot_call(&mut self, id: i64, delta: i64, negative: bool, result: Result<(), AtomicError>) {
        match result {
            Ok(()) if negative => self
                .anomalies
                .push(format!("article {id}: a negative amount was accepted")),
            Ok(()) => *self.applied.entry(id).or_default() += delta,
            // `delta` is the signed change; the amount passed was negative exactly when the
            // call was refused as negative (for a decrement, `negate` made it the delta).
            Err(AtomicError::NegativeAmount { amount })
                if negative && amount == i128::from(delta) => {}
            Err(e) => self
                .anomalies
                .push(format!("article {id}, delta {delta}: {e}")),
        }
    }

    fn observe(&mut self, id: i64, result: Result<i64, AtomicError>) {
        match result {
            Ok(v) => self.observed.push((id, v)),
            Err(e) => self.anomalies.push(format!("article {id}: read: {e}")),
        }
    }
}

/// The end check of a counter kept in a cache (Redis, Memcached) on the six rows of `page`:
/// the flushes together (each thread's `(added, written)`, and the last flush's `last` and
/// `kept`) wrote exactly what the adds that returned `Ok` added, the last flush kept nothing,
/// and every row holds its key's adds. Returns the adds per key.
fn check_cached_counter<'a, C, K: std::fmt::Debug>(
    cache: &str,
    conn: &mut C,
    page: i64,
    threads: impl Iterator<Item = (&'a BTreeMap<(i64, i32), i64>, i128)>,
    last: i128,
    kept: &[K],
    anomalies: &mut Vec<String>,
) -> BTreeMap<(i64, i32), i64>
where
    C: AtomicConnection<Mode = Blocking>,
    DailyView: AtomicFieldOn<ct_daily_views::views, BackendOf<C>>,
{
    let mut added: BTreeMap<(i64, i32), i64> = BTreeMap::new();
    let mut flushed = last;
    for (thread_added, written) in threads {
        for (key, n) in thread_added {
            *added.entry(*key).or_default() += n;
        }
        flushed += written;
    }
    let total: i64 = added.values().sum();
    if flushed != i128::from(total) || !kept.is_empty() {
        anomalies.push(format!(
            "{cache}: flushes wrote {flushed}, {total} added, kept {kept:?}"
        ));
    }
    for day in 0..6 {
        let key = (page, day);
        let expected = added.get(&key).copied().unwrap_or(0);
        let written = DailyView::current_views(&mut *conn, key).expect("a counter row");
        if written != expected {
            anomalies.push(format!(
                "{cache} key {key:?}: {written} written, {expected} added"
            ));
        }
    }
    added
}
