//! Compile-time proof that a model's key column is the table's primary key.
//!
//! A model that says `#[diesel(primary_key(product_id))]` on a table whose key is
//! `(cart_id, product_id)` compiles with Diesel alone, and then every "single-row" statement
//! keyed by `product_id` changes every cart line of that product. The derive emits
//! `primary_key_is::<table, column>()`, which compiles only when `column` is exactly
//! `<table as Table>::PrimaryKey` as declared in `table!`.

/// Implemented by every table for exactly one `K`: its primary key as declared in `table!`.
/// A wrong key fails with rustc's "type mismatch resolving `<table as Table>::PrimaryKey ==
/// column`", which names the key the table declares and the one the model uses.
pub trait HasPrimaryKey<K> {}

impl<T: diesel::Table> HasPrimaryKey<T::PrimaryKey> for T {}

/// Compiles only when `K` is `T`'s primary key; emitted by the derive.
#[doc(hidden)]
pub const fn primary_key_is<T: HasPrimaryKey<K>, K>() {}

#[cfg(test)]
mod tests {
    diesel::table! { lines (cart_id, product_id) { cart_id -> BigInt, product_id -> BigInt, n -> Integer, } }
    diesel::table! { items (id) { id -> BigInt, n -> Integer, } }

    const _: () = super::primary_key_is::<items::table, items::id>();
    const _: () = super::primary_key_is::<lines::table, (lines::cart_id, lines::product_id)>();
}
