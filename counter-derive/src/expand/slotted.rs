//! A slotted counter (`slots = N, table = t`): its value is spread over N rows of a slot
//! table, so it has the operations that touch one slot or read the sum, and refuses the guarded
//! ones with a compile error that says why.

use super::docs::SlottedDocs;
use super::key;
use super::method::OneRow;
use super::tokens::{call, int, private, retry_const};
use crate::model::{AtomicFieldModel, Model, SlottedModel};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};
use syn::ext::IdentExt;

/// `impl Slotted<table::column> for Model` (and `SlottedDecrement` with `allow_decrement`),
/// then `increment_f`, `decrement_f` (with `allow_decrement`), `current_f`, `compact_f` and
/// `atomic_f` on the model, and the refused `decrement_f_if_at_least`, `take_f_up_to`,
/// `update_f_locked` and `transfer_f`.
pub fn expand(model: &Model, field: &AtomicFieldModel, slotted: &SlottedModel) -> TokenStream {
    let private = private();
    let ident = model.ident;
    let table = &model.table;
    let column = &field.column;
    let column_path = quote!(#table::#column);
    let slot_table = &slotted.table;
    let key_ty = key::ty(model);
    let slot_key_columns = key::columns_in(model, slot_table);
    let slots = int(&slotted.slots);
    let name = field.ident.unraw().to_string();
    let retry = retry_const(model, field);
    let key = key::param(model);
    let span = field.ident.span();
    let f = &field.ident;
    let increment = format_ident!("increment_{}", f, span = span);
    let decrement = format_ident!("decrement_{}", f, span = span);
    let current = format_ident!("current_{}", f, span = span);
    let compact = format_ident!("compact_{}", f, span = span);
    let atomic = format_ident!("atomic_{}", f, span = span);
    let docs = SlottedDocs::new(field, slotted, &key);
    let doc_atomic = docs.atomic();
    let where_clause = quote! {
        where
            C: #private::AtomicConnection,
            #ident: #private::SlottedOn<#column_path, #private::BackendOf<C>>,
    };
    let unit = call(quote!(()), quote!());
    let value = call(quote!(i64), quote!());
    let handle = quote!(#private::SlottedField::<#ident, #column_path>::new());
    let one_row = OneRow {
        key: &key,
        key_ty: &key_ty,
        handle: &handle,
        where_clause: &where_clause,
    };
    let i64 = quote!(i64);
    let by = Some(("by", &i64 as _));
    let increment = one_row.method(&docs.increment(), &increment, "increment", by, &unit);
    let decrement_impl = slotted.allow_decrement.then(|| {
        quote! {
            impl #private::SlottedDecrement<#column_path> for #ident {}
        }
    });
    let decrement_fn = slotted
        .allow_decrement
        .then(|| one_row.method(&docs.decrement(), &decrement, "decrement", by, &unit));
    let current = one_row.method(&docs.current(), &current, "current", None, &value);
    let compact = one_row.method(&docs.compact(), &compact, "compact", None, &value);
    let refused = refused(field, &key, &key_ty);
    quote! {
        impl #private::Slotted<#column_path> for #ident {
            type Key = #key_ty;
            type SlotKeyColumns = #slot_key_columns;
            type SlotColumn = #slot_table::slot;
            type CountColumn = #slot_table::count;
            const SLOTS: i32 = #slots;
            const NAME: &'static str = #name;
            #retry
        }

        #decrement_impl

        impl #ident {
            #increment

            #decrement_fn

            #current

            #compact

            #[doc = #doc_atomic]
            pub fn #atomic() -> #private::SlottedField<#ident, #column_path> {
                #private::SlottedField::new()
            }

            #refused
        }
    }
}

/// The guarded operations of a plain field, under the same names and parameters, each bound on
/// `C: NotOnSlotted<Op>`: a trait with no implementations whose `on_unimplemented` message
/// explains why a slotted counter cannot guard its sum. A missing method would only say "no
/// method named ..".
fn refused(field: &AtomicFieldModel, key: &Ident, key_ty: &TokenStream) -> TokenStream {
    let private = private();
    let span = field.ident.span();
    let f = &field.ident;
    let doc = SlottedDocs::refused();
    let plain_value = quote!(::core::result::Result<i64, #private::AtomicError>);
    let refused = |method: Ident, op: TokenStream, params: TokenStream, ok: TokenStream| {
        quote! {
            #[doc = #doc]
            #[allow(unused_variables)]
            pub fn #method<C>(conn: &mut C, #params) -> ::core::result::Result<#ok, #private::AtomicError>
            where
                C: #private::NotOnSlotted<#private::refused::#op>,
            {
                ::core::unreachable!("NotOnSlotted has no implementations")
            }
        }
    };
    let if_at_least = refused(
        format_ident!("decrement_{}_if_at_least", f, span = span),
        quote!(DecrementIfAtLeast),
        quote!(#key: #key_ty, n: i64),
        quote!(i64),
    );
    let take = refused(
        format_ident!("take_{}_up_to", f, span = span),
        quote!(TakeUpTo),
        quote!(#key: #key_ty, n: i64),
        quote!(i64),
    );
    let locked = refused(
        format_ident!("update_{}_locked", f, span = span),
        quote!(UpdateLocked),
        quote!(#key: #key_ty, op: fn(i64) -> #plain_value),
        quote!(i64),
    );
    let transfer = refused(
        format_ident!("transfer_{}", f, span = span),
        quote!(Transfer),
        quote!(from: #key_ty, to: #key_ty, amount: i64),
        quote!((i64, i64)),
    );
    let fill = refused(
        format_ident!("increment_{}_up_to", f, span = span),
        quote!(IncrementUpTo),
        quote!(#key: #key_ty, n: i64),
        quote!(i64),
    );
    let marks = [
        format_ident!("set_{}_max", f, span = span),
        format_ident!("set_{}_min", f, span = span),
    ]
    .map(|name| {
        refused(
            name,
            quote!(SetMaxMin),
            quote!(#key: #key_ty, v: i64),
            quote!(i64),
        )
    });
    let swap = refused(
        format_ident!("compare_and_set_{}", f, span = span),
        quote!(CompareAndSet),
        quote!(#key: #key_ty, expected: i64, new: i64),
        quote!(i64),
    );
    quote! {
        #if_at_least
        #take
        #fill
        #(#marks)*
        #swap
        #locked
        #transfer
    }
}
