//! SQLite's facts: the whole-database write lock taken up front with `BEGIN IMMEDIATE` (there
//! is no `FOR UPDATE`, so no row lock clause and no `SKIP LOCKED`), and a busy database as a
//! transient conflict: the retry loop waits and runs the operation again, so callers need no
//! busy timeout.

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{Error, QueryResult};
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::Sqlite;

use super::dialect::{message, Dialect, ErrorClass};
use super::RawConnection;
use crate::error::AtomicError;
use crate::lock::LockMode;

impl Dialect for Sqlite {
    const NAME: &'static str = "SQLite";
    const NOW: &'static str = "strftime('%Y-%m-%d %H:%M:%f', 'now')";
    const FLOAT_NUMERIC: bool = true;

    /// `BEGIN IMMEDIATE` (a savepoint inside the caller's transaction, whose lock mode the
    /// caller chose when it began).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    /// `BEGIN EXCLUSIVE`: no reader can then refuse the `COMMIT` of a closure's write.
    const BEGIN_LOCKED: &'static str = "BEGIN EXCLUSIVE";

    fn lock_sql(mode: LockMode) -> Result<&'static str, AtomicError> {
        match mode {
            // The write lock was taken by BEGIN IMMEDIATE; a NOWAIT lock fails there.
            LockMode::Wait | LockMode::NoWait => Ok(""),
            LockMode::SkipLocked => Err(AtomicError::Unsupported {
                feature: "LockMode::SkipLocked (SQLite locks the whole database, not rows)",
                backend: Self::NAME,
            }),
        }
    }

    fn classify(error: &Error, mode: LockMode) -> ErrorClass {
        let text = message(error);
        // SQLITE_BUSY ("database is locked") and SQLITE_LOCKED ("database table is locked").
        if text.contains("database is locked") || text.contains("database table is locked") {
            return match mode {
                LockMode::NoWait | LockMode::SkipLocked => ErrorClass::Locked,
                LockMode::Wait => ErrorClass::Busy,
            };
        }
        ErrorClass::Other
    }
}

/// The file of `conn`'s main database, `None` in memory (SQLite reports an empty name for a
/// `:memory:` or temporary database): the key of the line its writers take turns in. A
/// prepared statement Diesel caches, so asking costs one step of it per operation.
pub(crate) async fn main_file<R: RawConnection<Db = Sqlite>>(
    conn: &mut R,
) -> QueryResult<Option<String>> {
    let databases: Vec<(i64, String, String)> = conn.query_rows(DatabaseList).await?;
    Ok(databases
        .into_iter()
        .find(|(_, name, _)| name == "main")
        .map(|(_, _, file)| file)
        .filter(|file| !file.is_empty()))
}

/// `PRAGMA database_list`: `(seq, name, file)` of each attached database. Not
/// `SELECT … FROM pragma_database_list`, which is a read of the file like any `SELECT` and so
/// fails with "database is locked" while a writer holds it, where the `PRAGMA` touches no
/// lock.
#[derive(QueryId)]
struct DatabaseList;

impl Query for DatabaseList {
    type SqlType = (BigInt, Text, Text);
}

impl QueryFragment<Sqlite> for DatabaseList {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("PRAGMA database_list");
        Ok(())
    }
}
