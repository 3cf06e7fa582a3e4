//! The shape most generated methods share: one row, named by its key, and at most one amount,
//! handed on to the same method of counter-core's handle.
//!
//! `increment_*`, `decrement_*`, `decrement_*_if_at_least`, `take_*_up_to`,
//! `increment_*_up_to`, `set_*_max`, `set_*_min` and `current_*` of a plain field, and the operations of a slotted one, differ only in their names, docs, return
//! type and bounds; writing that shape once keeps their signatures from drifting apart.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, ToTokens};

/// What the one-row methods of one counter have in common.
pub struct OneRow<'a> {
    /// The key parameter (`key::param`).
    pub key: &'a Ident,
    /// Its type (`key::ty`).
    pub key_ty: &'a TokenStream,
    /// The counter-core handle the body calls, e.g. `Field::<Product, products::stock>::new()`.
    pub handle: &'a TokenStream,
    /// The bounds on `C` (and the model) every method of this counter carries.
    pub where_clause: &'a TokenStream,
}

impl OneRow<'_> {
    /// `pub fn name<'c, C>(conn: &'c mut C, key: K[, amount: T]) -> ret where .. {
    /// handle.op(conn, key[, amount]) }`, documented with `doc`.
    pub fn method(
        &self,
        doc: &str,
        name: &Ident,
        op: &str,
        amount: Option<(&str, &dyn ToTokens)>,
        ret: &TokenStream,
    ) -> TokenStream {
        let OneRow {
            key,
            key_ty,
            handle,
            where_clause,
        } = self;
        let op = Ident::new(op, Span::call_site());
        let (param, arg) = match amount {
            Some((amount, ty)) => {
                let amount = Ident::new(amount, Span::call_site());
                (quote!(, #amount: #ty), quote!(, #amount))
            }
            None => (TokenStream::new(), TokenStream::new()),
        };
        quote! {
            #[doc = #doc]
            pub fn #name<'c, C>(conn: &'c mut C, #key: #key_ty #param) -> #ret
            #where_clause
            {
                #handle.#op(conn, #key #arg)
            }
        }
    }
}
