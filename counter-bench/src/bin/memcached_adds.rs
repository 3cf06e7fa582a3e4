//! `MemcachedCounter::add` against the hand-written call it wraps: a raw meta-protocol `incr`
//! that creates a missing item (`ma <key> N1 J1`), one round trip, counted nowhere else. Both
//! from `clients` threads sharing one `memcache::exp::MetaClient` (its pool), on a random one
//! of 10,000 keys, interleaved: each round runs both for `seconds`, in alternating order.
//! The benchmark's own `memcached` on a free loopback port.
//!
//! After each `add` slice the count not yet flushed must equal the adds that returned `Ok`
//! (`flush` into an in-memory SQLite table reports it), or the run fails.
//!
//! `cargo run --release -p counter-bench --bin memcached_adds -- [SECONDS] [CLIENTS] [ROUNDS]`
//! (defaults: 5, 16, 2).

use counter_bench::pages::{bench_pages, Page};
use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use counter_core::MemcachedCounter;
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use memcache::exp::MetaClient;
use rand::Rng;

const KEYS: i64 = 10_000;

/// The benchmark's `memcached`, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> ExitCode {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(5);
    let clients = args.get(1).copied().unwrap_or(16) as usize;
    let rounds = args.get(2).copied().unwrap_or(2);
    match run(Duration::from_secs(seconds), clients, rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(length: Duration, clients: usize, rounds: u64) -> Result<(), String> {
    let port = counter_tests::child::free_port();
    let _server = Server(counter_tests::memcached::start_memcached(port, 256)?);
    let client = MetaClient::builder()
        .max_idle(clients.max(16))
        .connect(format!("127.0.0.1:{port}"))
        .map_err(|e| e.to_string())?;
    let mut db = SqliteConnection::establish(":memory:").map_err(|e| e.to_string())?;
    let rows: Vec<String> = (0..KEYS).map(|k| format!("({k}, 0)")).collect();
    db.batch_execute(&format!(
        "CREATE TABLE bench_pages (id BIGINT PRIMARY KEY, views BIGINT NOT NULL);
         INSERT INTO bench_pages VALUES {};
         CREATE TABLE counter_memcached (counter VARCHAR(200) NOT NULL, field VARCHAR(255) NOT NULL,
             nonce BIGINT NOT NULL, applied BIGINT NOT NULL, PRIMARY KEY (counter, field));",
        rows.join(", ")
    ))
    .map_err(|e| e.to_string())?;
    let counter = MemcachedCounter::<Page, bench_pages::views>::new("bench-views");
    // Every key's item exists before the slices: both measure the steady state (one `incr`).
    for key in 0..KEYS {
        counter.add(&client, &key, 1).map_err(|e| e.to_string())?;
    }
    let first = counter.flush(&mut db, &client).map_err(|e| e.to_string())?;
    let (mut counted, mut raw) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for which in if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        } {
            let ops = slice(clients, length, |rng| {
                let key = rng.random_range(0..KEYS);
                if which {
                    counter
                        .add(&client, &key, 1)
                        .map(drop)
                        .map_err(|e| e.to_string())
                } else {
                    client
                        .increment(format!("raw:{key}"))
                        .delta(1)
                        .initial(1, 86_400)
                        .send()
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            })?;
            if which {
                let report = counter.flush(&mut db, &client).map_err(|e| e.to_string())?;
                let flushed: i128 = report.total_written();
                if flushed != i128::from(ops) {
                    return Err(format!("{ops} adds returned Ok, the flush wrote {flushed}"));
                }
                counted.push(ops as f64 / length.as_secs_f64());
            } else {
                raw.push(ops as f64 / length.as_secs_f64());
            }
        }
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let _ = first;
    println!("| clients | `MemcachedCounter::add` /s | raw `incr` /s | ratio |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {clients} | {:.0} | {:.0} | {:.2} |",
        best(&counted),
        best(&raw),
        best(&counted) / best(&raw)
    );
    Ok(())
}

/// `clients` threads calling `call` for `length`: how many calls returned `Ok`.
fn slice(
    clients: usize,
    length: Duration,
    call: impl Fn(&mut rand::rngs::ThreadRng) -> Result<(), String> + Sync,
) -> Result<u64, String> {
    let (stop, ops) = (AtomicBool::new(false), AtomicU64::new(0));
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let (stop, ops, call) = (&stop, &ops, &call);
                s.spawn(move || -> Result<(), String> {
                    let mut rng = rand::rng();
                    while !stop.load(Ordering::Relaxed) {
                        call(&mut rng)?;
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        std::thread::sleep(length);
        stop.store(true, Ordering::Relaxed);
        threads
            .into_iter()
            .try_for_each(|t| t.join().expect("a client"))
    })?;
    Ok(ops.into_inner())
}
