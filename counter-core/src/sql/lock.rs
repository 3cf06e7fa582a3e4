//! Row-lock clauses as types, as Diesel's `query_builder/locking_clause.rs` has them: each
//! marker is one clause, so a statement that locks is its own shape with its own static
//! [`QueryId`](diesel::query_builder::QueryId), and the clause's SQL is the backend's fact
//! ([`Dialect::lock_sql`]).

use diesel::backend::Backend;
use diesel::query_builder::AstPass;
use diesel::result::{Error, QueryResult};

use crate::backend::Dialect;
use crate::lock::LockMode;

/// Marks a statement that can send several rows while it takes row locks as never a cached
/// prepared statement: a lock wait timeout or a deadlock met on a later row fails it after its
/// result set began, and MariaDB Connector/C then leaves that cached statement waiting forever
/// for the rest of the result on its next execution (the client in `mysql_stmt_execute`, the
/// server idle: seen in a compaction that timed out and in the randomized checker). Each run
/// prepares a fresh statement instead: one more round trip.
pub(crate) fn uncached_multi_row_lock<DB: Backend>(out: &mut AstPass<'_, '_, DB>) {
    out.unsafe_to_cache_prepared();
}

/// A row-lock clause, or none: appended to a `SELECT`.
pub(crate) trait LockClause: 'static {
    /// The lock it takes; `None` for a plain read.
    const MODE: Option<LockMode>;

    /// Appends the clause as backend `DB` spells it (` FOR NO KEY UPDATE NOWAIT`, ` FOR
    /// UPDATE`, nothing on SQLite). Callers refuse a mode the backend lacks before building
    /// the statement; should one get here, it is a query-builder error, not wrong SQL.
    fn walk<DB: Dialect>(out: &mut AstPass<'_, '_, DB>) -> QueryResult<()> {
        if let Some(mode) = Self::MODE {
            let sql = DB::lock_sql(mode).map_err(|e| Error::QueryBuilderError(e.into()))?;
            out.push_sql(sql);
        }
        Ok(())
    }
}

/// No lock: a plain read.
pub(crate) struct Unlocked;

/// Waits for the row: `FOR UPDATE` (`FOR NO KEY UPDATE` on PostgreSQL).
pub(crate) struct ForUpdate;

/// Fails at once on a held row: `… NOWAIT`.
pub(crate) struct NoWait;

/// Passes over a held row: `… SKIP LOCKED`.
pub(crate) struct SkipLocked;

impl LockClause for Unlocked {
    const MODE: Option<LockMode> = None;
}

impl LockClause for ForUpdate {
    const MODE: Option<LockMode> = Some(LockMode::Wait);
}

impl LockClause for NoWait {
    const MODE: Option<LockMode> = Some(LockMode::NoWait);
}

impl LockClause for SkipLocked {
    const MODE: Option<LockMode> = Some(LockMode::SkipLocked);
}
