//! A small web service on the async API: axum on tokio, a deadpool of diesel-async
//! connections, SQLite by default or PostgreSQL given a URL. Run it with
//! `cargo run -p counter-examples --bin service`; `tests/service_load.rs` loads it.
//!
//! | Route | What it does | Answers |
//! |---|---|---|
//! | `POST /products/{id}/buy`, body `{"quantity": n}` (optional, 1 by default) | `decrement_stock_if_at_least`, then `increment_sold`, in one transaction | 200 `{"id","stock"}`; 409 `{"error":"insufficient","available","requested"}` |
//! | `POST /products/{id}/buy-what-is-left`, body `{"quantity": n}` | `take_stock_up_to` (the add-to-cart: what is left, up to `n`), added to `sold` | 200 `{"id","taken"}`, `taken` may be 0 |
//! | `GET /products/{id}` | `current_stock`, `current_sold` | 200 `{"id","stock","sold"}` |
//! | `GET /articles/{id}` | `increment_views`: reading the page counts a view | 200 `{"id","views"}` |
//! | `POST /pages/{id}/view` (with `--redis-url`) | `RedisCounter::add`: one `HINCRBY`, flushed into `svc_pages.views` by the process's flusher task | 200 `{"id","pending"}` |
//! | `GET /pages/{id}` (with `--redis-url`) | the flushed views and the pending ones | 200 `{"id","views","pending"}` |
//!
//! A missing row is 404, a negative quantity or a body that is not the JSON above is 400, any
//! other failure of an operation 500, each with a JSON object whose `"error"` key says which.
//!
//! However many requests run at once, a sale never takes stock that is not there: the guard is
//! in the `UPDATE`'s `WHERE`, so no request reads, decides and writes while another does.

mod api;
mod db;
mod views;

pub use api::router;
pub(crate) use db::with_connection;
pub use db::{svc_pages, Article, Backend, BoxError, Database, Page, PgPool, Product, SqlitePool};
pub use views::RedisViews;

/// Serves `router` on `listener` until the task is dropped or the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, router: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in
/// progress finish (axum's graceful shutdown).
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
