//! [`UnknownKeys`]: what a flush that only updates rows does with a key that has none.

/// What a flush that updates existing rows only (no `new_row`) does with the count of a key
/// that has no row: the same choice for [`Buffer`](crate::Buffer),
/// [`AsyncBuffer`](crate::AsyncBuffer) and [`RedisCounter`](crate::RedisCounter).
///
/// Either way the flush reports the key with its count once, in its report; nothing creates a
/// row the application did not ask for (a download of article 999 that does not exist does
/// not create article 999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownKeys {
    /// Report the key and its count once, then forget them (the default): a row that does
    /// not exist at flush time is, for a counter, a row that was deleted or never existed.
    #[default]
    Drop,
    /// Report the key and its count, and keep the count pending: the next flush tries again
    /// (and reports it again) until a row exists. For rows created by another transaction
    /// that may commit after the first flush sees the count.
    Keep,
}
