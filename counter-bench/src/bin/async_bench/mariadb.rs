//! MariaDB: the capture `UPDATE` then `SELECT LAST_INSERT_ID()` by hand, a MEMORY table
//! when relaxed.

use std::collections::BTreeMap;

use counter_bench::db::MYSQL_URL;
use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::AsyncMysqlConnection;

use crate::server::{err, insert_sql, load_snapshot, shared_methods, Counter, Server};
use crate::statements::{
    decode_capture, Captured, Fixed, MysqlCapturedText, MysqlUpdateText, Setting, GUARD,
    MYSQL_CAPTURED, MYSQL_DURABILITY, MYSQL_UPDATE,
};

pub struct Mariadb;

impl Server for Mariadb {
    const NAME: &'static str = "mysql";
    const TITLE: &'static str = "MariaDB";
    const URL_VAR: &'static str = MYSQL_URL.0;
    const DEFAULT_URL: &'static str = MYSQL_URL.1;

    type Async = AsyncMysqlConnection;
    type Blocking = MysqlConnection;
    type Pool = Pool<AsyncMysqlConnection>;
    type Pooled = Object<AsyncMysqlConnection>;

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

    shared_methods!(AsyncMysqlConnection, MysqlConnection, MYSQL_DURABILITY);
}
