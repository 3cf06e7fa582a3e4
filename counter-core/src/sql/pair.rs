//! `SELECT <role> FROM t WHERE pk = $from OR pk = $to ORDER BY pk` (every key column, in order): which row each key of a
//! transfer names, as the *database* compares keys, in the order the database sorts them.
//!
//! Why the database decides: under a case-insensitive or nondeterministic collation (MariaDB
//! `_ci`, trailing spaces under PAD SPACE, SQLite `COLLATE NOCASE`, PostgreSQL ICU with
//! `deterministic = false`) two different Rust strings can name one row, so comparing the keys
//! in Rust cannot tell a transfer from a row to itself. `role` is
//! `(pk = $from) * 1 + (pk = $to) * 2`, computed with the column's own collation: 3 means one
//! row answers to both keys. The order is the one the transfer then locks the rows in, so two
//! opposite transfers lock them in the same order whatever Rust thinks of the keys.
//!
//! The statement locks nothing. Locking both rows in one `… FOR UPDATE NOWAIT` statement made
//! MariaDB 10.11 leave the client waiting forever for an answer in some runs (seen here: the
//! server showed the connection idle, the client blocked in `mysql_stmt_execute`); each row is
//! locked by its own statement instead, as the other row-locked operations do.

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::BigInt;
use diesel::{Column, RunQueryDsl};

use super::StatementId;
use crate::backend::Dialect;
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::key::KeyColumns;

/// `role` of a row that answers to the `from` key.
const ROLE_FROM: i64 = 1;
/// `role` of a row that answers to the `to` key.
const ROLE_TO: i64 = 2;

/// The statement-id marker of a [`PairRoles`].
pub(crate) struct PairShape;

/// The roles of a transfer's rows; see the module documentation.
pub(crate) struct PairRoles<'a, M: AtomicField<Col>, Col: Column> {
    pub table: Col::Table,
    pub from: &'a M::Key,
    pub to: &'a M::Key,
}

impl<M, Col, DB> QueryFragment<DB> for PairRoles<'_, M, Col>
where
    DB: Dialect,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        // Two rows, and under MySQL SERIALIZABLE (or inside a caller's transaction there)
        // this plain read takes shared locks.
        super::lock::uncached_multi_row_lock(&mut out);
        // `pk = $key` (`a = $a AND b = $b`), compared with the columns' collations.
        let names = |key: &'b M::Key, out: &mut AstPass<'_, 'b, DB>| -> QueryResult<()> {
            out.push_sql("(");
            M::walk_key_eq(key, out)?;
            out.push_sql(")");
            Ok(())
        };
        out.push_sql("SELECT CAST(CASE WHEN ");
        names(self.from, &mut out)?;
        out.push_sql(" THEN 1 ELSE 0 END + CASE WHEN ");
        names(self.to, &mut out)?;
        out.push_sql(" THEN 2 ELSE 0 END AS ");
        out.push_sql(DB::BIGINT);
        out.push_sql(") FROM ");
        M::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        names(self.from, &mut out)?;
        out.push_sql(" OR ");
        names(self.to, &mut out)?;
        out.push_sql(" ORDER BY ");
        for (i, name) in <M::KeyColumns as KeyColumns>::NAMES.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_identifier(name)?;
        }
        Ok(())
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static> QueryId for PairRoles<'_, M, Col> {
    type QueryId = StatementId<M, Col, PairShape>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M: AtomicField<Col>, Col: Column> Query for PairRoles<'_, M, Col> {
    type SqlType = BigInt;
}

impl<M: AtomicField<Col>, Col: Column, Conn> RunQueryDsl<Conn> for PairRoles<'_, M, Col> {}

/// Which of a transfer's two keys the database sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum First {
    From,
    To,
}

/// Runs a [`PairRoles`] and reads its answer: which key sorts first, or `SameRow` when one row
/// answers to both keys, or `NotFound` when either key has no row.
pub(crate) async fn pair_order<M, Col, R>(
    conn: &mut R,
    from: &M::Key,
    to: &M::Key,
) -> Result<First, AtomicError>
where
    R: crate::backend::RawConnection,
    Col: Column + 'static,
    M: AtomicFieldOn<Col, R::Db>,
{
    let query = PairRoles::<M, Col> {
        table: M::table(),
        from,
        to,
    };
    first_of(&M::load_roles(conn, query).await?)
}

/// The answer of a [`PairRoles`], from the roles of the rows it returned, in order.
fn first_of(roles: &[i64]) -> Result<First, AtomicError> {
    match roles {
        _ if roles.contains(&(ROLE_FROM | ROLE_TO)) => Err(AtomicError::SameRow),
        [ROLE_FROM, ROLE_TO] => Ok(First::From),
        [ROLE_TO, ROLE_FROM] => Ok(First::To),
        _ => Err(AtomicError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_row_says_which_key_sorts_first() {
        assert_eq!(first_of(&[ROLE_FROM, ROLE_TO]).unwrap(), First::From);
        assert_eq!(first_of(&[ROLE_TO, ROLE_FROM]).unwrap(), First::To);
    }

    #[test]
    fn one_row_for_both_keys_is_the_same_row() {
        assert!(matches!(
            first_of(&[ROLE_FROM | ROLE_TO]),
            Err(AtomicError::SameRow)
        ));
    }

    #[test]
    fn a_missing_row_is_not_found() {
        for roles in [&[][..], &[ROLE_FROM], &[ROLE_TO]] {
            assert!(matches!(first_of(roles), Err(AtomicError::NotFound)));
        }
    }
}
