//! The web service of `counter_examples::service`: `cargo run -p counter-examples --bin service`.
//!
//! Shows the async API behind axum: every route is one or two generated methods awaited on a
//! connection from a deadpool of diesel-async connections. SQLite (a temporary file) by
//! default; PostgreSQL with `--database-url postgres://…` or `COUNTER_SERVICE_DATABASE_URL`.
//! Listens on 127.0.0.1:3000 (`--port N`; 0 picks a free port), with product 1 (stock 500)
//! and article 1 to play with:
//!
//! ```text
//! curl -X POST localhost:3000/products/1/buy -d '{"quantity": 2}'   # {"id":1,"stock":498}
//! curl -X POST localhost:3000/products/1/buy-what-is-left -d '{"quantity": 1000}'
//! curl -X POST localhost:3000/products/1/buy          # 409 {"error":"insufficient",…}
//! curl localhost:3000/products/1                      # {"id":1,"sold":500,"stock":0}
//! curl localhost:3000/articles/1                      # {"id":1,"views":1}
//! ```

use std::error::Error;

use counter_examples::service::{self, Database};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut port: u16 = 3000;
    let mut url = std::env::var("COUNTER_SERVICE_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().ok_or("--port needs a number")?.parse()?,
            "--database-url" => url = Some(args.next().ok_or("--database-url needs a URL")?),
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: service [--port N] [--database-url URL]"
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

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("database: {db}");
    println!("listening on http://{}", listener.local_addr()?);
    service::serve(listener, service::router(db.backend().clone())).await?;
    Ok(())
}
