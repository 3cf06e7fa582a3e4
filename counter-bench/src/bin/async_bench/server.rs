//! What differs between the two servers, as one trait, the model both run on, and the
//! methods both implement alike ([`shared_methods!`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::DerefMut;

use counter_core::AtomicField;
use diesel::prelude::*;

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
pub struct Counter {
    pub id: i64,
    #[atomic]
    pub hits: i64,
}

/// What differs between PostgreSQL and MySQL: connection types, the schema, the hand-written
/// statements. The generated methods are called on the concrete connection types, as an
/// application calls them.
pub trait Server: Sized + 'static {
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

/// A displayable error as the `String` the clients record.
pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// `INSERT INTO bench_async_counters (id, hits) VALUES (id, 0), …`.
pub fn insert_sql(ids: &[i64]) -> String {
    counter_bench::db::insert_sql(
        "bench_async_counters",
        "id, hits",
        ids.iter().map(|id| format!("{id}, 0")),
    )
}

/// `hits` of every row, by id.
pub fn load_snapshot<C>(conn: &mut C) -> QueryResult<BTreeMap<i64, i64>>
where
    C: diesel::Connection,
    bench_async_counters::table: diesel::query_dsl::LoadQuery<'static, C, Counter>,
{
    let rows: Vec<Counter> = bench_async_counters::table.load(conn)?;
    Ok(rows.into_iter().map(|c| (c.id, c.hits)).collect())
}

/// The [`Server`] methods written alike for both servers, on their concrete connection types
/// (`$async`, `$blocking`), with `$durability` the query that reports durability.
macro_rules! shared_methods {
    ($async:ty, $blocking:ty, $durability:expr) => {
        fn pool(url: &str, size: usize) -> Result<Pool<$async>, String> {
            let manager = AsyncDieselConnectionManager::<$async>::new(url);
            Pool::builder(manager).max_size(size).build().map_err(err)
        }

        async fn get(pool: &Pool<$async>) -> Result<Object<$async>, String> {
            pool.get().await.map_err(err)
        }

        async fn library(conn: &mut $async, id: i64) -> Result<i64, String> {
            Counter::increment_hits(conn, id, 1).await.map_err(err)
        }

        fn library_sync(conn: &mut $blocking, id: i64) -> Result<i64, String> {
            Counter::increment_hits(conn, id, 1).map_err(err)
        }

        fn durability(conn: &mut $blocking) -> QueryResult<String> {
            diesel::sql_query($durability)
                .get_result::<Setting>(conn)
                .map(|s| s.v)
        }

        async fn durability_async(conn: &mut $async) -> Result<String, String> {
            diesel_async::RunQueryDsl::get_result::<Setting>(diesel::sql_query($durability), conn)
                .await
                .map(|s| s.v)
                .map_err(err)
        }

        fn snapshot(conn: &mut $blocking) -> QueryResult<BTreeMap<i64, i64>> {
            load_snapshot(conn)
        }

        fn version(conn: &mut $blocking) -> QueryResult<String> {
            counter_bench::db::select_text(conn, "version()")
        }
    };
}
pub(crate) use shared_methods;
