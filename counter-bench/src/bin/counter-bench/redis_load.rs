//! The `redis` and `redis_benchmark` workloads: `RedisCounter::add` from every client, and the
//! reference it is held to, `redis-benchmark` sending `INCRBY` at the same concurrency in the
//! same run. After a `redis` slice one flush moves everything into the table; its rate
//! (counts moved per second) is reported with the slice.

use std::process::Command;
use std::time::{Duration, Instant};

use counter_core::{AtomicFieldOn, BackendOf, BlockingConnection, RedisCounter};

use counter_bench::db::{env_or, REDIS_URL};

use crate::backend::{counters, Counter};

/// The Redis the benchmark uses: `COUNTER_REDIS_URL`, else the local default.
pub fn redis_url() -> String {
    env_or(REDIS_URL.0, REDIS_URL.1)
}

/// The counter of `counters.value` in Redis, on a prefix of this process.
pub struct RedisLoad {
    pub counter: RedisCounter<Counter, counters::value>,
    client: redis::Client,
}

impl RedisLoad {
    pub fn new() -> Result<Self, String> {
        let url = redis_url();
        let client =
            redis::Client::open(url.as_str()).map_err(|e| format!("Redis at {url}: {e}"))?;
        let prefix = format!("counter-bench-{}", std::process::id());
        Ok(RedisLoad {
            counter: RedisCounter::new(&prefix),
            client,
        })
    }

    /// A connection of one client.
    pub fn connection(&self) -> Result<redis::Connection, String> {
        self.client
            .get_connection()
            .map_err(|e| format!("Redis at {}: {e}", redis_url()))
    }

    /// Flushes everything pending; the counts moved and how long it took.
    pub fn flush<C>(&self, conn: &mut C) -> Result<(i128, Duration), String>
    where
        C: BlockingConnection,
        Counter: AtomicFieldOn<counters::value, BackendOf<C>>,
    {
        let mut redis = self.connection()?;
        let start = Instant::now();
        let report = self
            .counter
            .flush(conn, &mut redis)
            .map_err(|e| format!("flush: {e}"))?;
        if !report.kept.is_empty() {
            return Err(format!("flush kept {:?}", report.kept));
        }
        Ok((report.total_written(), start.elapsed()))
    }
}

/// What `redis-benchmark` reported.
pub struct Reference {
    pub requests: u64,
    pub per_sec: f64,
    pub p50_us: u32,
    pub p99_us: u32,
}

/// `redis-benchmark -c clients -n requests --csv INCRBY <key> 1` on the benchmark's Redis.
pub fn redis_benchmark(clients: usize, requests: u64) -> Result<Reference, String> {
    let url = redis_url();
    let (host, port) = host_port(&url).ok_or_else(|| format!("cannot read host:port in {url}"))?;
    let output = Command::new("redis-benchmark")
        .args(["-h", &host, "-p", &port, "-c", &clients.to_string()])
        .args(["-n", &requests.to_string(), "--csv"])
        .args(["INCRBY", "counter-bench:redis-benchmark", "1"])
        .output()
        .map_err(|e| format!("redis-benchmark (apt-get install redis-tools): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("redis-benchmark failed: {text}"));
    }
    parse_csv(&text)
        .map(|(per_sec, p50_ms, p99_ms)| Reference {
            requests,
            per_sec,
            p50_us: (p50_ms * 1000.0).round() as u32,
            p99_us: (p99_ms * 1000.0).round() as u32,
        })
        .ok_or_else(|| format!("cannot read redis-benchmark's output: {text}"))
}

/// `"redis://host:port/..."` → `(host, port)`, port 6379 when absent.
fn host_port(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    Some(match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.to_owned()),
        None => (authority.to_owned(), "6379".to_owned()),
    })
}

/// `(requests/s, p50 ms, p99 ms)` from redis-benchmark's `--csv` output, whose header names
/// the columns (`"rps"`, `"p50_latency_ms"`, `"p99_latency_ms"`).
fn parse_csv(text: &str) -> Option<(f64, f64, f64)> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let cells = |line: &str| -> Vec<String> {
        line.split("\",\"")
            .map(|c| c.trim_matches('"').to_owned())
            .collect()
    };
    let header = cells(lines.next()?);
    let values = cells(lines.next()?);
    let column = |name: &str| -> Option<f64> {
        let i = header.iter().position(|h| h == name)?;
        values.get(i)?.parse().ok()
    };
    Some((
        column("rps")?,
        column("p50_latency_ms")?,
        column("p99_latency_ms")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_benchmarks_csv() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                    \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                    \"INCRBY k 1\",\"104712.04\",\"0.084\",\"0.024\",\"0.079\",\"0.111\",\"0.183\",\"2.631\"\n";
        assert_eq!(parse_csv(text), Some((104712.04, 0.079, 0.183)));
        assert_eq!(parse_csv("nothing"), None);
    }

    #[test]
    fn host_and_port_of_a_url() {
        let hp = |u| host_port(u).map(|(h, p)| format!("{h} {p}"));
        assert_eq!(hp("redis://127.0.0.1:6379/"), Some("127.0.0.1 6379".into()));
        assert_eq!(hp("redis://cache"), Some("cache 6379".into()));
        assert_eq!(hp("redis://:pw@cache:7000/0"), Some("cache 7000".into()));
    }
}
