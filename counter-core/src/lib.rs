#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
compile_error!("counter-core needs at least one backend feature: postgres, mysql or sqlite");

mod backend;
#[cfg(any(feature = "r2d2", feature = "deadpool", feature = "bb8"))]
mod buffer;
mod change;
mod error;
mod field;
mod key;
mod lock;
mod ops;
mod plan;
#[cfg(feature = "redis")]
mod redis_counter;
mod retry;
mod slotted;
mod sql;
mod strategy;
mod transaction;
mod update;
mod upsert;
mod value;

pub use backend::{
    AsyncConnection, AtomicConnection, Awaited, BackendOf, Blocking, BlockingConnection, CallMode,
    Out, RawConnection,
};
#[cfg(any(feature = "deadpool", feature = "bb8"))]
pub use buffer::awaited::{AsyncBuffer, ConnectionPool};
#[cfg(feature = "r2d2")]
pub use buffer::blocking::Buffer;
#[cfg(any(feature = "r2d2", feature = "deadpool", feature = "bb8"))]
pub use buffer::FlushPolicy;
pub use change::{Change, ChangeColumn, ChangeOp, Changes, DistinctColumns};
pub use counter_derive::AtomicField;
pub use error::{AtomicError, Limit};
pub use field::{AtomicField, AtomicFieldOn};
pub use key::{IdIntoKey, KeyColumns, KeyValue};
pub use lock::LockMode;
pub use ops::Field;
#[cfg(feature = "redis")]
pub use redis_counter::{FlushReport, Kept, RedisConnection, RedisCounter, RedisKey, RedisOut};
pub use retry::RetryPolicy;
/// `ScopedFutureExt::scope_boxed`, for the closure of [`transaction_async`]
/// (`scope_boxed_local` for [`transaction_async_local`]; the crate
/// diesel-async's own `transaction` uses).
#[cfg(feature = "async")]
pub use scoped_futures;
pub use slotted::{Slotted, SlottedDecrement, SlottedField, SlottedOn};
pub use transaction::transaction;
#[cfg(feature = "async")]
pub use transaction::{transaction_async, transaction_async_local};
pub use update::{update, update_with};
pub use upsert::{NewRow, UpsertRow};
pub use value::AtomicValue;

/// Paths the generated code uses; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::backend::{AtomicConnection, BackendOf, Out};
    pub use crate::change::{Changes, DistinctColumns};
    pub use crate::error::AtomicError;
    pub use crate::field::{AtomicField, AtomicFieldOn};
    pub use crate::key::primary_key_is;
    pub use crate::ops::Field;
    pub use crate::retry::RetryPolicy;
    pub use crate::slotted::{
        refused, NotOnSlotted, Slotted, SlottedDecrement, SlottedField, SlottedOn,
    };
    pub use crate::update::update_with;
    pub use crate::upsert::{NewRow, UpsertRow};
}
