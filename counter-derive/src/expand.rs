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
    let several = expand_several_columns(model);
    quote! {
        const _: () = {
            #primary_key
            #(#fields)*
            #several
        };
    }
}

/// With two or more atomic fields: `DistinctColumns` for every ordered pair of different
/// ones, and `update_atomic`, which changes several of them in one statement.
fn expand_several_columns(model: &Model) -> TokenStream {
    let plain: Vec<&AtomicFieldModel> = model
        .fields
        .iter()
        .filter(|field| field.slotted.is_none())
        .collect();
    if plain.len() < 2 {
        return TokenStream::new();
    }
    let private = quote!(::counter_core::__private);
    let ident = model.ident;
    let table = &model.table;
    let columns: Vec<_> = plain.iter().map(|field| &field.column).collect();
    let mut pairs = Vec::new();
    for (i, a) in columns.iter().enumerate() {
        for (j, b) in columns.iter().enumerate() {
            if i != j {
                pairs.push(
                    quote!(impl #private::DistinctColumns<#table::#a, #table::#b> for #ident {}),
                );
            }
        }
    }
    let key_ty = key_type(model);
    let retry = match &model.retries {
        Some(retries) => {
            let attempts = int(retries);
            quote!(#private::RetryPolicy::DEFAULT.with_max_attempts(#attempts))
        }
        None => quote!(#private::RetryPolicy::DEFAULT),
    };
    let names: Vec<String> = plain
        .iter()
        .map(|field| format!("`{}`", field.ident.unraw()))
        .collect();
    let doc = format!(
        " Changes several of {} in the row with key `key` in one guarded statement: every \
         change applies, or none does. `changes` is a tuple of 2 or 3 changes of different \
         columns, e.g. `({table}::{a}.decrement_if_at_least(n), {table}::{b}.increment(n))` \
         (methods of `counter_core::ChangeColumn`); returns their new values in that order.\n\n \
         `UPDATE … SET a = a - ?, b = b + ? WHERE <key> AND a >= ? AND b <= ? RETURNING a, b` \
         (MySQL: the values are captured into session variables and read back).\n\n # Errors\n \
         `AtomicError::InColumn` naming the field whose guard refused (`Insufficient` or \
         `OutOfRange` inside), `NegativeAmount`, `NotFound`; the row is unchanged on every error.",
        names.join(", "),
        table = model
            .table
            .segments
            .last()
            .map_or_else(String::new, |seg| seg.ident.unraw().to_string()),
        a = columns[0].unraw(),
        b = columns[1].unraw(),
    );
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

/// A slotted counter (`slots = N, table = t`): its `Slotted` impl, the operations it has, and
/// the guarded ones it refuses with a compile error that says why.
fn expand_slotted_field(
    model: &Model,
    field: &AtomicFieldModel,
    slotted: &crate::model::SlottedModel,
) -> TokenStream {
    let private = quote!(::counter_core::__private);
    let ident = model.ident;
    let table = &model.table;
    let column = &field.column;
    let column_path = quote!(#table::#column);
    let slot_table = &slotted.table;
    let key_ty = key_type(model);
    let key_columns = model.keys.iter().map(|key| &key.column);
    let slot_key_columns = quote!((#(#slot_table::#key_columns,)*));
    let slots = int(&slotted.slots);
    let name = field.ident.unraw().to_string();
    let retry = retry_const(model, field);
    let key = key_param(model);
    let span = field.ident.span();
    let f = &field.ident;
    let increment = format_ident!("increment_{}", f, span = span);
    let decrement = format_ident!("decrement_{}", f, span = span);
    let current = format_ident!("current_{}", f, span = span);
    let compact = format_ident!("compact_{}", f, span = span);
    let atomic = format_ident!("atomic_{}", f, span = span);
    let if_at_least = format_ident!("decrement_{}_if_at_least", f, span = span);
    let take_up_to = format_ident!("take_{}_up_to", f, span = span);
    let update_locked = format_ident!("update_{}_locked", f, span = span);
    let transfer = format_ident!("transfer_{}", f, span = span);
    let subject = format!(
        "`{}` (slotted over {} rows of `{}`)",
        f.unraw(),
        slotted.slots.value,
        slot_table
            .segments
            .last()
            .map_or_else(String::new, |seg| seg.ident.unraw().to_string())
    );
    let doc_increment = format!(
        " Adds `by` to {subject} for `{key}`: one upsert of a random slot, no lock on the \
         others.\n\n # Errors\n `AtomicError::NegativeAmount`."
    );
    let doc_decrement = format!(
        " Subtracts `by` from {subject} for `{key}` (a random slot); the sum may go below \
         zero (`allow_decrement`).\n\n # Errors\n `AtomicError::NegativeAmount`."
    );
    let doc_current = format!(
        " The value of {subject} for `{key}`: the sum of its slots, 0 when it has none (one \
         `SELECT SUM`)."
    );
    let doc_compact = format!(
        " Folds every slot of {subject} for `{key}` into slot 0, in one transaction with the \
         slots locked in slot order; returns the value. Increments that arrive meanwhile are \
         kept."
    );
    let doc_atomic = format!(" The handle on {subject}, for a per-call retry policy.");
    let doc_refused = " Not available on a slotted counter: it needs the counter under a \
         bound, and a slotted counter's value (the sum of its slots) is only stable with every \
         slot locked. Calling it does not compile."
        .to_owned();
    let where_clause = quote! {
        where
            C: #private::AtomicConnection,
            #ident: #private::SlottedOn<#column_path, #private::BackendOf<C>>,
    };
    let unit = call(quote!(()), quote!());
    let value = call(quote!(i64), quote!());
    let plain_value = quote!(::core::result::Result<i64, #private::AtomicError>);
    let handle = quote!(#private::SlottedField::<#ident, #column_path>::new());
    let decrement_impl = slotted.allow_decrement.then(|| {
        quote! {
            impl #private::SlottedDecrement<#column_path> for #ident {}
        }
    });
    let decrement_fn = slotted.allow_decrement.then(|| {
        quote! {
            #[doc = #doc_decrement]
            pub fn #decrement<'c, C>(conn: &'c mut C, #key: #key_ty, by: i64) -> #unit
            #where_clause
            {
                #handle.decrement(conn, #key, by)
            }
        }
    });
    let refused = |method: &Ident, op: TokenStream, params: TokenStream, ok: TokenStream| {
        quote! {
            #[doc = #doc_refused]
            #[allow(unused_variables)]
            pub fn #method<C>(conn: &mut C, #params) -> ::core::result::Result<#ok, #private::AtomicError>
            where
                C: #private::NotOnSlotted<#private::refused::#op>,
            {
                ::core::unreachable!("NotOnSlotted has no implementations")
            }
        }
    };
    let refused_if_at_least = refused(
        &if_at_least,
        quote!(DecrementIfAtLeast),
        quote!(#key: #key_ty, n: i64),
        quote!(i64),
    );
    let refused_take = refused(
        &take_up_to,
        quote!(TakeUpTo),
        quote!(#key: #key_ty, n: i64),
        quote!(i64),
    );
    let refused_locked = refused(
        &update_locked,
        quote!(UpdateLocked),
        quote!(#key: #key_ty, op: fn(i64) -> #plain_value),
        quote!(i64),
    );
    let refused_transfer = refused(
        &transfer,
        quote!(Transfer),
        quote!(from: #key_ty, to: #key_ty, amount: i64),
        quote!((i64, i64)),
    );
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
            #[doc = #doc_increment]
            pub fn #increment<'c, C>(conn: &'c mut C, #key: #key_ty, by: i64) -> #unit
            #where_clause
            {
                #handle.increment(conn, #key, by)
            }

            #decrement_fn

            #[doc = #doc_current]
            pub fn #current<'c, C>(conn: &'c mut C, #key: #key_ty) -> #value
            #where_clause
            {
                #handle.current(conn, #key)
            }

            #[doc = #doc_compact]
            pub fn #compact<'c, C>(conn: &'c mut C, #key: #key_ty) -> #value
            #where_clause
            {
                #handle.compact(conn, #key)
            }

            #[doc = #doc_atomic]
            pub fn #atomic() -> #private::SlottedField<#ident, #column_path> {
                #private::SlottedField::new()
            }

            #refused_if_at_least
            #refused_take
            #refused_locked
            #refused_transfer
        }
    }
}

/// `const RETRY` from the field's or the struct's `retries = N`, if any.
fn retry_const(model: &Model, field: &AtomicFieldModel) -> Option<TokenStream> {
    let private = quote!(::counter_core::__private);
    let retries = field.retries.as_ref().or(model.retries.as_ref())?;
    let attempts = int(retries);
    Some(quote! {
        const RETRY: #private::RetryPolicy =
            #private::RetryPolicy::DEFAULT.with_max_attempts(#attempts);
    })
}

/// The key parameter of the generated functions: named after a single key field unless that
/// clashes with another parameter; a composite key is a tuple named `key`.
fn key_param(model: &Model) -> Ident {
    match model.keys.as_slice() {
        [key] => match key.ident.unraw().to_string().as_str() {
            "conn" | "by" | "n" | "op" | "from" | "to" | "amount" | "row" | "rows" | "changes"
            | "new_row" | "amounts" => format_ident!("key"),
            _ => key.ident.clone(),
        },
        _ => format_ident!("key"),
    }
}

/// The key's Rust type: the field's type for one key column, a tuple for several.
fn key_type(model: &Model) -> TokenStream {
    if let [key] = model.keys.as_slice() {
        key.ty.to_token_stream()
    } else {
        let tys = model.keys.iter().map(|key| key.ty);
        quote!((#(#tys),*))
    }
}

/// A compile error, at the `primary_key(..)` attribute, unless the key column is exactly the
/// primary key the table declares in `table!`: a key column that is not unique would turn
/// every one-row statement into a many-row one.
fn expand_primary_key_check(model: &Model) -> TokenStream {
    let table = &model.table;
    let columns = model.keys.iter().map(|key| &key.column);
    // Diesel's form: the column for one, a tuple for several.
    let key = if model.keys.len() == 1 {
        quote!(#(#table::#columns)*)
    } else {
        quote!((#(#table::#columns),*))
    };
    let check = quote! {
        const _: () = ::counter_core::__private::primary_key_is::<#table::table, #key>();
    };
    // Every token at the attribute, so the error underlines it and nothing else.
    respan(check, model.key_span)
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
    if let Some(slotted) = &field.slotted {
        return expand_slotted_field(model, field, slotted);
    }
    let private = quote!(::counter_core::__private);
    let ident = model.ident;
    let table = &model.table;
    let key_columns = model.keys.iter().map(|key| &key.column);
    let key_columns = quote!((#(#table::#key_columns,)*));
    let key_ty = key_type(model);
    let value_ty = field.ty;
    let column = &field.column;
    let column_path = quote!(#table::#column);
    let name = field.ident.unraw().to_string();
    let min = option(field.min.as_ref());
    let max = option(field.max.as_ref());
    let retry = retry_const(model, field);

    let key = key_param(model);

    let span = field.ident.span();
    let increment = format_ident!("increment_{}", field.ident, span = span);
    let decrement = format_ident!("decrement_{}", field.ident, span = span);
    let decrement_if_at_least = format_ident!("decrement_{}_if_at_least", field.ident, span = span);
    let take_up_to = format_ident!("take_{}_up_to", field.ident, span = span);
    let update_locked = format_ident!("update_{}_locked", field.ident, span = span);
    let transfer = format_ident!("transfer_{}", field.ident, span = span);
    let atomic = format_ident!("atomic_{}", field.ident, span = span);
    let current = format_ident!("current_{}", field.ident, span = span);
    let or_insert = format_ident!("increment_{}_or_insert", field.ident, span = span);
    let or_insert_all = format_ident!("increment_{}_or_insert_all", field.ident, span = span);

    let docs = Docs::new(model, field, &key);
    let doc_increment = docs.increment("adds `by` to", "+");
    let doc_decrement = docs.increment("subtracts `by` from", "-");
    let doc_decrement_if_at_least = docs.decrement_if_at_least();
    let doc_take_up_to = docs.take_up_to();
    let doc_update_locked = docs.update_locked(field.retries.as_ref().or(model.retries.as_ref()));
    let doc_transfer = docs.transfer();
    let doc_atomic = docs.atomic(&atomic);
    let doc_current = docs.current();
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

    quote! {
        impl #private::AtomicField<#column_path> for #ident {
            type Key = #key_ty;
            type KeyColumns = #key_columns;
            type Value = #value_ty;
            const MIN: ::core::option::Option<#value_ty> = #min;
            const MAX: ::core::option::Option<#value_ty> = #max;
            #retry
            const NAME: &'static str = #name;
        }

        impl #ident {
            #[doc = #doc_increment]
            pub fn #increment<'c, C>(conn: &'c mut C, #key: #key_ty, by: #value_ty) -> #call_value
            #where_clause
            {
                #handle.increment(conn, #key, by)
            }

            #[doc = #doc_decrement]
            pub fn #decrement<'c, C>(conn: &'c mut C, #key: #key_ty, by: #value_ty) -> #call_value
            #where_clause
            {
                #handle.decrement(conn, #key, by)
            }

            #[doc = #doc_decrement_if_at_least]
            pub fn #decrement_if_at_least<'c, C>(conn: &'c mut C, #key: #key_ty, n: #value_ty) -> #call_value
            #where_clause
            {
                #handle.decrement_if_at_least(conn, #key, n)
            }

            #[doc = #doc_take_up_to]
            pub fn #take_up_to<'c, C>(conn: &'c mut C, #key: #key_ty, n: #value_ty) -> #call_value
            #where_clause
            {
                #handle.take_up_to(conn, #key, n)
            }

            #[doc = #doc_update_locked]
            pub fn #update_locked<'c, C, F>(conn: &'c mut C, #key: #key_ty, op: F) -> #call_locked
            #where_clause
                F: ::core::ops::FnMut(#value_ty) -> #result_value,
            {
                #handle.update_locked(conn, #key, op)
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

            #[doc = #doc_current]
            pub fn #current<'c, C>(conn: &'c mut C, #key: #key_ty) -> #call_value
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
            key_column: match model.keys.as_slice() {
                [key] => key.column.unraw().to_string(),
                keys => format!(
                    "({})",
                    keys.iter()
                        .map(|key| key.column.unraw().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
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

    fn or_insert(&self) -> String {
        let Docs {
            subject,
            table,
            column: c,
            key_column,
            range,
            ..
        } = self;
        format!(
            " Adds `by` to {subject} in the row with `row`'s key, or inserts `row` as given \
             when there is none, in one statement; returns the new value (the inserted one \
             when it inserted).\n\n `row` is `&value` of a type Diesel can insert into \
             `{table}` that derives `Identifiable` (the model, or a `NewX` struct).\n\n \
             PostgreSQL, SQLite: `INSERT … ON CONFLICT ({key_column}) DO UPDATE SET {c} = \
             {table}.{c} + ? WHERE {table}.{c} <= ? RETURNING {c}`; MySQL: the guarded \
             `UPDATE` of `increment_{c}`, and only when it matches no row `INSERT … ON \
             DUPLICATE KEY UPDATE {c} = IF({c} <= ?, {c} + ?, <error>)` and a read back, in \
             one transaction (only for tables whose one unique key is the primary key).\n\n # Errors\n \
             `AtomicError::NegativeAmount`, `OutOfRange` if the existing row would leave \
             {range} (row unchanged), and the database's errors for `row`."
        )
    }

    fn or_insert_all(&self, single: &Ident) -> String {
        let Docs { subject, .. } = self;
        format!(
            " Adds many `(key, amount)` pairs to {subject} at once, in one transaction (all or \
             nothing): amounts of one key are summed, keys are applied in order (so two \
             batches do not deadlock), each as `{single}` with the row `new_row(&key, total)` \
             for a key without a row. Returns `(key, new value)` in key order.\n\n # \
             Errors\n `AtomicError::NegativeAmount` before anything runs, `OutOfRange` for a \
             key that would pass its bound (nothing written), and the database's errors."
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

/// The return type of a generated operation on connection `C` (lifetime `'c`) with result
/// `Result<ok, AtomicError>`: the result itself on a blocking connection, a future of it on an
/// async one (`counter_core::Out`). `params` lists the method's type parameters after `C`
/// (`, F`), which the future captures.
fn call(ok: TokenStream, params: TokenStream) -> TokenStream {
    let private = quote!(::counter_core::__private);
    quote! {
        #private::Out<
            C,
            impl ::core::future::Future<
                Output = ::core::result::Result<#ok, #private::AtomicError>,
            > + use<'c, C #params>,
        >
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

    /// The expansion of `input`, checked to parse, without whitespace.
    fn compact_expansion(input: &DeriveInput) -> String {
        let tokens = derive(input).unwrap();
        syn::parse2::<syn::File>(tokens.clone()).unwrap();
        tokens
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
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
        assert!(compact.contains("typeKeyColumns=(products::id,);"));
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
        let compact = compact_expansion(&input);
        assert!(compact.contains("Some(-500)"));
        assert!(compact.contains("AtomicField<accounts::balance>forAccount"));
        assert!(compact.contains("typeKeyColumns=(accounts::account_id,);"));
        assert!(
            compact.contains("constMAX:::core::option::Option<i64>=::core::option::Option::None;")
        );
        assert!(!compact.contains("RETRY"));
        // `by` would clash with the `by` parameter.
        assert!(compact.contains("key:i64,by:i64"));
    }

    #[test]
    fn composite_key_is_a_tuple_and_slots_expand() {
        let input: DeriveInput = parse_quote! {
            #[diesel(table_name = lines, primary_key(cart_id, product_id))]
            struct Line {
                cart_id: i64,
                product_id: i32,
                #[atomic(max = 40)]
                quantity: i32,
                #[atomic]
                touched: i64,
                #[atomic(slots = 8, table = line_view_slots, allow_decrement)]
                views: i64,
            }
        };
        let compact = compact_expansion(&input);
        assert!(compact.contains("typeKeyColumns=(lines::cart_id,lines::product_id,);"));
        assert!(compact.contains("typeKey=(i64,i32);"));
        assert!(
            compact.contains("primary_key_is::<lines::table,(lines::cart_id,lines::product_id)>")
        );
        assert!(compact.contains("DistinctColumns<lines::quantity,lines::touched>forLine"));
        assert!(!compact.contains("DistinctColumns<lines::views"));
        assert!(compact.contains(
            "typeSlotKeyColumns=(line_view_slots::cart_id,line_view_slots::product_id,);"
        ));
        assert!(compact.contains("constSLOTS:i32=8;"));
        assert!(compact.contains("SlottedDecrement<lines::views>forLine"));
        assert!(compact.contains("fnupdate_atomic"));
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
