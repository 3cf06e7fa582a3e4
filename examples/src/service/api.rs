//! The routes: each handler takes a pooled connection and runs the generated methods on it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use counter_core::scoped_futures::ScopedFutureExt;
use counter_core::{transaction_async, AtomicError, RetryPolicy};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{with_connection, Article, Backend, Product};

/// The service's routes on `backend`'s pool.
pub fn router(backend: Backend) -> Router {
    Router::new()
        .route("/products/{id}", get(product))
        .route("/products/{id}/buy", post(buy))
        .route("/products/{id}/buy-what-is-left", post(buy_what_is_left))
        .route("/articles/{id}", get(article))
        .with_state(backend)
}

/// The body of both purchase routes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Order {
    #[serde(default = "one")]
    quantity: i32,
}

fn one() -> i32 {
    1
}

/// The order in `body`; an empty body is an order of 1.
fn order(body: &[u8]) -> Result<Order, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Order { quantity: 1 });
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `POST /products/{id}/buy`: all of the quantity or nothing.
async fn buy(
    State(backend): State<Backend>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let quantity = order(&body)?.quantity;
    let left = with_connection!(&backend, ApiError::pool, |conn| {
        // Both or neither: a sale that took the stock is counted in `sold`.
        transaction_async(&mut conn, RetryPolicy::DEFAULT, |c| {
            async move {
                let left = Product::decrement_stock_if_at_least(c, id, quantity).await?;
                Product::increment_sold(c, id, i64::from(quantity)).await?;
                Ok(left)
            }
            .scope_boxed()
        })
        .await?
    });
    Ok(Json(json!({ "id": id, "stock": left })))
}

/// `POST /products/{id}/buy-what-is-left`: what is left, up to the quantity.
async fn buy_what_is_left(
    State(backend): State<Backend>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let quantity = order(&body)?.quantity;
    let taken = with_connection!(&backend, ApiError::pool, |conn| {
        transaction_async(&mut conn, RetryPolicy::DEFAULT, |c| {
            async move {
                let taken = Product::take_stock_up_to(c, id, quantity).await?;
                if taken > 0 {
                    Product::increment_sold(c, id, i64::from(taken)).await?;
                }
                Ok(taken)
            }
            .scope_boxed()
        })
        .await?
    });
    Ok(Json(json!({ "id": id, "taken": taken })))
}

/// `GET /products/{id}`: the stock and the count of sales.
async fn product(
    State(backend): State<Backend>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let (stock, sold) = with_connection!(&backend, ApiError::pool, |conn| {
        let stock = Product::current_stock(&mut conn, id).await?;
        let sold = Product::current_sold(&mut conn, id).await?;
        (stock, sold)
    });
    Ok(Json(json!({ "id": id, "stock": stock, "sold": sold })))
}

/// `GET /articles/{id}`: counts the view and says which it was.
async fn article(
    State(backend): State<Backend>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let views = with_connection!(&backend, ApiError::pool, |conn| {
        Article::increment_views(&mut conn, id, 1).await?
    });
    Ok(Json(json!({ "id": id, "views": views })))
}

/// Why a request failed, answered as a JSON object with an `"error"` key.
#[derive(Debug)]
pub(super) enum ApiError {
    Atomic(AtomicError),
    BadRequest(String),
    Pool(String),
}

impl ApiError {
    pub(super) fn pool(error: impl std::fmt::Display) -> Self {
        ApiError::Pool(error.to_string())
    }
}

impl From<AtomicError> for ApiError {
    fn from(error: AtomicError) -> Self {
        ApiError::Atomic(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Atomic(AtomicError::Insufficient {
                available,
                requested,
            }) => (
                StatusCode::CONFLICT,
                json!({ "error": "insufficient", "available": available, "requested": requested }),
            ),
            ApiError::Atomic(AtomicError::NotFound) => {
                (StatusCode::NOT_FOUND, json!({ "error": "not_found" }))
            }
            ApiError::Atomic(AtomicError::NegativeAmount { amount }) => (
                StatusCode::BAD_REQUEST,
                json!({ "error": "negative_amount", "amount": amount }),
            ),
            ApiError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                json!({ "error": "bad_request", "message": message }),
            ),
            // Database errors, a conflict that outlasted the retries, an unreachable database.
            ApiError::Atomic(other) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": "internal", "message": other.to_string() }),
            ),
            ApiError::Pool(message) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": "internal", "message": message }),
            ),
        };
        (status, Json(body)).into_response()
    }
}
