//! Primary keys of one or several columns, and the proof that a model's key is the table's.
//!
//! A model's key columns are a tuple, `(products::id,)` or `(cart_lines::cart_id,
//! cart_lines::product_id)`, and its key value is the bare value for one column (`i64`) or a
//! tuple in the same order for several (`(i64, i64)`). Every statement names a row with
//! `"a" = ? AND "b" = ?`, built from these two traits.
//!
//! A model that says `#[diesel(primary_key(product_id))]` on a table whose key is
//! `(cart_id, product_id)` compiles with Diesel alone, and then every "single-row" statement
//! keyed by `product_id` changes every cart line of that product. The derive emits
//! `primary_key_is::<table, key>()`, which compiles only when `key` is exactly
//! `<table as Table>::PrimaryKey` as declared in `table!`; for hand-written impls the same
//! equality is a bound of [`AtomicFieldOn`](crate::AtomicFieldOn).

use std::fmt::Debug;

use diesel::backend::Backend;
use diesel::query_builder::AstPass;
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, SingleValue};
use diesel::{Column, Expression};

use crate::backend::Dialect;

/// The primary key columns of a table as a tuple: `(products::id,)` for one column,
/// `(lines::cart_id, lines::product_id)` for a composite key (up to four columns).
pub trait KeyColumns: 'static {
    /// The table of every column.
    type Table;
    /// The key as `table!` declares it: the column itself for one, the tuple for several.
    type PrimaryKey;
    /// The column names, in order.
    const NAMES: &'static [&'static str];
}

/// A key value for the columns `Cols` on backend `DB`: the bare value for one column, a tuple
/// of values in column order for several. Implemented for every value Diesel can send as the
/// column's SQL type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a key of the columns `{Cols}` on `{DB}`",
    note = "a one-column key is its bare value (`i64`), a composite key a tuple in the order of `primary_key(..)`"
)]
pub trait KeyValue<Cols, DB: Backend> {
    /// Writes `"a" = ? AND "b" = ?` with this key's values bound.
    #[doc(hidden)]
    fn walk_eq<'b>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    /// Writes `?, ?` with this key's values bound, in column order.
    #[doc(hidden)]
    fn walk_values<'b>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
    /// The keys of a set, one `Vec` per key column, to bind as array parameters.
    #[doc(hidden)]
    type Arrays: Default;
    /// Appends this key to `arrays`.
    #[doc(hidden)]
    fn push_to(&self, arrays: &mut Self::Arrays);
    /// Writes `$1, $2`: each key column's array bound, in column order.
    #[doc(hidden)]
    fn walk_arrays<'b>(arrays: &'b Self::Arrays, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
}

impl<A: Column + 'static> KeyColumns for (A,) {
    type Table = A::Table;
    type PrimaryKey = A;
    const NAMES: &'static [&'static str] = &[A::NAME];
}

impl<A, K, DB> KeyValue<(A,), DB> for K
where
    A: Column,
    A::SqlType: SingleValue + 'static,
    DB: Dialect + HasSqlType<<A as Expression>::SqlType>,
    K: ToSql<<A as Expression>::SqlType, DB> + Clone + Debug,
{
    type Arrays = Vec<K>;

    fn push_to(&self, arrays: &mut Vec<K>) {
        arrays.push(self.clone());
    }

    fn walk_arrays<'b>(arrays: &'b Vec<K>, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        DB::bind_array::<A::SqlType, K>(arrays, out)
    }

    fn walk_eq<'b>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_identifier(A::NAME)?;
        out.push_sql(" = ");
        out.push_bind_param::<<A as Expression>::SqlType, _>(self)
    }

    fn walk_values<'b>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_bind_param::<<A as Expression>::SqlType, _>(self)
    }
}

/// `KeyColumns` and `KeyValue` for a tuple of two or more columns.
macro_rules! composite_key {
    ($first:ident $first_key:ident $(, $col:ident $key:ident)+) => {
        impl<$first: Column + 'static $(, $col: Column<Table = $first::Table> + 'static)+> KeyColumns
            for ($first $(, $col)+)
        {
            type Table = $first::Table;
            type PrimaryKey = ($first $(, $col)+);
            const NAMES: &'static [&'static str] = &[$first::NAME $(, $col::NAME)+];
        }

        impl<$first, $first_key $(, $col, $key)+, DB> KeyValue<($first $(, $col)+), DB>
            for ($first_key $(, $key)+)
        where
            DB: Dialect
                + HasSqlType<<$first as Expression>::SqlType>
                $(+ HasSqlType<<$col as Expression>::SqlType>)+,
            $first: Column,
            $first::SqlType: SingleValue + 'static,
            $first_key: ToSql<<$first as Expression>::SqlType, DB> + Clone + Debug,
            $($col: Column, $col::SqlType: SingleValue + 'static,
              $key: ToSql<<$col as Expression>::SqlType, DB> + Clone + Debug,)+
        {
            type Arrays = (Vec<$first_key> $(, Vec<$key>)+);

            #[allow(non_snake_case)]
            fn push_to(&self, arrays: &mut Self::Arrays) {
                let ($first_key $(, $key)+) = self;
                let ($first $(, $col)+) = arrays;
                $first.push($first_key.clone());
                $($col.push($key.clone());)+
            }

            #[allow(non_snake_case)]
            fn walk_arrays<'b>(arrays: &'b Self::Arrays, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
                let ($first_key $(, $key)+) = arrays;
                DB::bind_array::<$first::SqlType, _>($first_key, out)?;
                $(
                    out.push_sql(", ");
                    DB::bind_array::<$col::SqlType, _>($key, out)?;
                )+
                Ok(())
            }

            #[allow(non_snake_case)]
            fn walk_eq<'b>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
                let ($first_key $(, $key)+) = self;
                out.push_identifier($first::NAME)?;
                out.push_sql(" = ");
                out.push_bind_param::<<$first as Expression>::SqlType, _>($first_key)?;
                $(
                    out.push_sql(" AND ");
                    out.push_identifier($col::NAME)?;
                    out.push_sql(" = ");
                    out.push_bind_param::<<$col as Expression>::SqlType, _>($key)?;
                )+
                Ok(())
            }

            #[allow(non_snake_case)]
            fn walk_values<'b>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
                let ($first_key $(, $key)+) = self;
                out.push_bind_param::<<$first as Expression>::SqlType, _>($first_key)?;
                $(
                    out.push_sql(", ");
                    out.push_bind_param::<<$col as Expression>::SqlType, _>($key)?;
                )+
                Ok(())
            }
        }
    };
}

composite_key!(A KA, B KB);
composite_key!(A KA, B KB, C KC);
composite_key!(A KA, B KB, C KC, D KD);

/// Implemented by every table for exactly one `K`: its primary key as declared in `table!`.
/// A wrong key fails with rustc's "type mismatch resolving `<table as Table>::PrimaryKey ==
/// column`", which names the key the table declares and the one the model uses.
pub trait HasPrimaryKey<K> {}

impl<T: diesel::Table> HasPrimaryKey<T::PrimaryKey> for T {}

/// Compiles only when `K` is `T`'s primary key; emitted by the derive.
#[doc(hidden)]
pub const fn primary_key_is<T: HasPrimaryKey<K>, K>() {}

/// Turns what Diesel's `Identifiable::id` returns (`&i64`, or `(&i64, &i64)` for a composite
/// key) into the model's owned key, so a row passed to `increment_*_or_insert` names its key.
pub trait IdIntoKey<K> {
    /// The owned key.
    fn into_key(self) -> K;
}

impl<K: Clone> IdIntoKey<K> for &K {
    fn into_key(self) -> K {
        self.clone()
    }
}

/// `IdIntoKey` for tuples of references.
macro_rules! id_into_key {
    ($($k:ident),+) => {
        impl<'a, $($k: Clone),+> IdIntoKey<($($k,)+)> for ($(&'a $k,)+) {
            #[allow(non_snake_case)]
            fn into_key(self) -> ($($k,)+) {
                let ($($k,)+) = self;
                ($($k.clone(),)+)
            }
        }
    };
}

id_into_key!(KA, KB);
id_into_key!(KA, KB, KC);
id_into_key!(KA, KB, KC, KD);

#[cfg(test)]
mod tests {
    use super::*;

    diesel::table! { lines (cart_id, product_id) { cart_id -> BigInt, product_id -> BigInt, n -> Integer, } }
    diesel::table! { items (id) { id -> BigInt, n -> Integer, } }

    const _: () = primary_key_is::<items::table, items::id>();
    const _: () = primary_key_is::<lines::table, (lines::cart_id, lines::product_id)>();

    #[test]
    fn names_in_order() {
        assert_eq!(<(items::id,) as KeyColumns>::NAMES, ["id"]);
        assert_eq!(
            <(lines::product_id, lines::cart_id) as KeyColumns>::NAMES,
            ["product_id", "cart_id"]
        );
        assert_eq!((&7i64, &8i64).into_key(), (7, 8));
    }
}
