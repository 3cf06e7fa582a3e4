//! Several columns of one row changed by one guarded statement: the sale that takes
//! `stock -= n` only if `stock >= n` and adds `sold += n`, all or nothing.
//!
//! A change is a tuple of [`Change`]s, one per column, made with the methods of
//! [`ChangeColumn`] on Diesel's own column values:
//!
//! ```text
//! (products::stock.decrement_if_at_least(2), products::sold.increment(2))
//! ```
//!
//! It is type-checked: every column must be an atomic field of the model (a column of another
//! table does not compile), each column may appear once ([`DistinctColumns`], which the derive
//! implements for every pair of different atomic fields), and the amounts have the fields'
//! types. The statement carries every column's guard in its `WHERE` clause, so the row either
//! passes all of them and changes, or changes not at all; the error then names the column
//! that refused ([`AtomicError::InColumn`]).

use std::future::Future;
use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::deserialize::FromSqlRow;
use diesel::expression::QueryMetadata;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::{Column, Queryable};

use crate::backend::{Dialect, RawConnection};
use crate::error::AtomicError;
use crate::field::{AtomicField, AtomicFieldOn};
use crate::plan::{Delta, Direction, Op, Plan};
use crate::value::AtomicValue;

/// What one [`Change`] does to its column; the same guards as the one-column operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// `c = c + by`, not past the upper bound (as `increment_*`).
    Increment,
    /// `c = c - by`, not past the lower bound (as `decrement_*`).
    Decrement,
    /// `c = c - n` only if `c >= n` (as `decrement_*_if_at_least`).
    DecrementIfAtLeast,
}

/// One column's part of a several-column change, made with [`ChangeColumn`].
pub struct Change<Col, V> {
    op: ChangeOp,
    amount: V,
    column: PhantomData<fn() -> Col>,
}

impl<Col, V: Copy> Clone for Change<Col, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Col, V: Copy> Copy for Change<Col, V> {}

impl<Col, V: std::fmt::Debug> std::fmt::Debug for Change<Col, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Change")
            .field("op", &self.op)
            .field("amount", &self.amount)
            .finish()
    }
}

impl<Col, V> Change<Col, V> {
    /// The change `op` by `amount` of column `Col`.
    pub fn new(op: ChangeOp, amount: V) -> Self {
        Change {
            op,
            amount,
            column: PhantomData,
        }
    }
}

/// Makes a [`Change`] from a Diesel column: `products::stock.decrement_if_at_least(2)`.
/// Implemented for every column; whether the column is an atomic field of the model is
/// checked where the change is used.
pub trait ChangeColumn: Column + Sized {
    /// `c = c + by`, refused past the upper bound.
    fn increment<V>(self, by: V) -> Change<Self, V> {
        Change::new(ChangeOp::Increment, by)
    }
    /// `c = c - by`, refused past the lower bound.
    fn decrement<V>(self, by: V) -> Change<Self, V> {
        Change::new(ChangeOp::Decrement, by)
    }
    /// `c = c - n` only if `c >= n`: refused with `Insufficient` otherwise.
    fn decrement_if_at_least<V>(self, n: V) -> Change<Self, V> {
        Change::new(ChangeOp::DecrementIfAtLeast, n)
    }
}

impl<C: Column> ChangeColumn for C {}

/// Columns `A` and `B` are two different atomic fields of the model. The derive implements it
/// for every ordered pair of different `#[atomic]` fields; a change that names one column
/// twice does not compile. Implement it by hand next to a hand-written [`AtomicField`].
#[diagnostic::on_unimplemented(
    message = "`{A}` and `{B}` are not two different atomic fields of `{Self}`",
    note = "each column may appear once in a change, and every column must be an #[atomic] field of the model"
)]
pub trait DistinctColumns<A, B> {}

/// One column's change planned against the model's bounds: its [`Plan`] and its name, for
/// the error.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Part<V> {
    plan: Plan<V>,
    /// What the statement binds; `None` when no value passes the guard (then no statement
    /// runs: see `Changes::possible`).
    delta: Option<Delta<V>>,
    name: &'static str,
}

impl<V: AtomicValue> Part<V> {
    fn plan<M: AtomicField<Col, Value = V>, Col: Column>(
        change: &Change<Col, V>,
    ) -> Result<Self, AtomicError> {
        let op = match change.op {
            ChangeOp::Increment => Op::Increment,
            ChangeOp::Decrement => Op::Decrement,
            ChangeOp::DecrementIfAtLeast => Op::AtLeast,
        };
        let plan = Plan::of::<M, Col>(op, change.amount)?;
        Ok(Part {
            plan,
            delta: plan.delta(),
            name: M::NAME,
        })
    }

    /// The error when a row holding `current` fails this part's guard.
    fn refusal(&self, current: V) -> Option<AtomicError> {
        Some(AtomicError::InColumn {
            column: self.name,
            error: Box::new(self.plan.refusal(current)?),
        })
    }

    /// The value after the change of a row holding `current`, which passed the guard.
    fn apply(&self, current: V) -> V {
        self.plan
            .apply_to(current)
            .expect("the guard was checked first")
    }

    /// `c = c ± ?`, or on MySQL `c = (@__counter_i := c ± ?)`, capturing the new value.
    fn walk_set<'b, M, Col, DB>(
        &'b self,
        capture: Option<&str>,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>
    where
        DB: Backend,
        Col: Column,
        M: AtomicFieldOn<Col, DB, Value = V>,
    {
        out.push_identifier(Col::NAME)?;
        out.push_sql(" = ");
        if let Some(var) = capture {
            out.push_sql("(");
            out.push_sql(var);
            out.push_sql(" := ");
        }
        M::walk_round_open(out);
        out.push_identifier(Col::NAME)?;
        let delta = self.delta.as_ref().expect("planned guards exist");
        out.push_sql(match delta.direction {
            Direction::Up => " + ",
            Direction::Down => " - ",
        });
        M::bind_value(&delta.amount, out)?;
        M::walk_round_close(out);
        if capture.is_some() {
            out.push_sql(")");
        }
        Ok(())
    }

    /// ` AND c <= ?` (up) or ` AND c >= ?` (down).
    fn walk_guard<'b, M, Col, DB>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>
    where
        DB: Backend,
        Col: Column,
        M: AtomicFieldOn<Col, DB, Value = V>,
    {
        let delta = self.delta.as_ref().expect("planned guards exist");
        out.push_sql(" AND ");
        out.push_identifier(Col::NAME)?;
        out.push_sql(match delta.direction {
            Direction::Up => " <= ",
            Direction::Down => " >= ",
        });
        M::bind_value(&delta.guard, out)
    }
}

/// A tuple of two or three [`Change`]s of different atomic fields of model `M`, usable on
/// backend `DB`. Everything here is for the statements; you only build the tuple.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a change of several atomic fields of `{M}` on `{DB}`",
    note = "pass a tuple of 2 or 3 changes of different #[atomic] fields of the model, e.g. (products::stock.decrement_if_at_least(n), products::sold.increment(n))"
)]
pub trait Changes<M, DB: Backend> {
    /// The new values, one per column, in the tuple's order.
    type Values: Copy;
    #[doc(hidden)]
    type SqlTypes: 'static;
    #[doc(hidden)]
    type Key;
    #[doc(hidden)]
    type Table;
    #[doc(hidden)]
    type Parts;
    #[doc(hidden)]
    fn plan(&self) -> Result<Self::Parts, AtomicError>;
    #[doc(hidden)]
    fn table() -> Self::Table;
    #[doc(hidden)]
    fn walk_table<'b>(table: &'b Self::Table, out: AstPass<'_, 'b, DB>) -> QueryResult<()>;
    #[doc(hidden)]
    fn walk_key_eq<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    /// `c1 = c1 ± ?, c2 = c2 ± ?`, each capturing into `@__counter_<i>` when `capture`.
    #[doc(hidden)]
    fn walk_set<'b>(
        parts: &'b Self::Parts,
        capture: bool,
        out: &mut AstPass<'_, 'b, DB>,
    ) -> QueryResult<()>;
    /// ` AND c1 >= ? AND c2 <= ?`.
    #[doc(hidden)]
    fn walk_guards<'b>(parts: &'b Self::Parts, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    /// `c1, c2`, or `@__counter_0, @__counter_1` when `captured`.
    #[doc(hidden)]
    fn walk_columns(captured: bool, out: &mut AstPass<'_, '_, DB>) -> QueryResult<()>;
    /// `, t = <now>` for each column touched by a field whose amount is not 0, once each: a
    /// field listed with 0 beside another change is not changed, so it stamps nothing.
    #[doc(hidden)]
    fn walk_touches(parts: &Self::Parts, out: &mut AstPass<'_, '_, DB>) -> QueryResult<()>;
    /// `c1 = ?, c2 = ?`.
    #[doc(hidden)]
    fn walk_write<'b>(values: &'b Self::Values, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    #[doc(hidden)]
    fn load<R, Q>(
        conn: &mut R,
        query: Q,
    ) -> impl Future<Output = QueryResult<Option<Self::Values>>>
    where
        R: RawConnection<Db = DB>,
        Q: Query<SqlType = Self::SqlTypes> + QueryFragment<DB> + QueryId;
    /// Does a planned guard exist for every column (no amount is beyond every value)?
    #[doc(hidden)]
    fn possible(parts: &Self::Parts) -> bool;
    /// The error of the first column whose guard a row holding `current` fails.
    #[doc(hidden)]
    fn refusal(parts: &Self::Parts, current: &Self::Values) -> Option<AtomicError>;
    /// The values after the change of a row holding `current`.
    #[doc(hidden)]
    fn apply(parts: &Self::Parts, current: &Self::Values) -> Self::Values;
}

/// The MySQL session variables that capture the new values, by position.
const CAPTURE_VARS: [&str; 3] = ["@__counter_0", "@__counter_1", "@__counter_2"];

/// `Changes` for a tuple of changes `$c` (columns) with values `$v`, positions `$i`.
macro_rules! changes {
    ($(($i:tt, $c:ident, $v:ident)),+; first: $c0:ident; rest: $($r:ident),+; distinct: $(($a:ident, $b:ident)),+) => {
        impl<M, DB, $($c, $v),+> Changes<M, DB> for ($(Change<$c, $v>,)+)
        where
            DB: Dialect + QueryMetadata<($($v::SqlType,)+)> + 'static,
            $(
                $c: Column + 'static,
                $v: AtomicValue,
                M: AtomicFieldOn<$c, DB, Value = $v>,
            )+
            $(M: AtomicField<
                $r,
                Key = <M as AtomicField<$c0>>::Key,
                KeyColumns = <M as AtomicField<$c0>>::KeyColumns,
            >,)+
            $(M: DistinctColumns<$a, $b>,)+
            ($($v,)+): Queryable<($($v::SqlType,)+), DB>
                + FromSqlRow<($($v::SqlType,)+), DB>
                + 'static,
        {
            type Values = ($($v,)+);
            type SqlTypes = ($($v::SqlType,)+);
            type Key = changes!(@first_key M, $($c),+);
            type Table = changes!(@first_table $($c),+);
            type Parts = ($(Part<$v>,)+);

            fn plan(&self) -> Result<Self::Parts, AtomicError> {
                Ok(($(Part::plan::<M, $c>(&self.$i)?,)+))
            }

            fn table() -> Self::Table {
                changes!(@first_table_value M, $($c),+)
            }

            fn walk_table<'b>(table: &'b Self::Table, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
                changes!(@first_walk_table M, table, out, $($c),+)
            }

            fn walk_key_eq<'b>(key: &'b Self::Key, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
                changes!(@first_walk_key M, key, out, $($c),+)
            }

            fn walk_set<'b>(
                parts: &'b Self::Parts,
                capture: bool,
                out: &mut AstPass<'_, 'b, DB>,
            ) -> QueryResult<()> {
                $(
                    if $i > 0 {
                        out.push_sql(", ");
                    }
                    parts.$i.walk_set::<M, $c, DB>(capture.then_some(CAPTURE_VARS[$i]), out)?;
                )+
                Ok(())
            }

            fn walk_guards<'b>(parts: &'b Self::Parts, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
                $(parts.$i.walk_guard::<M, $c, DB>(out)?;)+
                Ok(())
            }

            fn walk_columns(captured: bool, out: &mut AstPass<'_, '_, DB>) -> QueryResult<()> {
                $(
                    if $i > 0 {
                        out.push_sql(", ");
                    }
                    if captured {
                        out.push_sql(CAPTURE_VARS[$i]);
                    } else {
                        out.push_identifier($c::NAME)?;
                    }
                )+
                Ok(())
            }

            fn walk_touches(parts: &Self::Parts, out: &mut AstPass<'_, '_, DB>) -> QueryResult<()> {
                crate::sql::walk_touches::<DB>(
                    &[$(
                        <M as AtomicField<$c>>::TOUCH
                            .filter(|_| !parts.$i.plan.moves_nothing()),
                    )+],
                    &[$($c::NAME),+],
                    out,
                )
            }

            fn walk_write<'b>(values: &'b Self::Values, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
                $(
                    if $i > 0 {
                        out.push_sql(", ");
                    }
                    out.push_identifier($c::NAME)?;
                    out.push_sql(" = ");
                    <M as AtomicFieldOn<$c, DB>>::bind_value(&values.$i, out)?;
                )+
                Ok(())
            }

            async fn load<R, Q>(conn: &mut R, query: Q) -> QueryResult<Option<Self::Values>>
            where
                R: RawConnection<Db = DB>,
                Q: Query<SqlType = Self::SqlTypes> + QueryFragment<DB> + QueryId,
            {
                // Every row, not the first: see `AtomicFieldOn::load_value`.
                let mut rows = conn.query_rows::<Q, Self::Values>(query).await?;
                debug_assert!(rows.len() <= 1, "one row per primary key");
                Ok(rows.pop())
            }

            fn possible(parts: &Self::Parts) -> bool {
                true $(&& parts.$i.delta.is_some())+
            }

            fn refusal(parts: &Self::Parts, current: &Self::Values) -> Option<AtomicError> {
                None $(.or_else(|| parts.$i.refusal(current.$i)))+
            }

            fn apply(parts: &Self::Parts, current: &Self::Values) -> Self::Values {
                ($(parts.$i.apply(current.$i),)+)
            }
        }
    };
    (@first_key $m:ident, $first:ident $(, $c:ident)*) => { <$m as AtomicField<$first>>::Key };
    (@first_table $first:ident $(, $c:ident)*) => { <$first as Column>::Table };
    (@first_table_value $m:ident, $first:ident $(, $c:ident)*) => {
        <$m as AtomicFieldOn<$first, DB>>::table()
    };
    (@first_walk_table $m:ident, $table:ident, $out:ident, $first:ident $(, $c:ident)*) => {
        <$m as AtomicFieldOn<$first, DB>>::walk_table($table, $out)
    };
    (@first_walk_key $m:ident, $key:ident, $out:ident, $first:ident $(, $c:ident)*) => {
        <$m as AtomicFieldOn<$first, DB>>::walk_key_eq($key, $out)
    };
}

changes!((0, C0, V0), (1, C1, V1); first: C0; rest: C1; distinct: (C0, C1));
changes!(
    (0, C0, V0), (1, C1, V1), (2, C2, V2);
    first: C0; rest: C1, C2;
    distinct: (C0, C1), (C0, C2), (C1, C2)
);
