//! How a [`RedisCounter`](crate::RedisCounter) reaches Redis: the commands are built once; a
//! blocking connection sends them inside the one poll of [`Blocking`], an async one
//! (feature `async`) is awaited.

use std::future::Future;
use std::time::Duration;

use redis::{Cmd, ConnectionLike, FromRedisValue, RedisResult, ScriptInvocation};

use crate::backend::{Blocking, CallMode};

/// A Redis connection a [`RedisCounter`](crate::RedisCounter) takes: blocking
/// (`redis::Connection`, `redis::Client`, `dyn redis::ConnectionLike`), whose calls return
/// their result, or with feature `async` asynchronous (`redis::aio::MultiplexedConnection`,
/// `redis::aio::ConnectionManager`), whose calls return a future. A flush takes a database
/// connection of the same kind. Another blocking connection (a pooled one) goes in as
/// `&mut *conn as &mut dyn redis::ConnectionLike`. Redis Cluster's connections are taken
/// directly (feature `redis-cluster`); give a counter on a cluster
/// [`shards`](crate::RedisCounter::shards).
///
/// **Each reply is waited for at most the counter's [`timeout`](crate::RedisCounter::timeout)**,
/// then the call fails with `AtomicError::Redis` ("timed out"):
///
/// | connection | how | after a timeout |
/// |---|---|---|
/// | `redis::aio::ConnectionManager` | the call's future gives up | usable; reconnects on its own after a Redis restart |
/// | `redis::aio::MultiplexedConnection` | the call's future gives up | usable while its socket is open; after a Redis restart, make a new one |
/// | `redis::Client` | a new connection per command, connected and read with the timeout | every call connects afresh |
/// | `redis::Connection` | its read and write timeouts are set to it (they stay set) | usable (late replies are skipped) while its socket is open; after a Redis restart, make a new one |
/// | `redis::cluster::ClusterConnection` (feature `redis-cluster`) | read and write timeouts of every node's connection | follows `MOVED` and failovers on its own |
/// | `redis::cluster_async::ClusterConnection` (`redis-cluster` and `async`) | the call's future gives up | follows `MOVED` and failovers on its own |
/// | `dyn redis::ConnectionLike` | **not applied**: set your own | as your connection does |
///
/// **Redis Cluster's connections resend a command** after an I/O error (a reply that timed
/// out, a connection dropped) up to their `retries` (`ClusterClientBuilder::retries`). A
/// resent `HINCRBY` that had run counts twice, and the caller sees `Ok`: use
/// [`add_once`](crate::RedisCounter::add_once), whose id makes the resend a no-op, where that
/// matters. The flush's steps are safe to resend (a repeated take fails on its batch's name,
/// a repeated finish does nothing).
///
/// On the blocking connections the timeout bounds each read, so a call that loads a script
/// first (the first call of a script on a server) can take up to three timeouts before it
/// fails; on the async ones it bounds the whole call.
pub trait RedisConnection {
    /// [`Blocking`] or [`Awaited`](crate::Awaited).
    type Mode: CallMode;
    /// Sends one command, waiting at most `timeout` for its reply.
    #[doc(hidden)]
    fn query<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        timeout: Duration,
    ) -> impl Future<Output = RedisResult<T>>;
    /// Runs a script (`EVALSHA`, loading it first when Redis does not have it), waiting at
    /// most `timeout` for each reply.
    #[doc(hidden)]
    fn invoke<T: FromRedisValue>(
        &mut self,
        script: &ScriptInvocation<'_>,
        timeout: Duration,
    ) -> impl Future<Output = RedisResult<T>>;
}

/// What a counter's call on Redis connection `R` returns: the result of future `F` on a
/// blocking connection, `F` itself on an async one.
pub type RedisOut<R, F> = <<R as RedisConnection>::Mode as CallMode>::Out<F>;

/// A blocking connection made ready for one call: `send` gets the connection to send on,
/// with the call's timeout applied.
trait WithTimeout {
    fn with_timeout<T>(
        &mut self,
        timeout: Duration,
        send: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> RedisResult<T>;
}

/// Connections with socket timeouts: set to the call's (on a cluster connection, every
/// node's: a command may be redirected to any of them).
macro_rules! socket_timeouts {
    ($($conn:ty),* $(,)?) => {$(
        impl WithTimeout for $conn {
            fn with_timeout<T>(
                &mut self,
                timeout: Duration,
                send: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
            ) -> RedisResult<T> {
                self.set_read_timeout(Some(timeout))?;
                self.set_write_timeout(Some(timeout))?;
                send(self)
            }
        }
    )*};
}
socket_timeouts!(redis::Connection);
#[cfg(feature = "redis-cluster")]
socket_timeouts!(redis::cluster::ClusterConnection);

impl WithTimeout for redis::Client {
    fn with_timeout<T>(
        &mut self,
        timeout: Duration,
        send: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let mut conn = self.get_connection_with_timeout(timeout)?;
        conn.with_timeout(timeout, send)
    }
}

impl WithTimeout for dyn ConnectionLike + '_ {
    fn with_timeout<T>(
        &mut self,
        _: Duration,
        send: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> RedisResult<T> {
        send(self)
    }
}

/// Blocking connections: each call completes inside the poll.
macro_rules! blocking {
    ($($conn:ty),* $(,)?) => {$(
        impl RedisConnection for $conn {
            type Mode = Blocking;

            async fn query<T: FromRedisValue>(
                &mut self,
                cmd: &Cmd,
                timeout: Duration,
            ) -> RedisResult<T> {
                self.with_timeout(timeout, |c| cmd.query(c))
            }

            async fn invoke<T: FromRedisValue>(
                &mut self,
                script: &ScriptInvocation<'_>,
                timeout: Duration,
            ) -> RedisResult<T> {
                self.with_timeout(timeout, |c| script.invoke(c))
            }
        }
    )*};
}
blocking!(
    redis::Connection,
    redis::Client,
    dyn redis::ConnectionLike + '_
);
#[cfg(feature = "redis-cluster")]
blocking!(redis::cluster::ClusterConnection);

/// Async connections, awaited: the future gives up after the timeout.
#[cfg(feature = "async")]
macro_rules! awaited {
    ($($conn:ty),* $(,)?) => {$(
        impl RedisConnection for $conn {
            type Mode = crate::backend::Awaited;

            async fn query<T: FromRedisValue>(
                &mut self,
                cmd: &Cmd,
                timeout: Duration,
            ) -> RedisResult<T> {
                within(timeout, cmd.query_async(self)).await
            }

            async fn invoke<T: FromRedisValue>(
                &mut self,
                script: &ScriptInvocation<'_>,
                timeout: Duration,
            ) -> RedisResult<T> {
                within(timeout, script.invoke_async(self)).await
            }
        }
    )*};
}
#[cfg(feature = "async")]
awaited!(
    redis::aio::MultiplexedConnection,
    redis::aio::ConnectionManager
);
#[cfg(all(feature = "async", feature = "redis-cluster"))]
awaited!(redis::cluster_async::ClusterConnection);

/// `reply`, or a "timed out" error once `timeout` has passed without it.
#[cfg(feature = "async")]
async fn within<T>(
    timeout: Duration,
    reply: impl Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    match tokio::time::timeout(timeout, reply).await {
        Ok(reply) => reply,
        Err(_) => Err(timed_out(timeout)),
    }
}

/// The error of a reply that did not come within `timeout`.
#[cfg(feature = "async")]
fn timed_out(timeout: Duration) -> redis::RedisError {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("timed out: no reply from Redis within {timeout:?}"),
    )
    .into()
}
