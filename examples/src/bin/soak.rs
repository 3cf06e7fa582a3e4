//! The soak: the example service as several processes on one PostgreSQL and one Redis, under
//! a loopback load of its mixed routes, one process killed with SIGKILL halfway, then every
//! invariant checked from the database against the requests that were answered.
//!
//! `bash .ci/soak.sh [SECONDS]` builds and runs it (CI runs 10 seconds); by hand:
//! `cargo run -p counter-examples --bin soak -- --seconds 60 [--processes 3] [--clients 32]`
//! with `COUNTER_PG_URL` and `COUNTER_REDIS_URL` set (`source .ci/env.sh` sets both).
//!
//! 1. A product with a stock of 1,000 units per second of load, and a page, of this run's own
//!    (random ids; the tables are shared with other runs).
//! 2. `--processes` services (the `service` binary beside this one), each with its own pool and
//!    its own flusher, sharing one Redis prefix.
//! 3. `--clients` keep-alive HTTP clients for `--seconds`, each request to a random live
//!    process: half `POST /products/{id}/buy` of 1 to 3 units, half `POST /pages/{id}/view`.
//! 4. Halfway, process 0 is killed with SIGKILL (its requests in flight, its flusher perhaps
//!    inside a flush) and started again a second later.
//! 5. At the end every process gets SIGTERM: it finishes its requests and runs a last flush.
//!
//! Then, from PostgreSQL and Redis:
//! - `stock + sold` is the initial stock (a sale changes both or neither), `stock >= 0`;
//! - `sold` is at least the units of the answered sales and at most that plus the units of
//!   the requests whose answer was lost (the killed process's);
//! - every refusal (409) said `available < requested`;
//! - the page's views are at least the answered views and at most that plus the lost ones;
//! - nothing is pending in Redis, and one more flush finds nothing to settle.
//!
//! It prints the figures and ends with `soak exact: true`, or exits non-zero.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use counter_examples::http::Client;
use counter_examples::service::{Backend, Database, Page, Product, RedisViews};
use hyper::{Method, StatusCode};
use rand::Rng;

type BoxError = Box<dyn Error + Send + Sync>;

/// Units of stock per second of load: enough that the run sells for a while, little enough
/// that a run of a few seconds or more also sells out and refuses.
const STOCK_PER_SECOND: i32 = 1000;

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    match run().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

/// The run's settings.
struct Settings {
    seconds: u64,
    processes: usize,
    clients: usize,
}

fn settings() -> Result<Settings, BoxError> {
    let mut s = Settings {
        seconds: 60,
        processes: 3,
        clients: 32,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a number"));
        match arg.as_str() {
            "--seconds" => s.seconds = value()?.parse()?,
            "--processes" => s.processes = value()?.parse()?,
            "--clients" => s.clients = value()?.parse()?,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: soak [--seconds N] [--processes N] \
                     [--clients N]"
                )
                .into())
            }
        }
    }
    if s.seconds < 2 || s.processes < 2 || s.clients == 0 {
        return Err("the soak needs --seconds >= 2, --processes >= 2 and --clients >= 1".into());
    }
    Ok(s)
}

/// The value of environment variable `name`, or an error that names it.
fn env(name: &str) -> Result<String, BoxError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            format!("{name} is not set: the soak needs it (`source .ci/env.sh` sets it)").into()
        })
}

async fn run() -> Result<bool, BoxError> {
    let s = settings()?;
    let (pg_url, redis_url) = (env("COUNTER_PG_URL")?, env("COUNTER_REDIS_URL")?);
    let run_id = rand::random::<u32>();
    let id = 3_000_000_000 + i64::from(run_id);
    let prefix = format!("soak-views-{run_id}");
    let stock = STOCK_PER_SECOND * i32::try_from(s.seconds)?;

    let db = Database::postgres(&pg_url).await?;
    db.add_product(id, stock).await?;
    db.add_page(id).await?;
    let views = RedisViews::connect(&redis_url, &prefix).await?;

    let exe = std::env::current_exe()?.with_file_name("service");
    if !exe.exists() {
        return Err(format!(
            "{} is missing: build it first (cargo build -p counter-examples --bin service)",
            exe.display()
        )
        .into());
    }
    let launch = Launch {
        exe,
        args: vec![
            "--port".into(),
            "0".into(),
            "--database-url".into(),
            pg_url.clone(),
            "--redis-url".into(),
            redis_url.clone(),
            "--views-prefix".into(),
            prefix.clone(),
        ],
        recovered: Arc::new(AtomicUsize::new(0)),
    };
    let mut servers = Vec::new();
    for _ in 0..s.processes {
        servers.push(launch.start()?);
    }
    let targets: Arc<Mutex<Vec<Option<SocketAddr>>>> =
        Arc::new(Mutex::new(servers.iter().map(|s| Some(s.addr)).collect()));
    println!(
        "soak: {} processes, {} clients, {} s; product and page {id}, stock {stock}",
        s.processes, s.clients, s.seconds
    );

    let started = Instant::now();
    let deadline = started + Duration::from_secs(s.seconds);
    let clients: Vec<_> = (0..s.clients)
        .map(|_| tokio::spawn(client(Arc::clone(&targets), id, deadline)))
        .collect();

    // Halfway: SIGKILL process 0, and a new one in its place a second later.
    tokio::time::sleep(Duration::from_secs(s.seconds) / 2).await;
    targets.lock().expect("targets")[0] = None;
    let killed_at = started.elapsed();
    servers[0].child.kill()?;
    servers[0].child.wait()?;
    println!("killed process 0 (SIGKILL) at {killed_at:.2?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    servers[0] = launch.start()?;
    targets.lock().expect("targets")[0] = Some(servers[0].addr);
    println!("started process 0 again at {:.2?}", started.elapsed());

    let mut tally = Tally::default();
    for c in clients {
        tally.add(c.await?);
    }
    let elapsed = started.elapsed();

    // SIGTERM: each finishes its requests and runs its last flush.
    let mut stopped_cleanly = true;
    for (i, server) in servers.iter_mut().enumerate() {
        let status = Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()?;
        let exit = server.child.wait()?;
        if !status.success() || !exit.success() {
            eprintln!("process {i} did not stop cleanly: kill {status}, exit {exit}");
            stopped_cleanly = false;
        }
    }

    // The checks, from the database and Redis.
    let backend = db.backend().clone();
    let Backend::Postgres(pool) = &backend else {
        unreachable!("the soak runs on PostgreSQL")
    };
    let mut conn = pool.get().await?;
    let (left, sold) = (
        Product::current_stock(&mut conn, id).await?,
        Product::current_sold(&mut conn, id).await?,
    );
    let page_views = Page::current_views(&mut conn, id).await?;
    drop(conn);
    let pending = views.pending(id).await?;
    let last = views.flush(&backend).await?;

    let requests = tally.requests();
    println!(
        "{requests} requests in {elapsed:.2?} ({:.0}/s); statuses {:?}",
        requests as f64 / elapsed.as_secs_f64(),
        tally.statuses
    );
    println!(
        "buy: {} sales answered ({} units), {} refused, {} lost answers ({} units), {} not sent",
        tally.sales, tally.units, tally.refused, tally.lost_buys, tally.lost_units, tally.unsent
    );
    println!(
        "views: {} answered, {} lost answers; row {page_views}, pending {pending}",
        tally.views, tally.lost_views
    );
    println!(
        "stock {left} + sold {sold} = {} (started at {stock}); batches a flush settled for \
         another (concurrent or killed) flusher: {}",
        i64::from(left) + sold,
        launch.recovered.load(Ordering::Relaxed)
    );
    for problem in &tally.problems {
        println!("problem: {problem}");
    }

    let units = tally.units as i64;
    let checks = [
        (
            "stock + sold is the initial stock",
            i64::from(left) + sold == i64::from(stock),
        ),
        ("stock is not negative", left >= 0),
        (
            "sold covers every answered sale and no more than the lost ones",
            units <= sold && sold <= units + tally.lost_units as i64,
        ),
        (
            "the views cover every answered view and no more than the lost ones",
            tally.views as i64 <= page_views
                && page_views <= (tally.views + tally.lost_views) as i64,
        ),
        ("nothing pending in Redis", pending == 0),
        (
            "a last flush finds nothing to settle",
            last.applied == 0 && last.recovered == 0 && last.written.is_empty(),
        ),
        ("every answer as documented", tally.problems.is_empty()),
        ("every process stopped cleanly", stopped_cleanly),
        (
            "the load reached every route",
            tally.sales > 0 && tally.views > 0,
        ),
    ];
    let mut exact = true;
    for (what, held) in checks {
        if !held {
            println!("FAILED: {what}");
            exact = false;
        }
    }
    println!("soak exact: {exact}");
    Ok(exact)
}

/// How to start one service process, and the count of batches their flushes recovered.
struct Launch {
    exe: std::path::PathBuf,
    args: Vec<String>,
    recovered: Arc<AtomicUsize>,
}

/// A running service process.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Launch {
    /// Starts a process and waits for its `listening on http://…` line; its later lines are
    /// read on a thread (each "flush recovered N batches" counted), its errors go to ours.
    fn start(&self) -> Result<Server, BoxError> {
        let mut child = Command::new(&self.exe)
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                return Err(
                    format!("the service exited before listening: {:?}", child.wait()).into(),
                );
            };
            if let Some(addr) = line?.strip_prefix("listening on http://") {
                break addr.parse::<SocketAddr>()?;
            }
        };
        let recovered = Arc::clone(&self.recovered);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(n) = line
                    .strip_prefix("flush recovered ")
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    recovered.fetch_add(n, Ordering::Relaxed);
                }
            }
        });
        Ok(Server { child, addr })
    }
}

/// What one client's requests got.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
    sales: usize,
    units: usize,
    refused: usize,
    lost_buys: usize,
    lost_units: usize,
    views: usize,
    lost_views: usize,
    unsent: usize,
    problems: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.sales += other.sales;
        self.units += other.units;
        self.refused += other.refused;
        self.lost_buys += other.lost_buys;
        self.lost_units += other.lost_units;
        self.views += other.views;
        self.lost_views += other.lost_views;
        self.unsent += other.unsent;
        self.problems.extend(other.problems);
    }

    fn requests(&self) -> usize {
        self.statuses.values().sum::<usize>() + self.lost_buys + self.lost_views
    }
}

/// One client until `deadline`: each request to a random live process, over a keep-alive
/// connection per process (dropped on any failure, made again when needed).
async fn client(targets: Arc<Mutex<Vec<Option<SocketAddr>>>>, id: i64, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut connections: BTreeMap<SocketAddr, Client> = BTreeMap::new();
    let buy = format!("/products/{id}/buy");
    let view = format!("/pages/{id}/view");
    while Instant::now() < deadline {
        let live: Vec<SocketAddr> = targets
            .lock()
            .expect("targets")
            .iter()
            .flatten()
            .copied()
            .collect();
        let (addr, buying, quantity) = {
            let mut rng = rand::rng();
            (
                live[rng.random_range(0..live.len())],
                rng.random_bool(0.5),
                rng.random_range(1..=3_usize),
            )
        };
        let client = match connections.entry(addr) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => match Client::connect(addr).await {
                Ok(client) => e.insert(client),
                Err(_) => {
                    // Not connected: the request was never sent (a process being killed).
                    tally.unsent += 1;
                    continue;
                }
            },
        };
        let body = format!(r#"{{"quantity": {quantity}}}"#);
        let answer = if buying {
            client.send(Method::POST, &buy, Some(&body)).await
        } else {
            client.send(Method::POST, &view, None).await
        };
        let (status, value) = match answer {
            Ok(answer) => answer,
            Err(_) => {
                // Sent, answer lost: served or not, nobody knows.
                connections.remove(&addr);
                if buying {
                    tally.lost_buys += 1;
                    tally.lost_units += quantity;
                } else {
                    tally.lost_views += 1;
                }
                continue;
            }
        };
        *tally.statuses.entry(status.as_u16()).or_default() += 1;
        match (buying, status) {
            (true, StatusCode::OK) => {
                tally.sales += 1;
                tally.units += quantity;
            }
            (true, StatusCode::CONFLICT) => {
                tally.refused += 1;
                let available = value["available"].as_i64();
                if value["error"] != "insufficient"
                    || !matches!(available, Some(a) if a >= 0 && a < quantity as i64)
                {
                    tally
                        .problems
                        .push(format!("a refusal of {quantity}: {value}"));
                }
            }
            (false, StatusCode::OK) => tally.views += 1,
            _ => tally.problems.push(format!(
                "{} answered {status}: {value}",
                if buying { "buy" } else { "view" }
            )),
        }
    }
    tally
}
