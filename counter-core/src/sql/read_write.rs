//! `SELECT c FROM t WHERE pk = $key [lock clause]` and `UPDATE t SET c = $value WHERE pk = $key`.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::{Column, RunQueryDsl};

use std::marker::PhantomData;

use super::lock::{LockClause, Unlocked};
use super::StatementId;
use crate::backend::{Dialect, RawConnection};
use crate::field::{AtomicField, AtomicFieldOn};
use crate::value::AtomicValue;

/// The statement-id marker of a [`SelectValue`] with lock clause `L`.
pub(crate) struct SelectShape<L>(L);

/// Reads the column of one row, locking it with clause `L` ([`Unlocked`] for a plain read).
pub(crate) struct SelectValue<'a, M: AtomicField<Col>, Col: Column, L> {
    pub table: Col::Table,
    pub key: &'a M::Key,
    pub lock: PhantomData<L>,
}

impl<M, Col, DB, L> QueryFragment<DB> for SelectValue<'_, M, Col, L>
where
    DB: Dialect,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    L: LockClause,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        out.push_identifier(Col::NAME)?;
        out.push_sql(" FROM ");
        M::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" WHERE ");
        M::walk_key_eq(self.key, &mut out)?;
        L::walk(&mut out)
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static, L: LockClause> QueryId
    for SelectValue<'_, M, Col, L>
{
    type QueryId = StatementId<M, Col, SelectShape<L>>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M: AtomicField<Col>, Col: Column, L> Query for SelectValue<'_, M, Col, L> {
    type SqlType = <M::Value as AtomicValue>::SqlType;
}

impl<M: AtomicField<Col>, Col: Column, Conn, L> RunQueryDsl<Conn> for SelectValue<'_, M, Col, L> {}

/// Reads the value of row `key`, locking it with clause `L`.
pub(crate) async fn read_locked<M, Col, L, R>(
    conn: &mut R,
    key: &M::Key,
) -> QueryResult<Option<M::Value>>
where
    R: RawConnection,
    Col: Column + 'static,
    M: AtomicFieldOn<Col, R::Db>,
    L: LockClause,
{
    let query = SelectValue::<M, Col, L> {
        table: M::table(),
        key,
        lock: PhantomData,
    };
    M::load_value(conn, query).await
}

/// Reads the value of row `key`, unlocked.
pub(crate) async fn read<M, Col, R>(conn: &mut R, key: &M::Key) -> QueryResult<Option<M::Value>>
where
    R: RawConnection,
    Col: Column + 'static,
    M: AtomicFieldOn<Col, R::Db>,
{
    read_locked::<M, Col, Unlocked, R>(conn, key).await
}

/// The statement-id marker of a [`WriteValue`].
pub(crate) struct WriteShape;

/// Writes a value computed in Rust while the row is locked.
pub(crate) struct WriteValue<'a, M: AtomicField<Col>, Col: Column> {
    pub table: Col::Table,
    pub key: &'a M::Key,
    pub value: M::Value,
}

impl<M, Col, DB> QueryFragment<DB> for WriteValue<'_, M, Col>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        M::walk_table(&self.table, out.reborrow())?;
        out.push_sql(" SET ");
        out.push_identifier(Col::NAME)?;
        out.push_sql(" = ");
        M::bind_value(&self.value, &mut out)?;
        M::walk_touch(&mut out)?;
        out.push_sql(" WHERE ");
        M::walk_key_eq(self.key, &mut out)?;
        Ok(())
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static> QueryId for WriteValue<'_, M, Col> {
    type QueryId = StatementId<M, Col, WriteShape>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// Writes `value` to row `key`; returns the number of rows matched.
pub(crate) async fn write<M, Col, R>(
    conn: &mut R,
    key: &M::Key,
    value: M::Value,
) -> QueryResult<usize>
where
    R: RawConnection,
    Col: Column + 'static,
    M: AtomicFieldOn<Col, R::Db>,
{
    conn.query_count(WriteValue::<M, Col> {
        table: M::table(),
        key,
        value,
    })
    .await
}

/// `SELECT LAST_INSERT_ID()`: the value a MySQL statement captured on this connection.
#[cfg(feature = "mysql")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastInsertId;

#[cfg(feature = "mysql")]
impl QueryFragment<diesel::mysql::Mysql> for LastInsertId {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::mysql::Mysql>) -> QueryResult<()> {
        out.push_sql("SELECT LAST_INSERT_ID()");
        Ok(())
    }
}

#[cfg(feature = "mysql")]
impl QueryId for LastInsertId {
    type QueryId = LastInsertId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

#[cfg(feature = "mysql")]
impl Query for LastInsertId {
    type SqlType = diesel::sql_types::Unsigned<diesel::sql_types::BigInt>;
}

#[cfg(feature = "mysql")]
impl<Conn> RunQueryDsl<Conn> for LastInsertId {}
