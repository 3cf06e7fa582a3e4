//! Page views counted in Redis (`--redis-url`): `POST /pages/{id}/view` is one `HINCRBY`,
//! and a flusher task moves the pending counts into `svc_pages.views` exactly once, however
//! many service processes share the Redis prefix and the database (each runs its own
//! flusher; they meet on the ledger table). A process killed mid-flush leaves its batch in
//! Redis, and the next flush of any process settles it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use counter_core::{AtomicError, FlushResult, RedisCounter};
use serde_json::{json, Value};

use super::db::{svc_pages, Page, FLUSH_LEDGER};
use super::{with_connection, Backend, BoxError};

/// The counter of page views and the Redis connection its routes and flusher use. Cloning it
/// clones handles.
#[derive(Clone)]
pub struct RedisViews {
    counter: Arc<RedisCounter<Page, svc_pages::views>>,
    redis: redis::aio::ConnectionManager,
}

impl RedisViews {
    /// Connects to Redis at `url`; the counter's keys start with `prefix` (processes that
    /// count the same pages share it).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BoxError> {
        // 30 s per reply rather than redis-rs's 500 ms: a loaded machine is slow, not down.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(30)));
        let redis = redis::Client::open(url)?
            .get_connection_manager_with_config(config)
            .await?;
        let counter = RedisCounter::new(prefix).ledger_table(FLUSH_LEDGER);
        Ok(RedisViews {
            counter: Arc::new(counter),
            redis,
        })
    }

    /// The routes: `POST /pages/{id}/view` counts a view (200 `{"id","pending"}`: the views
    /// of the page not flushed yet, this one included), `GET /pages/{id}` reads the page
    /// (200 `{"id","views","pending"}`).
    pub fn router(&self, backend: Backend) -> Router {
        Router::new()
            .route("/pages/{id}/view", post(view))
            .route("/pages/{id}", get(page))
            .with_state((self.clone(), backend))
    }

    /// The flusher task, every `every` on `backend`'s pool, until `shutdown` completes; then
    /// a last flush, whose result the task returns. Every flush's outcome goes to `on_flush`.
    pub fn flusher<S, F>(
        &self,
        backend: &Backend,
        every: Duration,
        shutdown: S,
        on_flush: F,
    ) -> tokio::task::JoinHandle<FlushResult<i64>>
    where
        S: std::future::Future<Output = ()> + Send + 'static,
        F: FnMut(&FlushResult<i64>) + Send + 'static,
    {
        let redis = self.redis.clone();
        match backend {
            Backend::Sqlite(pool) => {
                tokio::spawn(
                    self.counter
                        .flusher(pool.clone(), redis, every, shutdown, on_flush),
                )
            }
            Backend::Postgres(pool) => {
                tokio::spawn(
                    self.counter
                        .flusher(pool.clone(), redis, every, shutdown, on_flush),
                )
            }
        }
    }

    /// One flush now, on a connection of `backend`'s pool (what the flusher task runs).
    pub async fn flush(&self, backend: &Backend) -> FlushResult<i64> {
        let mut redis = self.redis.clone();
        with_connection!(backend, AtomicError::custom, |conn| {
            self.counter.flush(&mut conn, &mut redis).await
        })
    }

    /// The views of page `id` not flushed yet.
    pub async fn pending(&self, id: i64) -> Result<i64, AtomicError> {
        self.counter.pending(&mut self.redis.clone(), &id).await
    }
}

/// `POST /pages/{id}/view`.
async fn view(
    State((views, _)): State<(RedisViews, Backend)>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, super::api::ApiError> {
    let pending = views.counter.add(&mut views.redis.clone(), &id, 1).await?;
    Ok(Json(json!({ "id": id, "pending": pending })))
}

/// `GET /pages/{id}`.
async fn page(
    State((views, backend)): State<(RedisViews, Backend)>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, super::api::ApiError> {
    let flushed = with_connection!(&backend, super::api::ApiError::pool, |conn| {
        Page::current_views(&mut conn, id).await?
    });
    let pending = views.pending(id).await?;
    Ok(Json(
        json!({ "id": id, "views": flushed, "pending": pending }),
    ))
}
