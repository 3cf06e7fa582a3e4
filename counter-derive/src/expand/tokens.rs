//! The small pieces every expansion emits: the path to the runtime, the user's literals, the
//! retry policy, and the return type of a generated operation.
//!
//! Kept in one place so that a plain field, a slotted one and `update_atomic` spell them the
//! same way: a change here changes every generated method at once.

use crate::attr::Int;
use crate::model::{AtomicFieldModel, Model};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;

/// The runtime as generated code names it: a doc-hidden re-export, so the expansion compiles
/// whatever the user renamed `counter_core` to and whatever they have in scope.
pub fn private() -> TokenStream {
    quote!(::counter_core::__private)
}

/// The value exactly as the user wrote it (`5`, `-1`, `1_000u32`): a validated integer
/// literal, possibly negated, typed by context and keeping the user's spans.
pub fn int(int: &Int) -> TokenStream {
    int.expr.to_token_stream()
}

/// `Some(<literal>)` with the user's span, or `None`: a bound as a `const`.
pub fn option(bound: Option<&Int>) -> TokenStream {
    match bound {
        Some(bound) if bound.decimals.is_some() => {
            // A `Decimal` field's bound, in `10^-S` units, checked against `P` and `S`.
            let private = private();
            let units = proc_macro2::Literal::i128_suffixed(bound.value);
            let span = bound.expr.span();
            quote_spanned!(span=> ::core::option::Option::Some(#private::decimal_bound(#units)))
        }
        Some(bound) => {
            let value = int(bound);
            quote!(::core::option::Option::Some(#value))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// The `retries = N` that applies to `field`: its own, else the struct's.
pub fn retries<'m>(model: &'m Model, field: &'m AtomicFieldModel) -> Option<&'m Int> {
    field.retries.as_ref().or(model.retries.as_ref())
}

/// The retry policy an expansion passes to counter-core: the default one, with its attempts
/// replaced by `retries = N` when given.
pub fn retry_policy(retries: Option<&Int>) -> TokenStream {
    let private = private();
    match retries {
        Some(retries) => {
            let attempts = int(retries);
            quote!(#private::RetryPolicy::DEFAULT.with_max_attempts(#attempts))
        }
        None => quote!(#private::RetryPolicy::DEFAULT),
    }
}

/// `const RETRY` from the field's or the struct's `retries = N`, if any; without it the trait's
/// default applies.
pub fn retry_const(model: &Model, field: &AtomicFieldModel) -> Option<TokenStream> {
    let private = private();
    let policy = retry_policy(Some(retries(model, field)?));
    Some(quote! {
        const RETRY: #private::RetryPolicy = #policy;
    })
}

/// `const TOUCH` from `touch = column`: the column's name as its `table!` spells it, so a column
/// the table lacks is a compile error at the attribute; without it the trait's `None` applies.
pub fn touch_const(model: &Model, field: &AtomicFieldModel) -> Option<TokenStream> {
    let private = private();
    let table = &model.table;
    let column = &field.touch.as_ref()?.column;
    let name = quote::quote_spanned!(column.span()=> <#table::#column as #private::Column>::NAME);
    Some(quote! {
        const TOUCH: ::core::option::Option<&'static str> = ::core::option::Option::Some(#name);
    })
}

/// A compile-time check that `touch = column` names a timestamp column (`TimestampColumn`),
/// spanned at the column; nothing without `touch`.
pub fn touch_check(model: &Model, field: &AtomicFieldModel) -> Option<TokenStream> {
    let private = private();
    let table = &model.table;
    let column = &field.touch.as_ref()?.column;
    let sql_type = quote::quote_spanned!(column.span()=>
        <#table::#column as #private::Expression>::SqlType
    );
    let check = quote::quote_spanned!(column.span()=> touched::<#sql_type>);
    Some(quote! {
        const _: () = {
            fn touched<T: #private::TimestampColumn>() {}
            let _ = #check;
        };
    })
}

/// The return type of a generated operation on connection `C` (lifetime `'c`) with result
/// `Result<ok, AtomicError>`: the result itself on a blocking connection, a future of it on an
/// async one (`counter_core::Out`). `params` lists the method's type parameters after `C`
/// (`, F`), which the future captures.
pub fn call(ok: TokenStream, params: TokenStream) -> TokenStream {
    let private = private();
    quote! {
        #private::Out<
            C,
            impl ::core::future::Future<
                Output = ::core::result::Result<#ok, #private::AtomicError>,
            > + use<'c, C #params>,
        >
    }
}
