//! `#[derive(CounterCache)]`'s checks. Each error is spanned at the offending attribute, key or
//! value, and says what to write instead; `CacheModel::from_syn` runs them all while building.
//! The checks the two derives share (a struct with named fields, no generics) are `valid.rs`'s.

use crate::attr::{Keyed, PrimaryKey, CACHE_KEYS};
use crate::cache_model::Change;
use syn::{Attribute, DeriveInput, Error, Ident, Path, Result, Type};

/// No `#[counter_cache]` on the struct.
pub fn no_cache(ident: &Ident) -> Error {
    Error::new_spanned(
        ident,
        "#[derive(CounterCache)] needs #[counter_cache(parent = Parent, column = \
         parents::counter, foreign_key = parent_id)] on the struct: the parent column its rows \
         count into",
    )
}

/// A `#[counter_cache]` past the last a struct may carry.
pub fn too_many_caches(attr: &Attribute, max: usize) -> Error {
    Error::new_spanned(
        attr,
        format!(
            "at most {max} #[counter_cache(..)] attributes per child struct (each insert, \
             update and delete changes every one of them in one transaction)"
        ),
    )
}

/// `change = ..` beside `slotted`.
pub fn change_on_slotted(change: &Keyed<Ident>) -> Error {
    Error::new_spanned(
        &change.key,
        "a slotted parent only counts up: its slots have no bounds to guard, so `change` does \
         not apply (a decrement or a guarded stock needs a plain #[atomic] parent column)",
    )
}

/// `slotted` on a struct with more than one `#[counter_cache]`.
pub fn slotted_not_alone(slotted: &Ident) -> Error {
    Error::new_spanned(
        slotted,
        "a slotted counter cache must be the struct's only #[counter_cache]: the operations on \
         several parents at once (`CounterCaches`) change plain columns only",
    )
}

/// `key_type` on a `#[counter_cache]` after the first.
pub fn key_type_not_first(key_type: &Keyed<Type>) -> Error {
    Error::new_spanned(
        &key_type.key,
        "`key_type` describes the child's key: give it on the first #[counter_cache] only",
    )
}

/// A second `#[counter_cache]` naming a column an earlier one names.
pub fn column_twice(column: &Path) -> Error {
    Error::new_spanned(
        column,
        "another #[counter_cache] of this struct already counts into this column; each cache \
         names its own parent column",
    )
}

/// A required key left out of `attr`.
pub fn missing_key(attr: &Attribute, key: &str) -> Error {
    let what = match key {
        "parent" => {
            "`parent = Parent`, the model (with #[derive(AtomicField)]) whose counter \
                     the rows count into"
        }
        "column" => {
            "`column = parents::counter`, the parent's #[atomic] column the rows count \
                     into"
        }
        _ => "`foreign_key = parent_id`, the field of this struct that holds the parent's key",
    };
    Error::new_spanned(
        attr,
        format!("#[counter_cache(..)] is missing {what}; it takes {CACHE_KEYS}"),
    )
}

/// `foreign_key = x` or `sum = x` where the struct has no field `x`.
pub fn no_such_field(keyed: &Keyed<Ident>, ident: &Ident) -> Error {
    let Keyed { key, value } = keyed;
    let what = if key == "sum" {
        "the field whose value each row adds"
    } else if key == "when" {
        "the `bool` field that says whether a row counts"
    } else {
        "the field that holds the parent's key"
    };
    Error::new_spanned(
        value,
        format!("`{ident}` has no field `{value}`; `{key}` names {what}, by its field name"),
    )
}

/// `foreign_key`, `sum` or `when` naming a field the insert leaves out.
pub fn skipped(keyed: &Keyed<Ident>, skip_insertion: &Ident) -> Error {
    let Keyed { key, value } = keyed;
    let mut err = Error::new_spanned(
        value,
        format!(
            "`{key} = {value}` names a field with #[diesel(skip_insertion)]; the counter cache \
             reads it from the row it inserts, so the insert must write it"
        ),
    );
    err.combine(Error::new_spanned(
        skip_insertion,
        format!("`{value}` is left out of the insert here"),
    ));
    err
}

/// `sum = x` on a field that is not one of the counter integer types.
pub fn sum_not_integer(keyed: &Keyed<Ident>, ty: &Type) -> Error {
    let ty = quote::quote!(#ty).to_string().replace(' ', "");
    Error::new_spanned(
        &keyed.value,
        format!(
            "`sum = {}` needs an integer field (i16, i32, i64, u32 or u64); this one is `{ty}`",
            keyed.value
        ),
    )
}

/// `change = ..`.
pub fn change(keyed: &Keyed<Ident>) -> Result<Change> {
    Change::ALL
        .iter()
        .find(|(name, _)| keyed.value == name)
        .map(|(_, change)| *change)
        .ok_or_else(|| {
            Error::new_spanned(
                &keyed.value,
                format!(
                    "unknown `change = {}`; expected `increment` (the default), `decrement` or \
                     `decrement_if_at_least` (refuses a row its parent cannot cover, as stock)",
                    keyed.value
                ),
            )
        })
}

/// The child's key column: `primary_key(x)`, or `id` when not given; one column.
pub fn key_column(input: &DeriveInput, key: Option<&PrimaryKey>) -> Result<Ident> {
    let Some(key) = key else {
        return Ok(Ident::new("id", input.ident.span()));
    };
    match key.columns.as_slice() {
        [column] => Ok(column.clone()),
        [] => Err(Error::new_spanned(
            &key.tokens,
            "primary_key(..) is empty; name the key column, e.g. primary_key(id)",
        )),
        columns => Err(Error::new_spanned(
            &key.tokens,
            format!(
                "a counter cache's child has a one-column primary key; this one has {} columns \
                 (a delete names the child row by its key)",
                columns.len()
            ),
        )),
    }
}

/// `key_type = ..` on a struct that has a field for the key.
pub fn key_type_with_field(key_type: &Keyed<Type>, field: &Ident) -> Error {
    Error::new_spanned(
        &key_type.key,
        format!(
            "`key_type` is for a child struct without a key field; this one has `{field}`, whose \
             type is the key's: remove `key_type`"
        ),
    )
}

/// `#[diesel(embed)]`, `serialize_as` or `deserialize_as` on a field.
pub fn remapped(key: &Ident) -> Error {
    Error::new_spanned(
        key,
        format!(
            "not supported by CounterCache: `{key}`; it inserts every field as one value of its \
             own type into its own column"
        ),
    )
}
