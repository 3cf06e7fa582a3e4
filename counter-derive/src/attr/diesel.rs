//! The struct's and the fields' `#[diesel(...)]`, read the way Diesel's own derives read
//! them, so that users say each thing once: `table_name`, `primary_key(..)` and
//! `column_name`, and for `#[derive(CounterCache)]`, which inserts the struct's fields, the
//! field keys that change what is inserted (`skip_insertion`, `embed`, `serialize_as`,
//! `deserialize_as`). Every other key is Diesel's to check and is stepped over.

use super::skip_value;
use crate::ctxt::Ctxt;
use proc_macro2::{Group, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Error, Ident, Meta, Path, Result, Token};

/// What we need from the struct's `#[diesel(...)]` attributes.
#[derive(Default)]
pub struct DieselStruct {
    pub table_name: Option<Path>,
    pub primary_key: Option<PrimaryKey>,
}

/// `primary_key(a, b, ...)`.
pub struct PrimaryKey {
    /// The whole `primary_key(...)` item, for error spans.
    pub tokens: TokenStream,
    pub columns: Vec<Ident>,
}

/// What we need from a field's `#[diesel(...)]` attributes.
#[derive(Default)]
pub struct DieselField {
    pub column_name: Option<Ident>,
    /// `skip_insertion`: Diesel's `Insertable` leaves the column out.
    pub skip_insertion: Option<Ident>,
    /// `embed`, `serialize_as` and `deserialize_as`, which change how a field maps to
    /// columns: each key as written, for the derives that cannot follow them.
    pub remapped: Vec<Ident>,
}

/// Reads the struct's `#[diesel(...)]` attributes, ignoring every key
/// other than `table_name` and `primary_key` (diesel's derives check them).
pub fn diesel_struct(cx: &Ctxt, attrs: &[Attribute]) -> DieselStruct {
    let mut out = DieselStruct::default();
    each_diesel_key(cx, attrs, |meta| {
        if meta.path.is_ident("table_name") {
            let path: Path = meta.value()?.parse()?;
            // Like diesel's Identifiable, the first table_name wins.
            out.table_name.get_or_insert(path);
        } else if meta.path.is_ident("primary_key") {
            let group: Group = meta.input.parse()?;
            let columns = Punctuated::<Ident, Token![,]>::parse_terminated
                .parse2(group.stream())?
                .into_iter()
                .collect();
            let path = &meta.path;
            out.primary_key = Some(PrimaryKey {
                tokens: quote::quote!(#path #group),
                columns,
            });
        } else {
            skip_value(meta.input)?;
        }
        Ok(())
    });
    out
}

/// Reads a field's `#[diesel(...)]` attributes: `column_name`, and the keys that change what
/// an insert of the field writes.
pub fn diesel_field(cx: &Ctxt, attrs: &[Attribute]) -> DieselField {
    let mut out = DieselField::default();
    each_diesel_key(cx, attrs, |meta| {
        let key = meta.path.get_ident();
        if meta.path.is_ident("column_name") {
            out.column_name = Some(column_name(meta.value()?)?);
        } else if let Some(key) = key.filter(|key| *key == "skip_insertion") {
            out.skip_insertion = Some(key.clone());
        } else if let Some(key) = key.filter(|key| REMAPPING.iter().any(|name| *key == name)) {
            out.remapped.push(key.clone());
            skip_value(meta.input)?;
        } else {
            skip_value(meta.input)?;
        }
        Ok(())
    });
    out
}

/// The field keys with which a field is not one value of its own type in one column.
const REMAPPING: &[&str] = &["embed", "serialize_as", "deserialize_as"];

/// Calls `read` on every key of every `#[diesel(...)]` list; other shapes are left to diesel.
/// A syntax error ends that attribute (syn cannot resynchronise inside it) and is reported,
/// the other attributes are still read.
fn each_diesel_key(
    cx: &Ctxt,
    attrs: &[Attribute],
    mut read: impl FnMut(ParseNestedMeta) -> Result<()>,
) {
    let lists = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("diesel") && matches!(attr.meta, Meta::List(_)));
    for attr in lists {
        if let Err(err) = attr.parse_nested_meta(&mut read) {
            cx.syn_error(err);
        }
    }
}

/// Diesel accepts `column_name = ident` and `column_name = "ident"`.
fn column_name(input: ParseStream) -> Result<Ident> {
    if input.peek(syn::LitStr) {
        let lit: syn::LitStr = input.parse()?;
        let mut ident: Ident = lit.parse().map_err(|_| {
            Error::new_spanned(
                &lit,
                "column_name must name the column as declared in `table!`, which is a Rust \
                 identifier",
            )
        })?;
        ident.set_span(lit.span());
        Ok(ident)
    } else {
        input.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;
    use syn::parse_quote;

    #[test]
    fn diesel_struct_keeps_table_and_key_ignores_the_rest() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[derive(Debug)]),
            parse_quote!(#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]),
            parse_quote!(#[diesel(table_name = crate::schema::products, treat_none_as_null = true)]),
            parse_quote!(#[diesel(belongs_to(User, foreign_key = owner_id), primary_key(sku))]),
            parse_quote!(#[diesel(sql_type = Nullable<Integer>, select_expression_type = Foo<A, B>)]),
            parse_quote!(#[diesel(select_expression = foo::<A, B>(x, y), aggregate)]),
        ];
        let cx = Ctxt::new();
        let diesel = diesel_struct(&cx, &attrs);
        cx.check().unwrap();
        let table = diesel.table_name.unwrap();
        assert_eq!(
            table.to_token_stream().to_string(),
            "crate :: schema :: products"
        );
        let key = diesel.primary_key.unwrap();
        assert_eq!(key.columns.len(), 1);
        assert_eq!(key.columns[0], "sku");
        assert_eq!(key.tokens.to_string(), "primary_key (sku)");
    }

    #[test]
    fn diesel_composite_key_is_read() {
        let attrs: Vec<Attribute> = vec![parse_quote!(#[diesel(primary_key(a, b))])];
        let cx = Ctxt::new();
        let diesel = diesel_struct(&cx, &attrs);
        cx.check().unwrap();
        assert_eq!(diesel.primary_key.unwrap().columns.len(), 2);
        assert!(diesel.table_name.is_none());
    }

    #[test]
    fn diesel_field_column_name() {
        let cx = Ctxt::new();
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[diesel(serialize_as = MyType, column_name = units_sold)]),
            parse_quote!(#[diesel(embed)]),
        ];
        let field = diesel_field(&cx, &attrs);
        let quoted: Vec<Attribute> = vec![parse_quote!(#[diesel(column_name = "units_sold")])];
        let from_str = diesel_field(&cx, &quoted);
        cx.check().unwrap();
        let remapped: Vec<String> = field.remapped.iter().map(ToString::to_string).collect();
        assert_eq!(remapped, ["serialize_as", "embed"]);
        assert!(field.skip_insertion.is_none());
        assert_eq!(field.column_name.unwrap(), "units_sold");
        assert_eq!(from_str.column_name.unwrap(), "units_sold");
    }

    #[test]
    fn diesel_field_skip_insertion() {
        let cx = Ctxt::new();
        let attrs: Vec<Attribute> =
            vec![parse_quote!(#[diesel(skip_insertion, deserialize_as = Wrapper<i64>)])];
        let field = diesel_field(&cx, &attrs);
        cx.check().unwrap();
        assert_eq!(field.skip_insertion.unwrap(), "skip_insertion");
        assert_eq!(field.remapped.len(), 1);
        assert_eq!(field.remapped[0], "deserialize_as");
    }
}
