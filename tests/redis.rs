//! Redis itself going away under a `RedisCounter`: every call returns a typed error while it
//! is down (no panic), and the counter works again once it is back. What survives is Redis's
//! persistence: `SHUTDOWN NOSAVE` without AOF loses the pending counts (documented), with
//! `appendonly yes` + `appendfsync always` it loses nothing, not even a batch taken before the
//! shutdown.
//!
//! These tests start their own `redis-server` (on a free port, in a temporary directory), since
//! they shut it down; the database is SQLite. They need the `redis-server` binary
//! (`apt-get install redis-server`, which `.ci/env.sh` does).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use counter_core::AtomicError;
use counter_tests::scenarios::{daily_rows, fresh_views, rows};
use counter_tests::{next_id, Sqlite, TestDb};

/// A `redis-server` of this test's own.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
    /// Starts one on `port` with its files in `dir`; `aof`: append-only file, fsync always.
    fn start(port: u16, dir: &Path, aof: bool) -> Self {
        let child = Command::new("redis-server")
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn is_redis_error<T: std::fmt::Debug>(result: Result<T, AtomicError>) {
    assert!(
        matches!(result, Err(AtomicError::Redis(_))),
        "while Redis is down: {result:?}"
    );
}

/// Redis restarted with `aof` off or on; returns the row after the last flush, which started
/// at 5 flushed, had 3 pending and a batch of 4 taken at the shutdown, and got 2 more after.
fn restart(aof: bool) -> i64 {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = Sqlite::open();
    let page = next_id();
    daily_rows(&db, page, [1], 0);
    let (views, prefix) = fresh_views();
    let mut conn = db.conn();

    let server = PrivateRedis::start(port, dir.path(), aof);
    let mut redis = server.connection();
    views.add(&mut redis, &(page, 1), 5).unwrap();
    views.flush(&mut conn, &mut redis).unwrap();
    views.add(&mut redis, &(page, 1), 4).unwrap();
    views
        .take(&mut redis)
        .unwrap()
        .expect("a batch taken, not applied");
    views.add(&mut redis, &(page, 1), 3).unwrap();
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
    // 5 flushed + 2 after the restart; the 4 taken and the 3 pending were in Redis only.
    assert_eq!(restart(false), 7);
}

#[test]
fn redis_shutdown_with_aof_loses_nothing() {
    assert_eq!(restart(true), 5 + 4 + 3 + 2);
}
