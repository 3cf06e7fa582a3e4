//! A plain counter field: its `AtomicField` impl, which is all counter-core needs, and the
//! methods on the model that call counter-core's `Field` handle with it.

use super::docs::FieldDocs;
use super::key;
use super::method::OneRow;
use super::tokens::{call, option, private, retries, retry_const, touch_check, touch_const};
use crate::model::{AtomicFieldModel, Model};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;

/// `impl AtomicField<table::column> for Model`, then `increment_f`, `decrement_f`,
/// `decrement_f_if_at_least`, `take_f_up_to`, `increment_f_up_to`, `set_f_max`, `set_f_min`,
/// `compare_and_set_f`, `update_f_locked`, `transfer_f`,
/// `increment_f_or_insert(_all)`, the set operations `increment_f_many`, `decrement_f_many`
/// and `decrement_f_if_at_least_many`, `current_f` and `atomic_f` on the model.
pub fn expand(model: &Model, field: &AtomicFieldModel) -> TokenStream {
    let private = private();
    let ident = model.ident;
    let table = &model.table;
    let key_columns = key::columns_in(model, table);
    let key_ty = key::ty(model);
    let value_ty = field.ty;
    let column = &field.column;
    let column_path = quote!(#table::#column);
    let name = field.ident.unraw().to_string();
    let min = option(field.min.as_ref());
    let max = option(field.max.as_ref());
    let retry = retry_const(model, field);
    let touch = touch_const(model, field);
    let touch_check = touch_check(model, field);

    let key = key::param(model);

    // The method names carry the field's span, so "no method named .." and go-to-definition
    // point at the field.
    let span = field.ident.span();
    let increment = format_ident!("increment_{}", field.ident, span = span);
    let decrement = format_ident!("decrement_{}", field.ident, span = span);
    let decrement_if_at_least = format_ident!("decrement_{}_if_at_least", field.ident, span = span);
    let take_up_to = format_ident!("take_{}_up_to", field.ident, span = span);
    let increment_up_to = format_ident!("increment_{}_up_to", field.ident, span = span);
    let set_max = format_ident!("set_{}_max", field.ident, span = span);
    let set_min = format_ident!("set_{}_min", field.ident, span = span);
    let compare_and_set = format_ident!("compare_and_set_{}", field.ident, span = span);
    let update_locked = format_ident!("update_{}_locked", field.ident, span = span);
    let transfer = format_ident!("transfer_{}", field.ident, span = span);
    let atomic = format_ident!("atomic_{}", field.ident, span = span);
    let current = format_ident!("current_{}", field.ident, span = span);
    let or_insert = format_ident!("increment_{}_or_insert", field.ident, span = span);
    let or_insert_all = format_ident!("increment_{}_or_insert_all", field.ident, span = span);
    let increment_many = format_ident!("increment_{}_many", field.ident, span = span);
    let decrement_many = format_ident!("decrement_{}_many", field.ident, span = span);
    let at_least_many = format_ident!("decrement_{}_if_at_least_many", field.ident, span = span);

    let docs = FieldDocs::new(model, field, &key);
    let doc_update_locked = docs.update_locked(retries(model, field));
    let doc_transfer = docs.transfer();
    let doc_compare_and_set = docs.compare_and_set();
    let doc_atomic = docs.atomic(&atomic);
    let doc_or_insert = docs.or_insert();
    let doc_or_insert_all = docs.or_insert_all(&or_insert);

    let result_value = quote!(::core::result::Result<#value_ty, #private::AtomicError>);
    let call_value = call(quote!(#value_ty), quote!());
    let where_clause = quote! {
        where
            C: #private::AtomicConnection,
            #ident: #private::AtomicFieldOn<#column_path, #private::BackendOf<C>>,
    };
    let call_locked = call(quote!(#value_ty), quote!(, F));
    let call_pair = call(quote!((#value_ty, #value_ty)), quote!());
    let call_or_insert = call(quote!(#value_ty), quote!(, R));
    let call_or_insert_all = call(
        quote!(::std::vec::Vec<(#key_ty, #value_ty)>),
        quote!(, I, F, R),
    );
    let handle = quote!(#private::Field::<#ident, #column_path>::new());

    let one_row = OneRow {
        key: &key,
        key_ty: &key_ty,
        handle: &handle,
        where_clause: &where_clause,
    };
    // The operations of one row and one value, in the order they appear on the model.
    let by_amount = [
        (
            docs.increment("adds `by` to", "+"),
            &increment,
            "increment",
            "by",
        ),
        (
            docs.increment("subtracts `by` from", "-"),
            &decrement,
            "decrement",
            "by",
        ),
        (
            docs.decrement_if_at_least(),
            &decrement_if_at_least,
            "decrement_if_at_least",
            "n",
        ),
        (docs.take_up_to(), &take_up_to, "take_up_to", "n"),
        (
            docs.increment_up_to(),
            &increment_up_to,
            "increment_up_to",
            "n",
        ),
        (docs.water_mark(true), &set_max, "set_max", "v"),
        (docs.water_mark(false), &set_min, "set_min", "v"),
    ]
    .map(|(doc, name, op, amount)| {
        one_row.method(&doc, name, op, Some((amount, &value_ty)), &call_value)
    });
    let current = one_row.method(&docs.current(), &current, "current", None, &call_value);
    let call_many = call(quote!(::std::vec::Vec<(#key_ty, #value_ty)>), quote!(, I));
    // The set operations: every row of the set or none.
    let many = [
        (
            docs.many("adds each amount to", "increment"),
            &increment_many,
            "increment_many",
        ),
        (
            docs.many("subtracts each amount from", "decrement"),
            &decrement_many,
            "decrement_many",
        ),
        (
            docs.many(
                "takes each amount, only where the row holds that much, from",
                "decrement_if_at_least",
            ),
            &at_least_many,
            "decrement_if_at_least_many",
        ),
    ]
    .map(|(doc, name, op)| {
        let op = syn::Ident::new(op, proc_macro2::Span::call_site());
        quote! {
            #[doc = #doc]
            pub fn #name<'c, C, I>(conn: &'c mut C, pairs: I) -> #call_many
            #where_clause
                I: ::core::iter::IntoIterator<Item = (#key_ty, #value_ty)>,
            {
                #handle.#op(conn, pairs)
            }
        }
    });

    quote! {
        impl #private::AtomicField<#column_path> for #ident {
            type Key = #key_ty;
            type KeyColumns = #key_columns;
            type Value = #value_ty;
            const MIN: ::core::option::Option<#value_ty> = #min;
            const MAX: ::core::option::Option<#value_ty> = #max;
            #retry
            const NAME: &'static str = #name;
            #touch
        }

        #touch_check

        impl #ident {
            #(#by_amount)*

            #[doc = #doc_update_locked]
            pub fn #update_locked<'c, C, F>(conn: &'c mut C, #key: #key_ty, op: F) -> #call_locked
            #where_clause
                F: ::core::ops::FnMut(#value_ty) -> #result_value,
            {
                #handle.update_locked(conn, #key, op)
            }

            #[doc = #doc_compare_and_set]
            pub fn #compare_and_set<'c, C>(
                conn: &'c mut C,
                #key: #key_ty,
                expected: #value_ty,
                new: #value_ty,
            ) -> #call_value
            #where_clause
            {
                #handle.compare_and_set(conn, #key, expected, new)
            }

            #[doc = #doc_transfer]
            pub fn #transfer<'c, C>(
                conn: &'c mut C,
                from: #key_ty,
                to: #key_ty,
                amount: #value_ty,
            ) -> #call_pair
            #where_clause
            {
                #handle.transfer(conn, from, to, amount)
            }

            #[doc = #doc_or_insert]
            pub fn #or_insert<'c, C, R>(conn: &'c mut C, row: R, by: #value_ty) -> #call_or_insert
            #where_clause
                R: #private::UpsertRow<#ident, #column_path, #private::BackendOf<C>>,
            {
                #handle.increment_or_insert(conn, row, by)
            }

            #[doc = #doc_or_insert_all]
            pub fn #or_insert_all<'c, C, I, F, R>(
                conn: &'c mut C,
                amounts: I,
                new_row: F,
            ) -> #call_or_insert_all
            #where_clause
                #key_ty: ::core::cmp::Ord + ::core::clone::Clone,
                I: ::core::iter::IntoIterator<Item = (#key_ty, #value_ty)>,
                F: ::core::ops::FnMut(&#key_ty, #value_ty) -> R,
                R: #private::NewRow<#ident, #column_path, #private::BackendOf<C>>,
            {
                #handle.increment_or_insert_all(conn, amounts, new_row)
            }

            #(#many)*

            #current

            #[doc = #doc_atomic]
            pub fn #atomic() -> #private::Field<#ident, #column_path> {
                #private::Field::new()
            }
        }
    }
}
