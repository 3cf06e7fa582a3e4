//! The web service of `counter_examples::service`: `cargo run -p counter-examples --bin service`.
//!
//! Shows the async API behind axum: every route is one or two generated methods awaited on a
//! connection from a deadpool of diesel-async connections. SQLite (a temporary file) by
//! default; PostgreSQL with `--database-url postgres://…` or `COUNTER_SERVICE_DATABASE_URL`.
//! With `--redis-url redis://…` (or `COUNTER_SERVICE_REDIS_URL`) page views are counted in
//! Redis and flushed into the database every 100 ms (`--views-prefix` names the counter's
//! Redis keys; processes that share it share the counts). Listens on 127.0.0.1:3000
//! (`--port N`; 0 picks a free port), with product 1 (stock 500), article 1 and page 1 to
//! play with:
//!
//! ```text
//! curl -X POST localhost:3000/products/1/buy -d '{"quantity": 2}'   # {"id":1,"stock":498}
//! curl -X POST localhost:3000/products/1/buy-what-is-left -d '{"quantity": 1000}'
//! curl -X POST localhost:3000/products/1/buy          # 409 {"error":"insufficient",…}
//! curl localhost:3000/products/1                      # {"id":1,"sold":500,"stock":0}
//! curl localhost:3000/articles/1                      # {"id":1,"views":1}
//! curl -X POST localhost:3000/pages/1/view            # {"id":1,"pending":1} (--redis-url)
//! ```
//!
//! SIGTERM or Ctrl-C stops it: the requests in progress finish, then the flusher's last flush
//! moves what is pending. `.ci/soak.sh` runs three of these on one PostgreSQL and one Redis and
//! kills one with SIGKILL under load.

use std::error::Error;
use std::time::Duration;

use counter_examples::service::{self, Database, RedisViews};

/// How often the flusher moves pending views into the rows.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut port: u16 = 3000;
    let setting = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut url = setting("COUNTER_SERVICE_DATABASE_URL");
    let mut redis_url = setting("COUNTER_SERVICE_REDIS_URL");
    let mut prefix = "svc-page-views".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => port = value()?.parse()?,
            "--database-url" => url = Some(value()?),
            "--redis-url" => redis_url = Some(value()?),
            "--views-prefix" => prefix = value()?,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: service [--port N] [--database-url URL] \
                     [--redis-url URL [--views-prefix P]]"
                )
                .into())
            }
        }
    }

    let db = Database::open(url.as_deref()).await?;
    // Something to buy and something to read, unless an earlier run left them there.
    if db.add_product(1, 500).await? {
        println!("added product 1 with a stock of 500");
    }
    if db.add_article(1).await? {
        println!("added article 1");
    }
    let backend = db.backend().clone();
    let mut router = service::router(backend.clone());
    let (stop_flusher, flusher_stopped) = tokio::sync::oneshot::channel::<()>();
    let flusher = match redis_url {
        Some(redis_url) => {
            let views = RedisViews::connect(&redis_url, &prefix).await?;
            if db.add_page(1).await? {
                println!("added page 1");
            }
            router = router.merge(views.router(backend.clone()));
            println!("page views counted in Redis under {prefix:?}, flushed every {FLUSH_EVERY:?}");
            Some(views.flusher(
                &backend,
                FLUSH_EVERY,
                async {
                    let _ = flusher_stopped.await;
                },
                |flushed| match flushed {
                    // The soak counts these lines: a batch another process left half-done.
                    Ok(report) if report.recovered > 0 => {
                        println!("flush recovered {} batches", report.recovered)
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("flush failed, retried at the next tick: {e}"),
                },
            ))
        }
        None => None,
    };

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("database: {db}");
    println!("listening on http://{}", listener.local_addr()?);
    service::serve_until(listener, router, stopping()).await?;
    if let Some(flusher) = flusher {
        let _ = stop_flusher.send(());
        let last = flusher.await??;
        println!("last flush: {} views written", last.total_written());
    }
    println!("stopped");
    Ok(())
}

/// Completes at SIGTERM or Ctrl-C.
async fn stopping() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
