//! What a hand-written MySQL version needs that Diesel has no DSL for: `LAST_INSERT_ID(x)`,
//! `LAST_INSERT_ID()`, `^`, `&`, and the constants 2^63 and 0, as typed DSL nodes rather than
//! `sql("…")` literals. (It makes no difference to the `UPDATE`: Diesel never caches an
//! `UpdateStatement` as a prepared statement, see diesel's `query_builder/update_statement`;
//! it does let `SELECT LAST_INSERT_ID()` be cached, like the library's.)

use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::mysql::Mysql;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Unsigned};

diesel::define_sql_function! {
    /// `LAST_INSERT_ID(x)`: remembers `x` for this connection and returns it.
    #[sql_name = "LAST_INSERT_ID"]
    fn capture(x: Unsigned<BigInt>) -> Unsigned<BigInt>;
}

diesel::define_sql_function! {
    /// `LAST_INSERT_ID()`: the value last remembered on this connection.
    #[sql_name = "LAST_INSERT_ID"]
    fn last_insert_id() -> Unsigned<BigInt>;
}

diesel::infix_operator!(Xor, " ^ ", Unsigned<BigInt>, backend: Mysql);
// `x & 0` is typed `Integer` only so that Diesel's `cast::<BigInt>()` takes it (Diesel
// knows no cast from `Unsigned<BigInt>`); the SQL is the same either way.
diesel::infix_operator!(BitAnd, " & ", diesel::sql_types::Integer, backend: Mysql);

/// An unsigned integer constant written into the SQL text, as the library writes it.
macro_rules! literal {
    ($(#[$doc:meta])* $name:ident = $text:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, QueryId, ValidGrouping)]
        pub struct $name;

        impl Expression for $name {
            type SqlType = Unsigned<BigInt>;
        }

        impl<QS> AppearsOnTable<QS> for $name {}
        impl<QS> SelectableExpression<QS> for $name {}

        impl QueryFragment<Mysql> for $name {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
                out.push_sql($text);
                Ok(())
            }
        }
    };
}

literal!(
    /// `9223372036854775808` (2^63), which fits no signed bind parameter.
    SignBit = "9223372036854775808"
);
literal!(
    /// `0`.
    Zero = "0"
);
