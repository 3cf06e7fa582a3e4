//! `#[derive(CounterCache)]`: the three impls counter-core's `CounterCached` needs
//! (`ChildRow`, `ChildRowOn<DB>` for every backend, `CounterCache<column>`), and the methods on
//! the child struct that call that handle.
//!
//! Diesel's items are named through `__private` too: counter-core's Diesel is the one whose
//! traits its bounds name, whatever the user calls theirs.

use super::cache_docs::CacheDocs;
use super::key::respan;
use super::tokens::{call, private};
use crate::cache_model::{Amount, Cache, CacheModel, Change};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;

/// Everything, in the order the doc of `counter_core::CounterCached` writes it by hand.
pub fn expand(model: &CacheModel) -> TokenStream {
    let primary_key = primary_key_check(model);
    let child_row = child_row(model);
    let child_row_on = child_row_on(model);
    let counter_cache: TokenStream = model
        .caches
        .iter()
        .map(|cache| counter_cache(model, cache))
        .collect();
    let methods = methods(model);
    quote! {
        #primary_key
        #child_row
        #child_row_on
        #counter_cache
        #methods
    }
}

/// A compile error at `primary_key(..)` (or the struct's name, for the default `id`) unless
/// the key column is the primary key the child's `table!` declares: a delete names one row.
fn primary_key_check(model: &CacheModel) -> TokenStream {
    let private = private();
    let table = &model.table;
    let column = &model.key.column;
    let check = quote! {
        const _: () = #private::primary_key_is::<#table::table, #table::#column>();
    };
    respan(check, model.key.span)
}

/// `ChildRow`: the table, the key, and the columns an insert sets (named as `table!` gives them
/// to SQL, which honours its `#[sql_name]`).
fn child_row(model: &CacheModel) -> TokenStream {
    let private = private();
    let ident = model.ident;
    let table = &model.table;
    let key_column = &model.key.column;
    let key_ty = &model.key.ty;
    let names = model.inserted.iter().map(|field| {
        let column = &field.column;
        quote!(<#table::#column as #private::Column>::NAME)
    });
    let key = match model.key.field {
        Some(field) => quote! {
            ::core::option::Option::Some(::core::clone::Clone::clone(&self.#field))
        },
        None => quote!(::core::option::Option::None),
    };
    quote! {
        impl #private::ChildRow for #ident {
            type Table = #table::table;
            type KeyColumn = #table::#key_column;
            type Key = #key_ty;
            const COLUMNS: &'static [&'static str] = &[#(#names),*];
            fn key(&self) -> ::core::option::Option<Self::Key> {
                #key
            }
        }
    }
}

/// `ChildRowOn<DB>` for every backend that has the columns' SQL types and can bind each field,
/// its type as written, as its column's type; an `Option` field binds `NULL` through the
/// nullable column's impl.
fn child_row_on(model: &CacheModel) -> TokenStream {
    let private = private();
    let ident = model.ident;
    let table = &model.table;
    let sql_types: Vec<TokenStream> = model
        .inserted
        .iter()
        .map(|field| {
            let column = &field.column;
            quote!(<#table::#column as #private::Expression>::SqlType)
        })
        .collect();
    let tys = model.inserted.iter().map(|field| field.ty);
    let fields = model.inserted.iter().map(|field| field.ident);
    let arms = sql_types
        .iter()
        .zip(fields)
        .enumerate()
        .map(|(i, (sql, field))| {
            quote! {
                #i => out.push_bind_param::<#sql, _>(&self.#field),
            }
        });
    quote! {
        impl<__DB> #private::ChildRowOn<__DB> for #ident
        where
            __DB: #private::Backend
                #(+ #private::HasSqlType<#sql_types>)*,
            #(#tys: #private::ToSql<#sql_types, __DB>,)*
        {
            fn walk_value<'b>(
                &'b self,
                column: usize,
                out: &mut #private::AstPass<'_, 'b, __DB>,
            ) -> #private::QueryResult<()> {
                match column {
                    #(#arms)*
                    _ => ::core::result::Result::Err(#private::QueryBuilderError(
                        "a child row has no column at this index".into(),
                    )),
                }
            }
        }
    }
}

/// `<Parent as AtomicField<column>>::Key` and `::Value` (a slotted parent:
/// `<Parent as Slotted<column>>::Key` and `i64`).
fn parent_types(cache: &Cache) -> (TokenStream, TokenStream) {
    let private = private();
    let parent = &cache.parent;
    let column = &cache.column;
    if cache.slotted.is_some() {
        let key = quote!(<#parent as #private::Slotted<#column>>::Key);
        return (key, quote!(i64));
    }
    let field = quote!(<#parent as #private::AtomicField<#column>>);
    (quote!(#field::Key), quote!(#field::Value))
}

/// `CacheLink<column>` (the foreign key, the amount's shape, the parent's key, the `WHEN`
/// column), then `CounterCache<column>` (the parent, the change, the amount) or, for a
/// slotted parent, `SlottedCounterCache<column>`.
fn counter_cache(model: &CacheModel, cache: &Cache) -> TokenStream {
    let private = private();
    let ident = model.ident;
    let table = &model.table;
    let parent = &cache.parent;
    let column = &cache.column;
    let (parent_key, parent_value) = parent_types(cache);
    let foreign_key = &cache.foreign_key.column;
    // Spanned at `foreign_key = ..`: a field whose type is not the parent's key type is a
    // mismatch there.
    let written = &cache.foreign_key.written;
    let field = cache.foreign_key.field;
    let key = quote_spanned!(written.span()=> key);
    let (amount_ty, amount) = match &cache.amount {
        Amount::Count => (
            quote!(#private::CountRows),
            quote!(#private::cache_amount::<#parent_value, i64>(1)),
        ),
        Amount::Sum { field, ty, column } => (
            quote!(#private::SumOf<#table::#column>),
            quote!(#private::cache_amount::<#parent_value, #ty>(self.#field)),
        ),
    };
    let when = cache.when.as_ref().map(|when| {
        let table = &model.table;
        let column = &when.column;
        // The field named as written, spanned at `when = ..`: a field that is not a `bool`
        // is a mismatch there.
        let written = &when.written;
        let value = quote_spanned!(written.span()=> self.#written);
        quote! {
            const WHEN: ::core::option::Option<&'static str> =
                ::core::option::Option::Some(<#table::#column as #private::Column>::NAME);
            fn counts(&self) -> bool {
                #value
            }
        }
    });
    let link = quote! {
        impl #private::CacheLink<#column> for #ident {
            type ForeignKey = #table::#foreign_key;
            type Amount = #amount_ty;
            type ParentKey = #parent_key;
            fn parent_key(&self) -> #parent_key {
                // Typed by the field, then returned: a field that is not of the parent's key
                // type is a mismatch at `foreign_key = ..`.
                let key = ::core::clone::Clone::clone(&self.#field);
                #key
            }
            #when
        }
    };
    let cache = match &cache.slotted {
        Some(slotted) => {
            // Spanned at `slotted`: a parent column that is not slotted is an error there.
            let trait_ = quote_spanned!(slotted.span()=> #private::SlottedCounterCache<#column>);
            quote! {
                impl #trait_ for #ident {
                    type Parent = #parent;
                    fn amount(
                        &self,
                    ) -> ::core::result::Result<i64, #private::AtomicError> {
                        #amount
                    }
                }
            }
        }
        None => {
            let change = cache.change.variant();
            quote! {
                impl #private::CounterCache<#column> for #ident {
                    type Parent = #parent;
                    const CHANGE: #private::CacheChange = #private::CacheChange::#change;
                    fn amount(
                        &self,
                    ) -> ::core::result::Result<#parent_value, #private::AtomicError> {
                        #amount
                    }
                }
            }
        }
    };
    quote! {
        #link
        #cache
    }
}

/// `insert_counted`, `update_counted` and `delete_counted` (on every cache at once), and per
/// cache `recount_<column>` and `recount_all_<column>` (for a cache that increments its parent:
/// a decremented parent holds a base its children do not know, and counter-core refuses to
/// recount it) and `counter_cache_<column>()`; with several caches, `counter_caches()`.
fn methods(model: &CacheModel) -> TokenStream {
    let ident = model.ident;
    if let [cache @ Cache {
        slotted: Some(_), ..
    }] = model.caches.as_slice()
    {
        return slotted_methods(model, cache);
    }
    let shared = match model.caches.as_slice() {
        [cache] => one_cache_methods(model, cache),
        caches => several_caches_methods(model, caches),
    };
    let per_cache: TokenStream = model
        .caches
        .iter()
        .map(|cache| cache_methods(model, cache))
        .collect();
    quote! {
        impl #ident {
            #shared
            #per_cache
        }
    }
}

/// `C: AtomicConnection` and the child's `CounterCacheOn` of each cache on `C`'s backend.
fn where_clause(model: &CacheModel) -> TokenStream {
    let private = private();
    let ident = model.ident;
    let columns = model.caches.iter().map(|cache| &cache.column);
    quote! {
        where
            C: #private::AtomicConnection,
            #(#ident: #private::CounterCacheOn<#columns, #private::BackendOf<C>>,)*
    }
}

/// A method named `prefix` + the column's name, with the span of its last segment: "no method
/// named .." points at `column`. The name is the last segment (`view_count`), or `table_column`
/// (`posts_comments`) when another cache of the struct counts into a column of the same name.
fn column_method(model: &CacheModel, cache: &Cache, prefix: &str) -> Ident {
    let name = |path: &syn::Path| -> String {
        let last = &path.segments.last().expect("a path has a segment").ident;
        last.unraw().to_string()
    };
    let column = name(&cache.column);
    let shared = model
        .caches
        .iter()
        .filter(|other| name(&other.column) == column)
        .count()
        > 1;
    let segments = &cache.column.segments;
    let last = &segments.last().expect("a path has a segment").ident;
    let suffix = match segments.len().checked_sub(2).filter(|_| shared) {
        Some(table) => format!("{}_{column}", segments[table].ident.unraw()),
        None => column,
    };
    format_ident!("{}{}", prefix, suffix, span = last.span())
}

/// The shared methods of a struct with one cache: they call its `CounterCached` handle.
fn one_cache_methods(model: &CacheModel, cache: &Cache) -> TokenStream {
    let private = private();
    let ident = model.ident;
    let column = &cache.column;
    let key_ty = &model.key.ty;
    let (parent_key, parent_value) = parent_types(cache);
    let handle = quote!(#private::CounterCached::<#ident, #column>::new());
    let where_clause = where_clause(model);
    let docs = CacheDocs::new(model, cache);
    let (doc_insert, doc_update, doc_delete) = (docs.insert(), docs.update(), docs.delete());
    let call_insert = call(
        quote!(#private::Counted<#key_ty, #parent_value>),
        TokenStream::new(),
    );
    let call_update = call(
        quote!(#private::Updated<#parent_key, #parent_value>),
        TokenStream::new(),
    );
    let call_delete = call(
        quote!(::core::option::Option<#parent_value>),
        TokenStream::new(),
    );
    quote! {
        #[doc = #doc_insert]
        pub fn insert_counted<'c, C>(&'c self, conn: &'c mut C) -> #call_insert
        #where_clause
        {
            #handle.insert(conn, self)
        }

        #[doc = #doc_update]
        pub fn update_counted<'c, C>(&'c self, conn: &'c mut C, key: #key_ty) -> #call_update
        #where_clause
            #parent_key: ::core::cmp::PartialOrd,
        {
            #handle.update(conn, key, self)
        }

        #[doc = #doc_delete]
        pub fn delete_counted<'c, C>(conn: &'c mut C, key: #key_ty) -> #call_delete
        #where_clause
        {
            #handle.delete(conn, key)
        }
    }
}

/// The shared methods of a struct with several caches: they call one `CounterCaches` handle
/// on the tuple of the caches' columns, in attribute order.
fn several_caches_methods(model: &CacheModel, caches: &[Cache]) -> TokenStream {
    let private = private();
    let ident = model.ident;
    let key_ty = &model.key.ty;
    let columns: Vec<&syn::Path> = caches.iter().map(|cache| &cache.column).collect();
    let (parent_keys, parent_values): (Vec<TokenStream>, Vec<TokenStream>) =
        caches.iter().map(parent_types).unzip();
    let handle = quote!(#private::CounterCaches::<#ident, (#(#columns,)*)>::new());
    let where_clause = where_clause(model);
    let docs: Vec<CacheDocs> = caches
        .iter()
        .map(|cache| CacheDocs::new(model, cache))
        .collect();
    let doc_insert = CacheDocs::insert_all(&docs);
    let doc_update = CacheDocs::update_all(&docs);
    let doc_delete = CacheDocs::delete_all(&docs);
    let doc_handle = CacheDocs::handle_all(&docs);
    let call_insert = call(
        quote!(#private::Counted<#key_ty, (#(#parent_values,)*)>),
        TokenStream::new(),
    );
    let call_update = call(
        quote!((#(#private::Updated<#parent_keys, #parent_values>,)*)),
        TokenStream::new(),
    );
    let call_delete = call(
        quote!((#(::core::option::Option<#parent_values>,)*)),
        TokenStream::new(),
    );
    quote! {
        #[doc = #doc_insert]
        pub fn insert_counted<'c, C>(&'c self, conn: &'c mut C) -> #call_insert
        #where_clause
        {
            #handle.insert(conn, self)
        }

        #[doc = #doc_update]
        pub fn update_counted<'c, C>(&'c self, conn: &'c mut C, key: #key_ty) -> #call_update
        #where_clause
            #(#parent_keys: ::core::cmp::PartialOrd,)*
        {
            #handle.update(conn, key, self)
        }

        #[doc = #doc_delete]
        pub fn delete_counted<'c, C>(conn: &'c mut C, key: #key_ty) -> #call_delete
        #where_clause
        {
            #handle.delete(conn, key)
        }

        #[doc = #doc_handle]
        pub fn counter_caches() -> #private::CounterCaches<#ident, (#(#columns,)*)> {
            #private::CounterCaches::new()
        }
    }
}

/// The methods of a struct whose one cache counts into a slotted parent column: they call its
/// `SlottedCounterCached` handle.
fn slotted_methods(model: &CacheModel, cache: &Cache) -> TokenStream {
    let private = private();
    let ident = model.ident;
    let column = &cache.column;
    let key_ty = &model.key.ty;
    let (parent_key, _) = parent_types(cache);
    let handle = quote!(#private::SlottedCounterCached::<#ident, #column>::new());
    let where_clause = quote! {
        where
            C: #private::AtomicConnection,
            #ident: #private::SlottedCounterCacheOn<#column, #private::BackendOf<C>>,
    };
    let recount = column_method(model, cache, "recount_");
    let recount_all = column_method(model, cache, "recount_all_");
    let accessor = column_method(model, cache, "counter_cache_");
    let docs = CacheDocs::new(model, cache);
    let [doc_insert, doc_update, doc_delete, doc_recount, doc_handle] = docs.slotted(&accessor);
    let doc_recount_all = docs.recount_all(&recount);
    let call_insert = call(key_ty.clone(), TokenStream::new());
    let call_unit = call(quote!(()), TokenStream::new());
    let call_recount = call(
        quote!(::std::vec::Vec<#private::Recounted<#parent_key, i64>>),
        TokenStream::new(),
    );
    quote! {
        impl #ident {
            #[doc = #doc_insert]
            pub fn insert_counted<'c, C>(&'c self, conn: &'c mut C) -> #call_insert
            #where_clause
            {
                #handle.insert(conn, self)
            }

            #[doc = #doc_update]
            pub fn update_counted<'c, C>(&'c self, conn: &'c mut C, key: #key_ty) -> #call_unit
            #where_clause
                #parent_key: ::core::cmp::PartialOrd,
            {
                #handle.update(conn, key, self)
            }

            #[doc = #doc_delete]
            pub fn delete_counted<'c, C>(conn: &'c mut C, key: #key_ty) -> #call_unit
            #where_clause
            {
                #handle.delete(conn, key)
            }

            #[doc = #doc_recount]
            pub fn #recount<'c, C>(conn: &'c mut C, keys: &'c [#parent_key]) -> #call_recount
            #where_clause
                #parent_key: ::core::clone::Clone + ::core::cmp::PartialEq,
            {
                #handle.recount(conn, keys)
            }

            #[doc = #doc_recount_all]
            pub fn #recount_all<'c, C>(conn: &'c mut C) -> #call_recount
            #where_clause
                #parent_key: ::core::clone::Clone + ::core::cmp::PartialEq,
            {
                #handle.recount_all(conn)
            }

            #[doc = #doc_handle]
            pub fn #accessor() -> #private::SlottedCounterCached<#ident, #column> {
                #private::SlottedCounterCached::new()
            }
        }
    }
}

/// One cache's own methods: its recounts (a cache that increments) and its handle.
fn cache_methods(model: &CacheModel, cache: &Cache) -> TokenStream {
    let private = private();
    let ident = model.ident;
    let column = &cache.column;
    let (parent_key, parent_value) = parent_types(cache);
    let handle = quote!(#private::CounterCached::<#ident, #column>::new());
    let where_clause = quote! {
        where
            C: #private::AtomicConnection,
            #ident: #private::CounterCacheOn<#column, #private::BackendOf<C>>,
    };
    let recount = column_method(model, cache, "recount_");
    let recount_all = column_method(model, cache, "recount_all_");
    let accessor = column_method(model, cache, "counter_cache_");
    let docs = CacheDocs::new(model, cache);
    let doc_handle = docs.handle(&accessor, model.caches.len() > 1);
    let recounts = (cache.change == Change::Increment).then(|| {
        let doc_recount = docs.recount();
        let doc_recount_all = docs.recount_all(&recount);
        let call_recount = call(
            quote!(::std::vec::Vec<#private::Recounted<#parent_key, #parent_value>>),
            TokenStream::new(),
        );
        quote! {
            #[doc = #doc_recount]
            pub fn #recount<'c, C>(conn: &'c mut C, keys: &'c [#parent_key]) -> #call_recount
            #where_clause
                #parent_key: ::core::clone::Clone + ::core::cmp::PartialEq,
            {
                #handle.recount(conn, keys)
            }

            #[doc = #doc_recount_all]
            pub fn #recount_all<'c, C>(conn: &'c mut C) -> #call_recount
            #where_clause
                #parent_key: ::core::clone::Clone + ::core::cmp::PartialEq,
            {
                #handle.recount_all(conn)
            }
        }
    });
    quote! {
        #recounts

        #[doc = #doc_handle]
        pub fn #accessor() -> #private::CounterCached<#ident, #column> {
            #private::CounterCached::new()
        }
    }
}
