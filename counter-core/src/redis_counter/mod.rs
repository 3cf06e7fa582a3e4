//! Counters kept in Redis and moved into the database exactly once (feature `redis`).
//! (Everything a user needs is on the public type: this module is private.)

mod flush;
mod flusher;
mod link;
mod report;
mod scripts;
mod shard;

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::Column;
use redis::Script;

use crate::backend::{AtomicConnection, BackendOf, CallMode, Dialect, Out};
use crate::error::{AtomicError, Limit};
use crate::field::{AtomicField, AtomicFieldOn};
use crate::ops::Field;
use crate::plan::non_negative;
use crate::retry::RetryPolicy;
use crate::trace::OpSpan;
use crate::unknown_keys::UnknownKeys;
use crate::value::AtomicValue;

pub use crate::cache_key::RedisKey;
pub use crate::unknown_keys::UnknownKeyPolicy;
pub use flusher::FlushResult;
#[cfg(feature = "r2d2")]
pub use flusher::RedisFlusher;
pub use link::{RedisConnection, RedisOut};
pub use report::{FlushReport, Kept};

use flush::{Applied, Flush};
use shard::Shards;
pub use shard::MAX_SHARDS;

/// The ledger table's default name.
pub const LEDGER_TABLE: &str = crate::sql::FLUSH_LEDGER;

/// How long a counter waits for each reply of Redis by default: see
/// [`RedisCounter::timeout`].
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long Redis remembers an [`add_once`](RedisCounter::add_once) id by default: see
/// [`RedisCounter::remember_adds_for`].
pub const DEFAULT_ADD_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// The shortest [`RedisCounter::prune_after`]: a ledger row must outlive any batch a flush
/// may still be settling.
const MIN_PRUNE_AGE: Duration = Duration::from_secs(3600);

/// A counter of field `Col` of model `M` whose increments go to Redis and reach the database
/// through [`flush`](Self::flush).
///
/// `add` is one `HINCRBY` on a hash of pending counts: as fast as Redis, shared by every app
/// server, surviving app restarts. A *flush* moves the pending counts into the model's rows in
/// three steps, each atomic, so a crash between any two loses nothing and counts nothing twice:
///
/// 1. **take**: a Lua script renames the pending hash to a new batch `{prefix}:batch:<id>`
///    (a random 128-bit id) and adds the id to the set `{prefix}:batches`. New adds start a
///    fresh pending hash.
/// 2. **apply**: one database transaction inserts `<id>` into the *ledger* table, adds each
///    key's count to its row (keys in order, so flushers lock rows in one order; a row that
///    cannot take its count, past the column's bound or refused by a `CHECK` or a trigger,
///    does not hold back the others), and records in the ledger row the keys whose counts go
///    back to Redis. Committed or not at all: the ledger row says which.
/// 3. **finish**: a Lua script puts the counts of the kept keys back into pending, deletes the
///    batch and removes its id from the set.
///
/// Every flush first settles every batch in the set: one whose id is in the ledger was applied,
/// so only step 3 runs; any other is applied now. Two flushers applying the same batch at once
/// (one recovering what the other is writing) meet on the ledger's primary key: the second
/// insert waits for the first transaction and fails if it committed, before any count.
///
/// **A key without a row** is the counter's choice: by default ([`UnknownKeys::Drop`]) a
/// flush updates existing rows only, reports the key and its count once in
/// [`FlushReport::unknown`] and drops the count (a view of an article that does not exist
/// creates no article); [`unknown_keys(UnknownKeys::Keep)`](Self::unknown_keys) keeps it
/// pending until a row exists; [`inserting(new_row)`](Self::inserting) inserts the row.
///
/// **What can go wrong:** what Redis forgets. `SHUTDOWN NOSAVE`, a crash without persistence,
/// or an eviction (`maxmemory-policy` other than `noeviction`) loses the pending counts. A
/// Redis that comes back *older* than what it acknowledged (restored from an RDB snapshot
/// taken before a flush's take, `appendfsync everysec` losing its last second, an asynchronous
/// replica promoted) is worse: pending counts a committed batch already carried reappear
/// without their batch id, and the next flush applies them again. Run Redis with
/// `appendonly yes` and `appendfsync always` (and no failover to a lagging replica) for
/// exactness; then nothing acknowledged is lost or repeated. The app's own
/// crashes lose nothing: an `add` that returned `Ok` is in Redis. An `add` that returned an
/// error may still have been counted (a timeout, or a reply lost on the way, as with any
/// write): [`add_once`](Self::add_once) with an id of the caller's makes a retry count it once.
///
/// **While Redis is down or hangs**, a call returns `AtomicError::Redis` once a reply has not
/// come within the counter's [`timeout`](Self::timeout) (2 s by default) instead of waiting
/// for Redis to come back; a `redis::aio::ConnectionManager` or a `redis::Client` recovers on
/// its own when it does. Which connections apply the timeout, and how: [`RedisConnection`].
///
/// **On diesel-async** (feature `async`) the same methods take an async Redis connection
/// (`redis::aio::MultiplexedConnection`, `redis::aio::ConnectionManager`) and an async database
/// connection, and return futures (see [`RedisConnection`]). A flush whose future is dropped
/// is a crashed flush: the next one finishes it, each count applied once.
///
/// **The ledger** is one table for every counter (ids are unique); its DDL, per backend:
///
/// ```sql
/// -- PostgreSQL, SQLite
/// CREATE TABLE counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept TEXT NOT NULL,
///     flushed_at BIGINT NOT NULL);
/// CREATE INDEX counter_flushes_at ON counter_flushes (flushed_at);
/// -- MySQL / MariaDB
/// CREATE TABLE counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept LONGTEXT NOT NULL,
///     flushed_at BIGINT NOT NULL, INDEX counter_flushes_at (flushed_at)) ENGINE = InnoDB;
/// ```
///
/// (`kept` lists the keys a batch left in Redis, which may be many: `LONGTEXT` on MySQL, whose
/// `TEXT` stops at 64 KB.) A flush deletes ledger rows older than
/// [`RedisCounter::prune_after`] (a day by default, an hour at least) at most once a minute.
/// That is safe as long as no batch stays unsettled that long: every flush settles every
/// batch, so only a day with no successful flush at all could re-apply one.
///
/// ```no_run
/// use counter_core::{AtomicField, RedisCounter};
/// use diesel::prelude::*;
///
/// diesel::table! { articles (id) { id -> BigInt, view_count -> BigInt, } }
///
/// #[derive(Queryable, Selectable, Identifiable, AtomicField)]
/// #[diesel(table_name = articles)]
/// struct Article {
///     id: i64,
///     #[atomic]
///     view_count: i64,
/// }
///
/// let views = RedisCounter::<Article, articles::view_count>::new("article-views");
/// let mut redis = redis::Client::open("redis://127.0.0.1/")?.get_connection()?;
/// let mut db = SqliteConnection::establish("app.db")?;
///
/// views.add(&mut redis, &7, 1)?; // one HINCRBY; the request is done
/// let shown = views.current(&mut db, &mut redis, &7)?; // the row's value + what is pending
///
/// // Elsewhere, every second or so, on any number of app servers:
/// let report = views.flush(&mut db, &mut redis)?;
/// for (page, views) in &report.unknown {
///     eprintln!("no article {page}: {views} views dropped");
/// }
/// for kept in &report.kept {
///     eprintln!("{}: {} kept in Redis: {}", kept.field, kept.count.unwrap_or(0), kept.error);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisCounter<M, Col, U = UnknownKeys> {
    shards: Shards,
    ledger: &'static str,
    prune_after: Duration,
    last_prune: Mutex<Option<Instant>>,
    timeout: Duration,
    add_memory: Duration,
    field: Field<M, Col>,
    take: Script,
    finish: Script,
    unknown: U,
    marker: PhantomData<fn() -> (M, Col)>,
}

impl<M, Col> RedisCounter<M, Col>
where
    Col: Column + 'static,
    M: AtomicField<Col>,
    M::Key: RedisKey + Ord + Clone,
{
    /// A counter whose Redis keys start with `{prefix}:` (the braces make it one Redis
    /// Cluster hash slot, which the scripts need). One prefix per counted field.
    ///
    /// # Panics
    ///
    /// When `prefix` is empty or contains `{` or `}`: its keys would not share a hash slot.
    pub fn new(prefix: &str) -> Self {
        assert!(
            !prefix.is_empty() && !prefix.contains(['{', '}']),
            "RedisCounter prefix {prefix:?}: must be non-empty, without braces"
        );
        RedisCounter {
            shards: Shards::new(prefix, 1),
            ledger: LEDGER_TABLE,
            prune_after: Duration::from_secs(24 * 3600),
            last_prune: Mutex::new(None),
            timeout: DEFAULT_REDIS_TIMEOUT,
            add_memory: DEFAULT_ADD_MEMORY,
            field: Field::new(),
            take: Script::new(scripts::TAKE),
            finish: Script::new(scripts::FINISH),
            unknown: UnknownKeys::Drop,
            marker: PhantomData,
        }
    }

    /// The same counter, updating existing rows only, with `choice` for the count of a key
    /// that has no row: reported once in [`FlushReport::unknown`], then dropped
    /// ([`UnknownKeys::Drop`], the default) or kept pending for the next flush
    /// ([`UnknownKeys::Keep`], reported by each flush until a row exists).
    pub fn unknown_keys(self, choice: UnknownKeys) -> Self {
        self.with_unknown(choice)
    }

    /// The same counter, inserting a row for a key that has none: `new_row(&key, count)`
    /// builds it (any type that derives `Insertable` for the table, its column starting at
    /// `count`). Such a key is then written like any other; a key whose insert fails is kept,
    /// as a row that refuses its count is.
    pub fn inserting<F, Row>(self, new_row: F) -> RedisCounter<M, Col, F>
    where
        F: Fn(&M::Key, M::Value) -> Row,
    {
        self.with_unknown(new_row)
    }
}

impl<M, Col, U> RedisCounter<M, Col, U>
where
    Col: Column + 'static,
    M: AtomicField<Col>,
    M::Key: RedisKey + Ord + Clone,
{
    /// This counter with `unknown` as what a flush does with a key without a row.
    fn with_unknown<V>(self, unknown: V) -> RedisCounter<M, Col, V> {
        RedisCounter {
            shards: self.shards,
            ledger: self.ledger,
            prune_after: self.prune_after,
            last_prune: self.last_prune,
            timeout: self.timeout,
            add_memory: self.add_memory,
            field: self.field,
            take: self.take,
            finish: self.finish,
            unknown,
            marker: PhantomData,
        }
    }

    /// The same counter with its pending counts spread over `n` shards (1, the default, to
    /// [`MAX_SHARDS`]), for Redis Cluster: each shard is its own hash tag, so the shards land
    /// on different masters, and one counter's adds are served by all of them instead of the
    /// one master of its single tag. A key always goes to the same shard; a flush settles
    /// every shard, one after the other, each exactly as an unsharded counter; the ledger and
    /// every guarantee stay as they are. On a single Redis server shards change nothing
    /// (keep 1).
    ///
    /// Shard 0 keeps the keys of the unsharded counter (`{prefix}:…`), shard `i` uses
    /// `{prefix#i}:…`: give no other counter a prefix of the form `prefix#i`. The shard of
    /// a key depends on `n`: give every process of a counter the same `n`. To change it,
    /// stop the adds, flush with the old `n`, then start with the new one (pending counts in
    /// a shard the new `n` does not have are not seen by its flushes; a batch id of such a
    /// shard is refused with an error, never guessed).
    ///
    /// # Panics
    ///
    /// When `n` is 0 or more than [`MAX_SHARDS`].
    pub fn shards(self, n: u16) -> Self {
        RedisCounter {
            shards: self.shards.resized(n),
            ..self
        }
    }

    /// The same counter with another ledger table.
    pub fn ledger_table(self, table: &'static str) -> Self {
        RedisCounter {
            ledger: table,
            ..self
        }
    }

    /// The same counter keeping ledger rows this long, at least an hour (see the module
    /// documentation). The ledger table is shared by every counter that names it, and each
    /// prunes it with its own age: give them all the same.
    pub fn prune_after(self, age: Duration) -> Self {
        RedisCounter {
            prune_after: age.max(MIN_PRUNE_AGE),
            ..self
        }
    }

    /// The same counter waiting at most `timeout` for each reply of Redis (2 s by default,
    /// [`DEFAULT_REDIS_TIMEOUT`]; at least 1 ms), so that while Redis is down or unreachable
    /// `add`, `current`, `pending` and `flush` fail with `AtomicError::Redis` ("timed out")
    /// instead of hanging until it is back. How each connection type applies it, and recovers
    /// afterwards: [`RedisConnection`]. A call that timed out may still have been applied
    /// (the command may have reached Redis, and only its reply was late): see
    /// [`add_once`](Self::add_once) for adds that are safe to retry.
    pub fn timeout(self, timeout: Duration) -> Self {
        RedisCounter {
            timeout: timeout.max(Duration::from_millis(1)),
            ..self
        }
    }

    /// The same counter with Redis remembering an [`add_once`](Self::add_once) id for `age`
    /// (a day by default, [`DEFAULT_ADD_MEMORY`]; at least a second): a retry with the same
    /// id within that time is not counted again.
    pub fn remember_adds_for(self, age: Duration) -> Self {
        RedisCounter {
            add_memory: age.max(Duration::from_secs(1)),
            ..self
        }
    }

    /// The same counter with another retry policy for its database transactions.
    pub fn retry(self, policy: RetryPolicy) -> Self {
        RedisCounter {
            field: self.field.retry(policy),
            ..self
        }
    }

    /// Adds `n` to `key`'s pending count: one `HINCRBY`. Returns the pending count after it
    /// (not the row's value: see [`current`](Self::current)). The key's row need not exist
    /// yet: what a flush does then is the counter's choice (see
    /// [`unknown_keys`](Self::unknown_keys)).
    ///
    /// Errors: `NegativeAmount`, `OutOfRange` for an amount past `i64`, `Redis`.
    pub fn add<'r, R>(
        &self,
        redis: &'r mut R,
        key: &M::Key,
        n: M::Value,
    ) -> RedisOut<R, impl Future<Output = Result<i64, AtomicError>> + use<'r, M, Col, U, R>>
    where
        R: RedisConnection + ?Sized,
    {
        let field = key.field();
        let mut cmd = redis::cmd("HINCRBY");
        cmd.arg(&self.shards.of(&field).pending).arg(field);
        let n = redis_amount(n);
        let timeout = self.timeout;
        R::Mode::drive(async move {
            cmd.arg(n?);
            Ok(redis.query(&cmd, timeout).await?)
        })
    }

    /// Adds `n` to `key`'s pending count once per `id`, however many times it is called with
    /// that id within [`remember_adds_for`](Self::remember_adds_for) (a day by default).
    /// Returns the pending count after the first call's add, on every call with the id.
    ///
    /// This makes an add safe to retry. A plain [`add`](Self::add) that fails with
    /// `AtomicError::Redis` has an unknown outcome: a timeout, or a connection lost after
    /// Redis ran the `HINCRBY`, leaves it counted though the caller saw an error, and adding
    /// again would count it twice. Give each logical add an id (a request id, an event id; at
    /// most 200 bytes) and retry with the same id until it returns `Ok`: it is then counted
    /// exactly once. One Lua script, atomic in Redis: it records the id (with the count it
    /// returned, expiring after the memory time) in the same step as the `HINCRBY`.
    ///
    /// What Redis forgets, it forgets for both: with `appendonly yes` and
    /// `appendfsync always` an acknowledged add and its id survive a Redis crash together;
    /// without persistence a restart loses pending counts and ids alike (a retry then counts
    /// the add once, unless a flush had already moved it into the database).
    ///
    /// An id names one add of this counter, whatever its key and amount: a call with an id
    /// already used adds nothing and returns the first call's count, even for another key.
    ///
    /// Errors: `NegativeAmount`, `OutOfRange` for an amount past `i64`, `Redis`, and
    /// `Custom` for an empty id or one longer than 200 bytes (checked before anything is sent).
    pub fn add_once<'r, R>(
        &self,
        redis: &'r mut R,
        key: &M::Key,
        n: M::Value,
        id: &str,
    ) -> RedisOut<R, impl Future<Output = Result<i64, AtomicError>> + use<'r, M, Col, U, R>>
    where
        R: RedisConnection + ?Sized,
    {
        let checked = add_id(id).and_then(|()| redis_amount(n));
        let field = key.field();
        let shard = self.shards.of(&field);
        let mut invocation = scripts::add_once().prepare_invoke();
        invocation
            .key(&shard.pending)
            .key(shard.add_key(id))
            .arg(field)
            .arg(checked.as_ref().copied().unwrap_or(0))
            .arg(self.add_memory.as_secs());
        let timeout = self.timeout;
        R::Mode::drive(async move {
            checked?;
            Ok(redis.invoke(&invocation, timeout).await?)
        })
    }

    /// Adds every `(key, n)`: one Lua script per shard (one in all on an unsharded counter),
    /// which Redis runs at once, so no other call sees a shard's amounts half added. On a
    /// sharded counter the shards are sent one after another: after an error, the shards
    /// before the failing one were added (a sharded batch is not all-or-none).
    ///
    /// Errors: `NegativeAmount` (checked before anything is sent), `OutOfRange`, `Redis`.
    pub fn add_all<'r, R, I>(
        &self,
        redis: &'r mut R,
        amounts: I,
    ) -> RedisOut<R, impl Future<Output = Result<(), AtomicError>> + use<'r, M, Col, U, R, I>>
    where
        R: RedisConnection + ?Sized,
        I: IntoIterator<Item = (M::Key, M::Value)>,
    {
        // One script per shard, in shard order: a script cannot span hash slots.
        let mut scripts: BTreeMap<String, redis::ScriptInvocation<'static>> = BTreeMap::new();
        let built: Result<(), AtomicError> = amounts.into_iter().try_for_each(|(key, n)| {
            let field = key.field();
            let pending = &self.shards.of(&field).pending;
            let n = redis_amount(n)?;
            scripts
                .entry(pending.clone())
                .or_insert_with(|| {
                    let mut invocation = scripts::add_all().prepare_invoke();
                    invocation.key(pending);
                    invocation
                })
                .arg(field)
                .arg(n);
            Ok(())
        });
        let timeout = self.timeout;
        R::Mode::drive(async move {
            built?;
            for script in scripts.values() {
                redis.invoke::<i64>(script, timeout).await?;
            }
            Ok(())
        })
    }

    /// The count pending in Redis for `key` (0 when none), not counting a batch a flush is
    /// moving at this moment.
    pub fn pending<'r, R>(
        &self,
        redis: &'r mut R,
        key: &M::Key,
    ) -> RedisOut<R, impl Future<Output = Result<i64, AtomicError>> + use<'r, M, Col, U, R>>
    where
        R: RedisConnection + ?Sized,
    {
        let (cmd, timeout) = (self.pending_cmd(key), self.timeout);
        R::Mode::drive(async move { query_pending(redis, &cmd, timeout).await })
    }

    /// Drops `key`'s pending count and returns it (0 when none): for the counts of a row that
    /// is gone for good, which every flush would otherwise keep and report (a row that refuses
    /// them, or no row under [`UnknownKeys::Keep`]). One script of
    /// `HGET` and `HDEL`. A batch a flush is moving at this moment is not touched.
    pub fn discard<'r, R>(
        &self,
        redis: &'r mut R,
        key: &M::Key,
    ) -> RedisOut<R, impl Future<Output = Result<i64, AtomicError>> + use<'r, M, Col, U, R>>
    where
        R: RedisConnection + ?Sized,
    {
        let field = key.field();
        let mut invocation = scripts::discard().prepare_invoke();
        invocation.key(&self.shards.of(&field).pending).arg(field);
        let timeout = self.timeout;
        R::Mode::drive(async move {
            let n: Option<i64> = redis.invoke(&invocation, timeout).await?;
            Ok(n.unwrap_or(0))
        })
    }

    /// The row's value plus what is pending in Redis: what the counter will read once
    /// flushed. While a flush is between its steps, the counts it moves are in neither place
    /// for that moment (or, just after its commit, in both), so this can be off by one batch
    /// of this key.
    ///
    /// Errors: `NotFound` (no row), `Redis`, the database's errors.
    pub fn current<'c, 'r, C, R>(
        &self,
        conn: &'c mut C,
        redis: &'r mut R,
        key: &M::Key,
    ) -> Out<C, impl Future<Output = Result<i128, AtomicError>> + use<'c, 'r, M, Col, U, C, R>>
    where
        C: AtomicConnection,
        R: RedisConnection<Mode = C::Mode> + ?Sized,
        M: AtomicFieldOn<Col, BackendOf<C>>,
    {
        let (field, key, cmd) = (self.field, key.clone(), self.pending_cmd(key));
        let timeout = self.timeout;
        C::Mode::drive(async move {
            let stored = C::Mode::into_future(field.current(conn, key)).await?;
            Ok(stored.to_i128() + i128::from(query_pending(redis, &cmd, timeout).await?))
        })
    }

    /// Moves everything pending into the database: settles the batches earlier flushes left
    /// (see [`recover`](Self::recover)), then takes, applies and finishes a new one. Safe to
    /// run from any number of processes at once, and to crash at any point.
    ///
    /// Keys the database cannot take (the row would pass its bound, or its update fails with
    /// an error of its own) do not block the others: they are reported in
    /// [`FlushReport::kept`] and stay pending, even when that is every key (a revoked
    /// privilege, a broken trigger): look at `kept`, not only at the `Result`. Keys without a
    /// row are inserted, or reported in [`FlushReport::unknown`] and dropped or kept, as the
    /// counter says (see [`unknown_keys`](Self::unknown_keys)).
    ///
    /// Errors: `Redis`, the database's errors (after the retry policy), and `Unsupported`
    /// inside the caller's transaction (the flush must commit before it deletes the batch).
    /// After an error, every count is in Redis or in the database, never both and never lost:
    /// the next flush continues.
    ///
    #[doc = include_str!("../../doc/ops/redis_flush.md")]
    pub fn flush<'s, 'c, 'r, C, R>(
        &'s self,
        conn: &'c mut C,
        redis: &'r mut R,
    ) -> Out<
        C,
        impl Future<Output = Result<FlushReport<M::Key>, AtomicError>>
            + use<'s, 'c, 'r, M, Col, U, C, R>,
    >
    where
        C: AtomicConnection,
        R: RedisConnection<Mode = C::Mode> + ?Sized,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        U: UnknownKeyPolicy<M, Col, BackendOf<C>>,
    {
        let span = OpSpan::new::<M>("redis_flush", M::NAME, <BackendOf<C> as Dialect>::NAME);
        C::Mode::drive(span.wrap(async move { Flush::new(self, conn.raw(), redis).run().await }))
    }

    /// Settles every batch in Redis: applies the ones the ledger does not have, finishes all.
    /// [`flush`](Self::flush) starts with it; call it alone at start-up to settle what a
    /// crashed process left without taking new counts.
    pub fn recover<'s, 'c, 'r, C, R>(
        &'s self,
        conn: &'c mut C,
        redis: &'r mut R,
    ) -> Out<
        C,
        impl Future<Output = Result<FlushReport<M::Key>, AtomicError>>
            + use<'s, 'c, 'r, M, Col, U, C, R>,
    >
    where
        C: AtomicConnection,
        R: RedisConnection<Mode = C::Mode> + ?Sized,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        U: UnknownKeyPolicy<M, Col, BackendOf<C>>,
    {
        C::Mode::drive(async move { Flush::new(self, conn.raw(), redis).recover().await })
    }

    /// Step 1 of a flush: moves everything pending into new batches, one per shard that has
    /// pending counts (at most one on an unsharded counter); their ids, empty when nothing
    /// was pending. A batch taken and never applied is applied by the next flush.
    pub fn take<'s, 'r, R>(
        &'s self,
        redis: &'r mut R,
    ) -> RedisOut<
        R,
        impl Future<Output = Result<Vec<String>, AtomicError>> + use<'s, 'r, M, Col, U, R>,
    >
    where
        R: RedisConnection + ?Sized,
    {
        R::Mode::drive(async move {
            let mut ids = Vec::new();
            for shard in self.shards.all() {
                ids.extend(self.take_on(shard, redis).await?);
            }
            Ok(ids)
        })
    }

    /// Step 2 of a flush: applies batch `id` in one transaction that records it in the
    /// ledger. Does nothing when the batch is gone; reports nothing written when the ledger
    /// already has it (another flusher committed it first). Does not delete the batch:
    /// [`settle`](Self::settle) does both.
    pub fn apply<'s, 'c, 'r, 'i, C, R>(
        &'s self,
        conn: &'c mut C,
        redis: &'r mut R,
        id: &'i str,
    ) -> Out<
        C,
        impl Future<Output = Result<FlushReport<M::Key>, AtomicError>>
            + use<'s, 'c, 'r, 'i, M, Col, U, C, R>,
    >
    where
        C: AtomicConnection,
        R: RedisConnection<Mode = C::Mode> + ?Sized,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        U: UnknownKeyPolicy<M, Col, BackendOf<C>>,
    {
        C::Mode::drive(async move {
            Ok(match Flush::new(self, conn.raw(), redis).apply(id).await? {
                Applied::Now(report) => report,
                Applied::Already | Applied::Gone => FlushReport::default(),
            })
        })
    }

    /// Steps 2 and 3 for batch `id`: applies it unless the ledger has it, then finishes it
    /// (kept counts back to pending, the batch deleted).
    pub fn settle<'s, 'c, 'r, 'i, C, R>(
        &'s self,
        conn: &'c mut C,
        redis: &'r mut R,
        id: &'i str,
    ) -> Out<
        C,
        impl Future<Output = Result<FlushReport<M::Key>, AtomicError>>
            + use<'s, 'c, 'r, 'i, M, Col, U, C, R>,
    >
    where
        C: AtomicConnection,
        R: RedisConnection<Mode = C::Mode> + ?Sized,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        U: UnknownKeyPolicy<M, Col, BackendOf<C>>,
    {
        C::Mode::drive(async move { Flush::new(self, conn.raw(), redis).settle(id).await })
    }

    /// `HGET` of `key`'s pending count.
    fn pending_cmd(&self, key: &M::Key) -> redis::Cmd {
        let field = key.field();
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&self.shards.of(&field).pending).arg(field);
        cmd
    }
}

/// The pending count an `HGET` ([`RedisCounter::pending_cmd`]) reads: 0 when none.
async fn query_pending<R>(
    redis: &mut R,
    cmd: &redis::Cmd,
    timeout: Duration,
) -> Result<i64, AtomicError>
where
    R: RedisConnection + ?Sized,
{
    let n: Option<i64> = redis.query(cmd, timeout).await?;
    Ok(n.unwrap_or(0))
}

/// The longest [`RedisCounter::add_once`] id, in bytes.
const MAX_ADD_ID: usize = 200;

/// An `add_once` id: not empty, at most [`MAX_ADD_ID`] bytes.
fn add_id(id: &str) -> Result<(), AtomicError> {
    if id.is_empty() || id.len() > MAX_ADD_ID {
        return Err(AtomicError::custom(format!(
            "add_once id of {} bytes: it must have 1 to {MAX_ADD_ID}",
            id.len()
        )));
    }
    Ok(())
}

/// An amount for `HINCRBY`: not negative, within `i64`.
fn redis_amount<V: AtomicValue>(n: V) -> Result<i64, AtomicError> {
    let n = non_negative(n)?;
    i64::try_from(n).map_err(|_| AtomicError::OutOfRange {
        current: 0,
        attempted: n,
        limit: Limit::Max(i128::from(i64::MAX)),
    })
}
