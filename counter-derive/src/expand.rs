//! Stage 3: tokens from a validated model. Nothing here can fail.

use crate::attr::Int;
use crate::ctxt::Ctxt;
use crate::model::{AtomicFieldModel, Model};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, ToTokens};
use syn::ext::IdentExt;
use syn::{DeriveInput, Result};

/// Parses, validates and expands; on any mistake the `Err` holds all of
/// them and nothing else is emitted.
pub fn derive(input: &DeriveInput) -> Result<TokenStream> {
    let cx = Ctxt::new();
    let Some(model) = Model::from_syn(&cx, input) else {
        return Err(cx
            .check()
            .expect_err("Model::from_syn returned None without an error"));
    };
    cx.check()?;
    Ok(expand(&model))
}

fn expand(model: &Model) -> TokenStream {
    let fields = model.fields.iter().map(|field| expand_field(model, field));
    let primary_key = expand_primary_key_check(model);
    quote! {
        const _: () = {
            #primary_key
            #(#fields)*
        };
    }
}

/// A compile error, at the `primary_key(..)` attribute, unless the key column is exactly the
/// primary key the table declares in `table!`: a key column that is not unique would turn
/// every one-row statement into a many-row one.
fn expand_primary_key_check(model: &Model) -> TokenStream {
    let table = &model.table;
    let column = &model.key.column;
    let check = quote! {
        const _: () = ::counter_core::__private::primary_key_is::<#table::table, #table::#column>();
    };
    // Every token at the attribute, so the error underlines it and nothing else.
    respan(check, model.key.span)
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    use proc_macro2::{Group, TokenTree};
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

fn expand_field(model: &Model, field: &AtomicFieldModel) -> TokenStream {
    let private = quote!(::counter_core::__private);
    let ident = model.ident;
    let table = &model.table;
    let key_ty = model.key.ty;
    let key_column = &model.key.column;
    let value_ty = field.ty;
    let column = &field.column;
    let column_path = quote!(#table::#column);
    let name = field.ident.unraw().to_string();
    let min = option(field.min.as_ref());
    let max = option(field.max.as_ref());
    let retry = field
        .retries
        .as_ref()
        .or(model.retries.as_ref())
        .map(|retries| {
            let attempts = int(retries);
            quote! {
                const RETRY: #private::RetryPolicy =
                    #private::RetryPolicy::DEFAULT.with_max_attempts(#attempts);
            }
        });

    // The key parameter is named after the key field unless that clashes
    // with another parameter.
    let key = match model.key.ident.unraw().to_string().as_str() {
        "conn" | "by" | "n" | "op" => format_ident!("key"),
        _ => model.key.ident.clone(),
    };

    let span = field.ident.span();
    let increment = format_ident!("increment_{}", field.ident, span = span);
    let decrement = format_ident!("decrement_{}", field.ident, span = span);
    let decrement_if_at_least = format_ident!("decrement_{}_if_at_least", field.ident, span = span);
    let take_up_to = format_ident!("take_{}_up_to", field.ident, span = span);
    let update_locked = format_ident!("update_{}_locked", field.ident, span = span);
    let transfer = format_ident!("transfer_{}", field.ident, span = span);
    let atomic = format_ident!("atomic_{}", field.ident, span = span);
    let current = format_ident!("current_{}", field.ident, span = span);

    let docs = Docs::new(model, field, &key);
    let doc_increment = docs.increment("adds `by` to", "+");
    let doc_decrement = docs.increment("subtracts `by` from", "-");
    let doc_decrement_if_at_least = docs.decrement_if_at_least();
    let doc_take_up_to = docs.take_up_to();
    let doc_update_locked = docs.update_locked(field.retries.as_ref().or(model.retries.as_ref()));
    let doc_transfer = docs.transfer();
    let doc_atomic = docs.atomic(&atomic);
    let doc_current = docs.current();

    let result = |ok: TokenStream| quote!(::core::result::Result<#ok, #private::AtomicError>);
    let result_value = result(quote!(#value_ty));
    let where_clause = quote! {
        where
            C: #private::AtomicConnection,
            #ident: #private::AtomicFieldOn<#column_path, #private::BackendOf<C>>,
    };
    let handle = quote!(#private::Field::<#ident, #column_path>::new());

    quote! {
        impl #private::AtomicField<#column_path> for #ident {
            type Key = #key_ty;
            type KeyColumn = #table::#key_column;
            type Value = #value_ty;
            const MIN: ::core::option::Option<#value_ty> = #min;
            const MAX: ::core::option::Option<#value_ty> = #max;
            #retry
            const NAME: &'static str = #name;
        }

        impl #ident {
            #[doc = #doc_increment]
            pub fn #increment<C>(conn: &mut C, #key: #key_ty, by: #value_ty) -> #result_value
            #where_clause
            {
                #handle.increment(conn, #key, by)
            }

            #[doc = #doc_decrement]
            pub fn #decrement<C>(conn: &mut C, #key: #key_ty, by: #value_ty) -> #result_value
            #where_clause
            {
                #handle.decrement(conn, #key, by)
            }

            #[doc = #doc_decrement_if_at_least]
            pub fn #decrement_if_at_least<C>(conn: &mut C, #key: #key_ty, n: #value_ty) -> #result_value
            #where_clause
            {
                #handle.decrement_if_at_least(conn, #key, n)
            }

            #[doc = #doc_take_up_to]
            pub fn #take_up_to<C>(conn: &mut C, #key: #key_ty, n: #value_ty) -> #result_value
            #where_clause
            {
                #handle.take_up_to(conn, #key, n)
            }

            #[doc = #doc_update_locked]
            pub fn #update_locked<C, F>(conn: &mut C, #key: #key_ty, op: F) -> #result_value
            #where_clause
                F: ::core::ops::FnMut(#value_ty) -> #result_value,
            {
                #handle.update_locked(conn, #key, op)
            }

            #[doc = #doc_transfer]
            pub fn #transfer<C>(
                conn: &mut C,
                from: #key_ty,
                to: #key_ty,
                amount: #value_ty,
            ) -> ::core::result::Result<(#value_ty, #value_ty), #private::AtomicError>
            #where_clause
            {
                #handle.transfer(conn, from, to, amount)
            }

            #[doc = #doc_current]
            pub fn #current<C>(conn: &mut C, #key: #key_ty) -> #result_value
            #where_clause
            {
                #handle.current(conn, #key)
            }

            #[doc = #doc_atomic]
            pub fn #atomic() -> #private::Field<#ident, #column_path> {
                #private::Field::new()
            }
        }
    }
}

/// `Some(<literal>)` with the user's span, or `None`.
fn option(bound: Option<&Int>) -> TokenStream {
    match bound {
        Some(bound) => {
            let value = int(bound);
            quote!(::core::option::Option::Some(#value))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// The value exactly as the user wrote it (`5`, `-1`, `1_000u32`): a
/// validated integer literal, possibly negated, typed by context and
/// keeping the user's spans.
fn int(int: &Int) -> TokenStream {
    int.expr.to_token_stream()
}

/// The text of the generated doc comments (kept in line with the docs of
/// `counter_core::Field`).
struct Docs {
    /// "`stock` (column `products.stock`, bounds 0..=1000)"
    subject: String,
    /// `products`
    table: String,
    /// `stock`
    column: String,
    /// `id` (the key column)
    key_column: String,
    /// the key parameter
    key: String,
    /// `Product`
    ident: String,
    /// what `OutOfRange` guards: "0..=1000", "the range of `i32`", ...
    range: String,
    /// `take_*_up_to` never goes below this: the minimum, or 0.
    floor: String,
}

impl Docs {
    fn new(model: &Model, field: &AtomicFieldModel, key: &Ident) -> Self {
        let table = model
            .table
            .segments
            .last()
            .map_or_else(String::new, |seg| seg.ident.unraw().to_string());
        let column = field.column.unraw().to_string();
        let (min, max) = (field.min.as_ref(), field.max.as_ref());
        let bounds = match (min, max) {
            (Some(min), Some(max)) => format!("bounds {}..={}", min.value, max.value),
            (Some(min), None) => format!("min {}", min.value),
            (None, Some(max)) => format!("max {}", max.value),
            (None, None) => "no bounds".to_owned(),
        };
        let range = match (min, max) {
            (Some(min), Some(max)) => format!("{}..={}", min.value, max.value),
            (Some(min), None) => format!("{}..", min.value),
            (None, Some(max)) => format!("..={}", max.value),
            (None, None) => format!("the range of `{}`", field.value.name()),
        };
        Docs {
            subject: format!(
                "`{}` (column `{table}.{column}`, {bounds})",
                field.ident.unraw()
            ),
            table,
            column,
            key_column: model.key.column.unraw().to_string(),
            key: key.unraw().to_string(),
            ident: model.ident.unraw().to_string(),
            range,
            floor: min.map_or_else(|| "0".to_owned(), |min| min.value.to_string()),
        }
    }

    /// `current_*`.
    fn current(&self) -> String {
        format!(
            " The current value of {} in the row whose `{}` is `{}`: one plain `SELECT`, no \
             lock, for display (it may be stale when you act on it).\n\n # Errors\n \
             `AtomicError::NotFound` if no row has that key.",
            self.subject, self.key_column, self.key
        )
    }

    /// `increment_*` / `decrement_*`.
    fn increment(&self, verb: &str, op: &str) -> String {
        let Docs {
            subject,
            table,
            column: c,
            key_column,
            key,
            range,
            ..
        } = self;
        format!(
            " Atomically {verb} {subject} in the row whose `{key_column}` is `{key}`; returns \
             the new value.\n\n One statement, no lost updates: `UPDATE {table} SET {c} = {c} \
             {op} ? WHERE {key_column} = ?`, refused if the result would leave {range}.\n\n \
             # Errors\n `AtomicError::NegativeAmount` if `by < 0`, `NotFound` if no row has \
             that key, `OutOfRange` (row unchanged)."
        )
    }

    fn decrement_if_at_least(&self) -> String {
        let Docs {
            subject,
            table,
            column: c,
            key_column,
            ..
        } = self;
        format!(
            " Atomically subtracts `n` from {subject} only if it is at least `n`: the sale \
             that cannot oversell. Returns the new value.\n\n One statement: `UPDATE {table} \
             SET {c} = {c} - ? WHERE {key_column} = ? AND {c} >= ?`.\n\n # Errors\n \
             `AtomicError::Insufficient` if it is below `n`, `OutOfRange`, `NegativeAmount`, \
             `NotFound`; the row is unchanged on every error."
        )
    }

    fn take_up_to(&self) -> String {
        let Docs {
            subject,
            column: c,
            key_column,
            key,
            floor,
            ..
        } = self;
        let available = if floor == "0" {
            c.clone()
        } else {
            format!("{c} - {floor}")
        };
        format!(
            " Atomically takes `min(n, {available})` from {subject}: \"sell what is \
             left\". Returns the amount taken, 0 when nothing is left.\n\n Concurrent takers \
             of the row whose `{key_column}` is `{key}` never take more than there is.\n\n # \
             Errors\n `AtomicError::NegativeAmount` if `n < 0`, `NotFound` if no row has that \
             key."
        )
    }

    fn update_locked(&self, retries: Option<&Int>) -> String {
        let Docs {
            subject,
            table,
            column: c,
            key_column,
            range,
            ..
        } = self;
        let retry = match retries {
            Some(retries) => format!("up to {} attempts", retries.value),
            None => "the default `RetryPolicy`".to_owned(),
        };
        format!(
            " Row-locked read-modify-write: sets {subject} to `op(current)` and returns the new \
             value.\n\n In one transaction: `SELECT {c} FROM {table} WHERE {key_column} = ? FOR \
             UPDATE` (or the backend's equivalent), then `UPDATE`. A conflict re-runs the \
             transaction, `op` included ({retry}); if `op` panics, the transaction is rolled \
             back and the panic resumed.\n\n # Errors\n `op`'s own error, \
             `AtomicError::NotFound`, `OutOfRange` if the new value leaves {range}."
        )
    }

    fn transfer(&self) -> String {
        let Docs { subject, .. } = self;
        format!(
            " Moves `amount` of {subject} from row `from` to row `to` in one transaction (rows \
             locked in the order the database sorts their keys); returns the new values \
             `(from, to)`.\n\n # Errors\n `AtomicError::Insufficient` if `from` would go below \
             its lower bound, `OutOfRange` if `to` would pass its maximum, `SameRow` if both keys name \
             one row as the database compares them, `NegativeAmount`, `NotFound`; nothing is \
             written on any error."
        )
    }

    fn atomic(&self, method: &Ident) -> String {
        let Docs {
            subject,
            ident,
            key,
            ..
        } = self;
        format!(
            " The handle on {subject}, for per-call options, e.g.\n \
             `{ident}::{method}().retry(policy).lock(LockMode::NoWait).update_locked(conn, \
             {key}, op)`."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn product() -> DeriveInput {
        parse_quote! {
            #[derive(Queryable, Selectable, Identifiable, AtomicField)]
            #[diesel(table_name = products)]
            #[diesel(check_for_backend(diesel::sqlite::Sqlite))]
            #[atomic(retries = 5)]
            pub struct Product {
                pub id: i64,
                pub name: String,
                #[atomic(min = 0, max = 1000)]
                pub stock: i32,
                #[atomic]
                #[diesel(column_name = units_sold)]
                pub sold: i64,
            }
        }
    }

    #[test]
    fn expansion_parses() {
        let tokens = derive(&product()).unwrap();
        // `cargo test -p counter-derive -- --nocapture expansion_parses | rustfmt`
        // shows the expansion.
        println!("{tokens}");
        let file: syn::File = syn::parse2(tokens.clone()).unwrap();
        assert_eq!(file.items.len(), 1);
        let text = tokens.to_string();
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(compact.contains("AtomicField<products::stock>forProduct"));
        assert!(compact.contains("AtomicField<products::units_sold>forProduct"));
        assert!(compact.contains("typeKeyColumn=products::id;"));
        assert!(compact
            .contains("constMIN:::core::option::Option<i32>=::core::option::Option::Some(0);"));
        assert!(compact.contains("with_max_attempts(5)"));
        assert!(compact.contains("constNAME:&'staticstr=\"sold\";"));
        assert!(text.contains("fn take_stock_up_to"));
        assert!(text.contains("fn increment_sold"));
        assert!(text.contains("fn atomic_sold"));
        assert!(text.contains("fn current_stock"));
    }

    #[test]
    fn negative_bounds_and_no_retry() {
        let input: DeriveInput = parse_quote! {
            struct Account {
                #[diesel(column_name = account_id)]
                by: i64,
                #[atomic(min = -500)]
                balance: i64,
            }
        };
        let input = DeriveInput {
            attrs: vec![parse_quote!(#[diesel(primary_key(account_id))])],
            ..input
        };
        let tokens = derive(&input).unwrap();
        syn::parse2::<syn::File>(tokens.clone()).unwrap();
        let compact: String = tokens
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        assert!(compact.contains("Some(-500)"));
        assert!(compact.contains("AtomicField<accounts::balance>forAccount"));
        assert!(compact.contains("typeKeyColumn=accounts::account_id;"));
        assert!(
            compact.contains("constMAX:::core::option::Option<i64>=::core::option::Option::None;")
        );
        assert!(!compact.contains("RETRY"));
        // `by` would clash with the `by` parameter.
        assert!(compact.contains("key:i64,by:i64"));
    }

    #[test]
    fn errors_are_all_reported() {
        let input: DeriveInput = parse_quote! {
            #[diesel(primary_key(a, b))]
            struct Thing<T> {
                a: T,
                #[atomic(min = 5, max = 1, retries = 0, step = 2)]
                x: i32,
                #[atomic]
                y: Option<i32>,
                #[atomic(min = -1)]
                z: u32,
            }
        };
        let err = derive(&input).unwrap_err();
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 7, "{messages:#?}");
    }
}
