//! Stage 2: the typed model the expansion works from.
//!
//! Built from the syn input plus the parsed attributes, running the checks
//! of `valid.rs` on the way and reporting into the `Ctxt`. The model is
//! only used for expansion when no error was reported.

use crate::attr::{self, Int, Level, Touch};
use crate::ctxt::Ctxt;
use crate::valid;
use syn::ext::IdentExt;
use syn::{DeriveInput, Ident, Path, Type};

pub struct Model<'a> {
    pub ident: &'a Ident,
    /// Path of the `table!` module, as written in `table_name` (or inferred).
    pub table: Path,
    /// The key fields, in the order of `primary_key(..)` (one unless the key is composite).
    pub keys: Vec<KeyField<'a>>,
    /// Where the key was chosen: the `primary_key(..)` item, else the struct's name (the
    /// default `id`), for the error when it is not the table's primary key.
    pub key_span: proc_macro2::Span,
    pub fields: Vec<AtomicFieldModel<'a>>,
    /// Struct-level `#[atomic(retries = N)]`.
    pub retries: Option<Retries>,
}

pub struct KeyField<'a> {
    pub original: &'a syn::Field,
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub column: Ident,
}

pub struct AtomicFieldModel<'a> {
    pub ident: &'a Ident,
    /// The field's type as written; emitted verbatim.
    pub ty: &'a Type,
    /// What `ty` is.
    pub value: ValueType,
    pub column: Ident,
    pub min: Option<Bound>,
    pub max: Option<Bound>,
    pub retries: Option<Retries>,
    /// `slots = N, table = t[, allow_decrement]`: a slotted counter.
    pub slotted: Option<SlottedModel>,
    /// `touch = column`: the timestamp column each change also sets.
    pub touch: Option<Touch>,
}

/// A slotted counter's declaration.
pub struct SlottedModel {
    pub slots: Int,
    pub table: Path,
    pub allow_decrement: bool,
}

/// `min = ..` / `max = ..`, with its tokens.
pub type Bound = Int;
/// `retries = ..`, with its tokens.
pub type Retries = Int;

/// The types a counter column can have: the integers, and `Decimal<P, S>`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum ValueType {
    I16,
    I32,
    I64,
    U32,
    U64,
    /// `Decimal<P, S>` (counter-core's `decimal` feature): a `NUMERIC(P, S)` column, its
    /// bounds counted in `10^-S` units.
    Decimal {
        precision: u32,
        scale: u32,
    },
}

impl ValueType {
    /// Recognizes `i32` and `::core::primitive::i32` / `std::primitive::i32`, and
    /// `Decimal<12, 2>` (also as `counter_core::Decimal<12, 2>`).
    pub fn from_type(ty: &Type) -> Option<Self> {
        let path = match ty {
            Type::Group(group) => return Self::from_type(&group.elem),
            Type::Paren(paren) => return Self::from_type(&paren.elem),
            Type::Path(ty) if ty.qself.is_none() => &ty.path,
            _ => return None,
        };
        if let Some(decimal) = decimal_type(path) {
            return decimal;
        }
        if path.segments.iter().any(|seg| !seg.arguments.is_none()) {
            return None;
        }
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let name = match segments.as_slice() {
            [name] if path.leading_colon.is_none() => name,
            [krate, primitive, name]
                if (krate == "core" || krate == "std") && primitive == "primitive" =>
            {
                name
            }
            _ => return None,
        };
        match name.as_str() {
            "i16" => Some(ValueType::I16),
            "i32" => Some(ValueType::I32),
            "i64" => Some(ValueType::I64),
            "u32" => Some(ValueType::U32),
            "u64" => Some(ValueType::U64),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ValueType::I16 => "i16",
            ValueType::I32 => "i32",
            ValueType::I64 => "i64",
            ValueType::U32 => "u32",
            ValueType::U64 => "u64",
            ValueType::Decimal { .. } => "Decimal",
        }
    }

    pub fn min(self) -> i128 {
        match self {
            ValueType::I16 => i16::MIN.into(),
            ValueType::I32 => i32::MIN.into(),
            ValueType::I64 => i64::MIN.into(),
            ValueType::U32 | ValueType::U64 => 0,
            ValueType::Decimal { .. } => -self.max(),
        }
    }

    pub fn max(self) -> i128 {
        match self {
            ValueType::I16 => i16::MAX.into(),
            ValueType::I32 => i32::MAX.into(),
            ValueType::I64 => i64::MAX.into(),
            ValueType::U32 => u32::MAX.into(),
            ValueType::U64 => u64::MAX.into(),
            ValueType::Decimal { precision, .. } => 10i128.pow(precision) - 1,
        }
    }
}

/// `Decimal<P, S>` as `Some(Some(..))`; `Some(None)` for a `Decimal` whose precision and scale
/// are not two integer literals within `1 <= P <= 18`, `S <= P` (the derive must read them);
/// `None` for any other type.
fn decimal_type(path: &Path) -> Option<Option<ValueType>> {
    let last = path.segments.last()?;
    if last.ident != "Decimal" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return Some(None);
    };
    let numbers: Vec<u32> = args
        .args
        .iter()
        .filter_map(|arg| match arg {
            syn::GenericArgument::Const(syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(lit),
                ..
            })) => lit.base10_parse::<u32>().ok(),
            _ => None,
        })
        .collect();
    Some(match numbers.as_slice() {
        [precision, scale]
            if args.args.len() == 2 && (1..=18).contains(precision) && scale <= precision =>
        {
            Some(ValueType::Decimal {
                precision: *precision,
                scale: *scale,
            })
        }
        _ => None,
    })
}

/// One field with its parsed attributes.
struct Parsed<'a> {
    original: &'a syn::Field,
    ident: &'a Ident,
    atomic: attr::Atomic<'a>,
    column: Ident,
}

impl<'a> Model<'a> {
    /// Builds the model, running every check and reporting into `cx`.
    /// Returns `None` only after reporting at least one error.
    pub fn from_syn(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let named = match valid::named_fields(input, "AtomicField") {
            Ok(named) => named,
            Err(err) => {
                cx.syn_error(err);
                return None;
            }
        };
        if let Err(err) = valid::no_generics(&input.generics, "AtomicField") {
            cx.syn_error(err);
        }

        let struct_atomic = attr::atomic(cx, &input.attrs, Level::Struct);
        if let Some(retries) = &struct_atomic.retries {
            valid::check_retries(cx, retries);
        }
        let diesel = attr::diesel_struct(cx, &input.attrs);
        let table = diesel.table_name.unwrap_or_else(|| {
            Ident::new(&infer_table_name(&input.ident), input.ident.span()).into()
        });

        let fields: Vec<Parsed> = named
            .named
            .iter()
            .map(|field| {
                let ident = field.ident.as_ref().expect("named field");
                let atomic = attr::atomic(cx, &field.attrs, Level::Field);
                let column = attr::diesel_field(cx, &field.attrs)
                    .column_name
                    .unwrap_or_else(|| ident.clone());
                Parsed {
                    original: field,
                    ident,
                    atomic,
                    column,
                }
            })
            .collect();

        // Like diesel, `primary_key(..)` names columns, and each key field is
        // the one mapped to that column.
        let key_columns = match valid::key_columns(input, diesel.primary_key.as_ref()) {
            Ok(columns) => columns,
            Err(err) => {
                cx.syn_error(err);
                Vec::new()
            }
        };
        let mut keys = Vec::new();
        for column in &key_columns {
            match fields.iter().find(|field| same(&field.column, column)) {
                Some(field) => keys.push(KeyField {
                    original: field.original,
                    ident: field.ident,
                    ty: &field.original.ty,
                    column: field.column.clone(),
                }),
                None => cx.syn_error(valid::missing_key_field(
                    input,
                    diesel.primary_key.as_ref(),
                    column,
                )),
            }
        }
        let key_span = diesel
            .primary_key
            .as_ref()
            .map_or(input.ident.span(), |key| {
                syn::spanned::Spanned::span(&key.tokens)
            });

        let mut any_atomic = false;
        let mut atomic_fields = Vec::new();
        for field in fields {
            let Some(attr) = field.atomic.original else {
                continue;
            };
            any_atomic = true;
            if let Some(key) = keys
                .iter()
                .find(|k| std::ptr::eq(k.original, field.original))
            {
                cx.syn_error(valid::on_primary_key(attr, key.ident));
                continue;
            }
            let value = match valid::value_type(&field.original.ty) {
                Ok(value) => value,
                Err(err) => {
                    cx.syn_error(err);
                    continue;
                }
            };
            let slotted = valid::slotted(cx, attr, &field.atomic, value);
            let min = field
                .atomic
                .min
                .clone()
                .and_then(|bound| valid::in_units(cx, bound, value));
            let max = field
                .atomic
                .max
                .clone()
                .and_then(|bound| valid::in_units(cx, bound, value));
            let touch = valid::touch(cx, &field.atomic);
            let field = AtomicFieldModel {
                ident: field.ident,
                ty: &field.original.ty,
                value,
                column: field.column,
                min,
                max,
                retries: field.atomic.retries,
                slotted,
                touch,
            };
            valid::check_field(cx, &field);
            atomic_fields.push(field);
        }
        if !any_atomic {
            cx.syn_error(valid::no_atomic_field(&input.ident));
        }
        valid::touched_columns(cx, &atomic_fields, &keys);
        if keys.len() != key_columns.len() || keys.is_empty() {
            return None;
        }

        Some(Model {
            ident: &input.ident,
            table,
            keys,
            key_span,
            fields: atomic_fields,
            retries: struct_atomic.retries,
        })
    }
}

/// Compares identifiers the way Rust does: `r#type` is `type`.
pub fn same(a: &Ident, b: &Ident) -> bool {
    a.unraw() == b.unraw()
}

/// Diesel's rule for a missing `table_name`: `BlogPost` -> `blog_posts`.
pub fn infer_table_name(ident: &Ident) -> String {
    let name = ident.unraw().to_string();
    let mut result = String::with_capacity(name.len() + 1);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_uppercase() {
            if i > 0 {
                result.push('_');
            }
            result.extend(ch.to_lowercase());
        } else {
            result.push(ch);
        }
    }
    result.push('s');
    result
}

/// The model of the crate docs with a renamed key column and a table path: the input the
/// tests of each stage read.
#[cfg(test)]
pub fn product() -> DeriveInput {
    syn::parse_quote! {
        #[derive(Queryable, Selectable, Identifiable, AtomicField)]
        #[diesel(table_name = crate::schema::products)]
        #[diesel(primary_key(product_id))]
        #[diesel(check_for_backend(diesel::sqlite::Sqlite))]
        #[atomic(retries = 5)]
        pub struct Product {
            #[diesel(column_name = product_id)]
            pub key: i64,
            pub name: String,
            #[atomic(min = 0, max = 1000)]
            pub stock: i32,
            #[atomic]
            #[diesel(column_name = units_sold)]
            pub sold: i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;
    use syn::parse_quote;

    fn infer(name: &str) -> String {
        infer_table_name(&Ident::new(name, proc_macro2::Span::call_site()))
    }

    #[test]
    fn table_name_inference_matches_diesel() {
        assert_eq!(infer("Product"), "products");
        assert_eq!(infer("BlogPost"), "blog_posts");
        assert_eq!(infer("FooBarBaz"), "foo_bar_bazs");
        assert_eq!(infer("Foo_Bar"), "foo__bars");
        let raw = Ident::new_raw("Match", proc_macro2::Span::call_site());
        assert_eq!(infer_table_name(&raw), "matchs");
        assert_eq!(infer("account"), "accounts");
    }

    #[test]
    fn value_types() {
        let ok: [(Type, ValueType); 5] = [
            (parse_quote!(i16), ValueType::I16),
            (parse_quote!(i32), ValueType::I32),
            (parse_quote!(::core::primitive::i64), ValueType::I64),
            (parse_quote!(std::primitive::u32), ValueType::U32),
            (parse_quote!((u64)), ValueType::U64),
        ];
        for (ty, expected) in ok {
            assert_eq!(ValueType::from_type(&ty), Some(expected));
        }
        let bad: [Type; 6] = [
            parse_quote!(u8),
            parse_quote!(f64),
            parse_quote!(String),
            parse_quote!(Option<i32>),
            parse_quote!(my::i32),
            parse_quote!(&i32),
        ];
        for ty in bad {
            assert_eq!(ValueType::from_type(&ty), None);
        }
    }

    #[test]
    fn recognizes_decimals_with_literal_precision_and_scale() {
        let ok: [(Type, (u32, u32)); 3] = [
            (parse_quote!(Decimal<12, 2>), (12, 2)),
            (parse_quote!(counter_core::Decimal<18, 0>), (18, 0)),
            (parse_quote!(::counter_core::Decimal<4, 4>), (4, 4)),
        ];
        for (ty, (precision, scale)) in ok {
            assert_eq!(
                ValueType::from_type(&ty),
                Some(ValueType::Decimal { precision, scale })
            );
        }
        let bad: [Type; 5] = [
            parse_quote!(Decimal),
            parse_quote!(Decimal<19, 2>),
            parse_quote!(Decimal<4, 5>),
            parse_quote!(Decimal<P, 2>),
            parse_quote!(Decimal<12>),
        ];
        for ty in bad {
            assert_eq!(ValueType::from_type(&ty), None);
        }
        assert_eq!(
            ValueType::Decimal {
                precision: 4,
                scale: 2
            }
            .max(),
            9_999
        );
        assert_eq!(
            ValueType::Decimal {
                precision: 4,
                scale: 2
            }
            .min(),
            -9_999
        );
    }

    #[test]
    fn builds_the_model() {
        let input = product();
        let cx = Ctxt::new();
        let model = Model::from_syn(&cx, &input);
        cx.check().unwrap();
        let model = model.unwrap();
        assert_eq!(
            model.table.to_token_stream().to_string(),
            "crate :: schema :: products"
        );
        assert_eq!(model.keys[0].ident, "key");
        assert_eq!(model.keys[0].column, "product_id");
        assert_eq!(model.retries.as_ref().unwrap().value, 5);
        assert_eq!(model.fields.len(), 2);
        assert_eq!(model.fields[0].ident, "stock");
        assert_eq!(model.fields[0].value, ValueType::I32);
        assert_eq!(model.fields[0].min.as_ref().unwrap().value, 0);
        assert_eq!(model.fields[0].max.as_ref().unwrap().value, 1000);
        assert_eq!(model.fields[1].column, "units_sold");
        assert_eq!(model.fields[1].value, ValueType::I64);
    }
}
