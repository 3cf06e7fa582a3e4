//! [`TimestampColumn`]: the SQL types a touched column (`#[atomic(touch = c)]`) may have.

use diesel::sql_types::{Nullable, Timestamp};

/// A column type the database's current time is written to: what `#[atomic(touch = c)]` checks
/// `c` against at compile time, so a touch of a counter, text or number column is an error at
/// the attribute, not a failed (PostgreSQL) or silently converted (MySQL, SQLite) write.
#[diagnostic::on_unimplemented(
    message = "`touch` names a column of SQL type `{Self}`, not a timestamp",
    note = "a touched column is set to the database's current time: declare it `Timestamp` (or `Timestamptz` on PostgreSQL, `Datetime` on MySQL), nullable or not"
)]
pub trait TimestampColumn {}

impl TimestampColumn for Timestamp {}

impl<T: TimestampColumn> TimestampColumn for Nullable<T> {}

#[cfg(feature = "postgres")]
impl TimestampColumn for diesel::sql_types::Timestamptz {}

#[cfg(feature = "mysql")]
impl TimestampColumn for diesel::sql_types::Datetime {}
