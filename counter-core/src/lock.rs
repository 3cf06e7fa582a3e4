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
    /// Treat a row another transaction holds as unavailable, without waiting and without a
    /// database error: `SKIP LOCKED` on PostgreSQL and MySQL 8 / MariaDB 10.6+. A single-row
    /// call returns [`AtomicError::Locked`](crate::AtomicError::Locked) for a held row, and,
    /// unlike `NoWait`, leaves the caller's own transaction healthy on PostgreSQL. With
    /// [`Field::update_first_unlocked`](crate::Field::update_first_unlocked) it picks the first
    /// free row of several (slotted counters, work queues). SQLite locks the whole database,
    /// not rows: [`AtomicError::Unsupported`](crate::AtomicError::Unsupported) there.
    SkipLocked,
}
