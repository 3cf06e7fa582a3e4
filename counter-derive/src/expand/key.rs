//! The row key as the generated code sees it: its Rust type, the name of its parameter, and
//! the compile-time check that it is the primary key the table declares.

use super::tokens::private;
use crate::model::Model;
use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::ext::IdentExt;

/// Names of the other parameters of the generated methods: a key field named like one of
/// them would clash, so its parameter is called `key` instead.
const OTHER_PARAMS: &[&str] = &[
    "conn", "by", "n", "op", "from", "to", "amount", "row", "rows", "changes", "new_row",
    "amounts", "v", "expected", "new",
];

/// The key parameter of the generated functions: named after a single key field unless that
/// clashes with another parameter; a composite key is a tuple named `key`.
pub fn param(model: &Model) -> Ident {
    match model.keys.as_slice() {
        [key] if !OTHER_PARAMS.contains(&key.ident.unraw().to_string().as_str()) => {
            key.ident.clone()
        }
        _ => format_ident!("key"),
    }
}

/// The key's Rust type: the field's type for one key column, a tuple for several.
pub fn ty(model: &Model) -> TokenStream {
    if let [key] = model.keys.as_slice() {
        key.ty.to_token_stream()
    } else {
        let tys = model.keys.iter().map(|key| key.ty);
        quote!((#(#tys),*))
    }
}

/// The key columns as a tuple of `table::column` types, one trailing comma each: the form the
/// `KeyColumns` / `SlotKeyColumns` associated types take, whatever the number of columns.
pub fn columns_in(model: &Model, table: &syn::Path) -> TokenStream {
    let columns = model.keys.iter().map(|key| &key.column);
    quote!((#(#table::#columns,)*))
}

/// A compile error, at the `primary_key(..)` attribute, unless the key column is exactly the
/// primary key the table declares in `table!`: a key column that is not unique would turn
/// every one-row statement into a many-row one.
pub fn primary_key_check(model: &Model) -> TokenStream {
    let table = &model.table;
    let columns = model.keys.iter().map(|key| &key.column);
    // Diesel's form: the column for one, a tuple for several.
    let key = if model.keys.len() == 1 {
        quote!(#(#table::#columns)*)
    } else {
        quote!((#(#table::#columns),*))
    };
    let private = private();
    let check = quote! {
        const _: () = #private::primary_key_is::<#table::table, #key>();
    };
    // Every token at the attribute, so the error underlines it and nothing else.
    respan(check, model.key_span)
}

/// `tokens` with every span set to `span`.
pub fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}
