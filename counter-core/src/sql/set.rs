//! The statements of a change to a set of rows ([`crate::set_plan`]), one chunk of the set at a
//! time, keys in order. Each answers, per row of the chunk and in its order, `(changed, value)`:
//! the new value of a row it changed, the current value of a row that refused, `NULL` for a
//! key without a row.
//!
//! - [`SetChange`] (PostgreSQL), one statement: the chunk as arrays (`unnest($1, $2, $3) WITH
//!   ORDINALITY`), so it is prepared once whatever the chunk's size; a `MATERIALIZED` CTE
//!   locks the rows in key order (and a second keeps each once: see the statement) (`ORDER BY` sits below `FOR NO KEY UPDATE`, so rows are
//!   locked in sorted order), the guarded `UPDATE … FROM` changes them, and with [`AllRows`]
//!   it changes none unless every key has a row that admits its change, a condition read from
//!   the locked rows' latest values.
//! - [`LockKeys`], [`ReadKeys`] and [`WriteKeys`] (MySQL, SQLite): lock the rows in key order
//!   (`SELECT … WHERE pk IN (…) ORDER BY pk FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` already
//!   holds the database), read their values joined to the chunk's positions, decide in Rust,
//!   and write the new values with one joined `UPDATE`.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Bool, Nullable};
use diesel::{Column, RunQueryDsl};

use super::delta::Sign;
use super::lock::{uncached_multi_row_lock, LockClause};
use super::StatementId;
use crate::backend::{DerivedRows, Dialect, UpdateJoin};
use crate::field::{AtomicField, AtomicFieldOn};
use crate::key::KeyColumns;
use crate::value::AtomicValue;

/// Every row of the chunk changes, or none does (a set operation).
#[doc(hidden)]
pub struct AllRows;

/// Each row changes on its own (a flush).
#[doc(hidden)]
pub struct EachRow;

/// How a [`SetChange`] treats a row that refuses.
#[doc(hidden)]
pub trait RowsRule: 'static {
    const ALL: bool;
}

impl RowsRule for AllRows {
    const ALL: bool = true;
}

impl RowsRule for EachRow {
    const ALL: bool = false;
}

/// The key column names of `M`'s key.
fn key_names<M: AtomicField<Col>, Col: Column>() -> &'static [&'static str] {
    <M::KeyColumns as KeyColumns>::NAMES
}

/// `"__k0"`, `"__k1"`, …: the name of key column `i` in a derived table (never a name of the
/// counted table, so no column of it is shadowed).
fn key_alias(i: usize) -> String {
    format!("__k{i}")
}

/// Writes `<left>.<k> = <right>.__k0 AND …` for every key column.
fn walk_key_join<'b, M, Col, DB>(
    out: &mut AstPass<'_, 'b, DB>,
    table: &'b Col::Table,
    right: &str,
) -> QueryResult<()>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
{
    for (i, name) in key_names::<M, Col>().iter().enumerate() {
        if i > 0 {
            out.push_sql(" AND ");
        }
        M::walk_table(table, out.reborrow())?;
        out.push_sql(".");
        out.push_identifier(name)?;
        out.push_sql(" = ");
        out.push_identifier(right)?;
        out.push_sql(".");
        out.push_identifier(&key_alias(i))?;
    }
    Ok(())
}

/// Writes `"<left>"."__k0" = "<right>"."__k0" AND …` for `keys` key columns: a join of two
/// derived tables (or CTEs) on the key aliases.
fn walk_alias_join<DB: Backend>(
    out: &mut AstPass<'_, '_, DB>,
    keys: usize,
    left: &str,
    right: &str,
) -> QueryResult<()> {
    for i in 0..keys {
        if i > 0 {
            out.push_sql(" AND ");
        }
        out.push_identifier(left)?;
        out.push_sql(".");
        out.push_identifier(&key_alias(i))?;
        out.push_sql(" = ");
        out.push_identifier(right)?;
        out.push_sql(".");
        out.push_identifier(&key_alias(i))?;
    }
    Ok(())
}

/// Writes `<table>.<k0>, <table>.<k1>`.
fn walk_key_list<'b, M, Col, DB>(
    out: &mut AstPass<'_, 'b, DB>,
    table: &'b Col::Table,
) -> QueryResult<()>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
{
    for (i, name) in key_names::<M, Col>().iter().enumerate() {
        if i > 0 {
            out.push_sql(", ");
        }
        M::walk_table(table, out.reborrow())?;
        out.push_sql(".");
        out.push_identifier(name)?;
    }
    Ok(())
}

/// Writes `<table>.<col>`.
fn walk_column<'b, M, Col, DB>(
    out: &mut AstPass<'_, 'b, DB>,
    table: &'b Col::Table,
) -> QueryResult<()>
where
    DB: Backend,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
{
    M::walk_table(table, out.reborrow())?;
    out.push_sql(".");
    out.push_identifier(Col::NAME)
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: one statement per chunk.

/// The chunk's change in one statement (PostgreSQL): see the module doc.
pub(crate) struct SetChange<'a, M: AtomicFieldOn<Col, DB>, Col: Column, DB: Backend, S, A> {
    table: Col::Table,
    keys: &'a M::KeyArrays,
    amounts: &'a [M::Value],
    guards: &'a [M::Value],
    shape: PhantomData<fn() -> (S, A)>,
}

impl<'a, M: AtomicFieldOn<Col, DB>, Col: Column, DB: Backend, S, A>
    SetChange<'a, M, Col, DB, S, A>
{
    /// The change of each key (`keys`, one array per key column) by its amount, under its
    /// guard; the three in the same order.
    pub fn new(keys: &'a M::KeyArrays, amounts: &'a [M::Value], guards: &'a [M::Value]) -> Self {
        SetChange {
            table: M::table(),
            keys,
            amounts,
            guards,
            shape: PhantomData,
        }
    }
}

impl<M, Col, DB, S, A> QueryFragment<DB> for SetChange<'_, M, Col, DB, S, A>
where
    DB: Dialect,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    S: Sign,
    A: RowsRule,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let names = key_names::<M, Col>();
        let t = &self.table;
        // v: the chunk, with each row's position.
        out.push_sql("WITH \"__v\" AS (SELECT * FROM unnest(");
        M::walk_key_arrays(self.keys, &mut out)?;
        out.push_sql(", ");
        M::bind_values(self.amounts, &mut out)?;
        out.push_sql(", ");
        M::bind_values(self.guards, &mut out)?;
        out.push_sql(") WITH ORDINALITY AS \"__v\"(");
        for i in 0..names.len() {
            out.push_identifier(&key_alias(i))?;
            out.push_sql(", ");
        }
        out.push_sql("\"__n\", \"__g\", \"__i\")), ");
        // l0: the rows that exist, locked in key order, with their latest values.
        out.push_sql("\"__l0\" AS MATERIALIZED (SELECT ");
        for (i, _) in names.iter().enumerate() {
            M::walk_table(t, out.reborrow())?;
            out.push_sql(".");
            out.push_identifier(names[i])?;
            out.push_sql(" AS ");
            out.push_identifier(&key_alias(i))?;
            out.push_sql(", ");
        }
        walk_column::<M, Col, DB>(&mut out, t)?;
        out.push_sql(" AS \"__c\" FROM ");
        M::walk_table(t, out.reborrow())?;
        out.push_sql(" WHERE (");
        walk_key_list::<M, Col, DB>(&mut out, t)?;
        out.push_sql(") IN (SELECT ");
        for i in 0..names.len() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_identifier(&key_alias(i))?;
        }
        out.push_sql(" FROM \"__v\") ORDER BY ");
        walk_key_list::<M, Col, DB>(&mut out, t)?;
        out.push_sql(
            DB::lock_sql(crate::lock::LockMode::Wait)
                .map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))?,
        );
        // l: each locked row once. PostgreSQL 18 can return a row of `l0` twice when two keys
        // of the chunk are equal only under the key column's nondeterministic collation
        // ('a' and 'A' in a case-insensitive column): it runs the `IN (SELECT …)` as a join
        // over the chunk's keys made unique under their own (deterministic) collation.
        out.push_sql("), \"__l\" AS MATERIALIZED (SELECT DISTINCT * FROM \"__l0\"");
        // u: the guarded change of the locked rows.
        out.push_sql("), \"__u\" AS (UPDATE ");
        M::walk_table(t, out.reborrow())?;
        out.push_sql(" SET ");
        out.push_identifier(Col::NAME)?;
        out.push_sql(" = ");
        walk_column::<M, Col, DB>(&mut out, t)?;
        out.push_sql(S::OP);
        out.push_sql("\"__v\".\"__n\"");
        // A row given 0 keeps its stamp, as on the backends that write only changed rows.
        if let Some(touch) = M::TOUCH.filter(|touch| *touch != Col::NAME) {
            out.push_sql(", ");
            out.push_identifier(touch)?;
            out.push_sql(" = CASE WHEN \"__v\".\"__n\" = 0 THEN ");
            M::walk_table(t, out.reborrow())?;
            out.push_sql(".");
            out.push_identifier(touch)?;
            out.push_sql(" ELSE ");
            out.push_sql(DB::NOW);
            out.push_sql(" END");
        }
        out.push_sql(" FROM \"__v\" JOIN \"__l\" ON ");
        walk_alias_join(&mut out, names.len(), "__l", "__v")?;
        out.push_sql(" WHERE ");
        walk_key_join::<M, Col, DB>(&mut out, t, "__v")?;
        // The guard reads the locked row's latest value: `t` is scanned in the statement's
        // snapshot, and a row whose older version failed the guard would be passed over
        // before PostgreSQL rechecks it against its latest version.
        out.push_sql(" AND \"__l\".\"__c\"");
        out.push_sql(S::GUARD);
        out.push_sql("\"__v\".\"__g\"");
        // None when two keys name one row (equal under the column's collation): each must
        // see the other's change, so the caller goes row by row.
        out.push_sql(" AND (SELECT count(*) FROM \"__l\") = (SELECT count(*) FROM \"__v\" AS \"__x\" JOIN \"__l\" AS \"__y\" ON ");
        walk_alias_join(&mut out, names.len(), "__y", "__x")?;
        out.push_sql(")");
        if A::ALL {
            // None unless every key has a locked row that admits its change.
            out.push_sql(
                " AND NOT EXISTS (SELECT 1 FROM \"__v\" AS \"__w\" LEFT JOIN \"__l\" AS \"__m\" ON ",
            );
            walk_alias_join(&mut out, names.len(), "__m", "__w")?;
            out.push_sql(" WHERE \"__m\".\"__c\" IS NULL OR NOT (\"__m\".\"__c\"");
            out.push_sql(S::GUARD);
            out.push_sql("\"__w\".\"__g\"))");
        }
        out.push_sql(" RETURNING \"__v\".\"__i\", ");
        walk_column::<M, Col, DB>(&mut out, t)?;
        out.push_sql(" AS \"__c\")");
        // Per row of the chunk, in order: changed, and the new or the current value.
        out.push_sql(
            " SELECT \"__u\".\"__i\" IS NOT NULL, COALESCE(\"__u\".\"__c\", \"__l\".\"__c\") \
             FROM \"__v\" LEFT JOIN \"__l\" ON ",
        );
        walk_alias_join(&mut out, names.len(), "__l", "__v")?;
        out.push_sql(
            " LEFT JOIN \"__u\" ON \"__u\".\"__i\" = \"__v\".\"__i\" ORDER BY \"__v\".\"__i\"",
        );
        Ok(())
    }
}

/// The statement-id marker of a [`SetChange`].
pub(crate) struct SetChangeShape<S, A>(S, A);

impl<M, Col, DB, S: 'static, A: 'static> QueryId for SetChange<'_, M, Col, DB, S, A>
where
    DB: Backend,
    Col: Column + 'static,
    M: AtomicFieldOn<Col, DB>,
{
    type QueryId = StatementId<M, Col, SetChangeShape<S, A>>;
    // The same text for every chunk: the rows are array parameters.
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<M: AtomicFieldOn<Col, DB>, Col: Column, DB: Backend, S, A> Query
    for SetChange<'_, M, Col, DB, S, A>
{
    type SqlType = (Bool, Nullable<<M::Value as AtomicValue>::SqlType>);
}

impl<M: AtomicFieldOn<Col, DB>, Col: Column, DB: Backend, S, A, Conn> RunQueryDsl<Conn>
    for SetChange<'_, M, Col, DB, S, A>
{
}

// ---------------------------------------------------------------------------------------------
// MySQL, SQLite: lock, read, decide in Rust, write.

/// Writes a derived table named `"__v"` of `rows` rows with columns `names`; `row(i, out)`
/// writes row `i`'s values, comma-separated (bind parameters, or a literal position).
///
/// MySQL spells it as a header that names the columns and has no row (`SELECT NULL AS a FROM
/// DUAL WHERE 1 = 0`), then `UNION ALL SELECT ?, ?` per row: a `UNION`'s column types come from
/// every branch, and the names from the first.
fn walk_derived<'b, DB, F>(
    out: &mut AstPass<'_, 'b, DB>,
    rows: usize,
    names: &[String],
    mut row: F,
) -> QueryResult<()>
where
    DB: Dialect,
    F: FnMut(usize, &mut AstPass<'_, 'b, DB>) -> QueryResult<()>,
{
    out.push_sql("(SELECT ");
    match DB::DERIVED_ROWS {
        DerivedRows::Values => {
            for (j, name) in names.iter().enumerate() {
                if j > 0 {
                    out.push_sql(", ");
                }
                out.push_sql(&format!("column{} AS ", j + 1));
                out.push_identifier(name)?;
            }
            out.push_sql(" FROM (VALUES ");
            for i in 0..rows {
                out.push_sql(if i == 0 { "(" } else { ", (" });
                row(i, out)?;
                out.push_sql(")");
            }
            // PostgreSQL requires the alias.
            out.push_sql(") AS ");
            out.push_identifier("__r")?;
        }
        DerivedRows::UnionAll => {
            for (j, name) in names.iter().enumerate() {
                if j > 0 {
                    out.push_sql(", ");
                }
                out.push_sql("NULL AS ");
                out.push_identifier(name)?;
            }
            out.push_sql(" FROM DUAL WHERE 1 = 0");
            for i in 0..rows {
                out.push_sql(" UNION ALL SELECT ");
                row(i, out)?;
            }
        }
    }
    out.push_sql(") AS ");
    out.push_identifier("__v")
}

/// `"__i", "__k0", …` and then `extra`.
fn derived_names<M: AtomicField<Col>, Col: Column>(
    first: Option<&str>,
    last: Option<&str>,
) -> Vec<String> {
    let mut names = Vec::new();
    names.extend(first.map(str::to_owned));
    names.extend((0..key_names::<M, Col>().len()).map(key_alias));
    names.extend(last.map(str::to_owned));
    names
}

/// Locks the rows of `keys` in key order: `SELECT 1 FROM t WHERE (pk) IN ((?), …) ORDER BY pk
/// FOR UPDATE` (MySQL). InnoDB locks rows as the primary-key range scan meets them, in
/// ascending key order.
pub(crate) struct LockKeys<'a, M: AtomicField<Col>, Col: Column, L> {
    table: Col::Table,
    keys: &'a [&'a M::Key],
    lock: PhantomData<L>,
}

impl<'a, M: AtomicField<Col>, Col: Column, L> LockKeys<'a, M, Col, L> {
    pub fn new(table: Col::Table, keys: &'a [&'a M::Key]) -> Self {
        LockKeys {
            table,
            keys,
            lock: PhantomData,
        }
    }
}

impl<M, Col, DB, L> QueryFragment<DB> for LockKeys<'_, M, Col, L>
where
    DB: Dialect,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    L: LockClause,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        // Its text depends on the chunk's size anyway.
        uncached_multi_row_lock(&mut out);
        let t = &self.table;
        out.push_sql("SELECT CAST(1 AS ");
        out.push_sql(DB::BIGINT);
        out.push_sql(") FROM ");
        M::walk_table(t, out.reborrow())?;
        out.push_sql(" WHERE (");
        walk_key_list::<M, Col, DB>(&mut out, t)?;
        out.push_sql(") IN (");
        for (i, key) in self.keys.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            M::walk_key_values(key, &mut out)?;
            out.push_sql(")");
        }
        out.push_sql(") ORDER BY ");
        walk_key_list::<M, Col, DB>(&mut out, t)?;
        L::walk(&mut out)
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static, L: 'static> QueryId for LockKeys<'_, M, Col, L> {
    type QueryId = ();
    // The text depends on the chunk's size; Diesel caches it by its text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<M: AtomicField<Col>, Col: Column, L> Query for LockKeys<'_, M, Col, L> {
    type SqlType = BigInt;
}

impl<M: AtomicField<Col>, Col: Column, L, Conn> RunQueryDsl<Conn> for LockKeys<'_, M, Col, L> {}

/// Reads the value of each key's row, in the chunk's order, `NULL` for a key without a row:
/// `SELECT 1 = 0, t.c FROM (<the chunk's keys with their positions>) v LEFT JOIN t ON … ORDER
/// BY v.__i [FOR UPDATE]`. Locking (where rows lock) so it reads each row's latest value
/// whatever snapshot the caller's transaction holds.
pub(crate) struct ReadKeys<'a, M: AtomicField<Col>, Col: Column, L> {
    table: Col::Table,
    keys: &'a [&'a M::Key],
    lock: PhantomData<L>,
}

impl<'a, M: AtomicField<Col>, Col: Column, L> ReadKeys<'a, M, Col, L> {
    pub fn new(table: Col::Table, keys: &'a [&'a M::Key]) -> Self {
        ReadKeys {
            table,
            keys,
            lock: PhantomData,
        }
    }
}

impl<M, Col, DB, L> QueryFragment<DB> for ReadKeys<'_, M, Col, L>
where
    DB: Dialect,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
    L: LockClause,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        // Without a lock clause too: under MySQL's SERIALIZABLE a plain read takes shared row
        // locks, so it can fail on a later row as a locking read can (seen: a recount's read
        // met a deadlock, and the connection's next run of the cached statement hung).
        uncached_multi_row_lock(&mut out);
        let t = &self.table;
        let names = derived_names::<M, Col>(Some("__i"), None);
        out.push_sql("SELECT 1 = 0, ");
        walk_column::<M, Col, DB>(&mut out, t)?;
        out.push_sql(" FROM ");
        walk_derived(&mut out, self.keys.len(), &names, |i, out| {
            out.push_sql(&i.to_string());
            out.push_sql(", ");
            M::walk_key_values(self.keys[i], out)
        })?;
        out.push_sql(" LEFT JOIN ");
        M::walk_table(t, out.reborrow())?;
        out.push_sql(" ON ");
        walk_key_join::<M, Col, DB>(&mut out, t, "__v")?;
        out.push_sql(" ORDER BY ");
        out.push_identifier("__v")?;
        out.push_sql(".");
        out.push_identifier("__i")?;
        L::walk(&mut out)
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static, L: 'static> QueryId for ReadKeys<'_, M, Col, L> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<M: AtomicField<Col>, Col: Column, L> Query for ReadKeys<'_, M, Col, L> {
    type SqlType = (Bool, Nullable<<M::Value as AtomicValue>::SqlType>);
}

impl<M: AtomicField<Col>, Col: Column, L, Conn> RunQueryDsl<Conn> for ReadKeys<'_, M, Col, L> {}

/// Writes each key's new value, decided under the lock: `UPDATE t SET c = v.__c FROM (<keys
/// and values>) v WHERE t.pk = v.__k0` (SQLite), `UPDATE t JOIN (…) v ON … SET t.c = v.__c`
/// (MySQL).
pub(crate) struct WriteKeys<'a, M: AtomicField<Col>, Col: Column> {
    table: Col::Table,
    rows: &'a [(&'a M::Key, M::Value)],
}

impl<'a, M: AtomicField<Col>, Col: Column> WriteKeys<'a, M, Col> {
    pub fn new(table: Col::Table, rows: &'a [(&'a M::Key, M::Value)]) -> Self {
        WriteKeys { table, rows }
    }
}

impl<M, Col, DB> QueryFragment<DB> for WriteKeys<'_, M, Col>
where
    DB: Dialect,
    Col: Column,
    M: AtomicFieldOn<Col, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let t = &self.table;
        let names = derived_names::<M, Col>(None, Some("__c"));
        let rows = |out: &mut AstPass<'_, 'b, DB>| {
            walk_derived(out, self.rows.len(), &names, |i, out| {
                let (key, value) = &self.rows[i];
                M::walk_key_values(key, out)?;
                out.push_sql(", ");
                M::bind_value(value, out)
            })
        };
        out.push_sql("UPDATE ");
        M::walk_table(t, out.reborrow())?;
        match DB::UPDATE_JOIN {
            UpdateJoin::From => {
                out.push_sql(" SET ");
                out.push_identifier(Col::NAME)?;
                out.push_sql(" = ");
                out.push_identifier("__v")?;
                out.push_sql(".");
                out.push_identifier("__c")?;
                M::walk_touch(&mut out)?;
                out.push_sql(" FROM ");
                rows(&mut out)?;
                out.push_sql(" WHERE ");
                walk_key_join::<M, Col, DB>(&mut out, t, "__v")
            }
            UpdateJoin::Join => {
                out.push_sql(" JOIN ");
                rows(&mut out)?;
                out.push_sql(" ON ");
                walk_key_join::<M, Col, DB>(&mut out, t, "__v")?;
                out.push_sql(" SET ");
                walk_column::<M, Col, DB>(&mut out, t)?;
                out.push_sql(" = ");
                out.push_identifier("__v")?;
                out.push_sql(".");
                out.push_identifier("__c")?;
                M::walk_touch(&mut out)
            }
        }
    }
}

impl<M: AtomicField<Col>, Col: Column + 'static> QueryId for WriteKeys<'_, M, Col> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}
