//! The types a counter column can have (integers, and with the `decimal` feature exact
//! decimals), and the exact arithmetic on them.
//!
//! Every bound check happens here, in Rust, in `i128`, before any SQL runs: the guard that
//! ends up in a `WHERE` clause is computed so that the database never evaluates an
//! expression that could overflow (SQLite would silently turn it into a REAL).

use std::fmt::{Debug, Display};

use diesel::sql_types::{SingleValue, SqlType};

/// An integer type that can back an atomic column: `i16`, `i32`, `i64`, and with the
/// `mysql` feature `u32` and `u64` (MySQL `UNSIGNED` columns).
///
/// Each Rust type maps to exactly one SQL type, the one Diesel maps it to.
pub trait AtomicValue: Copy + Ord + Debug + Display + Send + Sync + 'static {
    /// The Diesel SQL type of a column holding this value.
    type SqlType: SqlType + SingleValue + 'static;
    /// The smallest value of the type.
    const MIN: Self;
    /// The largest value of the type.
    const MAX: Self;
    /// Zero.
    const ZERO: Self;
    /// Widens to `i128`, which holds every value of every supported type.
    fn to_i128(self) -> i128;
    /// Narrows from `i128`, or `None` when `v` does not fit.
    fn from_i128(v: i128) -> Option<Self>;
    /// Digits after the point: 0 for integers, `S` for a [`Decimal<P, S>`](crate::Decimal),
    /// whose `i128` form counts `10^-S` units. Statements that compute a value in a form the
    /// database holds inexactly (SQLite's REAL) or capture it as an integer (MySQL) read it.
    const SCALE: u32 = 0;
    /// `Some(P)` for a [`Decimal<P, S>`](crate::Decimal): a backend whose parameters would
    /// otherwise arrive as text (MySQL over diesel-async, where `c + '0.10'` is computed in
    /// doubles) casts them to `DECIMAL(P, S)` in the statement.
    const PRECISION: Option<u32> = None;
}

#[cfg(feature = "decimal")]
mod decimal;
#[cfg(feature = "decimal")]
pub use decimal::{decimal_bound, Decimal, DecimalError};

macro_rules! atomic_value {
    ($($rust:ty => $sql:ty),* $(,)?) => {$(
        impl AtomicValue for $rust {
            type SqlType = $sql;
            const MIN: Self = <$rust>::MIN;
            const MAX: Self = <$rust>::MAX;
            const ZERO: Self = 0;
            fn to_i128(self) -> i128 {
                i128::from(self)
            }
            fn from_i128(v: i128) -> Option<Self> {
                <$rust>::try_from(v).ok()
            }
        }
    )*};
}

atomic_value! {
    i16 => diesel::sql_types::SmallInt,
    i32 => diesel::sql_types::Integer,
    i64 => diesel::sql_types::BigInt,
}

#[cfg(feature = "mysql")]
atomic_value! {
    u32 => diesel::sql_types::Unsigned<diesel::sql_types::Integer>,
    u64 => diesel::sql_types::Unsigned<diesel::sql_types::BigInt>,
}
