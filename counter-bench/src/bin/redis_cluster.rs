//! The `redis_cluster` workload: `RedisCounter::add` (one `HINCRBY` each) from 16 and 64
//! clients, against one `redis-server` and against a 3-master Redis Cluster (3 replicas) with
//! 1 and with 16 shards; how the adds spread over the masters (each master's `HINCRBY` calls,
//! from `INFO commandstats`). Every server is the benchmark's own, started on free loopback
//! ports without persistence, so the three are alike but for the cluster.
//!
//! Reported, never asserted, but for exactness: after each slice the pending counts of every
//! shard must add up to the adds that returned `Ok`, or the run fails.
//!
//! `cargo run --release -p counter-bench --bin redis_cluster -- [SECONDS] [CLIENTS...]`
//! (defaults: 5 seconds, 16 and 64 clients).

use counter_bench::pages::{bench_pages, Page};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use counter_bench::stats::percentile;
use counter_core::RedisCounter;
use counter_tests::redis_cluster::{PrivateCluster, PrivateRedisNode};
use rand::Rng;

type Views = RedisCounter<Page, bench_pages::views>;

/// Keys the clients add to (random, uniform).
const KEYS: i64 = 10_000;

/// Where a slice runs.
enum Target<'a> {
    Node(&'a PrivateRedisNode),
    Cluster(&'a PrivateCluster, u16),
}

/// What a slice measured.
struct Slice {
    ops: u64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
    /// `HINCRBY` calls per master, in the order of `masters`.
    per_master: Vec<u64>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let mut clients: Vec<usize> = args.iter().skip(1).filter_map(|s| s.parse().ok()).collect();
    if clients.is_empty() {
        clients = vec![16, 64];
    }
    let node = PrivateRedisNode::start();
    let cluster = PrivateCluster::start_with(false);
    let masters = cluster.masters();
    println!("| target | shards | clients | adds/s | p50 µs | p99 µs | HINCRBY per master |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for &n in &clients {
        for target in [
            Target::Node(&node),
            Target::Cluster(&cluster, 1),
            Target::Cluster(&cluster, 16),
        ] {
            let (name, shards) = match target {
                Target::Node(_) => ("one node", 1),
                Target::Cluster(_, s) => ("3-master cluster", s),
            };
            match slice(&target, &masters, n, Duration::from_secs_f64(seconds)) {
                Ok(s) => {
                    let total: u64 = s.per_master.iter().sum::<u64>().max(1);
                    let spread = match target {
                        Target::Node(_) => "-".to_owned(),
                        Target::Cluster(..) => s
                            .per_master
                            .iter()
                            .map(|&c| format!("{:.0}%", 100.0 * c as f64 / total as f64))
                            .collect::<Vec<_>>()
                            .join(" / "),
                    };
                    println!(
                        "| {name} | {shards} | {n} | {:.0} | {:.0} | {:.0} | {spread} |",
                        s.ops as f64 / s.seconds,
                        s.p50_us,
                        s.p99_us
                    );
                }
                Err(e) => {
                    eprintln!("error: {name}, {shards} shards, {n} clients: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

/// A blocking Redis connection of either kind.
enum Conn {
    Node(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn add(&mut self, views: &Views, key: i64) -> Result<i64, counter_core::AtomicError> {
        match self {
            Conn::Node(c) => views.add(c, &key, 1),
            Conn::Cluster(c) => views.add(&mut **c, &key, 1),
        }
    }
}

/// `clients` threads adding for `length`; then the exactness check and the per-master calls.
fn slice(
    target: &Target,
    masters: &[u16],
    clients: usize,
    length: Duration,
) -> Result<Slice, String> {
    let prefix = format!("bench-{}", rand::random::<u32>());
    let views = match target {
        Target::Node(_) => Views::new(&prefix),
        Target::Cluster(_, shards) => Views::new(&prefix).shards(*shards),
    };
    let connect = || -> Result<Conn, String> {
        match target {
            Target::Node(node) => redis::Client::open(format!("redis://127.0.0.1:{}/", node.port))
                .and_then(|c| c.get_connection())
                .map(Conn::Node),
            Target::Cluster(cluster, _) => cluster
                .client(Duration::from_secs(5))
                .get_connection()
                .map(|c| Conn::Cluster(Box::new(c))),
        }
        .map_err(|e| e.to_string())
    };
    let calls_before = hincrby_calls(target, masters)?;
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let results: Vec<Result<Vec<u32>, String>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let (views, stop) = (&views, &stop);
                let mut conn = connect();
                s.spawn(move || {
                    let conn = conn.as_mut().map_err(|e| e.clone())?;
                    let mut rng = rand::rng();
                    let mut latencies = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let at = Instant::now();
                        conn.add(views, rng.random_range(0..KEYS))
                            .map_err(|e| e.to_string())?;
                        latencies.push(u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    Ok(latencies)
                })
            })
            .collect();
        std::thread::sleep(length);
        stop.store(true, Ordering::Relaxed);
        threads
            .into_iter()
            .map(|t| t.join().expect("a client"))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for r in results {
        latencies.extend(r?);
    }
    let ops = latencies.len() as u64;
    let pending = pending_total(target, &views_pending_keys(&prefix, target))?;
    if pending != ops as i64 {
        return Err(format!("{ops} adds returned Ok, {pending} are pending"));
    }
    let calls_after = hincrby_calls(target, masters)?;
    latencies.sort_unstable();
    Ok(Slice {
        ops,
        seconds,
        p50_us: f64::from(percentile(&latencies, 0.50)),
        p99_us: f64::from(percentile(&latencies, 0.99)),
        per_master: calls_after
            .iter()
            .zip(&calls_before)
            .map(|(a, b)| a - b)
            .collect(),
    })
}

/// The pending hashes of the counter with `prefix` on `target`.
fn views_pending_keys(prefix: &str, target: &Target) -> Vec<String> {
    let shards = match target {
        Target::Node(_) => 1,
        Target::Cluster(_, s) => *s,
    };
    (0..shards)
        .map(|i| match i {
            0 => format!("{{{prefix}}}:pending"),
            i => format!("{{{prefix}#{i}}}:pending"),
        })
        .collect()
}

/// The sum of every pending count in `keys`, which it then deletes.
fn pending_total(target: &Target, keys: &[String]) -> Result<i64, String> {
    let mut total = 0;
    for key in keys {
        let sum = r"local t = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do t = t + tonumber(v) end
redis.call('DEL', KEYS[1])
return t";
        let script = redis::Script::new(sum);
        let invocation = script.key(key);
        let n: i64 = match target {
            Target::Node(node) => {
                let mut c = redis::Client::open(format!("redis://127.0.0.1:{}/", node.port))
                    .and_then(|c| c.get_connection())
                    .map_err(|e| e.to_string())?;
                invocation.invoke(&mut c)
            }
            Target::Cluster(cluster, _) => {
                let mut c = cluster
                    .client(Duration::from_secs(5))
                    .get_connection()
                    .map_err(|e| e.to_string())?;
                invocation.invoke(&mut c)
            }
        }
        .map_err(|e| e.to_string())?;
        total += n;
    }
    Ok(total)
}

/// Each master's `HINCRBY` calls so far (`INFO commandstats`); empty for one node.
fn hincrby_calls(target: &Target, masters: &[u16]) -> Result<Vec<u64>, String> {
    let Target::Cluster(cluster, _) = target else {
        return Ok(Vec::new());
    };
    masters
        .iter()
        .map(|&port| {
            let mut node = cluster.node(port).map_err(|e| e.to_string())?;
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query(&mut node)
                .map_err(|e| e.to_string())?;
            Ok(info
                .lines()
                .find_map(|l| l.strip_prefix("cmdstat_hincrby:calls="))
                .and_then(|rest| rest.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0))
        })
        .collect()
}
