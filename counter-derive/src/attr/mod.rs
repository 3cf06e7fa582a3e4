//! Stage 1: read `#[atomic(...)]`, `#[counter_cache(...)]` and `#[diesel(...)]` into plain
//! structs.
//!
//! Only syntax is checked here (unknown or duplicate keys, values that are
//! not integer literals). Whether a value makes sense for its field is
//! `valid.rs`'s business. Every value keeps its tokens for error spans.
//!
//! The attributes follow different rules, one file each: `#[atomic]` (`atomic.rs`) and
//! `#[counter_cache]` (`counter_cache.rs`) are ours, so every key is known and anything else
//! is an error; `#[diesel]` belongs to Diesel's derives, so we read the keys we share with
//! them and step over the rest unchecked (`diesel.rs`).

mod atomic;
mod counter_cache;
mod diesel;

pub use atomic::{atomic, Atomic, Int, Level, Touch};
pub use counter_cache::{counter_caches, CounterCacheAttr, Keyed, CACHE_KEYS};
pub use diesel::{diesel_field, diesel_struct, PrimaryKey};

use proc_macro2::TokenTree;
use syn::parse::discouraged::Speculative;
use syn::parse::{ParseBuffer, ParseStream};
use syn::{Expr, Result, Token, Type};

/// Consumes the value of a key we do not interpret: nothing, `(...)`, or
/// `= value`. Values may hold commas inside generics (`Foo<A, B>`), so try
/// the grammars diesel uses before falling back to "up to the next comma".
fn skip_value(input: ParseStream) -> Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        let at_end = |fork: &ParseBuffer| fork.is_empty() || fork.peek(Token![,]);
        let fork = input.fork();
        if fork.parse::<Type>().is_ok() && at_end(&fork) {
            input.advance_to(&fork);
            return Ok(());
        }
        let fork = input.fork();
        if fork.parse::<Expr>().is_ok() && at_end(&fork) {
            input.advance_to(&fork);
            return Ok(());
        }
    }
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if matches!(&tt, TokenTree::Punct(punct) if punct.as_char() == ',') {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    })
}
