//! How a [`MemcachedCounter`](crate::MemcachedCounter) reaches Memcached: the commands (one
//! `memcache::exp` operation value each) and the reading of their replies are written once,
//! here; a blocking client sends them inside the one poll of [`Blocking`], an async one
//! (feature `async`) is awaited.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use memcache::exp::{Arithmetic, Error as McError, Get, Meta, MutationStatus, Operation, Set};

use crate::backend::{Blocking, CallMode};
use crate::error::AtomicError;

/// A Memcached client a [`MemcachedCounter`](crate::MemcachedCounter) takes: the blocking
/// `memcache::exp::MetaClient`, whose calls return their result, or with feature `async` the
/// tokio `memcache::exp::AsyncMetaClient`, whose calls return a future. A flush takes a
/// database connection of the same kind.
///
/// **Timeouts.** Both clients bound each exchange themselves: `connect_timeout` and
/// `io_timeout` of `MetaClient::builder()`, 1 s each by default; a Memcached that is down
/// fails the call with `AtomicError::Memcached` within them, and the client dials again on
/// the next call, so it recovers on its own when Memcached is back. On the async client the
/// counter's [`timeout`](crate::MemcachedCounter::timeout) also bounds the whole call.
///
/// After a Memcached restart, the blocking client probes a pooled connection before using it
/// and dials again; the async one does not: the first call on each of its pooled connections
/// fails (`Ambiguous`, "unexpected end of file") and the next one dials again. Retry a read
/// (`pending`, `current`, `flush`) freely; an `add` that failed that way was not counted
/// (the server that would have counted it is gone), but the error cannot say so.
pub trait MemcachedConnection {
    /// [`Blocking`] or [`Awaited`](crate::Awaited).
    type Mode: CallMode;
    /// Sends one operation, waiting at most `timeout` (where the client lets the counter
    /// bound it; see the trait's documentation).
    #[doc(hidden)]
    fn send_one<O: Operation>(
        &self,
        operation: O,
        timeout: Duration,
    ) -> impl Future<Output = Result<O::Output, McError>>;
    /// Sends operations of one kind pipelined: one result per operation, in order.
    #[doc(hidden)]
    fn send_many<O: Operation>(
        &self,
        operations: Vec<O>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<Result<O::Output, McError>>, McError>>;
}

/// What a counter's call on Memcached client `R` returns: the result of future `F` on a
/// blocking client, `F` itself on an async one.
pub type MemcachedOut<R, F> = <<R as MemcachedConnection>::Mode as CallMode>::Out<F>;

impl MemcachedConnection for memcache::exp::MetaClient {
    type Mode = Blocking;

    async fn send_one<O: Operation>(
        &self,
        operation: O,
        _: Duration,
    ) -> Result<O::Output, McError> {
        self.run(operation)
    }

    async fn send_many<O: Operation>(
        &self,
        operations: Vec<O>,
        _: Duration,
    ) -> Result<Vec<Result<O::Output, McError>>, McError> {
        self.run_many(operations)
    }
}

#[cfg(feature = "async")]
impl MemcachedConnection for memcache::exp::AsyncMetaClient {
    type Mode = crate::backend::Awaited;

    async fn send_one<O: Operation>(
        &self,
        operation: O,
        timeout: Duration,
    ) -> Result<O::Output, McError> {
        let key = operation.key().to_vec();
        within(timeout, key, self.run(operation)).await
    }

    async fn send_many<O: Operation>(
        &self,
        operations: Vec<O>,
        timeout: Duration,
    ) -> Result<Vec<Result<O::Output, McError>>, McError> {
        let key = operations
            .first()
            .map(|o| o.key().to_vec())
            .unwrap_or_default();
        within(timeout, key, self.run_many(operations)).await
    }
}

/// `reply`, or an ambiguous timeout once `timeout` has passed without it: the command may
/// have reached Memcached.
#[cfg(feature = "async")]
async fn within<T>(
    timeout: Duration,
    key: Vec<u8>,
    reply: impl Future<Output = Result<T, McError>>,
) -> Result<T, McError> {
    match tokio::time::timeout(timeout, reply).await {
        Ok(reply) => reply,
        Err(_) => Err(McError::Ambiguous {
            key: key.clone(),
            source: Box::new(McError::Timeout { key }),
        }),
    }
}

/// A client error as the counter's.
pub(super) fn failed(error: McError) -> AtomicError {
    AtomicError::Memcached(Box::new(error))
}

/// A reply the counter did not expect (a status the command cannot give).
fn unexpected(what: &str, status: MutationStatus) -> AtomicError {
    AtomicError::Memcached(format!("unexpected reply to {what}: {status:?}").into())
}

/// `incr item n`: the item's new value, or `None` when there is no such item.
pub(super) async fn incr<R: MemcachedConnection + ?Sized>(
    mc: &R,
    item: &str,
    n: u64,
    timeout: Duration,
) -> Result<Option<u64>, AtomicError> {
    let reply = mc
        .send_one(Arithmetic::new(item).delta(n), timeout)
        .await
        .map_err(failed)?;
    match reply.status {
        MutationStatus::Applied => Ok(reply.value),
        MutationStatus::NotFound => Ok(None),
        other => Err(unexpected("incr", other)),
    }
}

/// `add item value` with client flags `flags`: `true` when this call created the item,
/// `false` when it was there.
pub(super) async fn add<R: MemcachedConnection + ?Sized>(
    mc: &R,
    item: &str,
    value: &[u8],
    flags: u32,
    timeout: Duration,
) -> Result<bool, AtomicError> {
    let set = Set::new(item, value).client_flags(flags).add();
    let reply = mc.send_one(set, timeout).await.map_err(failed)?;
    match reply.status {
        MutationStatus::Applied => Ok(true),
        MutationStatus::AlreadyExists => Ok(false),
        other => Err(unexpected("add", other)),
    }
}

/// `append item value`: `false` when there is no such item.
pub(super) async fn append<R: MemcachedConnection + ?Sized>(
    mc: &R,
    item: &str,
    value: &[u8],
    timeout: Duration,
) -> Result<bool, AtomicError> {
    let reply = mc
        .send_one(Set::new(item, value).append(), timeout)
        .await
        .map_err(failed)?;
    match reply.status {
        MutationStatus::Applied => Ok(true),
        MutationStatus::NotFound => Ok(false),
        other => Err(unexpected("append", other)),
    }
}

/// An item as read: its value, its client flags, its CAS.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub value: Vec<u8>,
    pub flags: u32,
    pub cas: Option<u64>,
}

/// How many items one pipelined multi-get asks for.
const GET_BATCH: usize = 500;

/// The items of `names` that exist, by name: pipelined `mg` with flags (and CAS when `cas`),
/// [`GET_BATCH`] at a time. Any error fails the whole read: a flush that cannot see an item
/// must not take its absence for "nothing to apply" (that is harmless, but a partial read
/// is worth reporting as what it is).
pub(super) async fn get_many<R: MemcachedConnection + ?Sized>(
    mc: &R,
    names: &[String],
    cas: bool,
    timeout: Duration,
) -> Result<HashMap<String, Item>, AtomicError> {
    let mut items = HashMap::with_capacity(names.len());
    for chunk in names.chunks(GET_BATCH) {
        let gets: Vec<Get> = chunk
            .iter()
            .map(|name| {
                let get = Get::new(name);
                if cas {
                    get.meta(Meta::NONE.cas())
                } else {
                    get
                }
            })
            .collect();
        let replies = mc.send_many(gets, timeout).await.map_err(failed)?;
        for (name, reply) in chunk.iter().zip(replies) {
            let reply = reply.map_err(failed)?;
            if reply.hit() {
                items.insert(
                    name.clone(),
                    Item {
                        value: reply.value.unwrap_or_default(),
                        flags: reply.client_flags.unwrap_or(0),
                        cas: reply.item.cas,
                    },
                );
            }
        }
    }
    Ok(items)
}

/// `cas item value` against `cas`, keeping `flags`: `false` when the item changed (or went)
/// since it was read.
pub(super) async fn cas<R: MemcachedConnection + ?Sized>(
    mc: &R,
    item: &str,
    value: &[u8],
    flags: u32,
    cas: u64,
    timeout: Duration,
) -> Result<bool, AtomicError> {
    let set = Set::new(item, value).client_flags(flags).compare_cas(cas);
    let reply = mc.send_one(set, timeout).await.map_err(failed)?;
    Ok(reply.status == MutationStatus::Applied)
}

/// `delete item` if its CAS is still `cas`: `false` when it changed or went.
pub(super) async fn delete_if<R: MemcachedConnection + ?Sized>(
    mc: &R,
    item: &str,
    cas: u64,
    timeout: Duration,
) -> Result<bool, AtomicError> {
    let delete = memcache::exp::Delete::new(item).compare_cas(cas);
    let reply = mc.send_one(delete, timeout).await.map_err(failed)?;
    Ok(reply.status == MutationStatus::Applied)
}
