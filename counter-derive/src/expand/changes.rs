//! Several counters of one row changed in one statement: with two or more plain fields, the
//! model gets `update_atomic`, which takes a tuple of changes of different columns.
//!
//! Slotted fields take no part: their value is not a column of the row.

use super::docs;
use super::key;
use super::tokens::{call, private, retry_policy};
use crate::model::{AtomicFieldModel, Model};
use proc_macro2::TokenStream;
use quote::quote;

/// `DistinctColumns` for every ordered pair of different plain fields, which is how
/// counter-core's `Changes` refuses one column changed twice at compile time, and
/// `update_atomic`. Nothing with fewer than two plain fields.
pub fn expand(model: &Model) -> TokenStream {
    let plain: Vec<&AtomicFieldModel> = model
        .fields
        .iter()
        .filter(|field| field.slotted.is_none())
        .collect();
    if plain.len() < 2 {
        return TokenStream::new();
    }
    let private = private();
    let ident = model.ident;
    let table = &model.table;
    let mut pairs = Vec::new();
    for (i, a) in plain.iter().enumerate() {
        for (j, b) in plain.iter().enumerate() {
            if i != j {
                let (a, b) = (&a.column, &b.column);
                pairs.push(
                    quote!(impl #private::DistinctColumns<#table::#a, #table::#b> for #ident {}),
                );
            }
        }
    }
    let key_ty = key::ty(model);
    let retry = retry_policy(model.retries.as_ref());
    let doc = docs::update_atomic(model, &plain);
    let call_update = call(quote!(Cs::Values), quote!(, Cs));
    quote! {
        #(#pairs)*

        impl #ident {
            #[doc = #doc]
            pub fn update_atomic<'c, C, Cs>(
                conn: &'c mut C,
                key: #key_ty,
                changes: Cs,
            ) -> #call_update
            where
                C: #private::AtomicConnection,
                Cs: #private::Changes<#ident, #private::BackendOf<C>, Key = #key_ty> + 'static,
            {
                #private::update_with(conn, #retry, key, changes)
            }
        }
    }
}
