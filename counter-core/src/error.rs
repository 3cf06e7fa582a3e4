//! The one error type of the crate, what kind of failure each variant is
//! ([`AtomicError::kind`]), and its JSON form (feature `serde`).

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
/// Values are carried as `i128`, which holds every supported column type exactly, and every
/// value a change can *attempt* (an `i64` column at its maximum plus an `i64` amount), so no
/// message ever shows a wrapped number. With feature `serde` they serialize as JSON numbers
/// (see [`Serialize`](#impl-Serialize-for-AtomicError)).
/// Every variant except [`AtomicError::Database`] guarantees that the row was left unchanged.
///
/// [`kind`](Self::kind) tells a refusal from a transient or an internal failure without
/// matching every variant.
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

    /// `compare_and_set_*` found another value than the one the caller expected: someone
    /// changed the row since the caller read it. Nothing was written; decide again from
    /// `current`, and try again with it. (A success, in turn, only proves the row held
    /// `expected` when it was written: it may have changed and changed back in between.)
    #[error("the value changed: expected {expected}, found {current}")]
    Mismatch {
        /// The value the call expected.
        expected: i128,
        /// The value the row held when the call looked.
        current: i128,
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

    /// One row of a set operation (`increment_*_many`, the checkout
    /// `decrement_*_if_at_least_many`) refused (`NotFound`, `Insufficient` or `OutOfRange`, in
    /// `error`); no row of the set was changed. `key` is the row's key as `{:?}` prints it
    /// (`"7"`, `"(1, 2)"`).
    #[error("row {key}: {error}")]
    InRow {
        /// The key of the first row (in key order) that refused, as `{:?}` prints it.
        key: String,
        /// Why it refused.
        error: Box<AtomicError>,
    },

    /// An [`Idempotent`](crate::Idempotent) call repeated a key the ledger holds for another
    /// request (both named one with [`Idempotent::request`](crate::Idempotent::request)):
    /// nothing was run. A key names one call; a new call needs a new key.
    #[error("idempotency key {key:?} was used for another request ({recorded:?})")]
    KeyReused {
        /// The key.
        key: String,
        /// The request recorded with it.
        recorded: String,
    },

    /// A [`Buffer`](crate::Buffer)'s or [`AsyncBuffer`](crate::AsyncBuffer)'s `add` found the
    /// buffer at its bound ([`FlushPolicy::max_keys`](crate::FlushPolicy::max_keys) or
    /// [`max_adds`](crate::FlushPolicy::max_adds)), which happens when flushes fail or fall
    /// behind (the database is down or slow). **The count was not taken**: nothing of this add
    /// is in the buffer. Transient: once a flush writes what is held, adds are taken again.
    #[error("buffer full ({keys} keys, {adds} adds held): the count was not taken")]
    BufferFull {
        /// Distinct keys held when the add was refused (pending, and in a flush under way).
        keys: usize,
        /// `add` calls held when the add was refused.
        adds: u64,
    },

    /// Redis refused, was unreachable, or gave no reply within the counter's
    /// [`timeout`](crate::RedisCounter::timeout) (feature `redis`,
    /// [`RedisCounter`](crate::RedisCounter)). An error that came before the command was
    /// sent (no connection) changed nothing; one that came after (a timeout, a connection cut
    /// before the reply) leaves the command's outcome unknown: such an `add` may have been
    /// counted, and adding again may count it twice. Retry with
    /// [`add_once`](crate::RedisCounter::add_once) and the same id to count it exactly once.
    /// A flush that fails this way left every count either in Redis or in the database, where
    /// the next flush finds it, never in both (see the counter's docs).
    #[cfg(feature = "redis")]
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),

    /// Memcached refused, was unreachable, or gave no reply within the client's timeout
    /// (feature `memcached`, [`MemcachedCounter`](crate::MemcachedCounter)). The source is
    /// the client's `memcache::exp::Error` (downcast it to ask `is_ambiguous()`). An error
    /// that came before the command was written changed nothing; one after it (a timeout, a
    /// cut connection) leaves an `add`'s outcome unknown, as with Redis. A flush that fails
    /// this way wrote nothing: its transaction is rolled back, and the next flush reads the
    /// same items again.
    #[cfg(feature = "memcached")]
    #[error("memcached: {0}")]
    Memcached(Box<dyn std::error::Error + Send + Sync + 'static>),

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
    /// What kind of failure this is: what a service answers, and whether running the call
    /// again can help. One arm per kind instead of one per variant:
    ///
    /// ```
    /// use counter_core::{AtomicError, ErrorKind};
    ///
    /// /// The HTTP status of an error (what an axum `IntoResponse` would return).
    /// fn status(error: &AtomicError) -> u16 {
    ///     match (error.kind(), error) {
    ///         (ErrorKind::Refused, AtomicError::NotFound) => 404,
    ///         (ErrorKind::Refused, AtomicError::NegativeAmount { .. } | AtomicError::SameRow) => 422,
    ///         (ErrorKind::Refused, _) => 409,     // Insufficient, OutOfRange, InColumn, InRow
    ///         (ErrorKind::Transient, _) => 503,   // Conflict, Locked, BufferFull: send Retry-After
    ///         (ErrorKind::Internal, _) => 500,    // Database, Redis, Unsupported, Custom
    ///     }
    /// }
    ///
    /// let refused = AtomicError::Insufficient { available: 2, requested: 5 };
    /// assert_eq!(status(&refused), 409);
    /// assert!(refused.kind().is_refusal());
    /// assert_eq!(status(&AtomicError::NotFound), 404);
    /// assert_eq!(status(&AtomicError::Locked), 503);
    /// let broken = AtomicError::from(diesel::result::Error::BrokenTransactionManager);
    /// assert_eq!(status(&broken), 500);
    /// ```
    ///
    /// [`Custom`](Self::Custom) is `Internal`: the crate cannot know what a closure's error
    /// means (and uses it itself for a malformed Redis ledger). A service whose
    /// `update_*_locked` closures refuse with their own error matches `Custom` first, before
    /// `kind` (and can `downcast_ref` it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            AtomicError::NotFound
            | AtomicError::Insufficient { .. }
            | AtomicError::OutOfRange { .. }
            | AtomicError::Mismatch { .. }
            | AtomicError::NegativeAmount { .. }
            | AtomicError::SameRow
            | AtomicError::KeyReused { .. } => ErrorKind::Refused,
            AtomicError::InColumn { error, .. } | AtomicError::InRow { error, .. } => error.kind(),
            AtomicError::Locked | AtomicError::Conflict { .. } | AtomicError::BufferFull { .. } => {
                ErrorKind::Transient
            }
            AtomicError::Unsupported { .. } | AtomicError::Custom(_) | AtomicError::Database(_) => {
                ErrorKind::Internal
            }
            #[cfg(feature = "redis")]
            AtomicError::Redis(_) => ErrorKind::Internal,
            #[cfg(feature = "memcached")]
            AtomicError::Memcached(_) => ErrorKind::Internal,
        }
    }

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

/// The JSON form of an error (feature `serde`): an object with the variant as `code`, its
/// [`kind`](AtomicError::kind), the `message` ([`Display`](fmt::Display)), and the variant's
/// fields:
///
/// ```json
/// {"code":"insufficient","kind":"refused","message":"insufficient: 5 requested, 2 available","available":2,"requested":5}
/// {"code":"out_of_range","kind":"refused","message":"out of range: 998 would become 1003, beyond the maximum 1000","current":998,"attempted":1003,"limit":{"max":1000}}
/// {"code":"conflict","kind":"transient","message":"gave up after 3 attempt(s): …","attempts":3}
/// ```
///
/// **Amounts are JSON numbers, never `i128`.** Every value a supported column holds (up to
/// `i64` and MySQL's `u64`) serializes as a 64-bit integer, which `serde_json::Value` and
/// every serde format hold exactly; only a value no column can hold (an `attempted` past
/// `u64::MAX`, or a transfer's `available` between the extremes of an `i64` column with a wide
/// `min`) becomes a decimal string, where an `i128` would make `serde_json::to_value` fail. So
/// the caller writes `serde_json::to_value(&error)?` with no cast. (A JavaScript client reads
/// numbers past 2^53 inexactly, as it does every `BIGINT` column.)
///
/// The source of `Conflict`, `Database`, `Redis` and `Custom` is in `message` only; an
/// `Internal` error's message may name tables and constraints: a service may log it and send
/// only `code` and `kind`. `InColumn` nests the column's refusal as `error`, `InRow` the row's
/// (beside its `key`).
#[cfg(feature = "serde")]
impl serde::Serialize for AtomicError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        /// The variant's own fields, after `code`, `kind` and `message`.
        enum Fields<'a> {
            None,
            Insufficient(i128, i128),
            OutOfRange(i128, i128, Limit),
            Amount(i128),
            Conflict(u32),
            Unsupported(&'static str, &'static str),
            InColumn(&'static str, &'a AtomicError),
            InRow(&'a str, &'a AtomicError),
            BufferFull(usize, u64),
            KeyReused(&'a str, &'a str),
            Mismatch(i128, i128),
        }
        let (code, fields) = match self {
            AtomicError::NotFound => ("not_found", Fields::None),
            AtomicError::Insufficient {
                available,
                requested,
            } => ("insufficient", Fields::Insufficient(*available, *requested)),
            AtomicError::OutOfRange {
                current,
                attempted,
                limit,
            } => (
                "out_of_range",
                Fields::OutOfRange(*current, *attempted, *limit),
            ),
            AtomicError::Mismatch { expected, current } => {
                ("mismatch", Fields::Mismatch(*expected, *current))
            }
            AtomicError::NegativeAmount { amount } => ("negative_amount", Fields::Amount(*amount)),
            AtomicError::SameRow => ("same_row", Fields::None),
            AtomicError::Locked => ("locked", Fields::None),
            AtomicError::Conflict { attempts, .. } => ("conflict", Fields::Conflict(*attempts)),
            AtomicError::Unsupported { feature, backend } => {
                ("unsupported", Fields::Unsupported(feature, backend))
            }
            AtomicError::InColumn { column, error } => {
                ("in_column", Fields::InColumn(column, error))
            }
            AtomicError::InRow { key, error } => ("in_row", Fields::InRow(key, error)),
            AtomicError::BufferFull { keys, adds } => {
                ("buffer_full", Fields::BufferFull(*keys, *adds))
            }
            AtomicError::KeyReused { key, recorded } => {
                ("key_reused", Fields::KeyReused(key, recorded))
            }
            #[cfg(feature = "redis")]
            AtomicError::Redis(_) => ("redis", Fields::None),
            #[cfg(feature = "memcached")]
            AtomicError::Memcached(_) => ("memcached", Fields::None),
            AtomicError::Custom(_) => ("custom", Fields::None),
            AtomicError::Database(_) => ("database", Fields::None),
        };
        let len = 3 + match fields {
            Fields::None => 0,
            Fields::Amount(_) | Fields::Conflict(_) => 1,
            Fields::Insufficient(..)
            | Fields::Unsupported(..)
            | Fields::InColumn(..)
            | Fields::InRow(..)
            | Fields::BufferFull(..)
            | Fields::KeyReused(..)
            | Fields::Mismatch(..) => 2,
            Fields::OutOfRange(..) => 3,
        };
        let mut s = serializer.serialize_struct("AtomicError", len)?;
        s.serialize_field("code", code)?;
        s.serialize_field("kind", &self.kind())?;
        s.serialize_field("message", &format_args!("{self}"))?;
        match fields {
            Fields::None => {}
            Fields::Insufficient(available, requested) => {
                s.serialize_field("available", &Amount(available))?;
                s.serialize_field("requested", &Amount(requested))?;
            }
            Fields::OutOfRange(current, attempted, limit) => {
                s.serialize_field("current", &Amount(current))?;
                s.serialize_field("attempted", &Amount(attempted))?;
                s.serialize_field("limit", &limit)?;
            }
            Fields::Amount(amount) => s.serialize_field("amount", &Amount(amount))?,
            Fields::Conflict(attempts) => s.serialize_field("attempts", &attempts)?,
            Fields::Unsupported(feature, backend) => {
                s.serialize_field("feature", feature)?;
                s.serialize_field("backend", backend)?;
            }
            Fields::InColumn(column, error) => {
                s.serialize_field("column", column)?;
                s.serialize_field("error", error)?;
            }
            Fields::InRow(key, error) => {
                s.serialize_field("key", key)?;
                s.serialize_field("error", error)?;
            }
            Fields::BufferFull(keys, adds) => {
                s.serialize_field("keys", &keys)?;
                s.serialize_field("adds", &adds)?;
            }
            Fields::KeyReused(key, recorded) => {
                s.serialize_field("key", key)?;
                s.serialize_field("recorded", recorded)?;
            }
            Fields::Mismatch(expected, current) => {
                s.serialize_field("expected", &Amount(expected))?;
                s.serialize_field("current", &Amount(current))?;
            }
        }
        s.end()
    }
}

/// A bound as a one-entry object, `{"min":-500}` or `{"max":1000}`, its value a number as
/// [`AtomicError`]'s amounts are (feature `serde`).
#[cfg(feature = "serde")]
impl serde::Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Limit::Min(v) => serializer.serialize_newtype_variant("Limit", 0, "min", &Amount(v)),
            Limit::Max(v) => serializer.serialize_newtype_variant("Limit", 1, "max", &Amount(v)),
        }
    }
}

/// An `i128` amount as an `i64` or `u64` number when it fits one (every value a column holds),
/// else as its decimal string: see [`AtomicError`]'s `Serialize`.
#[cfg(feature = "serde")]
struct Amount(i128);

#[cfg(feature = "serde")]
impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Ok(v) = i64::try_from(self.0) {
            serializer.serialize_i64(v)
        } else if let Ok(v) = u64::try_from(self.0) {
            serializer.serialize_u64(v)
        } else {
            serializer.collect_str(&self.0)
        }
    }
}

/// The three kinds of [`AtomicError`], from [`AtomicError::kind`]: what a service maps to a
/// status, and whether running the call again can help.
///
/// Deliberately closed (not `#[non_exhaustive]`): a new variant of `AtomicError` gets one of
/// these kinds, so a `match` on the kind never needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The data refused what the caller asked, and nothing was written: `NotFound`,
    /// `Insufficient`, `OutOfRange`, `NegativeAmount`, `SameRow`, `InColumn`, `InRow`,
    /// `KeyReused`. The same call
    /// gets the same answer until the data changes: a 409 (404, 422) for a service, not
    /// something to retry.
    Refused,
    /// Another transaction was in the way: `Conflict` (the retry policy ran out) and `Locked`
    /// (`LockMode::NoWait`). Nothing was written; the call may succeed later: a 503 with
    /// `Retry-After`, or a retry of the caller's own transaction.
    Transient,
    /// Something other than the data failed: `Database`, `Redis`, `Unsupported`, `Custom`.
    /// A 500; look at the message and the source.
    Internal,
}

/// `"refused"`, `"transient"` or `"internal"` (feature `serde`).
#[cfg(feature = "serde")]
impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (index, name) = match self {
            ErrorKind::Refused => (0, "refused"),
            ErrorKind::Transient => (1, "transient"),
            ErrorKind::Internal => (2, "internal"),
        };
        serializer.serialize_unit_variant("ErrorKind", index, name)
    }
}

impl ErrorKind {
    /// `true` for [`ErrorKind::Refused`]: the caller asked for something the data refused.
    pub fn is_refusal(self) -> bool {
        self == ErrorKind::Refused
    }

    /// `true` for [`ErrorKind::Transient`]: the same call may succeed later.
    pub fn is_transient(self) -> bool {
        self == ErrorKind::Transient
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
    fn kinds_tell_refusals_from_transient_and_internal_errors() {
        let refusal = AtomicError::OutOfRange {
            current: 0,
            attempted: -1,
            limit: Limit::Min(0),
        };
        assert_eq!(refusal.kind(), ErrorKind::Refused);
        let in_column = AtomicError::InColumn {
            column: "stock",
            error: Box::new(refusal),
        };
        assert_eq!(in_column.kind(), ErrorKind::Refused);
        assert_eq!(AtomicError::SameRow.kind(), ErrorKind::Refused);
        assert!(AtomicError::Locked.kind().is_transient());
        let conflict = AtomicError::Conflict {
            attempts: 3,
            source: diesel::result::Error::RollbackTransaction,
        };
        assert_eq!(conflict.kind(), ErrorKind::Transient);
        assert_eq!(AtomicError::custom("x").kind(), ErrorKind::Internal);
        let unsupported = AtomicError::Unsupported {
            feature: "SKIP LOCKED",
            backend: "SQLite",
        };
        assert_eq!(unsupported.kind(), ErrorKind::Internal);
    }

    #[test]
    fn database_error_is_the_source() {
        use std::error::Error;
        let e = AtomicError::from(diesel::result::Error::NotFound);
        assert!(e.source().is_some());
    }
}

/// The exact JSON of every variant (feature `serde`).
#[cfg(all(test, feature = "serde"))]
mod json_tests {
    use super::*;

    fn json(error: &AtomicError) -> String {
        serde_json::to_string(error).unwrap()
    }

    #[test]
    fn refusals() {
        assert_eq!(
            json(&AtomicError::NotFound),
            r#"{"code":"not_found","kind":"refused","message":"no row with that primary key"}"#
        );
        assert_eq!(
            json(&AtomicError::Insufficient {
                available: 2,
                requested: 5
            }),
            r#"{"code":"insufficient","kind":"refused","message":"insufficient: 5 requested, 2 available","available":2,"requested":5}"#
        );
        assert_eq!(
            json(&AtomicError::OutOfRange {
                current: 998,
                attempted: 1003,
                limit: Limit::Max(1000)
            }),
            r#"{"code":"out_of_range","kind":"refused","message":"out of range: 998 would become 1003, beyond the maximum 1000","current":998,"attempted":1003,"limit":{"max":1000}}"#
        );
        assert_eq!(
            json(&AtomicError::NegativeAmount { amount: -3 }),
            r#"{"code":"negative_amount","kind":"refused","message":"amount must not be negative, got -3","amount":-3}"#
        );
        assert_eq!(
            json(&AtomicError::SameRow),
            r#"{"code":"same_row","kind":"refused","message":"transfer source and destination are the same row"}"#
        );
        assert_eq!(
            json(&AtomicError::InColumn {
                column: "stock",
                error: Box::new(AtomicError::OutOfRange {
                    current: 1,
                    attempted: -1,
                    limit: Limit::Min(0),
                }),
            }),
            r#"{"code":"in_column","kind":"refused","message":"stock: out of range: 1 would become -1, beyond the minimum 0","column":"stock","error":{"code":"out_of_range","kind":"refused","message":"out of range: 1 would become -1, beyond the minimum 0","current":1,"attempted":-1,"limit":{"min":0}}}"#
        );
    }

    #[test]
    fn transient_errors() {
        assert_eq!(
            json(&AtomicError::Locked),
            r#"{"code":"locked","kind":"transient","message":"the row is locked by another transaction"}"#
        );
        assert_eq!(
            json(&AtomicError::Conflict {
                attempts: 3,
                source: diesel::result::Error::RollbackTransaction,
            }),
            r#"{"code":"conflict","kind":"transient","message":"gave up after 3 attempt(s): You have asked diesel to rollback the transaction","attempts":3}"#
        );
    }

    #[test]
    fn internal_errors() {
        assert_eq!(
            json(&AtomicError::Unsupported {
                feature: "SKIP LOCKED",
                backend: "SQLite"
            }),
            r#"{"code":"unsupported","kind":"internal","message":"SKIP LOCKED is not supported on SQLite","feature":"SKIP LOCKED","backend":"SQLite"}"#
        );
        assert_eq!(
            json(&AtomicError::custom("coupon already used")),
            r#"{"code":"custom","kind":"internal","message":"coupon already used"}"#
        );
        assert_eq!(
            json(&AtomicError::Database(
                diesel::result::Error::BrokenTransactionManager
            )),
            r#"{"code":"database","kind":"internal","message":"database error: The transaction manager is broken"}"#
        );
        #[cfg(feature = "redis")]
        assert_eq!(
            json(&AtomicError::Redis(redis::RedisError::from((
                redis::ErrorKind::Io,
                "connection refused"
            )))),
            r#"{"code":"redis","kind":"internal","message":"redis: connection refused - Io"}"#
        );
    }

    /// Every value a column holds is a number; only what no column holds is a string.
    #[test]
    fn amounts_are_numbers_within_64_bits() {
        let extremes = AtomicError::Insufficient {
            available: i128::from(i64::MIN),
            requested: i128::from(u64::MAX),
        };
        assert_eq!(
            serde_json::to_value(&extremes).unwrap()["available"],
            serde_json::json!(i64::MIN)
        );
        assert_eq!(
            serde_json::to_value(&extremes).unwrap()["requested"],
            serde_json::json!(u64::MAX)
        );
        let beyond = AtomicError::OutOfRange {
            current: i128::from(u64::MAX),
            attempted: i128::from(u64::MAX) + 1,
            limit: Limit::Max(i128::from(u64::MAX)),
        };
        let value = serde_json::to_value(&beyond).unwrap();
        assert_eq!(value["attempted"], "18446744073709551616");
        assert_eq!(value["limit"]["max"], serde_json::json!(u64::MAX));
        let below = AtomicError::NegativeAmount {
            amount: i128::from(i64::MIN) - 1,
        };
        assert_eq!(
            serde_json::to_value(&below).unwrap()["amount"],
            "-9223372036854775809"
        );
    }
}
