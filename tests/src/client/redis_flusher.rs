//! A `RedisCounter`'s background flusher for each kind of client, as a service runs it:
//! [`RedisCounter::flusher_thread`] on the harness's r2d2 pool, or the future of
//! [`RedisCounter::flusher`] on the client's pool, run on the runtime from a thread of its own
//! and stopped by a oneshot channel (see the module doc of [`client`](super) for why it is
//! not `tokio::spawn`ed here).

use std::sync::Arc;
use std::time::Duration;

use counter_core::{
    AtomicFieldOn, FlushResult, RedisCounter, RedisFlusher, RedisKey, UnknownKeyPolicy,
};
use diesel::Column;

use super::{AsyncClient, AsyncPool, BlockingClient, Client};
use crate::db::{redis_manager_config, redis_url, DbOf, TestDb};

/// A client that can run a `RedisCounter`'s flusher.
pub trait FlusherClient: Client {
    /// Starts `counter`'s flusher: a flush every `every`, each result handed to `on_flush`.
    fn redis_flusher<M, Col, U>(
        &self,
        counter: &Arc<RedisCounter<M, Col, U>>,
        every: Duration,
        on_flush: impl FnMut(&FlushResult<M::Key>) + Send + 'static,
    ) -> impl RunningFlusher<M::Key>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<Self::Db>> + Send + Sync + 'static,
        M::Key: RedisKey + Ord + Clone + Send + 'static,
        U: UnknownKeyPolicy<M, Col, DbOf<Self::Db>> + Send + Sync + 'static;
}

/// A flusher started by [`FlusherClient::redis_flusher`].
pub trait RunningFlusher<K> {
    /// Stops it after a last flush; that flush's result.
    fn shutdown(self) -> FlushResult<K>;
}

impl<K> RunningFlusher<K> for RedisFlusher<K> {
    fn shutdown(self) -> FlushResult<K> {
        RedisFlusher::shutdown(self)
    }
}

impl<B: TestDb> FlusherClient for BlockingClient<B> {
    fn redis_flusher<M, Col, U>(
        &self,
        counter: &Arc<RedisCounter<M, Col, U>>,
        every: Duration,
        on_flush: impl FnMut(&FlushResult<M::Key>) + Send + 'static,
    ) -> impl RunningFlusher<M::Key>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<B>> + Send + Sync + 'static,
        M::Key: RedisKey + Ord + Clone + Send + 'static,
        U: UnknownKeyPolicy<M, Col, DbOf<B>> + Send + Sync + 'static,
    {
        let redis = redis::Client::open(redis_url()).expect("Redis URL");
        counter.flusher_thread(self.0.pool().clone(), redis, every, on_flush)
    }
}

/// The async flusher's thread and the sender that stops it.
pub struct AsyncFlusher<K> {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<FlushResult<K>>,
}

impl<K> RunningFlusher<K> for AsyncFlusher<K> {
    fn shutdown(self) -> FlushResult<K> {
        let _ = self.stop.send(());
        self.thread.join().expect("the Redis flusher's thread")
    }
}

impl<B: TestDb, P: AsyncPool<B> + 'static> FlusherClient for AsyncClient<B, P> {
    fn redis_flusher<M, Col, U>(
        &self,
        counter: &Arc<RedisCounter<M, Col, U>>,
        every: Duration,
        on_flush: impl FnMut(&FlushResult<M::Key>) + Send + 'static,
    ) -> impl RunningFlusher<M::Key>
    where
        Col: Column + Send + Sync + 'static,
        M: AtomicFieldOn<Col, DbOf<B>> + Send + Sync + 'static,
        M::Key: RedisKey + Ord + Clone + Send + 'static,
        U: UnknownKeyPolicy<M, Col, DbOf<B>> + Send + Sync + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (counter, pool) = (Arc::clone(counter), self.pool.clone());
        let runtime = self.runtime.handle().clone();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let redis = redis::Client::open(redis_url())
                    .expect("Redis URL")
                    .get_connection_manager_with_config(redis_manager_config())
                    .await
                    .expect("a Redis connection manager");
                let shutdown = async {
                    let _ = stopped.await;
                };
                counter
                    .flusher(pool, redis, every, shutdown, on_flush)
                    .await
            })
        });
        AsyncFlusher { stop, thread }
    }
}
