//! The web service of `counter_examples::service` under load, on SQLite and on PostgreSQL:
//! started on 127.0.0.1 (port 0) in this test's multi-threaded runtime, then hit by 32
//! concurrent HTTP/1.1 keep-alive clients. The totals and status counts must be exact; the
//! timings are printed (`--nocapture`), never asserted.
//!
//! - 2000 `buy` of a stock of 500: exactly 500 answers 200 and 1500 answers 409
//!   `{"error":"insufficient","available":0,"requested":1}`; then stock 0 and sold 500.
//! - 64 `buy-what-is-left` of 3 each from a stock of 100: what they took adds up to 100.
//! - 5000 `GET /articles/{id}`: all 200, and the views they return are 1..=5000, each once.
//!
//! The PostgreSQL test needs `COUNTER_PG_URL` (`source .ci/env.sh` sets it) and fails
//! without it; it uses random ids in the shared database's `svc_` tables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use counter_examples::http::Client;
use counter_examples::service::{self, Article, Backend, Database};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

/// Concurrent clients, each with one keep-alive connection.
const CLIENTS: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_service_under_load() {
    let db = Database::sqlite_temp()
        .await
        .expect("temporary SQLite database");
    load("sqlite", &db, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_service_under_load() {
    let url = std::env::var("COUNTER_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .expect(
            "COUNTER_PG_URL is not set: this test needs a PostgreSQL database \
             (`source .ci/env.sh` starts one and sets COUNTER_PG_URL)",
        );
    let db = Database::postgres(&url).await.expect("PostgreSQL database");
    // The database is shared with other runs: ids of our own.
    let base = 1_000_000 + i64::from(rand::random::<u32>()) * 4;
    load("postgres", &db, base).await;
}

/// The three phases against a service on `db`, with rows `base + 1 ..= base + 3`.
async fn load(backend: &str, db: &Database, base: i64) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let server = tokio::spawn(service::serve(
        listener,
        service::router(db.backend().clone()),
    ));
    println!("{backend}: service on http://{addr}, {db}");

    // 1. Exactly the stock is sold; every other buyer hears 409 with what there was.
    let product = base + 1;
    assert!(
        db.add_product(product, 500).await.unwrap(),
        "id {product} taken"
    );
    let path = format!("/products/{product}/buy");
    let answers = fire(backend, "buy", addr, 2000, move |_| {
        (Method::POST, path.clone(), Some(r#"{"quantity": 1}"#))
    })
    .await;
    let statuses = count_statuses(&answers);
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 500), (409, 1500)]),
        "statuses of 2000 buys of a stock of 500"
    );
    let mut left: Vec<i64> = Vec::new();
    for (status, body) in &answers {
        if *status == StatusCode::OK {
            assert_eq!(body["id"], json!(product), "{body}");
            left.push(body["stock"].as_i64().unwrap_or_else(|| panic!("{body}")));
        } else {
            assert_eq!(
                *body,
                json!({ "error": "insufficient", "available": 0, "requested": 1 })
            );
        }
    }
    // Each sale saw a different stock left: 499 down to 0, each once.
    left.sort_unstable();
    assert_eq!(left, (0..500).collect::<Vec<_>>());
    assert_eq!(read_product(addr, product).await, (0, 500));

    // 2. The add-to-cart: 64 × "up to 3" from a stock of 100 takes exactly 100.
    let product = base + 2;
    assert!(
        db.add_product(product, 100).await.unwrap(),
        "id {product} taken"
    );
    let path = format!("/products/{product}/buy-what-is-left");
    let answers = fire(backend, "buy-what-is-left", addr, 64, move |_| {
        (Method::POST, path.clone(), Some(r#"{"quantity": 3}"#))
    })
    .await;
    assert_eq!(count_statuses(&answers), BTreeMap::from([(200, 64)]));
    let taken: i64 = answers
        .iter()
        .map(|(_, body)| {
            let taken = body["taken"].as_i64().unwrap_or_else(|| panic!("{body}"));
            assert!((0..=3).contains(&taken), "{body}");
            taken
        })
        .sum();
    assert_eq!(taken, 100);
    assert_eq!(read_product(addr, product).await, (0, 100));

    // 3. Page views: each of 5000 reads counted once, each told a different count.
    let article = base + 3;
    assert!(db.add_article(article).await.unwrap(), "id {article} taken");
    let path = format!("/articles/{article}");
    let answers = fire(backend, "views", addr, 5000, move |_| {
        (Method::GET, path.clone(), None)
    })
    .await;
    assert_eq!(count_statuses(&answers), BTreeMap::from([(200, 5000)]));
    let mut views: Vec<i64> = answers
        .iter()
        .map(|(_, body)| body["views"].as_i64().unwrap_or_else(|| panic!("{body}")))
        .collect();
    views.sort_unstable();
    assert_eq!(views, (1..=5000).collect::<Vec<_>>());
    // Read back past the service (a GET would count one more).
    let stored = match db.backend() {
        Backend::Sqlite(pool) => {
            Article::current_views(&mut pool.get().await.unwrap(), article).await
        }
        Backend::Postgres(pool) => {
            Article::current_views(&mut pool.get().await.unwrap(), article).await
        }
    };
    assert_eq!(stored.unwrap(), 5000);

    server.abort();
}

/// Sends `total` requests from [`CLIENTS`] concurrent connections, request `i` being
/// `request(i)`, and returns every answer (in no particular order). Prints the phase's rate.
async fn fire<F>(
    backend: &str,
    phase: &str,
    addr: SocketAddr,
    total: usize,
    request: F,
) -> Vec<(StatusCode, Value)>
where
    F: Fn(usize) -> (Method, String, Option<&'static str>) + Send + Sync + 'static,
{
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Client::connect(addr).await.expect("connect to the service"));
    }
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let (request, next) = (request.clone(), next.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return answers;
                    }
                    let (method, path, body) = request(i);
                    let answer = client.send(method, &path, body).await;
                    answers.push(answer.expect("an answer from the service"));
                }
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(total);
    for task in tasks {
        answers.extend(task.await.expect("client task"));
    }
    let elapsed = start.elapsed();
    println!(
        "{backend} {phase}: {total} requests, {CLIENTS} concurrent clients, {:.3} s, {:.0} req/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(answers.len(), total);
    answers
}

/// How many answers had each status code.
fn count_statuses(answers: &[(StatusCode, Value)]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for (status, _) in answers {
        *counts.entry(status.as_u16()).or_default() += 1;
    }
    counts
}

/// `GET /products/{id}`: (stock, sold).
async fn read_product(addr: SocketAddr, id: i64) -> (i64, i64) {
    let mut client = Client::connect(addr).await.expect("connect to the service");
    let (status, body) = client
        .send(Method::GET, &format!("/products/{id}"), None)
        .await
        .expect("an answer from the service");
    assert_eq!(status, StatusCode::OK, "{body}");
    let field = |name: &str| body[name].as_i64().unwrap_or_else(|| panic!("{body}"));
    (field("stock"), field("sold"))
}
