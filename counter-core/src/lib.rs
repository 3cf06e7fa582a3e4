#![doc = include_str!("../README.md")]
//!
//! # Layout of the source
//!
//! Layers, each importing only from the ones below it; every module is private and what a
//! user names is re-exported here.
//!
//! ```text
//! ┌─ handles: the operations, and the derive's targets ─────────────────────────────────┐
//! │ ops/          Field<M, Col>: mod.rs (handle, current, shared reads and row locks),   │
//! │               single.rs (increment, decrement, decrement_if_at_least, take_up_to,   │
//! │               their lock fallback), locked.rs (update_locked,                       │
//! │               update_first_unlocked), transfer.rs                                   │
//! │ upsert.rs     increment_or_insert(_all), UpsertRow, NewRow                          │
//! │ update.rs     update, update_with: several columns in one statement                 │
//! │ slotted.rs    SlottedField                  transaction.rs  transaction(_async)      │
//! │ idempotent/   Idempotent: a call applied once per key; outcome.rs: Outcome          │
//! │ counter_cache/ CounterCached: a child row and its parent's counter; recount.rs      │
//! │ buffer/       Buffer, AsyncBuffer           redis_counter/  RedisCounter (redis)     │
//! │ memcached_counter/ MemcachedCounter (memcached); cache_key.rs: RedisKey (both)      │
//! │ __private     the paths the derive's code names (below)                             │
//! ├─ strategy/: what each backend sends for an operation ───────────────────────────────┤
//! │ mod.rs        Strategy; defaults: one statement with RETURNING                      │
//! │ pg.rs         take from a locked subquery                                           │
//! │ mysql.rs      LAST_INSERT_ID capture; upsert settled in a transaction               │
//! │ sqlite.rs     take under BEGIN IMMEDIATE                                            │
//! ├─ sql/: the statements, one type per shape, each with a static QueryId ──────────────┤
//! │ delta.rs (Up|Down × Returning|Captured)  take.rs (TakeFromLocked, TakeCaptured)     │
//! │ upsert.rs (OnConflict|OnDuplicateKey × Guarded|Unguarded)  multi.rs  slots.rs       │
//! │ read_write.rs  lock.rs (Unlocked, ForUpdate, NoWait, SkipLocked)  pair.rs ledger.rs │
//! │ child.rs (InsertChild, InsertCounted, DeleteChild, Aggregate …: counter caches)     │
//! ├─ descriptions and arithmetic ────────────────────────────────────────────────────────┤
//! │ plan.rs       Plan: one guarded change (amount, bounds, guard, miss, zero rule)     │
//! │ change.rs     Changes: a tuple of column changes                                    │
//! │ field/        AtomicField, AtomicFieldOn; slotted.rs: Slotted, SlottedOn;           │
//! │               child.rs: ChildRow, CounterCache (a counter cache's description)      │
//! │ retry.rs      RetryPolicy and the retry loop     key.rs, value.rs                   │
//! ├─ backend/: what a backend is, and how statements reach it ──────────────────────────┤
//! │ dialect.rs    Dialect: facts only (name, spellings, lock clauses, error classes),   │
//! │               one impl each in pg.rs, mysql.rs, sqlite.rs                           │
//! │ mod.rs        AtomicConnection, RawConnection; blocking.rs, awaited.rs implement    │
//! │ mode.rs       CallMode: Blocking, Awaited    transaction.rs: the transaction guard  │
//! ├─ leaves ─────────────────────────────────────────────────────────────────────────────┤
//! │ error.rs      AtomicError                    lock.rs  LockMode                      │
//! │ trace.rs      tracing spans and events (feature `tracing`), empty without it        │
//! └──────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! One name crosses upward, in a bound only: `RawConnection::Db` is bound by
//! `strategy::Strategy`. An associated type's bound is the one bound Rust implies wherever
//! its trait is named, so this is how `C: AtomicConnection`, which is all the derive's code
//! and users' generic code say, reaches the backend's strategy.
#![warn(missing_docs)]

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
compile_error!("counter-core needs at least one backend feature: postgres, mysql or sqlite");

mod backend;
#[cfg(any(feature = "r2d2", feature = "deadpool", feature = "bb8"))]
mod buffer;
#[cfg(any(feature = "redis", feature = "memcached"))]
mod cache_key;
mod change;
mod counter_cache;
mod error;
mod field;
mod idempotent;
mod key;
mod lock;
mod many;
#[cfg(feature = "memcached")]
mod memcached_counter;
mod ops;
mod plan;
#[cfg(feature = "redis")]
mod redis_counter;
mod retry;
mod set_plan;
mod slotted;
mod sql;
mod strategy;
mod trace;
mod transaction;
mod unknown_keys;
mod update;
mod upsert;
mod value;

pub use backend::{
    AsyncConnection, AtomicConnection, Awaited, BackendOf, Blocking, BlockingConnection, CallMode,
    Out, RawConnection,
};
#[cfg(any(feature = "deadpool", feature = "bb8"))]
pub use buffer::awaited::{AsyncBuffer, AsyncBufferOf, ConnectionPool};
#[cfg(feature = "r2d2")]
pub use buffer::blocking::Buffer;
#[cfg(any(feature = "r2d2", feature = "deadpool", feature = "bb8"))]
pub use buffer::{BufferReport, FlushPolicy};
#[cfg(any(feature = "redis", feature = "memcached"))]
pub use cache_key::RedisKey;
pub use change::{Change, ChangeColumn, ChangeOp, Changes, DistinctColumns};
pub use counter_cache::{
    Counted, CounterCached, CounterCaches, Recounted, SlottedCounterCached, Updated,
};
pub use counter_derive::AtomicField;
pub use counter_derive::CounterCache;
pub use error::{AtomicError, ErrorKind, Limit};
pub use field::{AtomicField, AtomicFieldOn};
pub use field::{
    CacheAmount, CacheChange, CacheLink, ChildLinkOn, ChildRow, ChildRowOn, CountRows,
    CounterCache, CounterCacheOn, ParentKey, ParentValue, SlottedCounterCache,
    SlottedCounterCacheOn, SumOf,
};
pub use field::{Slotted, SlottedDecrement, SlottedOn};
pub use idempotent::{Idempotent, Outcome, IDEMPOTENCY_TABLE, MAX_KEY_BYTES};
pub use key::{IdIntoKey, KeyColumns, KeyValue};
pub use lock::LockMode;
#[cfg(feature = "memcached")]
pub use memcached_counter::{
    MemcachedConnection, MemcachedCounter, MemcachedFlushReport, MemcachedKept, MemcachedOut,
    DEFAULT_MEMCACHED_TIMEOUT, MEMCACHED_LEDGER,
};
pub use ops::Field;
#[cfg(all(feature = "redis", feature = "r2d2"))]
pub use redis_counter::RedisFlusher;
#[cfg(feature = "redis")]
pub use redis_counter::{
    FlushReport, FlushResult, Kept, RedisConnection, RedisCounter, RedisOut, DEFAULT_ADD_MEMORY,
    DEFAULT_REDIS_TIMEOUT, MAX_SHARDS,
};
pub use retry::RetryPolicy;
/// `ScopedFutureExt::scope_boxed`, for the closure of [`transaction_async`]
/// (`scope_boxed_local` for [`transaction_async_local`]; the crate
/// diesel-async's own `transaction` uses).
#[cfg(feature = "async")]
pub use scoped_futures;
pub use slotted::SlottedField;
pub use transaction::transaction;
#[cfg(feature = "async")]
pub use transaction::{transaction_async, transaction_async_local};
pub use unknown_keys::{UnknownKeyPolicy, UnknownKeys};
pub use update::{update, update_with};
pub use upsert::{NewRow, UpsertRow};
pub use value::AtomicValue;
#[cfg(feature = "decimal")]
pub use value::{Decimal, DecimalError};

/// Paths the generated code uses; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::backend::{AtomicConnection, BackendOf, Out};
    pub use crate::change::{Changes, DistinctColumns};
    pub use crate::counter_cache::{
        Counted, CounterCached, CounterCaches, Recounted, SlottedCounterCached, Updated,
    };
    pub use crate::error::AtomicError;
    pub use crate::field::{
        cache_amount, CacheChange, CacheLink, ChildRow, ChildRowOn, CountRows, CounterCache,
        CounterCacheOn, SlottedCounterCache, SlottedCounterCacheOn, SumOf,
    };
    pub use crate::field::{refused, NotOnSlotted, Slotted, SlottedDecrement, SlottedOn};
    pub use crate::field::{AtomicField, AtomicFieldOn, TimestampColumn};
    pub use crate::key::primary_key_is;
    pub use crate::ops::Field;
    pub use crate::retry::RetryPolicy;
    pub use crate::slotted::SlottedField;
    pub use crate::update::update_with;
    pub use crate::upsert::{NewRow, UpsertRow};
    #[cfg(feature = "decimal")]
    pub use crate::value::decimal_bound;
    pub use crate::value::AtomicValue;
    // The Diesel items `#[derive(CounterCache)]` binds values with: counter-core's Diesel,
    // whose traits its bounds name. Items, not the crate: with `diesel` itself re-exported
    // from this hidden module, rustc stops listing Diesel's types among a trait's
    // implementors in errors (see tests/ui/cases/not_a_connection.stderr).
    pub use diesel::backend::Backend;
    pub use diesel::query_builder::AstPass;
    pub use diesel::result::Error::QueryBuilderError;
    pub use diesel::result::QueryResult;
    pub use diesel::serialize::ToSql;
    pub use diesel::sql_types::HasSqlType;
    pub use diesel::{Column, Expression};
}
