//! PostgreSQL: `UPDATE … RETURNING` by hand, `synchronous_commit=off` through the URL when
//! relaxed.

use std::collections::BTreeMap;

use counter_bench::db::PG_URL;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::AsyncPgConnection;

use crate::server::{err, insert_sql, load_snapshot, shared_methods, Counter, Server};
use crate::statements::{Fixed, NewHits, PgUpdateText, Setting, GUARD, PG_DURABILITY, PG_UPDATE};

pub struct Postgres;

impl Server for Postgres {
    const NAME: &'static str = "postgres";
    const TITLE: &'static str = "PostgreSQL";
    const URL_VAR: &'static str = PG_URL.0;
    const DEFAULT_URL: &'static str = PG_URL.1;

    type Async = AsyncPgConnection;
    type Blocking = PgConnection;
    type Pool = Pool<AsyncPgConnection>;
    type Pooled = Object<AsyncPgConnection>;

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

    shared_methods!(AsyncPgConnection, PgConnection, PG_DURABILITY);
}
