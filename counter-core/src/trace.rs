//! What the crate tells a [`tracing`](https://docs.rs/tracing) subscriber, with the `tracing`
//! feature (target `counter_core`):
//!
//! - a span `counter_core::op` around every operation of a [`Field`](crate::Field), a slotted
//!   field, `update`/`increment_or_insert` and a `RedisCounter` flush, with the fields `op`,
//!   `model`, `field` and `backend`;
//! - a `DEBUG` event `retrying` for each attempt run again (`class`, `attempt`, `backoff_us`,
//!   `error`), and a `WARN` event `conflict returned` when the retries are spent or the
//!   caller's transaction must run again (`attempts`, `error`);
//! - an `INFO` event `flushed` for each flush of a `Buffer`, `AsyncBuffer` or `RedisCounter`
//!   (`what`, `keys`, `counts`, `duration_us`, `kept`), `WARN` `flush failed` with the error.
//!
//! Without the feature every function here is empty and [`OpSpan`] is zero-sized: the
//! operations pay nothing for it. A leaf: it names nothing else of the crate.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::Duration;

/// The span of one operation, entered on every poll of the operation's future.
pub(crate) struct OpSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl OpSpan {
    /// The span of operation `op` on column `Col` (named `field`) of model `M`, on `backend`.
    #[allow(unused_variables)]
    #[cfg_attr(not(feature = "tracing"), allow(clippy::extra_unused_type_parameters))]
    pub(crate) fn new<M: ?Sized>(
        op: &'static str,
        field: &'static str,
        backend: &'static str,
    ) -> Self {
        OpSpan {
            #[cfg(feature = "tracing")]
            span: tracing::debug_span!(
                target: "counter_core",
                "counter_core::op",
                op,
                model = short_type_name::<M>(),
                field,
                backend
            ),
        }
    }

    /// `future`, run inside the span.
    pub(crate) fn wrap<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        #[cfg(feature = "tracing")]
        {
            tracing::Instrument::instrument(future, self.span)
        }
        #[cfg(not(feature = "tracing"))]
        {
            future
        }
    }
}

/// The last path segment of a type's name (`shop::models::Product` → `Product`).
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// An attempt failed with an error of `class` and runs again after `backoff`.
#[allow(unused_variables)]
pub(crate) fn retry(class: &dyn Debug, attempt: u32, backoff: Duration, error: &dyn Display) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: "counter_core",
        class = ?class,
        attempt,
        backoff_us = micros(backoff),
        error = %error,
        "retrying"
    );
}

/// `Conflict { attempts, .. }` is returned to the caller.
#[allow(unused_variables)]
pub(crate) fn conflict(attempts: u32, error: &dyn Display) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "counter_core", attempts, error = %error, "conflict returned");
}

/// A flush of `what` (`"buffer"`, `"redis"`) ended after `duration`: `keys` written with
/// `counts` in all, `kept` keys still pending; or it failed with `error` (then nothing of it
/// was written and every count is pending).
#[allow(unused_variables)]
#[cfg_attr(
    not(any(
        feature = "r2d2",
        feature = "deadpool",
        feature = "bb8",
        feature = "redis",
        feature = "memcached"
    )),
    allow(dead_code)
)]
pub(crate) fn flush(
    what: &'static str,
    keys: usize,
    counts: i128,
    duration: Duration,
    kept: usize,
    error: Option<&dyn Display>,
) {
    #[cfg(feature = "tracing")]
    {
        let counts = i64::try_from(counts).unwrap_or(i64::MAX);
        let duration_us = micros(duration);
        match error {
            None => tracing::info!(
                target: "counter_core",
                what, keys, counts, duration_us, kept,
                "flushed"
            ),
            Some(error) => tracing::warn!(
                target: "counter_core",
                what, keys, counts, duration_us, kept, error = %error,
                "flush failed"
            ),
        }
    }
}

#[cfg(feature = "tracing")]
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn model_names_are_the_last_path_segment() {
        struct Product;
        assert_eq!(short_type_name::<Product>(), "Product");
        assert_eq!(short_type_name::<Vec<Product>>(), "Vec");
        assert_eq!(short_type_name::<i64>(), "i64");
    }
}
