//! How a [`RedisCounter`](crate::RedisCounter) reaches Redis: the commands are built once; a
//! blocking connection sends them inside the one poll of [`Blocking`], an async one
//! (feature `async`) is awaited.

use std::future::Future;

use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, ScriptInvocation};

use crate::backend::{Blocking, CallMode};

/// A Redis connection a [`RedisCounter`](crate::RedisCounter) takes: blocking
/// (`redis::Connection`, `redis::Client`, `dyn redis::ConnectionLike`), whose calls return
/// their result, or with feature `async` asynchronous (`redis::aio::MultiplexedConnection`,
/// `redis::aio::ConnectionManager`), whose calls return a future. A flush takes a database
/// connection of the same kind. Another blocking connection (a pooled one, a cluster's) goes
/// in as `&mut *conn as &mut dyn redis::ConnectionLike`.
pub trait RedisConnection {
    /// [`Blocking`] or [`Awaited`](crate::Awaited).
    type Mode: CallMode;
    /// Sends one command.
    #[doc(hidden)]
    fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> impl Future<Output = RedisResult<T>>;
    /// Sends a pipeline (in `MULTI`/`EXEC` when it says so).
    #[doc(hidden)]
    fn query_pipeline<T: FromRedisValue>(
        &mut self,
        pipeline: &Pipeline,
    ) -> impl Future<Output = RedisResult<T>>;
    /// Runs a script (`EVALSHA`, loading it first when Redis does not have it).
    #[doc(hidden)]
    fn invoke<T: FromRedisValue>(
        &mut self,
        script: &ScriptInvocation<'_>,
    ) -> impl Future<Output = RedisResult<T>>;
}

/// What a counter's call on Redis connection `R` returns: the result of future `F` on a
/// blocking connection, `F` itself on an async one.
pub type RedisOut<R, F> = <<R as RedisConnection>::Mode as CallMode>::Out<F>;

/// Blocking connections: each call completes inside the poll.
macro_rules! blocking {
    ($($conn:ty),* $(,)?) => {$(
        impl RedisConnection for $conn {
            type Mode = Blocking;

            async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
                cmd.query(self)
            }

            async fn query_pipeline<T: FromRedisValue>(
                &mut self,
                pipeline: &Pipeline,
            ) -> RedisResult<T> {
                pipeline.query(self)
            }

            async fn invoke<T: FromRedisValue>(
                &mut self,
                script: &ScriptInvocation<'_>,
            ) -> RedisResult<T> {
                script.invoke(self)
            }
        }
    )*};
}
blocking!(
    redis::Connection,
    redis::Client,
    dyn redis::ConnectionLike + '_
);

/// Async connections, awaited.
#[cfg(feature = "async")]
macro_rules! awaited {
    ($($conn:ty),* $(,)?) => {$(
        impl RedisConnection for $conn {
            type Mode = crate::backend::Awaited;

            async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
                cmd.query_async(self).await
            }

            async fn query_pipeline<T: FromRedisValue>(
                &mut self,
                pipeline: &Pipeline,
            ) -> RedisResult<T> {
                pipeline.query_async(self).await
            }

            async fn invoke<T: FromRedisValue>(
                &mut self,
                script: &ScriptInvocation<'_>,
            ) -> RedisResult<T> {
                script.invoke_async(self).await
            }
        }
    )*};
}
#[cfg(feature = "async")]
awaited!(
    redis::aio::MultiplexedConnection,
    redis::aio::ConnectionManager
);
