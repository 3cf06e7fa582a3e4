//! A service on PostgreSQL and Redis: `cargo run -p counter-examples --bin pg_service`, with
//! `COUNTER_PG_URL` and `COUNTER_REDIS_URL` set (`source .ci/env.sh` sets both).
//!
//! The state a web framework would hand each request handler: a deadpool of diesel-async
//! `AsyncPgConnection`s, a Redis `ConnectionManager`, and a `RedisCounter` of page views.
//! A purchase is an async transaction (`transaction_async`): the stock goes down only if there
//! is enough, and the sale is counted, both or neither. A page view is one `HINCRBY` in Redis,
//! moved into the rows by the counter's flusher task (`RedisCounter::flusher`), whose shutdown
//! runs a last flush.
//!
//! The run fires concurrent requests as tokio tasks and checks the totals exactly: every unit
//! of stock sold once and no more, every view counted once. It exits non-zero otherwise.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use counter_core::scoped_futures::ScopedFutureExt;
use counter_core::{transaction_async, AtomicError, AtomicField, RedisCounter, RetryPolicy};
use diesel::prelude::*;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

diesel::table! { pg_service_products (id) { id -> BigInt, stock -> Integer, sold -> BigInt, } }
diesel::table! { pg_service_pages (id) { id -> BigInt, views -> BigInt, } }

/// A product on sale: `stock` never below zero, `sold` counts what left the shelves.
#[derive(Queryable, Identifiable, AtomicField)]
#[diesel(table_name = pg_service_products)]
struct Product {
    id: i64,
    #[atomic(min = 0)]
    stock: i32,
    #[atomic]
    sold: i64,
}

/// A page whose views are counted in Redis first.
#[derive(Queryable, Identifiable, AtomicField)]
#[diesel(table_name = pg_service_pages)]
struct Page {
    id: i64,
    #[atomic]
    views: i64,
}

/// The tables, created once per database (`IF NOT EXISTS`; the advisory lock keeps two runs
/// that start together from racing in the catalog). The ledger is the `RedisCounter`'s table
/// of flushed batches.
const TABLES: &str = "BEGIN; SELECT pg_advisory_xact_lock(7305512064);
    CREATE TABLE IF NOT EXISTS pg_service_products
        (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL, sold BIGINT NOT NULL);
    CREATE TABLE IF NOT EXISTS pg_service_pages (id BIGINT PRIMARY KEY, views BIGINT NOT NULL);
    CREATE TABLE IF NOT EXISTS pg_service_flushes
        (flush_id VARCHAR(64) PRIMARY KEY, kept TEXT NOT NULL, flushed_at BIGINT NOT NULL);
    COMMIT;";

/// What every request handler shares. Cloning it clones handles: the clones share the pool's
/// connections, the Redis connection and the counter.
#[derive(Clone)]
struct App {
    db: Pool<AsyncPgConnection>,
    redis: redis::aio::ConnectionManager,
    views: Arc<RedisCounter<Page, pg_service_pages::views>>,
}

impl App {
    /// `POST /products/{id}/buy`: `n` units or none; the stock left.
    async fn buy(&self, id: i64, n: i32) -> Result<i32, AtomicError> {
        let mut conn = self.db.get().await.map_err(AtomicError::custom)?;
        // Both statements commit together; a conflict re-runs the closure whole.
        transaction_async(&mut conn, RetryPolicy::DEFAULT, |c| {
            async move {
                let left = Product::decrement_stock_if_at_least(c, id, n).await?;
                Product::increment_sold(c, id, i64::from(n)).await?;
                Ok(left)
            }
            .scope_boxed()
        })
        .await
    }

    /// `GET /pages/{id}`: counts the view in Redis (one `HINCRBY`, no database write).
    async fn view(&self, id: i64) -> Result<i64, AtomicError> {
        self.views.add(&mut self.redis.clone(), &id, 1).await
    }
}

/// Concurrent clients; each sends its requests one after the other.
const CLIENTS: usize = 32;
/// Purchases of one unit per client: 32 × 40 = 1280 buyers for a stock of 1000.
const BUYS_PER_CLIENT: usize = 40;
/// The stock on sale.
const STOCK: i32 = 1000;
/// Page views per client.
const VIEWS_PER_CLIENT: usize = 100;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("pg_service: {e}");
        std::process::exit(1);
    }
}

/// The value of environment variable `name`, or an error that names it.
fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            format!("{name} is not set: this example needs it (`source .ci/env.sh` sets it)")
        })
}

async fn run() -> Result<(), Box<dyn Error + Send + Sync>> {
    let (pg_url, redis_url) = (env("COUNTER_PG_URL")?, env("COUNTER_REDIS_URL")?);
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(pg_url);
    let db = Pool::builder(manager).max_size(16).build()?;
    db.get().await?.batch_execute(TABLES).await?;
    let redis = redis::Client::open(redis_url)?
        .get_connection_manager()
        .await?;
    // The database and Redis are shared with other runs: a product, a page and a Redis prefix
    // of this run's own.
    let run_id = rand::random::<u32>();
    let id = 1_000_000 + i64::from(run_id);
    let views =
        RedisCounter::new(&format!("pg-service-views-{run_id}")).ledger_table("pg_service_flushes");
    let app = App {
        db,
        redis,
        views: Arc::new(views),
    };
    {
        let mut conn = app.db.get().await?;
        conn.batch_execute(&format!(
            "INSERT INTO pg_service_products VALUES ({id}, {STOCK}, 0);
             INSERT INTO pg_service_pages VALUES ({id}, 0);"
        ))
        .await?;
    }

    // The flusher, as a service runs it: in the background, every 50 ms here (a second or so
    // in production), on any number of servers; each count lands once. It stops, after a
    // last flush, when `stop` fires.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let flusher = tokio::spawn(app.views.flusher(
        app.db.clone(),
        app.redis.clone(),
        Duration::from_millis(50),
        async {
            let _ = stopped.await;
        },
        |flushed| match flushed {
            Ok(report) => {
                for (page, views) in &report.unknown {
                    eprintln!("no page {page}: {views} views dropped");
                }
            }
            Err(e) => eprintln!("flush failed, retried at the next tick: {e}"),
        },
    ));

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let (mut sold, mut refused) = (0_usize, 0_usize);
                for _ in 0..BUYS_PER_CLIENT {
                    match app.buy(id, 1).await {
                        Ok(_) => sold += 1,
                        Err(AtomicError::Insufficient { .. }) => refused += 1,
                        Err(e) => return Err(e),
                    }
                }
                for _ in 0..VIEWS_PER_CLIENT {
                    app.view(id).await?;
                }
                Ok::<_, AtomicError>((sold, refused))
            })
        })
        .collect();
    let (mut sold, mut refused) = (0, 0);
    for client in clients {
        let (s, r) = client.await??;
        (sold, refused) = (sold + s, refused + r);
    }
    let requests = CLIENTS * (BUYS_PER_CLIENT + VIEWS_PER_CLIENT);
    println!(
        "{CLIENTS} clients sent {requests} requests in {:.2?}",
        started.elapsed()
    );

    // Shutting down: the flusher's last flush moves what is still pending.
    let _ = stop.send(());
    let last = flusher.await??;
    println!("last flush: {} views written", last.total_written());

    let mut conn = app.db.get().await?;
    let product: Product = pg_service_products::table.find(id).first(&mut conn).await?;
    let page: Page = pg_service_pages::table.find(id).first(&mut conn).await?;
    let (stock, sold_column, page_views) = (product.stock, product.sold, page.views);
    let pending = app.views.pending(&mut app.redis.clone(), &id).await?;
    let views = CLIENTS * VIEWS_PER_CLIENT;
    println!(
        "buy: {sold} sold, {refused} refused; stock {stock}, sold column {sold_column} \
         (started at {STOCK})"
    );
    println!("views: {views} requests, {page_views} in the row, {pending} pending in Redis");

    let buyers = CLIENTS * BUYS_PER_CLIENT;
    let exact = sold == STOCK as usize
        && refused == buyers - sold
        && stock == 0
        && sold_column == i64::from(STOCK)
        && page_views == views as i64
        && pending == 0;
    println!("pg_service exact: {exact}");
    if !exact {
        return Err("the totals are not exact".into());
    }
    Ok(())
}
