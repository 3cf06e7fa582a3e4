//! The checks. Each error is spanned at the offending attribute, key,
//! literal or type, never at the `derive` itself.
//!
//! `Model::from_syn` calls them while building, so a `Model` only exists
//! for valid input, and every check runs even when another one failed.

use crate::attr::{Int, PrimaryKey};
use crate::ctxt::Ctxt;
use crate::model::{same, AtomicFieldModel, KeyField, ValueType};
use quote::{quote, ToTokens};
use syn::{
    Attribute, Data, DeriveInput, Error, Fields, FieldsNamed, Generics, Ident, Result, Type,
};

/// The derive named `derive` (`AtomicField`, `CounterCache`) needs a struct with named fields.
pub fn named_fields<'a>(input: &'a DeriveInput, derive: &str) -> Result<&'a FieldsNamed> {
    let ident = &input.ident;
    match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => Ok(named),
            Fields::Unnamed(fields) => Err(Error::new_spanned(
                fields,
                format!(
                    "#[derive({derive})] does not support tuple structs; use a struct with named \
                     fields, one per column"
                ),
            )),
            Fields::Unit => Err(Error::new_spanned(
                ident,
                format!("#[derive({derive})] needs a struct with named fields, one per column"),
            )),
        },
        Data::Enum(data) => Err(not_a_struct(data.enum_token, ident, "an enum", derive)),
        Data::Union(data) => Err(not_a_struct(data.union_token, ident, "a union", derive)),
    }
}

/// Spanned over `enum Name` / `union Name`, the part of the item that says what it is.
fn not_a_struct(keyword: impl ToTokens, ident: &Ident, what: &str, derive: &str) -> Error {
    Error::new_spanned(
        quote!(#keyword #ident),
        format!(
            "#[derive({derive})] only works on a struct (a Diesel model with named fields), not \
             on {what}"
        ),
    )
}

pub fn no_generics(generics: &Generics, derive: &str) -> Result<()> {
    let msg = format!(
        "generic models are not supported by #[derive({derive})]; remove the generic parameters"
    );
    if !generics.params.is_empty() {
        Err(Error::new_spanned(generics, msg))
    } else if let Some(where_clause) = &generics.where_clause {
        Err(Error::new_spanned(where_clause, msg))
    } else {
        Ok(())
    }
}

/// Diesel's `Identifiable` and our key tuples stop at this many key columns.
const MAX_KEY_COLUMNS: usize = 4;

/// The key columns: `primary_key(a, b, ..)`, or `id` when not given.
pub fn key_columns(input: &DeriveInput, key: Option<&PrimaryKey>) -> Result<Vec<Ident>> {
    let Some(key) = key else {
        return Ok(vec![Ident::new("id", input.ident.span())]);
    };
    if key.columns.is_empty() {
        return Err(Error::new_spanned(
            &key.tokens,
            "primary_key(..) is empty; name the key column, e.g. primary_key(id)",
        ));
    }
    if key.columns.len() > MAX_KEY_COLUMNS {
        return Err(Error::new_spanned(
            &key.tokens,
            format!(
                "#[derive(AtomicField)] supports primary keys of at most {MAX_KEY_COLUMNS} \
                 columns; this one has {}",
                key.columns.len()
            ),
        ));
    }
    for (i, column) in key.columns.iter().enumerate() {
        if key.columns[..i].iter().any(|earlier| earlier == column) {
            return Err(Error::new_spanned(
                column,
                format!("`{column}` is listed twice in primary_key(..)"),
            ));
        }
    }
    Ok(key.columns.clone())
}

/// No field maps to the key column.
pub fn missing_key_field(input: &DeriveInput, key: Option<&PrimaryKey>, column: &Ident) -> Error {
    match key {
        Some(_) => Error::new_spanned(
            column,
            format!(
                "no field of `{}` maps to the primary key column `{column}`; add that field, or \
                 #[diesel(column_name = {column})] on the field that holds the key",
                input.ident,
            ),
        ),
        None => Error::new_spanned(
            &input.ident,
            format!(
                "`{}` has no `id` field, the default primary key; add one, or name the key \
                 column with #[diesel(primary_key(your_key))]",
                input.ident,
            ),
        ),
    }
}

pub fn on_primary_key(attr: &Attribute, key: &Ident) -> Error {
    Error::new_spanned(
        attr,
        format!(
            "#[atomic] cannot be used on the primary key `{key}`: the key identifies the row; \
             put #[atomic] on a counter column instead",
        ),
    )
}

pub fn no_atomic_field(ident: &Ident) -> Error {
    Error::new_spanned(
        ident,
        "#[derive(AtomicField)] found no #[atomic] field; add #[atomic] to at least one integer \
         field",
    )
}

/// The field's type must be one of the counter integer types.
pub fn value_type(ty: &Type) -> Result<ValueType> {
    if let Some(value) = ValueType::from_type(ty) {
        return Ok(value);
    }
    if is_option(ty) {
        return Err(Error::new_spanned(
            ty,
            "#[atomic] cannot be used on an Option field: a NULL counter cannot be changed \
             atomically (NULL + 1 is NULL); make the column NOT NULL and the field a plain \
             integer",
        ));
    }
    if is_decimal(ty) {
        return Err(Error::new_spanned(
            ty,
            "a `Decimal` field needs its precision and scale written as integer literals, \
             `Decimal<12, 2>` for a NUMERIC(12, 2) column, with 1 <= P <= 18 and S <= P (the \
             derive reads them to check the bounds; a type alias hides them)",
        ));
    }
    if is_float(ty) {
        return Err(Error::new_spanned(
            ty,
            "#[atomic] does not take a float: `f32`/`f64` cannot hold most decimal amounts \
             exactly (0.1 + 0.2 != 0.3), so sums drift and a guard such as `balance >= amount` \
             can refuse or admit the wrong call; use `counter_core::Decimal<P, S>` for a \
             NUMERIC(P, S) column (the `decimal` feature), or keep money as integer cents (i64)",
        ));
    }
    Err(Error::new_spanned(
        ty,
        "#[atomic] needs an integer field (i16, i32, i64, u32, u64) or a `Decimal<P, S>` written \
         out as such (counter-core's `decimal` feature; the derive cannot see through a type \
         alias); change the type or remove #[atomic]",
    ))
}

fn is_decimal(ty: &Type) -> bool {
    match ty {
        Type::Group(group) => is_decimal(&group.elem),
        Type::Paren(paren) => is_decimal(&paren.elem),
        Type::Path(ty) => ty
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "Decimal"),
        _ => false,
    }
}

/// A bound as the field counts: unchanged for an integer field (where a quoted decimal is
/// an error), in `10^-S` units for a `Decimal<P, S>` (`min = 0` and `min = "0.00"` alike),
/// refusing digits past the scale. `None` after reporting an error.
pub fn in_units(cx: &Ctxt, mut bound: Int, value: ValueType) -> Option<Int> {
    let ValueType::Decimal { scale, .. } = value else {
        if bound.decimals.is_some() {
            cx.error_spanned_by(
                &bound.expr,
                format!(
                    "a quoted bound is for a `Decimal` field; `{}` is `{}`, so write the integer \
                     without quotes",
                    bound.key,
                    value.name()
                ),
            );
            return None;
        }
        return Some(bound);
    };
    let written = bound.decimals.unwrap_or(0);
    let units = if written <= scale {
        10i128
            .checked_pow(scale - written)
            .and_then(|factor| bound.value.checked_mul(factor))
    } else {
        let factor = 10i128.checked_pow(written - scale).unwrap_or(i128::MAX);
        if bound.value % factor != 0 {
            cx.error_spanned_by(
                &bound.expr,
                format!(
                    "`{} = {}` has {written} decimals but the field's scale is {scale}; a bound \
                     the column cannot hold is never rounded",
                    bound.key,
                    bound.display()
                ),
            );
            return None;
        }
        Some(bound.value / factor)
    };
    let Some(units) = units else {
        cx.error_spanned_by(&bound.expr, "the bound is too large for any Decimal");
        return None;
    };
    bound.value = units;
    bound.decimals = Some(scale);
    Some(bound)
}

fn is_float(ty: &Type) -> bool {
    match ty {
        Type::Group(group) => is_float(&group.elem),
        Type::Paren(paren) => is_float(&paren.elem),
        Type::Path(ty) => ty
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "f32" || last.ident == "f64"),
        _ => false,
    }
}

fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Group(group) => is_option(&group.elem),
        Type::Paren(paren) => is_option(&paren.elem),
        Type::Path(ty) => ty.path.segments.last().is_some_and(|last| {
            last.ident == "Option"
                && matches!(last.arguments, syn::PathArguments::AngleBracketed(_))
        }),
        _ => false,
    }
}

/// The slotted declaration of a field, checked: `slots` and `table` together, 2 to 1024
/// slots, an `i64` field, and no bounds (a slotted counter cannot enforce them).
pub fn slotted(
    cx: &Ctxt,
    attr: &Attribute,
    atomic: &crate::attr::Atomic,
    value: ValueType,
) -> Option<crate::model::SlottedModel> {
    let (slots, table) = match (&atomic.slots, &atomic.table) {
        (None, None) => {
            if let Some(flag) = &atomic.allow_decrement {
                cx.error_spanned_by(
                    flag,
                    "`allow_decrement` is for slotted counters (`slots = N, table = ..`); a plain \
                     #[atomic] field always has decrement_*",
                );
            }
            return None;
        }
        (Some(slots), Some(table)) => (slots, table),
        (Some(slots), None) => {
            cx.error_spanned_by(
                &slots.key,
                "a slotted counter needs its slot table: #[atomic(slots = N, table = my_slots)], \
                 a table! with the model's key columns, `slot -> Integer` and `count -> BigInt`",
            );
            return None;
        }
        (None, Some(table)) => {
            cx.error_spanned_by(
                table,
                "`table` names a slotted counter's slot table; add `slots = N` (how many rows \
                 the counter is spread over)",
            );
            return None;
        }
    };
    let mut ok = true;
    if !(2..=1024).contains(&slots.value) {
        cx.error_spanned_by(
            &slots.expr,
            format!("`slots` must be between 2 and 1024, got {}", slots.value),
        );
        ok = false;
    }
    for bound in [&atomic.min, &atomic.max].into_iter().flatten() {
        cx.error_spanned_by(
            &bound.key,
            format!(
                "a slotted counter cannot enforce `{}`: its value is the sum of every slot, \
                 which is only stable with all of them locked (the one-row bottleneck slots \
                 exist to avoid); drop the bound, or drop `slots` where bounds matter",
                bound.key
            ),
        );
        ok = false;
    }
    if value != ValueType::I64 {
        cx.error_spanned_by(
            attr,
            format!(
                "a slotted counter is an `i64` (the slots' `count -> BigInt` and their sum); \
                 this field is `{}`",
                value.name()
            ),
        );
        ok = false;
    }
    ok.then(|| crate::model::SlottedModel {
        slots: slots.clone(),
        table: table.clone(),
        allow_decrement: atomic.allow_decrement.is_some(),
    })
}

/// The field's `touch = column`, unless it is slotted: a slotted counter's increments write its
/// slot rows, not the model's row, so there is no statement of the row to set it in.
pub fn touch(cx: &Ctxt, atomic: &crate::attr::Atomic) -> Option<crate::attr::Touch> {
    let touch = atomic.touch.clone()?;
    if atomic.slots.is_some() {
        cx.error_spanned_by(
            &touch.key,
            "a slotted counter cannot `touch` a column: its increments write its slot rows, not \
             the model's row; drop `touch`, or keep the timestamp in the slot table yourself",
        );
        return None;
    }
    Some(touch)
}

/// A touched column must be a column of its own, not a counter or a key: the statement sets it
/// to the current time, which would overwrite the counter's new value or move the row.
pub fn touched_columns(cx: &Ctxt, fields: &[AtomicFieldModel], keys: &[KeyField]) {
    for touch in fields.iter().filter_map(|field| field.touch.as_ref()) {
        let column = &touch.column;
        if let Some(counter) = fields.iter().find(|f| same(&f.column, column)) {
            cx.error_spanned_by(
                column,
                format!(
                    "`touch = {column}` names the column of the #[atomic] field `{}`; name a \
                     timestamp column (e.g. `updated_at -> Timestamp`) that no counter holds",
                    counter.ident
                ),
            );
        } else if keys.iter().any(|key| same(&key.column, column)) {
            cx.error_spanned_by(
                column,
                format!(
                    "`touch = {column}` names a primary key column; name a timestamp column \
                     (e.g. `updated_at -> Timestamp`)"
                ),
            );
        }
    }
}

/// Bounds and retries of one `#[atomic]` field.
pub fn check_field(cx: &Ctxt, field: &AtomicFieldModel) {
    let min_fits = field
        .min
        .as_ref()
        .is_none_or(|min| check_bound(cx, min, field.value));
    let max_fits = field
        .max
        .as_ref()
        .is_none_or(|max| check_bound(cx, max, field.value));
    if let (Some(min), Some(max), true, true) = (&field.min, &field.max, min_fits, max_fits) {
        if min.value > max.value {
            cx.error_spanned_by(
                &max.expr,
                format!(
                    "`max = {}` is below `min = {}` on `{}`; swap them or fix one of the bounds",
                    max.display(),
                    min.display(),
                    field.ident,
                ),
            );
        }
    }
    if let Some(retries) = &field.retries {
        check_retries(cx, retries);
    }
}

/// Reports a bound outside the field type; returns whether it fits.
fn check_bound(cx: &Ctxt, bound: &Int, value: ValueType) -> bool {
    let suffix = bound.lit.suffix();
    if !suffix.is_empty() && suffix != value.name() {
        cx.error_spanned_by(
            &bound.lit,
            format!(
                "the literal is typed `{suffix}` but the field is `{}`; drop the suffix",
                value.name(),
            ),
        );
        return false;
    }
    if bound.value < value.min() || bound.value > value.max() {
        let hint = if bound.value < 0 && value.min() == 0 {
            "; an unsigned counter never goes below 0, so drop the bound or use a signed type"
        } else {
            "; change the bound or widen the field type"
        };
        let (name, range) = match value {
            ValueType::Decimal { precision, scale } => {
                let edge = |units| {
                    Int {
                        value: units,
                        ..bound.clone()
                    }
                    .display()
                };
                (
                    format!("Decimal<{precision}, {scale}>"),
                    format!("{}..={}", edge(value.min()), edge(value.max())),
                )
            }
            _ => (
                value.name().to_owned(),
                format!("{}..={}", value.min(), value.max()),
            ),
        };
        cx.error_spanned_by(
            &bound.expr,
            format!(
                "`{} = {}` does not fit in `{name}` (range {range}){hint}",
                bound.key,
                bound.display(),
            ),
        );
        return false;
    }
    true
}

pub fn check_retries(cx: &Ctxt, retries: &Int) {
    let suffix = retries.lit.suffix();
    if !suffix.is_empty() && suffix != "u32" {
        cx.error_spanned_by(
            &retries.lit,
            format!("`retries` is a u32, not `{suffix}`; drop the suffix"),
        );
    } else if retries.value < 1 {
        cx.error_spanned_by(
            &retries.expr,
            "`retries` counts attempts and must be at least 1; use `retries = 1` to try once",
        );
    } else if retries.value > i128::from(u32::MAX) {
        cx.error_spanned_by(
            &retries.expr,
            format!("`retries` must fit in a u32 (at most {})", u32::MAX),
        );
    }
}
