//! The one error type of the crate.

use std::fmt;

/// Which bound a change would have crossed.
///
/// The value is the bound in force: the declared `#[atomic(min = ..)]`/`max`, or the limit of
/// the Rust type when none is declared (so an overflow reports `Max(2147483647)` for `i32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The lower bound.
    Min(i128),
    /// The upper bound.
    Max(i128),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Min(v) => write!(f, "minimum {v}"),
            Limit::Max(v) => write!(f, "maximum {v}"),
        }
    }
}

/// What went wrong with an atomic operation, in the caller's terms.
///
/// Values are carried as `i128`, which holds every supported column type exactly.
/// Every variant except [`AtomicError::Database`] guarantees that the row was left unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AtomicError {
    /// No row has the given primary key.
    #[error("no row with that primary key")]
    NotFound,

    /// `decrement_*_if_at_least` or a transfer asked for more than the row can give.
    #[error("insufficient: {requested} requested, {available} available")]
    Insufficient {
        /// How much the row could give when the call looked. For `decrement_*_if_at_least`
        /// that is the row's value; for a transfer it is the source row's value less its lower
        /// bound (the declared `min`, else the type's minimum): an account at 100 with
        /// `min = -500` has 600 available.
        available: i128,
        /// The amount the call asked for.
        requested: i128,
    },

    /// The change would cross a declared `min`/`max` or the range of the column's type.
    #[error("out of range: {current} would become {attempted}, beyond the {limit}")]
    OutOfRange {
        /// The value of the row when the call looked.
        current: i128,
        /// The value the call would have written.
        attempted: i128,
        /// The bound it would have crossed.
        limit: Limit,
    },

    /// An amount was negative; amounts say how much, the method says which way.
    #[error("amount must not be negative, got {amount}")]
    NegativeAmount {
        /// The amount passed.
        amount: i128,
    },

    /// A transfer named the same row as source and destination.
    #[error("transfer source and destination are the same row")]
    SameRow,

    /// The row is locked by another transaction and the call asked not to wait
    /// ([`LockMode::NoWait`](crate::LockMode::NoWait)).
    #[error("the row is locked by another transaction")]
    Locked,

    /// A transient conflict (serialization failure, deadlock, lock wait timeout) persisted
    /// through every attempt of the retry policy, a busy SQLite database stayed busy for the
    /// policy's whole `busy_timeout`, or either happened inside the caller's own transaction,
    /// which only the caller can re-run. `attempts` counts every run, busy polls included.
    #[error("gave up after {attempts} attempt(s): {source}")]
    Conflict {
        /// How many times the operation ran.
        attempts: u32,
        /// The last database error.
        #[source]
        source: diesel::result::Error,
    },

    /// The backend cannot do what was asked (for example `SKIP LOCKED` on SQLite).
    #[error("{feature} is not supported on {backend}")]
    Unsupported {
        /// What was asked for.
        feature: &'static str,
        /// The backend's name.
        backend: &'static str,
    },

    /// One column of a several-column change refused (`Insufficient` or `OutOfRange`, in
    /// `error`); the row is unchanged, every column of it. `column` is the field's name.
    #[error("{column}: {error}")]
    InColumn {
        /// The field whose guard refused, as named in the model (`"stock"`).
        column: &'static str,
        /// Why it refused.
        error: Box<AtomicError>,
    },

    /// Redis refused or was unreachable (feature `redis`, [`RedisCounter`](crate::RedisCounter)).
    /// An `add` that fails this way added nothing; a flush that fails this way left every
    /// count it had taken in Redis, where the next flush finds it (see the counter's docs).
    #[cfg(feature = "redis")]
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),

    /// An error returned by the caller's closure in `update_*_locked`; nothing was written.
    #[error("{0}")]
    Custom(Box<dyn std::error::Error + Send + Sync + 'static>),

    /// Any other database error. The row is unchanged, with one exception every database
    /// write shares: when the connection is lost, the outcome is unknown (the statement may
    /// have committed before the acknowledgement was lost). On MySQL that window also spans
    /// the `SELECT LAST_INSERT_ID()` that reads the new value back.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

impl AtomicError {
    /// Wraps a caller's error so an `update_*_locked` closure can abort with it.
    ///
    /// ```
    /// use counter_core::AtomicError;
    /// let e = AtomicError::custom("coupon already used");
    /// assert_eq!(e.to_string(), "coupon already used");
    /// ```
    pub fn custom(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        AtomicError::Custom(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}

    #[test]
    fn is_a_thread_safe_static_error() {
        assert_error::<AtomicError>();
    }

    #[test]
    fn messages_say_what_happened() {
        let e = AtomicError::OutOfRange {
            current: 998,
            attempted: 1003,
            limit: Limit::Max(1000),
        };
        assert_eq!(
            e.to_string(),
            "out of range: 998 would become 1003, beyond the maximum 1000"
        );
        let e = AtomicError::Insufficient {
            available: 2,
            requested: 5,
        };
        assert_eq!(e.to_string(), "insufficient: 5 requested, 2 available");
    }

    #[test]
    fn database_error_is_the_source() {
        use std::error::Error;
        let e = AtomicError::from(diesel::result::Error::NotFound);
        assert!(e.source().is_some());
    }
}
