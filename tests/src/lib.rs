//! Shared harness for the cross-database integration tests.
//!
//! - [`schema`] and [`models`]: the tables and the `#[derive(AtomicField)]` models under test.
//! - [`db`]: how each backend gets a database (environment variable, else a testcontainers
//!   container, else a panic that says what to do), the r2d2 pools, the DDL, unique row ids.
//! - [`gate`]: a way into a test's database the test can close (a proxy, a lock on the file).
//! - [`client`]: how a scenario reaches the database: blocking connections from the harness's
//!   r2d2 pool, or diesel-async connections from a deadpool or bb8 pool.
//! - [`scenarios`]: every scenario, written once as an `async fn` generic over
//!   [`client::Client`]; the `backend_tests!` macro turns them into one `#[test]` each in
//!   `tests/{sqlite,postgres,mysql}.rs` (blocking) and `tests/async.rs` (diesel-async).

pub mod checker;
pub mod child;
pub mod client;
pub mod db;
pub mod gate;
pub mod memcached;
pub mod models;
pub mod pgbench;
pub mod proxy;
pub mod redis_cluster;
pub mod scenarios;
pub mod schema;

pub use client::{AsyncClient, AsyncMysql, AsyncPostgres, AsyncSqlite, BlockingClient, Client};
pub use db::{next_id, Mysql, Postgres, Sqlite, TestDb};
