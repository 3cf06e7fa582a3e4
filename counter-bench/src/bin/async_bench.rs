//! `async_bench`: counter-core's `increment` on diesel-async connections, against the same
//! statements written by hand with diesel-async, and against the library's blocking path, on
//! PostgreSQL and MySQL/MariaDB.
//!
//! Every configuration (backend × workload × rows × clients) runs once per round and its rounds
//! are added up. In each round the groups of configurations that are compared (same backend,
//! rows and clients) come in a fresh shuffled order, and a group's workloads run back to back,
//! also shuffled: drift of the machine hits both sides of a ratio alike.
//! After every slice the table is read back on a separate blocking connection: the rows must
//! have moved by exactly the number of increments the clients were told succeeded (`lost`),
//! and the values the clients got back must be exactly the values the rows went through.
//! Throughput is reported, never asserted; a lost update, an error or a wrong value fails the
//! run.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::marker::PhantomData;
use std::ops::DerefMut;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use counter_core::AtomicField;
use diesel::backend::Backend;
use diesel::connection::{InstrumentationEvent, SimpleConnection};
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Unsigned};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncMysqlConnection, AsyncPgConnection};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

diesel::table! {
    bench_async_counters (id) {
        id -> BigInt,
        hits -> BigInt,
    }
}

/// The model under test: `hits` has no declared maximum, so `increment` is guarded by
/// `hits <= i64::MAX - by`.
#[derive(Debug, Queryable, Identifiable, AtomicField)]
#[diesel(table_name = bench_async_counters)]
struct Counter {
    id: i64,
    #[atomic]
    hits: i64,
}

/// The one row every client of a `hot` configuration increments.
const HOT_ID: i64 = 1;
/// Client `i` of an `own-row` configuration increments row `OWN_BASE + 1 + i`.
const OWN_BASE: i64 = 100;
/// The guard of `increment` by 1 on a column with no declared maximum.
const GUARD: i64 = i64::MAX - 1;

/// Measures counter-core's async `increment` (diesel-async, deadpool) against the same
/// statement written by hand with diesel-async, and against the library's blocking path.
///
/// Workloads, each on one hot row (`hot`: every client on row 1) and on one row per client
/// (`own-row`):
///   library-async        Counter::increment_hits(&mut conn, id, 1).await on a pooled
///                        AsyncPgConnection / AsyncMysqlConnection.
///   hand-async           the library's statement(s), same SQL text, written by hand with
///                        diesel::sql_query(..).bind(..) and diesel-async's RunQueryDsl
///                        (get_result / execute). diesel never caches an sql_query as a
///                        prepared statement, so diesel-async prepares (and on MySQL closes)
///                        it on every call, as it does for a DSL `diesel::update`.
///   hand-async-prepared  the same SQL text as a hand-written QueryFragment with a static
///                        QueryId, so that diesel-async prepares it once per connection, as
///                        it does the library's: the library's own overhead, nothing else.
///   library-sync         Counter::increment_hits(&mut conn, id, 1) on a blocking
///                        PgConnection / MysqlConnection, one OS thread per client.
/// PostgreSQL: UPDATE … SET hits = hits + $1 WHERE id = $2 AND hits <= $3 RETURNING hits.
/// MySQL: UPDATE … SET hits = hits + ? + CAST(LAST_INSERT_ID((hits + ?) ^ 2^63) & 0 AS SIGNED)
/// WHERE id = ? AND hits <= ?, then SELECT LAST_INSERT_ID(). Before measuring, the SQL text
/// and binds of the three async workloads are captured with diesel's instrumentation and must
/// be identical.
///
/// Each async client is a tokio task (multi-thread runtime) holding its own pooled connection
/// for the whole slice; one deadpool per client count, of that size. Reported per
/// configuration: ops/s, latency p50/p99, lost updates, errors, and the CPU time of the whole
/// process per operation (the client side's cost, whatever the server's commit waits for).
/// Progress goes to stderr, the markdown tables to stdout.
///
/// Environment: COUNTER_PG_URL (default postgres://postgres@127.0.0.1/test) and
/// COUNTER_MYSQL_URL (default mysql://root@127.0.0.1/test). The table bench_async_counters is
/// created there if missing and its rows are reset. A database that cannot be reached fails
/// the run.
#[derive(Debug, Parser)]
#[command(name = "async_bench", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// Backend to measure; repeat for several [default: postgres and mysql].
    #[arg(long = "backend", value_enum)]
    backends: Vec<BackendName>,

    /// Workload to run; repeat for several [default: all four].
    #[arg(long = "workload", value_enum)]
    workloads: Vec<Workload>,

    /// Row layouts to run, comma-separated [default: hot,own-row].
    #[arg(long, value_enum, value_delimiter = ',')]
    rows: Vec<Rows>,

    /// Client counts, comma-separated [default: 1,16].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=64))]
    clients: Vec<u32>,

    /// Seconds each configuration runs in every round [default: 3; with --quick: 1].
    #[arg(long)]
    seconds: Option<f64>,

    /// Rounds; each runs every configuration once (the compared ones back to back, in a
    /// shuffled order), and a configuration's operations and time are summed over the rounds
    /// [default: 3; with --quick: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: Option<u32>,

    /// Write the result rows as a JSON array to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Smoke run: 1 s per configuration, one round, a shorter warm-up.
    #[arg(long)]
    quick: bool,

    /// Take the disk out of the measurement, without changing anything server-wide: every
    /// PostgreSQL session of the run sets synchronous_commit=off (through the URL's
    /// `options`), and the MariaDB table is ENGINE=MEMORY (InnoDB's flush at commit has no
    /// session-level switch). Otherwise the servers' own settings apply, and the table is
    /// InnoDB.
    #[arg(long)]
    relaxed_durability: bool,

    /// Worker threads of the tokio runtime [default: tokio's, one per core].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: Option<u32>,

    /// Seed of the shuffled order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum BackendName {
    Postgres,
    Mysql,
}

/// What one client does in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Workload {
    /// `Counter::increment_hits(&mut conn, id, 1).await`.
    LibraryAsync,
    /// The same statement(s) with `diesel::sql_query`, prepared on every call.
    HandAsync,
    /// The same statement(s) as a `QueryFragment` with a static `QueryId`, prepared once.
    HandAsyncPrepared,
    /// `Counter::increment_hits(&mut conn, id, 1)` on a blocking connection, a thread each.
    LibrarySync,
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::LibraryAsync,
        Workload::HandAsync,
        Workload::HandAsyncPrepared,
        Workload::LibrarySync,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::LibraryAsync => "library-async",
            Workload::HandAsync => "hand-async",
            Workload::HandAsyncPrepared => "hand-async-prepared",
            Workload::LibrarySync => "library-sync",
        }
    }
}

/// Which rows the clients of a configuration increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Rows {
    /// Every client on row 1.
    Hot,
    /// Client i (from 0) on row 101 + i.
    OwnRow,
}

impl Rows {
    fn name(self) -> &'static str {
        match self {
            Rows::Hot => "hot",
            Rows::OwnRow => "own-row",
        }
    }

    /// The row client `i` increments.
    fn id(self, i: usize) -> i64 {
        match self {
            Rows::Hot => HOT_ID,
            Rows::OwnRow => OWN_BASE + 1 + i as i64,
        }
    }
}

// --- The hand-written statements ---------------------------------------------------------------

/// The library's PostgreSQL statement (counter-core/src/sql/delta.rs, `DELTA_RETURNING`),
/// binds `[by, id, i64::MAX - by]`.
const PG_UPDATE: &str = "UPDATE \"bench_async_counters\" SET \"hits\" = \"hits\" + $1 \
     WHERE \"id\" = $2 AND \"hits\" <= $3 RETURNING \"hits\"";

/// The library's MySQL statement (`DELTA_CAPTURE`), binds `[by, by, id, i64::MAX - by]`:
/// adds a signed zero that captures the new value, XOR the sign bit, in `LAST_INSERT_ID`.
const MYSQL_UPDATE: &str = "UPDATE `bench_async_counters` SET `hits` = `hits` + ? + \
     CAST(LAST_INSERT_ID((`hits` + ?) ^ 9223372036854775808) & 0 AS SIGNED) \
     WHERE `id` = ? AND `hits` <= ?";

/// Reads back what [`MYSQL_UPDATE`] captured, on the same connection.
const MYSQL_CAPTURED: &str = "SELECT LAST_INSERT_ID()";

/// The row of [`PG_UPDATE`] for `sql_query`.
#[derive(QueryableByName)]
struct NewHits {
    #[diesel(sql_type = BigInt)]
    hits: i64,
}

/// The row of [`MYSQL_CAPTURED`] for `sql_query`.
#[derive(QueryableByName)]
struct Captured {
    #[diesel(sql_type = Unsigned<BigInt>, column_name = "LAST_INSERT_ID()")]
    raw: u64,
}

/// PostgreSQL's durability at commit, as the session sees it.
const PG_DURABILITY: &str =
    "SELECT 'synchronous_commit=' || current_setting('synchronous_commit') AS v";

/// MariaDB's durability at commit, and the engine of the table.
const MYSQL_DURABILITY: &str = "SELECT CONCAT('innodb_flush_log_at_trx_commit=', \
     @@innodb_flush_log_at_trx_commit, ', table ENGINE=', (SELECT ENGINE FROM \
     information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
     AND TABLE_NAME = 'bench_async_counters')) AS v";

/// One text setting.
#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}

/// Undoes the XOR with the sign bit of the MySQL capture.
fn decode_capture(raw: u64) -> i64 {
    (raw ^ (1 << 63)) as i64
}

/// SQL text cut at its bind parameters, and the type of its result.
trait Text: Send + Sync + 'static {
    /// The text before the first bind, between binds, and after the last.
    const PIECES: &'static [&'static str];
    type SqlType: 'static;
}

/// [`PG_UPDATE`] in pieces.
struct PgUpdateText;
impl Text for PgUpdateText {
    const PIECES: &'static [&'static str] = &[
        "UPDATE \"bench_async_counters\" SET \"hits\" = \"hits\" + ",
        " WHERE \"id\" = ",
        " AND \"hits\" <= ",
        " RETURNING \"hits\"",
    ];
    type SqlType = BigInt;
}

/// [`MYSQL_UPDATE`] in pieces.
struct MysqlUpdateText;
impl Text for MysqlUpdateText {
    const PIECES: &'static [&'static str] = &[
        "UPDATE `bench_async_counters` SET `hits` = `hits` + ",
        " + CAST(LAST_INSERT_ID((`hits` + ",
        ") ^ 9223372036854775808) & 0 AS SIGNED) WHERE `id` = ",
        " AND `hits` <= ",
        "",
    ];
    type SqlType = BigInt;
}

/// [`MYSQL_CAPTURED`].
struct MysqlCapturedText;
impl Text for MysqlCapturedText {
    const PIECES: &'static [&'static str] = &["SELECT LAST_INSERT_ID()"];
    type SqlType = Unsigned<BigInt>;
}

/// A fixed SQL text with `N` `BIGINT` binds and a static `QueryId`: diesel-async prepares it
/// once per connection and reuses it, as it does the library's statements.
struct Fixed<T: Text, const N: usize> {
    binds: [i64; N],
    text: PhantomData<T>,
}

impl<T: Text, const N: usize> Fixed<T, N> {
    fn new(binds: [i64; N]) -> Self {
        debug_assert_eq!(T::PIECES.len(), N + 1);
        Fixed {
            binds,
            text: PhantomData,
        }
    }
}

impl<T, DB, const N: usize> QueryFragment<DB> for Fixed<T, N>
where
    T: Text,
    DB: Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        for (i, piece) in T::PIECES.iter().enumerate() {
            out.push_sql(piece);
            if let Some(bind) = self.binds.get(i) {
                out.push_bind_param::<BigInt, _>(bind)?;
            }
        }
        Ok(())
    }
}

impl<T: Text, const N: usize> QueryId for Fixed<T, N> {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<T: Text, const N: usize> Query for Fixed<T, N> {
    type SqlType = T::SqlType;
}

// --- The two servers -----------------------------------------------------------------------------

/// What differs between PostgreSQL and MySQL: connection types, the schema, the hand-written
/// statements. The generated methods are called on the concrete connection types, as an
/// application calls them.
trait Server: Sized + 'static {
    /// The name on the command line and in the JSON.
    const NAME: &'static str;
    /// The name in the tables.
    const TITLE: &'static str;
    /// The environment variable with the URL, and its default.
    const URL_VAR: &'static str;
    const DEFAULT_URL: &'static str;

    type Async: diesel_async::AsyncConnection + Send + 'static;
    type Blocking: diesel::Connection + Send + 'static;

    /// `deadpool::Pool<Self::Async>`, and its pooled connection.
    type Pool: Send + Sync + 'static;
    type Pooled: DerefMut<Target = Self::Async> + Send + 'static;

    /// A deadpool of `size` connections to `url`.
    fn pool(url: &str, size: usize) -> Result<Self::Pool, String>;

    /// A connection of `pool`.
    fn get(pool: &Self::Pool) -> impl Future<Output = Result<Self::Pooled, String>> + Send + '_;

    /// `Counter::increment_hits(conn, id, 1).await`; the new value.
    fn library(
        conn: &mut Self::Async,
        id: i64,
    ) -> impl Future<Output = Result<i64, String>> + Send + '_;

    /// The library's statement(s) as `sql_query`; the new value.
    fn hand(
        conn: &mut Self::Async,
        id: i64,
    ) -> impl Future<Output = Result<i64, String>> + Send + '_;

    /// The library's statement(s) as [`Fixed`]; the new value.
    fn hand_prepared(
        conn: &mut Self::Async,
        id: i64,
    ) -> impl Future<Output = Result<i64, String>> + Send + '_;

    /// `Counter::increment_hits(conn, id, 1)` on the blocking connection; the new value.
    fn library_sync(conn: &mut Self::Blocking, id: i64) -> Result<i64, String>;

    /// The URL every connection of the run uses: `url`, or with `relaxed` its relaxed form.
    fn session_url(url: &str, relaxed: bool) -> String;

    /// Creates the table if missing and resets its rows to `ids`, each at 0; `relaxed`
    /// chooses the relaxed storage where that is a property of the table.
    fn setup(conn: &mut Self::Blocking, ids: &[i64], relaxed: bool) -> QueryResult<()>;

    /// The durability settings a connection sees, for the report.
    fn durability(conn: &mut Self::Blocking) -> QueryResult<String>;

    /// The same, on an async connection.
    fn durability_async(
        conn: &mut Self::Async,
    ) -> impl Future<Output = Result<String, String>> + Send + '_;

    /// `hits` of every row, by id.
    fn snapshot(conn: &mut Self::Blocking) -> QueryResult<BTreeMap<i64, i64>>;

    /// The server's version string.
    fn version(conn: &mut Self::Blocking) -> QueryResult<String>;
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// `INSERT INTO bench_async_counters (id, hits) VALUES (id, 0), …`.
fn insert_sql(ids: &[i64]) -> String {
    let values: Vec<String> = ids.iter().map(|id| format!("({id}, 0)")).collect();
    format!(
        "INSERT INTO bench_async_counters (id, hits) VALUES {}",
        values.join(", ")
    )
}

fn load_snapshot<C>(conn: &mut C) -> QueryResult<BTreeMap<i64, i64>>
where
    C: diesel::Connection,
    bench_async_counters::table: diesel::query_dsl::LoadQuery<'static, C, Counter>,
{
    let rows: Vec<Counter> = bench_async_counters::table.load(conn)?;
    Ok(rows.into_iter().map(|c| (c.id, c.hits)).collect())
}

struct Postgres;

impl Server for Postgres {
    const NAME: &'static str = "postgres";
    const TITLE: &'static str = "PostgreSQL";
    const URL_VAR: &'static str = "COUNTER_PG_URL";
    const DEFAULT_URL: &'static str = "postgres://postgres@127.0.0.1/test";

    type Async = AsyncPgConnection;
    type Blocking = PgConnection;
    type Pool = Pool<AsyncPgConnection>;
    type Pooled = Object<AsyncPgConnection>;

    fn pool(url: &str, size: usize) -> Result<Pool<AsyncPgConnection>, String> {
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
        Pool::builder(manager).max_size(size).build().map_err(err)
    }

    async fn get(pool: &Pool<AsyncPgConnection>) -> Result<Object<AsyncPgConnection>, String> {
        pool.get().await.map_err(err)
    }

    async fn library(conn: &mut AsyncPgConnection, id: i64) -> Result<i64, String> {
        Counter::increment_hits(conn, id, 1).await.map_err(err)
    }

    async fn hand(conn: &mut AsyncPgConnection, id: i64) -> Result<i64, String> {
        let row: NewHits = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query(PG_UPDATE)
                .bind::<BigInt, _>(1i64)
                .bind::<BigInt, _>(id)
                .bind::<BigInt, _>(GUARD),
            conn,
        )
        .await
        .map_err(err)?;
        Ok(row.hits)
    }

    async fn hand_prepared(conn: &mut AsyncPgConnection, id: i64) -> Result<i64, String> {
        let statement = Fixed::<PgUpdateText, 3>::new([1, id, GUARD]);
        diesel_async::RunQueryDsl::get_result::<i64>(statement, conn)
            .await
            .map_err(err)
    }

    fn library_sync(conn: &mut PgConnection, id: i64) -> Result<i64, String> {
        Counter::increment_hits(conn, id, 1).map_err(err)
    }

    fn session_url(url: &str, relaxed: bool) -> String {
        if !relaxed {
            return url.to_owned();
        }
        // libpq and tokio-postgres both read `options`: `-c synchronous_commit=off`.
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-c%20synchronous_commit%3Doff")
    }

    fn setup(conn: &mut PgConnection, ids: &[i64], _relaxed: bool) -> QueryResult<()> {
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_async_counters \
             (id BIGINT PRIMARY KEY, hits BIGINT NOT NULL); \
             DELETE FROM bench_async_counters;",
        )?;
        conn.batch_execute(&insert_sql(ids))
    }

    fn durability(conn: &mut PgConnection) -> QueryResult<String> {
        diesel::sql_query(PG_DURABILITY)
            .get_result::<Setting>(conn)
            .map(|s| s.v)
    }

    async fn durability_async(conn: &mut AsyncPgConnection) -> Result<String, String> {
        diesel_async::RunQueryDsl::get_result::<Setting>(diesel::sql_query(PG_DURABILITY), conn)
            .await
            .map(|s| s.v)
            .map_err(err)
    }

    fn snapshot(conn: &mut PgConnection) -> QueryResult<BTreeMap<i64, i64>> {
        load_snapshot(conn)
    }

    fn version(conn: &mut PgConnection) -> QueryResult<String> {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("version()")).get_result(conn)
    }
}

struct Mariadb;

impl Server for Mariadb {
    const NAME: &'static str = "mysql";
    const TITLE: &'static str = "MariaDB";
    const URL_VAR: &'static str = "COUNTER_MYSQL_URL";
    const DEFAULT_URL: &'static str = "mysql://root@127.0.0.1/test";

    type Async = AsyncMysqlConnection;
    type Blocking = MysqlConnection;
    type Pool = Pool<AsyncMysqlConnection>;
    type Pooled = Object<AsyncMysqlConnection>;

    fn pool(url: &str, size: usize) -> Result<Pool<AsyncMysqlConnection>, String> {
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url);
        Pool::builder(manager).max_size(size).build().map_err(err)
    }

    async fn get(
        pool: &Pool<AsyncMysqlConnection>,
    ) -> Result<Object<AsyncMysqlConnection>, String> {
        pool.get().await.map_err(err)
    }

    async fn library(conn: &mut AsyncMysqlConnection, id: i64) -> Result<i64, String> {
        Counter::increment_hits(conn, id, 1).await.map_err(err)
    }

    async fn hand(conn: &mut AsyncMysqlConnection, id: i64) -> Result<i64, String> {
        let matched = diesel_async::RunQueryDsl::execute(
            diesel::sql_query(MYSQL_UPDATE)
                .bind::<BigInt, _>(1i64)
                .bind::<BigInt, _>(1i64)
                .bind::<BigInt, _>(id)
                .bind::<BigInt, _>(GUARD),
            conn,
        )
        .await
        .map_err(err)?;
        if matched == 0 {
            return Err(format!("row {id} not matched"));
        }
        let row: Captured =
            diesel_async::RunQueryDsl::get_result(diesel::sql_query(MYSQL_CAPTURED), conn)
                .await
                .map_err(err)?;
        Ok(decode_capture(row.raw))
    }

    async fn hand_prepared(conn: &mut AsyncMysqlConnection, id: i64) -> Result<i64, String> {
        let statement = Fixed::<MysqlUpdateText, 4>::new([1, 1, id, GUARD]);
        let matched = diesel_async::RunQueryDsl::execute(statement, conn)
            .await
            .map_err(err)?;
        if matched == 0 {
            return Err(format!("row {id} not matched"));
        }
        let captured = Fixed::<MysqlCapturedText, 0>::new([]);
        let raw: u64 = diesel_async::RunQueryDsl::get_result(captured, conn)
            .await
            .map_err(err)?;
        Ok(decode_capture(raw))
    }

    fn library_sync(conn: &mut MysqlConnection, id: i64) -> Result<i64, String> {
        Counter::increment_hits(conn, id, 1).map_err(err)
    }

    fn session_url(url: &str, _relaxed: bool) -> String {
        url.to_owned()
    }

    fn setup(conn: &mut MysqlConnection, ids: &[i64], relaxed: bool) -> QueryResult<()> {
        let engine = if relaxed { "MEMORY" } else { "InnoDB" };
        conn.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS bench_async_counters \
             (id BIGINT PRIMARY KEY, hits BIGINT NOT NULL) ENGINE = {engine}; \
             ALTER TABLE bench_async_counters ENGINE = {engine}; \
             DELETE FROM bench_async_counters;"
        ))?;
        conn.batch_execute(&insert_sql(ids))
    }

    fn durability(conn: &mut MysqlConnection) -> QueryResult<String> {
        diesel::sql_query(MYSQL_DURABILITY)
            .get_result::<Setting>(conn)
            .map(|s| s.v)
    }

    async fn durability_async(conn: &mut AsyncMysqlConnection) -> Result<String, String> {
        diesel_async::RunQueryDsl::get_result::<Setting>(diesel::sql_query(MYSQL_DURABILITY), conn)
            .await
            .map(|s| s.v)
            .map_err(err)
    }

    fn snapshot(conn: &mut MysqlConnection) -> QueryResult<BTreeMap<i64, i64>> {
        load_snapshot(conn)
    }

    fn version(conn: &mut MysqlConnection) -> QueryResult<String> {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("version()")).get_result(conn)
    }
}

// --- Running ------------------------------------------------------------------------------------

/// What one client measured in one slice.
struct ClientResult {
    /// The row it incremented.
    id: i64,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    /// The new value of every successful increment, in order.
    values: Vec<i64>,
    latencies_us: Vec<u32>,
    start: Instant,
    end: Instant,
}

impl ClientResult {
    fn new(id: i64, start: Instant) -> Self {
        ClientResult {
            id,
            ok: 0,
            errors: 0,
            first_error: None,
            values: Vec::with_capacity(1 << 15),
            latencies_us: Vec::with_capacity(1 << 15),
            start,
            end: start,
        }
    }

    /// Records one operation that ended at `after` and started at `self.end`.
    fn record(&mut self, result: Result<i64, String>, after: Instant) {
        self.latencies_us
            .push(u32::try_from((after - self.end).as_micros()).unwrap_or(u32::MAX));
        self.end = after;
        match result {
            Ok(value) => {
                self.ok += 1;
                self.values.push(value);
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// One async client: its pooled connection, increments back to back until the deadline.
async fn async_client<S: Server>(
    mut conn: S::Pooled,
    workload: Workload,
    id: i64,
    start_at: tokio::time::Instant,
    duration: Duration,
) -> ClientResult {
    tokio::time::sleep_until(start_at).await;
    let conn: &mut S::Async = &mut conn;
    let start = Instant::now();
    let deadline = start + duration;
    let mut r = ClientResult::new(id, start);
    while r.end < deadline {
        let result = match workload {
            Workload::LibraryAsync => S::library(conn, id).await,
            Workload::HandAsync => S::hand(conn, id).await,
            Workload::HandAsyncPrepared => S::hand_prepared(conn, id).await,
            Workload::LibrarySync => Err("library-sync does not run on a task".into()),
        };
        r.record(result, Instant::now());
    }
    r
}

/// One blocking client: its own connection on its own thread.
fn sync_client<S: Server>(
    conn: &mut S::Blocking,
    id: i64,
    start_at: Instant,
    duration: Duration,
) -> ClientResult {
    std::thread::sleep(start_at.saturating_duration_since(Instant::now()));
    let start = Instant::now();
    let deadline = start + duration;
    let mut r = ClientResult::new(id, start);
    while r.end < deadline {
        let result = S::library_sync(conn, id);
        r.record(result, Instant::now());
    }
    r
}

/// What the slices of one configuration add up to.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    errors: u64,
    lost: i64,
    bad_values: u64,
    elapsed: Duration,
    /// CPU time of this process (every thread) while the clients ran.
    cpu: Duration,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
    /// ops/s of each round.
    per_round: Vec<f64>,
}

/// CPU time this process has used so far, all threads, exited ones included.
fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; CLOCK_PROCESS_CPUTIME_ID is always supported
    // on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The connections of one backend: a deadpool per client count, blocking connections for the
/// `library-sync` clients, and one more for setting up and reading back.
struct Bench<S: Server> {
    url: String,
    pools: BTreeMap<usize, S::Pool>,
    blocking: Vec<S::Blocking>,
    check: S::Blocking,
    version: String,
    /// What the blocking and the async connections report about durability.
    durability: String,
}

impl<S: Server> Bench<S> {
    /// Connects (an error names the environment variable), resets the table, builds the pools
    /// and opens every connection.
    fn open(
        rt: &tokio::runtime::Runtime,
        clients: &[usize],
        sync: bool,
        relaxed: bool,
    ) -> Result<Self, String> {
        let url = std::env::var(S::URL_VAR)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| S::DEFAULT_URL.to_owned());
        let url = S::session_url(&url, relaxed);
        let unreachable = |e: &dyn std::fmt::Display| {
            format!(
                "{} is unreachable at {url} ({} {}; set {} to a reachable server): {e}",
                S::TITLE,
                S::URL_VAR,
                if std::env::var_os(S::URL_VAR).is_some() {
                    "from the environment"
                } else {
                    "the default"
                },
                S::URL_VAR
            )
        };
        let mut check = S::Blocking::establish(&url).map_err(|e| unreachable(&e))?;
        let max = clients.iter().copied().max().unwrap_or(1);
        let mut ids = vec![HOT_ID];
        ids.extend((0..max).map(|i| Rows::OwnRow.id(i)));
        S::setup(&mut check, &ids, relaxed)
            .map_err(|e| format!("{}: creating the table: {e}", S::TITLE))?;
        let version = S::version(&mut check).map_err(err)?;
        let blocking_durability = S::durability(&mut check).map_err(err)?;
        let mut async_durability = String::new();
        let mut pools = BTreeMap::new();
        for &c in clients {
            let pool =
                S::pool(&url, c).map_err(|e| format!("{}: building the pool: {e}", S::TITLE))?;
            // Every connection of the pool, opened now.
            rt.block_on(async {
                let mut held = Vec::with_capacity(c);
                for _ in 0..c {
                    held.push(S::get(&pool).await.map_err(|e| unreachable(&e))?);
                }
                async_durability = S::durability_async(&mut held[0]).await?;
                Ok::<_, String>(())
            })?;
            pools.insert(c, pool);
        }
        let mut blocking = Vec::new();
        if sync {
            for _ in 0..max {
                blocking.push(S::Blocking::establish(&url).map_err(|e| unreachable(&e))?);
            }
        }
        Ok(Bench {
            url,
            pools,
            blocking,
            check,
            version,
            durability: format!(
                "blocking connections: {blocking_durability}; async connections: {async_durability}"
            ),
        })
    }

    /// Runs each async workload once on a fresh, instrumented connection and returns the SQL
    /// and binds each sent: they must be the same.
    fn statements(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> Result<Vec<(Workload, Vec<String>)>, String> {
        rt.block_on(async {
            let mut conn = <S::Async as diesel_async::AsyncConnection>::establish(&self.url)
                .await
                .map_err(err)?;
            let log: Arc<Mutex<Vec<String>>> = Arc::default();
            let sink = Arc::clone(&log);
            let instrumentation = move |event: InstrumentationEvent<'_>| {
                if let InstrumentationEvent::StartQuery { query, .. } = event {
                    sink.lock().expect("log").push(query.to_string());
                }
            };
            diesel_async::AsyncConnection::set_instrumentation(&mut conn, instrumentation);
            let mut out = Vec::new();
            for w in [
                Workload::LibraryAsync,
                Workload::HandAsync,
                Workload::HandAsyncPrepared,
            ] {
                log.lock().expect("log").clear();
                let result = match w {
                    Workload::LibraryAsync => S::library(&mut conn, HOT_ID).await,
                    Workload::HandAsync => S::hand(&mut conn, HOT_ID).await,
                    _ => S::hand_prepared(&mut conn, HOT_ID).await,
                };
                result.map_err(|e| format!("{}: {}: {e}", S::TITLE, w.name()))?;
                out.push((w, std::mem::take(&mut *log.lock().expect("log"))));
            }
            Ok(out)
        })
    }

    /// Runs one slice of one configuration and checks the table against what the clients saw.
    fn slice(
        &mut self,
        rt: &tokio::runtime::Runtime,
        workload: Workload,
        rows: Rows,
        clients: usize,
        duration: Duration,
    ) -> Result<Tally, String> {
        let before = S::snapshot(&mut self.check).map_err(err)?;
        let mut cpu = Duration::ZERO;
        let results: Vec<ClientResult> = if workload == Workload::LibrarySync {
            let cpu_start = process_cpu();
            let start_at = Instant::now() + Duration::from_millis(20);
            std::thread::scope(|scope| {
                let handles: Vec<_> = self.blocking[..clients]
                    .iter_mut()
                    .enumerate()
                    .map(|(i, conn)| {
                        scope.spawn(move || sync_client::<S>(conn, rows.id(i), start_at, duration))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().map_err(|_| "client thread panicked".to_owned()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .inspect(|_| cpu = process_cpu() - cpu_start)?
        } else {
            let pool = &self.pools[&clients];
            rt.block_on(async {
                // Every connection checked out before the clock starts.
                let mut conns = Vec::with_capacity(clients);
                for _ in 0..clients {
                    conns.push(S::get(pool).await?);
                }
                let cpu_start = process_cpu();
                let start_at = tokio::time::Instant::now() + Duration::from_millis(20);
                let tasks: Vec<_> = conns
                    .into_iter()
                    .enumerate()
                    .map(|(i, conn)| {
                        tokio::spawn(async_client::<S>(
                            conn,
                            workload,
                            rows.id(i),
                            start_at,
                            duration,
                        ))
                    })
                    .collect();
                let mut results = Vec::with_capacity(clients);
                for t in tasks {
                    results.push(t.await.map_err(|e| format!("client task failed: {e}"))?);
                }
                cpu = process_cpu() - cpu_start;
                Ok::<_, String>(results)
            })?
        };
        let after = S::snapshot(&mut self.check).map_err(err)?;
        let mut t = tally(&before, &after, results);
        t.cpu = cpu;
        Ok(t)
    }
}

/// Adds up the clients of one slice and checks the table: every row moved by exactly the
/// increments its clients were told succeeded, and the values they got back are exactly the
/// values the row went through (no duplicate, none outside `(before, after]`).
fn tally(
    before: &BTreeMap<i64, i64>,
    after: &BTreeMap<i64, i64>,
    results: Vec<ClientResult>,
) -> Tally {
    let mut t = Tally::default();
    let mut by_row: BTreeMap<i64, (u64, Vec<i64>)> = BTreeMap::new();
    let mut start: Option<Instant> = None;
    let mut end: Option<Instant> = None;
    for r in results {
        t.ok += r.ok;
        t.errors += r.errors;
        if t.first_error.is_none() {
            t.first_error = r.first_error;
        }
        t.latencies_us.extend(r.latencies_us);
        start = Some(start.map_or(r.start, |s| s.min(r.start)));
        end = Some(end.map_or(r.end, |e| e.max(r.end)));
        let entry = by_row.entry(r.id).or_default();
        entry.0 += r.ok;
        entry.1.extend(r.values);
    }
    t.elapsed = match (start, end) {
        (Some(s), Some(e)) => e - s,
        _ => Duration::ZERO,
    };
    for (id, (ok, mut values)) in by_row {
        let (b, a) = (
            before.get(&id).copied().unwrap_or(0),
            after.get(&id).copied().unwrap_or(0),
        );
        t.lost += ok as i64 - (a - b);
        let n = values.len();
        values.sort_unstable();
        values.dedup();
        let outside = values.iter().filter(|&&v| v <= b || v > a).count();
        t.bad_values += (n - values.len() + outside) as u64;
    }
    t
}

/// The `p` quantile (nearest rank) of sorted `v`; 0 when empty.
fn percentile(v: &[u32], p: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// One line of the results, as written to the JSON file.
#[derive(Debug, Clone, Serialize)]
struct Row {
    backend: &'static str,
    workload: &'static str,
    rows: &'static str,
    clients: usize,
    ops_per_sec: f64,
    p50_us: u32,
    p99_us: u32,
    /// Successful increments minus what the rows actually moved by.
    lost: i64,
    errors: u64,
    /// Returned values that were duplicates or outside what the row went through.
    bad_values: u64,
    /// CPU time of the whole benchmark process per successful increment, µs: what the client
    /// side costs, whatever the server's commit waits for.
    cpu_us_per_op: f64,
    /// Successful increments and measured seconds, summed over the rounds.
    ops: u64,
    seconds: f64,
    /// ops/s of each round, in the order the rounds ran.
    ops_per_sec_by_round: Vec<f64>,
}

/// One configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Config {
    backend: BackendName,
    workload: Workload,
    rows: Rows,
    clients: usize,
}

struct Settings {
    seconds: f64,
    rounds: u32,
    warmup: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything; `Ok(false)` when a configuration lost an update, failed or saw a wrong value.
fn run(cli: &Cli) -> Result<bool, String> {
    let mut backends = if cli.backends.is_empty() {
        vec![BackendName::Postgres, BackendName::Mysql]
    } else {
        cli.backends.clone()
    };
    backends.sort();
    backends.dedup();
    let mut workloads = if cli.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        cli.workloads.clone()
    };
    workloads.sort();
    workloads.dedup();
    let mut row_layouts = if cli.rows.is_empty() {
        vec![Rows::Hot, Rows::OwnRow]
    } else {
        cli.rows.clone()
    };
    row_layouts.sort();
    row_layouts.dedup();
    let mut clients: Vec<usize> = if cli.clients.is_empty() {
        vec![1, 16]
    } else {
        cli.clients.iter().map(|&c| c as usize).collect()
    };
    clients.sort_unstable();
    clients.dedup();
    let s = Settings {
        seconds: cli.seconds.unwrap_or(if cli.quick { 1.0 } else { 3.0 }),
        rounds: cli.rounds.unwrap_or(if cli.quick { 1 } else { 3 }),
        warmup: Duration::from_millis(if cli.quick { 100 } else { 500 }),
    };
    if !(s.seconds.is_finite() && s.seconds > 0.0) {
        return Err("--seconds must be a positive number".into());
    }

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(w) = cli.workers {
        builder.worker_threads(w as usize);
    }
    let rt = builder.build().map_err(|e| format!("tokio runtime: {e}"))?;
    let workers = rt.metrics().num_workers();

    // Both servers first: an unreachable one fails the run before anything is measured.
    let sync = workloads.contains(&Workload::LibrarySync);
    let mut pg = None;
    let mut my = None;
    for &b in &backends {
        match b {
            BackendName::Postgres => {
                pg = Some(Bench::<Postgres>::open(
                    &rt,
                    &clients,
                    sync,
                    cli.relaxed_durability,
                )?)
            }
            BackendName::Mysql => {
                my = Some(Bench::<Mariadb>::open(
                    &rt,
                    &clients,
                    sync,
                    cli.relaxed_durability,
                )?)
            }
        }
    }

    let mut out = String::new();
    out += &format!(
        "async_bench: {} s per configuration in each of {} round(s), tokio multi-thread runtime \
         with {workers} worker(s), {} CPU(s){}\n\n",
        trim_float(s.seconds),
        s.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cli.relaxed_durability {
            ", --relaxed-durability"
        } else {
            ""
        }
    );
    if let Some(b) = &pg {
        out += &format!("PostgreSQL durability: {}\n\n", b.durability);
    }
    if let Some(b) = &my {
        out += &format!("MariaDB durability: {}\n\n", b.durability);
    }
    if let Some(b) = &pg {
        out += &statement_report(b, &rt)?;
    }
    if let Some(b) = &my {
        out += &statement_report(b, &rt)?;
    }
    eprint!("{out}");

    let mut configs = Vec::new();
    for &backend in &backends {
        for &workload in &workloads {
            for &rows in &row_layouts {
                for &c in &clients {
                    configs.push(Config {
                        backend,
                        workload,
                        rows,
                        clients: c,
                    });
                }
            }
        }
    }

    // Warm-up, not counted: every connection prepares its statements.
    for c in &configs {
        let t = run_config(&mut pg, &mut my, &rt, c, s.warmup)?;
        if t.errors > 0 || t.lost != 0 || t.bad_values > 0 {
            return Err(format!(
                "warm-up of {} {} {} {} clients: {} errors ({}), {} lost, {} bad values",
                backend_title(c.backend),
                c.workload.name(),
                c.rows.name(),
                c.clients,
                t.errors,
                t.first_error.unwrap_or_default(),
                t.lost,
                t.bad_values
            ));
        }
    }

    let slice = Duration::from_secs_f64(s.seconds);
    let mut rng = SmallRng::seed_from_u64(cli.seed);
    let mut tallies: BTreeMap<Config, Tally> = BTreeMap::new();
    for round in 0..s.rounds {
        let order = round_order(&configs, &mut rng);
        for (k, c) in order.iter().enumerate() {
            let t = run_config(&mut pg, &mut my, &rt, c, slice)?;
            let secs = t.elapsed.as_secs_f64();
            eprintln!(
                "round {}/{} {:>2}/{} {:<10} {:<19} {:<7} {:>2} clients {:>9.0} ops/s  lost {} errors {} bad {}",
                round + 1,
                s.rounds,
                k + 1,
                order.len(),
                backend_title(c.backend),
                c.workload.name(),
                c.rows.name(),
                c.clients,
                t.ok as f64 / secs,
                t.lost,
                t.errors,
                t.bad_values
            );
            if let Some(e) = &t.first_error {
                eprintln!("  first error: {e}");
            }
            let total = tallies.entry(*c).or_default();
            total.ok += t.ok;
            total.errors += t.errors;
            total.lost += t.lost;
            total.bad_values += t.bad_values;
            total.elapsed += t.elapsed;
            total.cpu += t.cpu;
            total.per_round.push(t.ok as f64 / secs);
            total.latencies_us.extend(t.latencies_us);
            if total.first_error.is_none() {
                total.first_error = t.first_error;
            }
        }
    }

    let rows: Vec<Row> = tallies
        .into_iter()
        .map(|(c, mut t)| {
            t.latencies_us.sort_unstable();
            let secs = t.elapsed.as_secs_f64();
            Row {
                backend: backend_name(c.backend),
                workload: c.workload.name(),
                rows: c.rows.name(),
                clients: c.clients,
                ops_per_sec: (t.ok as f64 / secs * 10.0).round() / 10.0,
                p50_us: percentile(&t.latencies_us, 0.50),
                p99_us: percentile(&t.latencies_us, 0.99),
                lost: t.lost,
                errors: t.errors,
                bad_values: t.bad_values,
                cpu_us_per_op: (t.cpu.as_secs_f64() * 1e6 / t.ok.max(1) as f64 * 10.0).round()
                    / 10.0,
                ops: t.ok,
                seconds: (secs * 1000.0).round() / 1000.0,
                ops_per_sec_by_round: t.per_round.iter().map(|x| x.round()).collect(),
            }
        })
        .collect();

    if let Some(path) = &cli.json {
        let text = serde_json::to_string_pretty(&rows).map_err(err)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let mut titles = Vec::new();
    if let Some(b) = &pg {
        titles.push(format!("PostgreSQL: {}", b.version));
    }
    if let Some(b) = &my {
        titles.push(format!("MariaDB: {}", b.version));
    }
    out += &format!("Servers: {}\n\n", titles.join("; "));
    out += &tables(&rows);
    print!("{out}");
    let _ = std::io::stdout().flush();

    let mut ok = true;
    for r in &rows {
        if r.lost != 0 || r.errors != 0 || r.bad_values != 0 {
            eprintln!(
                "error: {} {} {} with {} clients: {} lost, {} errors, {} bad values; all must be 0",
                r.backend, r.workload, r.rows, r.clients, r.lost, r.errors, r.bad_values
            );
            ok = false;
        }
    }
    Ok(ok)
}

fn run_config(
    pg: &mut Option<Bench<Postgres>>,
    my: &mut Option<Bench<Mariadb>>,
    rt: &tokio::runtime::Runtime,
    c: &Config,
    duration: Duration,
) -> Result<Tally, String> {
    match c.backend {
        BackendName::Postgres => pg
            .as_mut()
            .expect("opened")
            .slice(rt, c.workload, c.rows, c.clients, duration),
        BackendName::Mysql => my
            .as_mut()
            .expect("opened")
            .slice(rt, c.workload, c.rows, c.clients, duration),
    }
}

/// The statements each async workload sent for one increment; an error unless all are equal.
fn statement_report<S: Server>(
    b: &Bench<S>,
    rt: &tokio::runtime::Runtime,
) -> Result<String, String> {
    let statements = b.statements(rt)?;
    let (_, library) = &statements[0];
    for (w, sent) in &statements[1..] {
        if sent != library {
            return Err(format!(
                "{}: {} does not send the library's statements.\n  library: {library:#?}\n  {}: {sent:#?}",
                S::TITLE,
                w.name(),
                w.name()
            ));
        }
    }
    let mut text = format!(
        "{}: library-async, hand-async and hand-async-prepared send the same statements \
         (captured with diesel's instrumentation, binds included):\n\n",
        S::TITLE
    );
    for sql in library {
        text += &format!("    {sql}\n");
    }
    text.push('\n');
    Ok(text)
}

fn backend_name(b: BackendName) -> &'static str {
    match b {
        BackendName::Postgres => Postgres::NAME,
        BackendName::Mysql => Mariadb::NAME,
    }
}

fn backend_title(b: BackendName) -> &'static str {
    match b {
        BackendName::Postgres => Postgres::TITLE,
        BackendName::Mysql => Mariadb::TITLE,
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{x}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// The result table and the ratio tables, in markdown.
fn tables(rows: &[Row]) -> String {
    let mut out = String::new();
    out += "| backend | workload | rows | clients | ops/s | p50 µs | p99 µs | lost | errors \
            | CPU µs/op |\n";
    out += "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.1} |\n",
            r.backend,
            r.workload,
            r.rows,
            r.clients,
            r.ops_per_sec,
            r.p50_us,
            r.p99_us,
            r.lost,
            r.errors,
            r.cpu_us_per_op
        );
    }
    let library: Vec<&Row> = rows
        .iter()
        .filter(|r| r.workload == Workload::LibraryAsync.name())
        .collect();
    if library.is_empty() {
        return out;
    }
    let cell = |r: &Row, other: Workload| {
        rows.iter()
            .find(|o| {
                o.workload == other.name()
                    && o.backend == r.backend
                    && o.rows == r.rows
                    && o.clients == r.clients
            })
            .map_or_else(|| "–".to_owned(), |o| ratio_cell(r, o))
    };
    // CPU µs/op of `other` ÷ library-async: below 1 when the library costs more.
    let cpu = |r: &Row, other: Workload| {
        rows.iter()
            .find(|o| {
                o.workload == other.name()
                    && o.backend == r.backend
                    && o.rows == r.rows
                    && o.clients == r.clients
            })
            .map_or_else(
                || "–".to_owned(),
                |o| format!("{:.3}", o.cpu_us_per_op / r.cpu_us_per_op),
            )
    };
    out += "\nlibrary-async ÷ hand-async (the same SQL with sql_query, which diesel-async \
            prepares on every call) and library-async ÷ hand-async-prepared (the same SQL with a \
            static QueryId, prepared once per connection, as the library's): ops/s summed over \
            the rounds (in brackets: the median, lowest and highest ratio of one round's pair; \
            the two sides of a pair run back to back); and CPU \
            µs/op of hand-async-prepared ÷ library-async (below 1: the library costs more CPU). \
            Target: at least 0.97.\n\n";
    out += "| backend | rows | clients | ÷ hand-async | ÷ hand-async-prepared \
            | CPU/op: prepared ÷ library |\n";
    out += "|---|---|---:|---:|---:|---:|\n";
    for r in &library {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.backend,
            r.rows,
            r.clients,
            cell(r, Workload::HandAsync),
            cell(r, Workload::HandAsyncPrepared),
            cpu(r, Workload::HandAsyncPrepared)
        );
    }
    out += "\nlibrary-async ÷ library-sync: the same operation from tokio tasks and from blocking \
            threads, ops/s (in brackets: median and range per round), and CPU µs/op of library-sync ÷ \
            library-async (below 1: the async path costs more CPU per operation).\n\n";
    out += "| backend | rows | clients | ops/s: async ÷ sync | CPU/op: sync ÷ async |\n";
    out += "|---|---|---:|---:|---:|\n";
    for r in &library {
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            r.backend,
            r.rows,
            r.clients,
            cell(r, Workload::LibrarySync),
            cpu(r, Workload::LibrarySync)
        );
    }
    out
}

/// One round's order: the groups of configurations that are compared with each other (same
/// backend, rows and clients) in a shuffled order, and each group's workloads back to back in
/// a shuffled order, so that the two sides of a ratio run seconds apart, not minutes.
fn round_order(configs: &[Config], rng: &mut SmallRng) -> Vec<Config> {
    let mut groups: BTreeMap<(BackendName, Rows, usize), Vec<Config>> = BTreeMap::new();
    for c in configs {
        groups
            .entry((c.backend, c.rows, c.clients))
            .or_default()
            .push(*c);
    }
    let mut groups: Vec<Vec<Config>> = groups.into_values().collect();
    groups.shuffle(rng);
    for g in &mut groups {
        g.shuffle(rng);
    }
    groups.concat()
}

/// `r ÷ o` in ops/s over all rounds, then the median and range of the per-round ratios.
fn ratio_cell(r: &Row, o: &Row) -> String {
    let total = r.ops_per_sec / o.ops_per_sec;
    let per_round: Vec<f64> = r
        .ops_per_sec_by_round
        .iter()
        .zip(&o.ops_per_sec_by_round)
        .map(|(a, b)| a / b)
        .collect();
    if per_round.len() < 2 {
        return format!("{total:.3}");
    }
    let mut sorted = per_round;
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    format!(
        "{total:.3} (median {median:.3}; {:.2}–{:.2})",
        sorted[0],
        sorted[n - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_statements_render_the_sql_query_text() {
        let pg =
            diesel::debug_query::<diesel::pg::Pg, _>(&Fixed::<PgUpdateText, 3>::new([1, 7, GUARD]))
                .to_string();
        assert_eq!(pg, format!("{PG_UPDATE} -- binds: [1, 7, {GUARD}]"));
        let my =
            diesel::debug_query::<diesel::mysql::Mysql, _>(&Fixed::<MysqlUpdateText, 4>::new([
                1, 1, 7, GUARD,
            ]))
            .to_string();
        assert_eq!(my, format!("{MYSQL_UPDATE} -- binds: [1, 1, 7, {GUARD}]"));
        let captured =
            diesel::debug_query::<diesel::mysql::Mysql, _>(&Fixed::<MysqlCapturedText, 0>::new([]))
                .to_string();
        assert_eq!(captured, format!("{MYSQL_CAPTURED} -- binds: []"));
    }

    #[test]
    fn capture_decodes_negative_and_positive() {
        assert_eq!(decode_capture(5u64 ^ (1 << 63)), 5);
        assert_eq!(decode_capture((-5i64 as u64) ^ (1 << 63)), -5);
    }

    #[test]
    fn tally_counts_lost_and_bad_values() {
        let t0 = Instant::now();
        let client = |id, values: Vec<i64>| ClientResult {
            id,
            ok: values.len() as u64,
            errors: 0,
            first_error: None,
            values,
            latencies_us: vec![1],
            start: t0,
            end: t0,
        };
        let before = BTreeMap::from([(1, 10), (101, 0)]);
        let after = BTreeMap::from([(1, 13), (101, 2)]);
        let t = tally(
            &before,
            &after,
            vec![
                client(1, vec![11, 13]),
                client(1, vec![12]),
                client(101, vec![1, 2]),
            ],
        );
        assert_eq!((t.ok, t.lost, t.bad_values), (5, 0, 0));
        let t = tally(&before, &after, vec![client(1, vec![11, 11, 14, 12])]);
        assert_eq!((t.lost, t.bad_values), (1, 2));
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
