//! How `update_*_locked` waits for a row another transaction holds.

/// What a row lock does when another transaction already holds the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LockMode {
    /// Wait for the other transaction to finish (the default).
    #[default]
    Wait,
    /// Fail at once with [`AtomicError::Locked`](crate::AtomicError::Locked): `NOWAIT` on
    /// PostgreSQL and MySQL 8 / MariaDB 10.6+; on SQLite, `BEGIN IMMEDIATE` without waiting
    /// for the database write lock.
    NoWait,
}
