//! `#[derive(AtomicField)]` and `#[derive(CounterCache)]` for `counter-core`.
//!
//! ```text
//! #[derive(Queryable, Selectable, Identifiable, AtomicField)]
//! #[diesel(table_name = crate::schema::products)]
//! #[atomic(retries = 5)]                 // optional default for all fields
//! pub struct Product {
//!     pub id: i64,                       // key: #[diesel(primary_key(..))], default `id`
//!     #[atomic(min = 0, max = 1000)]     // min, max, retries: all optional
//!     pub stock: i32,
//!     #[atomic]
//!     #[diesel(column_name = units_sold)]
//!     pub sold: i64,
//! }
//! ```
//!
//! For every `#[atomic]` field this implements
//! `counter_core::__private::AtomicField<table::column>` and adds
//! `increment_*`, `decrement_*`, `decrement_*_if_at_least`, `take_*_up_to`,
//! `increment_*_up_to`, `set_*_max`, `set_*_min`, `compare_and_set_*`, `update_*_locked`,
//! `transfer_*` and `atomic_*` to the struct.
//!
//! `#[derive(CounterCache)]` on a child struct (a row inserted into a child table) with
//! `#[counter_cache(parent = Article, column = articles::view_count, foreign_key =
//! article_id)]` implements counter-core's `ChildRow`, `ChildRowOn<DB>` and
//! `CounterCache<column>`, and adds `insert_counted`, `delete_counted`, `recount_*`,
//! `recount_all_*` and `counter_cache_*` to the struct.
//!
//! Stages, one module each: `attr` (syntax of `#[atomic]`, `#[counter_cache]` and `#[diesel]`)
//! -> `model` (typed model) -> `valid` (checks, collected in a `ctxt::Ctxt`) -> `expand`
//! (tokens: one file per thing it expands, a plain field, a slotted one, several columns at
//! once). `#[derive(CounterCache)]` has its own model and checks, `cache_model` and
//! `cache_valid`, and shares the attribute readers, the checks of the input's shape and the
//! expansion's pieces.

extern crate proc_macro;

mod attr;
mod cache_model;
mod cache_valid;
mod ctxt;
mod expand;
mod model;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

#[doc = include_str!("../doc/derive.md")]
#[proc_macro_derive(AtomicField, attributes(atomic, diesel))]
pub fn derive_atomic_field(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[doc = include_str!("../doc/counter_cache.md")]
#[proc_macro_derive(CounterCache, attributes(counter_cache, diesel))]
pub fn derive_counter_cache(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_cache(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
