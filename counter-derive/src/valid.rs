//! The checks. Each error is spanned at the offending attribute, key,
//! literal or type, never at the `derive` itself.
//!
//! `Model::from_syn` calls them while building, so a `Model` only exists
//! for valid input, and every check runs even when another one failed.

use crate::attr::{Int, PrimaryKey};
use crate::ctxt::Ctxt;
use crate::model::{AtomicFieldModel, ValueType};
use quote::quote;
use syn::{
    Attribute, Data, DeriveInput, Error, Fields, FieldsNamed, Generics, Ident, Result, Type,
};

/// The derive needs a struct with named fields.
pub fn named_fields(input: &DeriveInput) -> Result<&FieldsNamed> {
    let ident = &input.ident;
    match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => Ok(named),
            Fields::Unnamed(fields) => Err(Error::new_spanned(
                fields,
                "#[derive(AtomicField)] does not support tuple structs; use a struct with named \
                 fields, one per column",
            )),
            Fields::Unit => Err(Error::new_spanned(
                ident,
                "#[derive(AtomicField)] needs a struct with named fields, one per column",
            )),
        },
        Data::Enum(data) => {
            let enum_token = data.enum_token;
            Err(Error::new_spanned(
                quote!(#enum_token #ident),
                "#[derive(AtomicField)] only works on a struct (a Diesel model with named \
                 fields), not on an enum",
            ))
        }
        Data::Union(data) => {
            let union_token = data.union_token;
            Err(Error::new_spanned(
                quote!(#union_token #ident),
                "#[derive(AtomicField)] only works on a struct (a Diesel model with named \
                 fields), not on a union",
            ))
        }
    }
}

pub fn no_generics(generics: &Generics) -> Result<()> {
    let msg = "generic models are not supported by #[derive(AtomicField)]; remove the generic \
               parameters";
    if !generics.params.is_empty() {
        Err(Error::new_spanned(generics, msg))
    } else if let Some(where_clause) = &generics.where_clause {
        Err(Error::new_spanned(where_clause, msg))
    } else {
        Ok(())
    }
}

/// The one key column: `primary_key(x)`, or `id` when not given.
pub fn single_key_column(input: &DeriveInput, key: Option<&PrimaryKey>) -> Result<Ident> {
    let Some(key) = key else {
        return Ok(Ident::new("id", input.ident.span()));
    };
    match key.columns.as_slice() {
        [column] => Ok(column.clone()),
        [] => Err(Error::new_spanned(
            &key.tokens,
            "primary_key(..) is empty; name the key column, e.g. primary_key(id)",
        )),
        _ => Err(Error::new_spanned(
            &key.tokens,
            "composite primary keys are not supported yet by #[derive(AtomicField)]; the table \
             needs a single-column primary key",
        )),
    }
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
    Err(Error::new_spanned(
        ty,
        "#[atomic] needs an integer field: change the type to one of i16, i32, i64, u32, u64, \
         or remove #[atomic]",
    ))
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
                    max.value, min.value, field.ident,
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
        cx.error_spanned_by(
            &bound.expr,
            format!(
                "`{} = {}` does not fit in `{}` (range {}..={}){hint}",
                bound.key,
                bound.value,
                value.name(),
                value.min(),
                value.max(),
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
