//! The background flusher of a [`RedisCounter`]: a flush every interval, and a last one at
//! shutdown. [`RedisCounter::flusher`] is the future to spawn on diesel-async (the shape of
//! [`AsyncBuffer::flusher`](crate::AsyncBuffer::flusher)); [`RedisCounter::flusher_thread`]
//! runs the same loop on a thread of its own with an r2d2 pool, like
//! [`Buffer`](crate::Buffer)'s.
//!
//! Each flush takes a connection from the pool for its own length only, so a connection the
//! database killed costs one failed flush, not the flusher. A failed flush loses nothing: its
//! counts are in Redis or in the database, and the next flush continues (see
//! [`RedisCounter::flush`]).

use std::sync::Arc;
use std::time::Duration;

use diesel::Column;

use super::{FlushReport, RedisCounter, RedisKey};
use crate::error::AtomicError;
use crate::field::AtomicField;

/// What the flusher hands `on_flush` after each flush.
pub type FlushResult<K> = Result<FlushReport<K>, AtomicError>;

#[cfg(any(feature = "deadpool", feature = "bb8"))]
mod awaited {
    use std::future::Future;

    use super::*;
    use crate::backend::{AtomicConnection, Awaited, RawConnection};
    use crate::buffer::awaited::ConnectionPool;
    use crate::field::AtomicFieldOn;
    use crate::redis_counter::{RedisConnection, UnknownKeyPolicy};

    impl<M, Col, U> RedisCounter<M, Col, U>
    where
        Col: Column + 'static,
        M: AtomicField<Col> + 'static,
        M::Key: RedisKey + Ord + Clone,
        U: 'static,
    {
        /// The background flusher, to spawn (`tokio::spawn(views.flusher(…))`): flushes
        /// every `every` with a connection from `pool` and `redis` (a
        /// `redis::aio::ConnectionManager` reconnects after Redis restarts), hands each
        /// flush's result to `on_flush` (to log [`FlushReport::unknown`] and
        /// [`FlushReport::kept`], or an error), and when `shutdown` completes (a
        /// `tokio::sync::oneshot` receiver, a cancellation token's `cancelled_owned()`, a
        /// signal) runs a last flush and returns its result, so nothing added before the
        /// shutdown stays pending. A failed flush is retried at the next interval.
        ///
        /// ```no_run
        /// # use std::sync::Arc;
        /// # use std::time::Duration;
        /// # use counter_core::{AtomicField, RedisCounter};
        /// # use diesel::prelude::*;
        /// # use diesel_async::pooled_connection::{deadpool::Pool, AsyncDieselConnectionManager};
        /// # use diesel_async::AsyncPgConnection;
        /// diesel::table! { pages (id) { id -> BigInt, views -> BigInt, } }
        /// #[derive(Queryable, Identifiable, AtomicField)]
        /// struct Page { id: i64, #[atomic] views: i64 }
        ///
        /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
        /// let pool = Pool::builder(AsyncDieselConnectionManager::<AsyncPgConnection>::new(
        ///     "postgres://localhost/app",
        /// ))
        /// .build()?;
        /// let redis = redis::Client::open("redis://127.0.0.1/")?.get_connection_manager().await?;
        /// let views = Arc::new(RedisCounter::<Page, pages::views>::new("page-views"));
        /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        /// let flusher = tokio::spawn(views.flusher(
        ///     pool,
        ///     redis.clone(),
        ///     Duration::from_secs(1),
        ///     async { stopped.await.unwrap_or(()) },
        ///     |result| match result {
        ///         Ok(report) => report.unknown.iter().for_each(|(id, n)| eprintln!("no page {id}: {n} views")),
        ///         Err(e) => eprintln!("flush failed, retried in a second: {e}"),
        ///     },
        /// ));
        /// views.add(&mut redis.clone(), &7, 1).await?;
        /// // At shutdown: the last flush moves what is still pending.
        /// let _ = stop.send(());
        /// let last = flusher.await??;
        /// # Ok(())
        /// # }
        /// ```
        pub fn flusher<P, R, S, F>(
            self: &Arc<Self>,
            pool: P,
            mut redis: R,
            every: Duration,
            shutdown: S,
            mut on_flush: F,
        ) -> impl Future<Output = FlushResult<M::Key>> + 'static
        where
            P: ConnectionPool,
            P::Conn: AtomicConnection<Mode = Awaited>,
            R: RedisConnection<Mode = Awaited> + 'static,
            S: Future<Output = ()> + 'static,
            F: FnMut(&FlushResult<M::Key>) + 'static,
            M: AtomicFieldOn<Col, <P::Conn as RawConnection>::Db>,
            U: UnknownKeyPolicy<M, Col, <P::Conn as RawConnection>::Db>,
        {
            let counter = Arc::clone(self);
            async move {
                let mut shutdown = std::pin::pin!(shutdown);
                loop {
                    let stopping = tokio::time::timeout(every, &mut shutdown).await.is_ok();
                    let result = async {
                        let mut conn = pool.connection().await?;
                        counter.flush(&mut *conn, &mut redis).await
                    }
                    .await;
                    on_flush(&result);
                    if stopping {
                        return result;
                    }
                }
            }
        }
    }
}

#[cfg(feature = "r2d2")]
mod blocking {
    use std::sync::{Condvar, Mutex, PoisonError};
    use std::thread::JoinHandle;

    use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};

    use super::*;
    use crate::backend::{BackendOf, Blocking, BlockingConnection, RawConnection};
    use crate::field::AtomicFieldOn;
    use crate::redis_counter::{RedisConnection, UnknownKeyPolicy};

    /// A [`RedisCounter`] flusher on a thread of its own, from
    /// [`RedisCounter::flusher_thread`]. [`shutdown`](Self::shutdown) (or a drop) stops it
    /// after a last flush.
    pub struct RedisFlusher<K> {
        stop: Arc<Stop>,
        thread: Option<JoinHandle<FlushResult<K>>>,
    }

    /// `true` once shutdown began; the thread waits on the condition variable.
    #[derive(Default)]
    struct Stop {
        stopping: Mutex<bool>,
        wake: Condvar,
    }

    impl Stop {
        /// Waits `every`, or less when shutdown began; whether it began.
        fn wait(&self, every: Duration) -> bool {
            let stopping = self.stopping.lock().unwrap_or_else(PoisonError::into_inner);
            let (stopping, _) = self
                .wake
                .wait_timeout_while(stopping, every, |stopping| !*stopping)
                .unwrap_or_else(PoisonError::into_inner);
            *stopping
        }
    }

    impl<M, Col, U> RedisCounter<M, Col, U>
    where
        Col: Column + 'static,
        M: AtomicField<Col> + 'static,
        M::Key: RedisKey + Ord + Clone + Send,
        U: Send + Sync + 'static,
    {
        /// [`flusher`](Self::flusher) on a thread of its own: flushes every `every` with a
        /// connection from `pool` and `redis` (a `redis::Client` connects for each command,
        /// so it survives Redis restarts), hands each flush's result to `on_flush`, and at
        /// [`RedisFlusher::shutdown`] runs a last flush and returns its result.
        ///
        /// ```no_run
        /// # use std::sync::Arc;
        /// # use std::time::Duration;
        /// # use counter_core::{AtomicField, RedisCounter};
        /// # use diesel::prelude::*;
        /// # use diesel::r2d2::{ConnectionManager, Pool};
        /// diesel::table! { pages (id) { id -> BigInt, views -> BigInt, } }
        /// #[derive(Queryable, Identifiable, AtomicField)]
        /// struct Page { id: i64, #[atomic] views: i64 }
        ///
        /// let pool = Pool::new(ConnectionManager::<SqliteConnection>::new("app.db"))?;
        /// let redis = redis::Client::open("redis://127.0.0.1/")?;
        /// let views = Arc::new(RedisCounter::<Page, pages::views>::new("page-views"));
        /// let flusher = views.flusher_thread(pool, redis.clone(), Duration::from_secs(1), |result| {
        ///     if let Err(e) = result {
        ///         eprintln!("flush failed, retried in a second: {e}");
        ///     }
        /// });
        /// views.add(&mut redis.get_connection()?, &7, 1)?;
        /// let last = flusher.shutdown()?; // the last flush moves what is still pending
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn flusher_thread<C, R, F>(
            self: &Arc<Self>,
            pool: Pool<ConnectionManager<C>>,
            mut redis: R,
            every: Duration,
            mut on_flush: F,
        ) -> RedisFlusher<M::Key>
        where
            C: BlockingConnection<Raw = C> + RawConnection + R2D2Connection + Send + 'static,
            R: RedisConnection<Mode = Blocking> + Send + 'static,
            F: FnMut(&FlushResult<M::Key>) + Send + 'static,
            M: AtomicFieldOn<Col, BackendOf<C>>,
            U: UnknownKeyPolicy<M, Col, BackendOf<C>>,
        {
            let counter = Arc::clone(self);
            let stop = Arc::new(Stop::default());
            let signal = Arc::clone(&stop);
            let thread = std::thread::Builder::new()
                .name("counter-redis-flush".into())
                .spawn(move || loop {
                    let stopping = signal.wait(every);
                    let result = pool
                        .get()
                        .map_err(AtomicError::custom)
                        .and_then(|mut conn| counter.flush(&mut *conn, &mut redis));
                    on_flush(&result);
                    if stopping {
                        return result;
                    }
                })
                .expect("spawning the Redis counter's flush thread");
            RedisFlusher {
                stop,
                thread: Some(thread),
            }
        }
    }

    impl<K> RedisFlusher<K> {
        /// Stops the flusher after a last flush, and returns that flush's result. (Adds after
        /// it stay pending for whatever flushes next.)
        pub fn shutdown(mut self) -> FlushResult<K> {
            self.stop()
        }

        fn stop(&mut self) -> FlushResult<K> {
            *self
                .stop
                .stopping
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = true;
            self.stop.wake.notify_all();
            match self.thread.take().map(JoinHandle::join) {
                Some(Ok(result)) => result,
                // A panic in `on_flush` (or a bug): what it had not flushed is still in Redis.
                Some(Err(_)) => Err(AtomicError::custom("the Redis counter's flusher panicked")),
                None => Ok(FlushReport::default()),
            }
        }
    }

    impl<K> Drop for RedisFlusher<K> {
        /// Stops the flusher after a last flush, like [`RedisFlusher::shutdown`] (whose
        /// result `on_flush` saw).
        fn drop(&mut self) {
            let _ = self.stop();
        }
    }
}

#[cfg(feature = "r2d2")]
pub use blocking::RedisFlusher;
