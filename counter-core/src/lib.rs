#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
compile_error!("counter-core needs at least one backend feature: postgres, mysql or sqlite");

mod backend;
mod error;
mod field;
mod key;
mod lock;
mod ops;
mod plan;
mod retry;
mod sql;
mod transaction;
mod value;

pub use backend::{AtomicConnection, BackendOf};
pub use counter_derive::AtomicField;
pub use error::{AtomicError, Limit};
pub use field::{AtomicField, AtomicFieldOn};
pub use lock::LockMode;
pub use ops::Field;
pub use retry::RetryPolicy;
pub use transaction::transaction;
pub use value::AtomicValue;

/// Paths the generated code uses; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::backend::{AtomicConnection, BackendOf};
    pub use crate::error::AtomicError;
    pub use crate::field::{AtomicField, AtomicFieldOn};
    pub use crate::key::primary_key_is;
    pub use crate::ops::Field;
    pub use crate::retry::RetryPolicy;
}
