//! Stage 3: tokens from a validated model. Nothing here can fail.
//!
//! One file per thing the derive expands, each called once per model or field from
//! [`expand`]:
//! - `key`: the key's type and parameter name, and the check that it is the table's primary
//!   key;
//! - `field`: a plain counter field (`AtomicField` and its methods);
//! - `slotted`: a slotted counter (`Slotted`, its methods, and the ones it refuses);
//! - `changes`: several plain fields at once (`DistinctColumns`, `update_atomic`);
//! - `docs`: the text of every generated doc comment;
//! - `method`, `tokens`: the shapes and pieces the others share (one-row methods, the
//!   `__private` path, return types, literals, retry policies).
//!
//! `#[derive(CounterCache)]` expands from its own model ([`derive_cache`]): `cache` (its
//! impls and methods), `cache_docs` (their doc comments).

mod cache;
mod cache_docs;
mod changes;
mod docs;
mod field;
mod key;
mod method;
mod slotted;
mod tokens;

use crate::cache_model::CacheModel;
use crate::ctxt::Ctxt;
use crate::model::Model;
use proc_macro2::TokenStream;
use quote::quote;
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

/// `#[derive(CounterCache)]`: parses, validates and expands, as [`derive`] does.
pub fn derive_cache(input: &DeriveInput) -> Result<TokenStream> {
    let cx = Ctxt::new();
    let Some(model) = CacheModel::from_syn(&cx, input) else {
        return Err(cx
            .check()
            .expect_err("CacheModel::from_syn returned None without an error"));
    };
    cx.check()?;
    let cache = cache::expand(&model);
    Ok(quote! {
        const _: () = {
            #cache
        };
    })
}

/// Everything in one `const _: () = { .. };` (serde's pattern): the impls and inherent methods
/// inside still apply to the model, and nothing else the expansion declares lands in the
/// user's module.
fn expand(model: &Model) -> TokenStream {
    let primary_key = key::primary_key_check(model);
    let fields = model.fields.iter().map(|field| match &field.slotted {
        Some(slotted) => slotted::expand(model, field, slotted),
        None => field::expand(model, field),
    });
    let several = changes::expand(model);
    quote! {
        const _: () = {
            #primary_key
            #(#fields)*
            #several
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::product;
    use syn::parse_quote;

    /// `derive_cache` fails on `input` with one error per `expected` fragment, in order.
    fn assert_cache_errors(input: &DeriveInput, expected: &[&str]) {
        let err = derive_cache(input).unwrap_err();
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), expected.len(), "{messages:#?}");
        for (message, expected) in messages.iter().zip(expected) {
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
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

    /// Asserts that `compact` holds every one of `needles` (written without whitespace).
    fn assert_has(compact: &str, needles: &[&str]) {
        for needle in needles {
            assert!(compact.contains(needle), "no `{needle}` in {compact}");
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
        let compact: String = tokens.to_string().split_whitespace().collect();
        assert_has(
            &compact,
            &[
                "AtomicField<crate::schema::products::stock>forProduct",
                "AtomicField<crate::schema::products::units_sold>forProduct",
                "typeKeyColumns=(crate::schema::products::product_id,);",
                "constMIN:::core::option::Option<i32>=::core::option::Option::Some(0);",
                "with_max_attempts(5)",
                "constNAME:&'staticstr=\"sold\";",
                "fntake_stock_up_to",
                "fnincrement_stock_up_to",
                "fnset_stock_max",
                "fnset_stock_min",
                "fncompare_and_set_stock",
                "fnincrement_sold",
                "fnatomic_sold",
                "fncurrent_stock",
                // The key parameter is named after the key field.
                "key:i64,by:i32",
            ],
        );
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
        assert_has(
            &compact,
            &[
                "Some(-500)",
                "AtomicField<accounts::balance>forAccount",
                "typeKeyColumns=(accounts::account_id,);",
                "constMAX:::core::option::Option<i64>=::core::option::Option::None;",
                // `by` would clash with the `by` parameter.
                "key:i64,by:i64",
            ],
        );
        assert!(!compact.contains("RETRY"));
    }

    /// A key field named like a parameter of the newer methods (`v`, `expected`, `new`) is
    /// called `key` too.
    #[test]
    fn key_fields_named_like_value_parameters_become_key() {
        for name in ["v", "expected", "new"] {
            let field = syn::Ident::new(name, proc_macro2::Span::call_site());
            let input: DeriveInput = parse_quote! {
                #[diesel(table_name = marks, primary_key(#field))]
                struct Mark {
                    #field: i64,
                    #[atomic]
                    high: i64,
                }
            };
            let compact = compact_expansion(&input);
            assert_has(
                &compact,
                &[
                    "fnset_high_max<'c,C>(conn:&'cmutC,key:i64,v:i64)",
                    "key:i64,expected:i64,new:i64",
                ],
            );
        }
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
        assert_has(
            &compact,
            &[
                "typeKeyColumns=(lines::cart_id,lines::product_id,);",
                "typeKey=(i64,i32);",
                "primary_key_is::<lines::table,(lines::cart_id,lines::product_id)>",
                "DistinctColumns<lines::quantity,lines::touched>forLine",
                "typeSlotKeyColumns=(line_view_slots::cart_id,line_view_slots::product_id,);",
                "constSLOTS:i32=8;",
                "SlottedDecrement<lines::views>forLine",
                "fnupdate_atomic",
            ],
        );
        assert!(!compact.contains("DistinctColumns<lines::views"));
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

    #[test]
    fn a_slotted_child_expands() {
        let input: DeriveInput = syn::parse_quote! {
            #[derive(CounterCache)]
            #[diesel(table_name = reads)]
            #[counter_cache(parent = Article, column = articles::views, foreign_key = article_id,
                when = counted, slotted)]
            pub struct NewRead {
                pub article_id: i64,
                pub counted: bool,
            }
        };
        let tokens = derive_cache(&input).unwrap();
        syn::parse2::<syn::File>(tokens.clone()).unwrap();
        let compact: String = tokens.to_string().split_whitespace().collect();
        assert_has(
            &compact,
            &[
                "CacheLink<articles::views>forNewRead",
                "typeParentKey=<Articleas::counter_core::__private::Slotted<articles::views>>::Key;",
                "SlottedCounterCache<articles::views>forNewRead",
                "cache_amount::<i64,i64>(1)",
                "SlottedCounterCached::<NewRead,articles::views>::new().insert(conn,self)",
                "SlottedCounterCached::<NewRead,articles::views>::new().recount(conn,keys)",
                "fnrecount_views<'c,C>",
                "fnrecount_all_views<'c,C>(conn:&'cmutC)",
                "SlottedCounterCached::<NewRead,articles::views>::new().recount_all(conn)",
                "fncounter_cache_views()",
            ],
        );
        assert!(!compact.contains("__private::CounterCacheOn<"), "{compact}");
    }

    #[test]
    fn a_counted_child_expands() {
        let input = crate::cache_model::new_view();
        let tokens = derive_cache(&input).unwrap();
        // `cargo test -p counter-derive -- --nocapture a_counted_child | rustfmt` shows it.
        println!("{tokens}");
        let file: syn::File = syn::parse2(tokens.clone()).unwrap();
        assert_eq!(file.items.len(), 1);
        let compact: String = tokens.to_string().split_whitespace().collect();
        assert_has(
            &compact,
            &[
                "primary_key_is::<views::table,views::id>",
                "ChildRowforNewView",
                "typeKeyColumn=views::id;typeKey=i64;",
                "&[<views::article_idas::counter_core::__private::Column>::NAME,",
                "<views::visitoras::counter_core::__private::Column>::NAME];",
                "::core::option::Option::None",
                "ChildRowOn<__DB>forNewView",
                "::std::string::String:::counter_core::__private::ToSql<",
                "ToSql<<views::visitoras::counter_core::__private::Expression>::SqlType,__DB>",
                "0usize=>out.push_bind_param::<<views::article_idas",
                "1usize=>out.push_bind_param::<<views::visitoras",
                "CacheLink<articles::view_count>forNewView",
                "typeForeignKey=views::article_id;",
                "typeAmount=::counter_core::__private::CountRows;",
                "typeParentKey=<Articleas::counter_core::__private::AtomicField<articles::view_count>>::Key;",
                "CounterCache<articles::view_count>forNewView",
                "typeParent=Article;",
                "CacheChange::Increment;",
                "AtomicField<articles::view_count>>::Value,i64>(1)",
                "fninsert_counted<'c,C>(&'cself,conn:&'cmutC)",
                "fnupdate_counted<'c,C>(&'cself,conn:&'cmutC,key:i64)",
                "CounterCached::<NewView,articles::view_count>::new().update(conn,key,self)",
                "fndelete_counted<'c,C>(conn:&'cmutC,key:i64)",
                "fnrecount_view_count<'c,C>(conn:&'cmutC,keys:&'c[<Articleas",
                "fnrecount_all_view_count<'c,C>(conn:&'cmutC)",
                "fncounter_cache_view_count()",
            ],
        );
    }

    #[test]
    fn a_guarded_sum_expands_without_recounts() {
        let input = crate::cache_model::new_order();
        let compact = {
            let tokens = derive_cache(&input).unwrap();
            syn::parse2::<syn::File>(tokens.clone()).unwrap();
            tokens
                .to_string()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
        };
        assert_has(
            &compact,
            &[
                "primary_key_is::<crate::schema::orders::table,crate::schema::orders::order_no>",
                "typeKey=i32;",
                "Some(::core::clone::Clone::clone(&self.number))",
                "typeForeignKey=crate::schema::orders::product_id;",
                "SumOf<crate::schema::orders::quantity>",
                "CacheChange::DecrementIfAtLeast;",
                "::Value,i32>(self.quantity)",
                "::core::clone::Clone::clone(&self.product)",
                "Option<String>:::counter_core::__private::ToSql",
                "fndelete_counted<'c,C>(conn:&'cmutC,key:i32)",
                "fncounter_cache_stock()",
            ],
        );
        assert!(!compact.contains("placed_at"), "skip_insertion is left out");
        assert!(
            !compact.contains("fnrecount"),
            "no recount of a decrementing cache"
        );
    }

    #[test]
    fn cache_errors_are_all_reported() {
        let input: DeriveInput = parse_quote! {
            #[diesel(primary_key(a, b))]
            #[counter_cache(column = parents::n, foreign_key = parent, sum = note, change = up)]
            #[counter_cache(parent = P, column = parents::m, foreign_key = a)]
            struct Child<T> {
                a: i64,
                b: i64,
                #[diesel(embed)]
                inner: T,
                note: String,
            }
        };
        assert_cache_errors(
            &input,
            &[
                "generic models",
                "one-column primary key",
                "not supported by CounterCache: `embed`",
                "is missing `parent = Parent`",
                "has no field `parent`",
                "`sum = note` needs an integer field",
                "unknown `change = up`",
            ],
        );
    }

    #[test]
    fn several_caches_expand_onto_one_handle() {
        let input: DeriveInput = parse_quote! {
            #[diesel(table_name = comments)]
            #[counter_cache(parent = Post, column = posts::comments, foreign_key = post_id)]
            #[counter_cache(parent = User, column = users::comments, foreign_key = user_id,
                            when = published)]
            struct NewComment {
                post_id: i64,
                user_id: i64,
                published: bool,
            }
        };
        let tokens = derive_cache(&input).unwrap();
        syn::parse2::<syn::File>(tokens.clone()).unwrap();
        let compact: String = tokens
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        assert_has(
            &compact,
            &[
                "CounterCache<posts::comments>forNewComment",
                "CounterCache<users::comments>forNewComment",
                "typeForeignKey=comments::user_id;",
                "fncounts(&self)->bool{self.published}",
                "CounterCaches::<NewComment,(posts::comments,users::comments,)>::new().insert(conn,self)",
                "NewComment:::counter_core::__private::CounterCacheOn<posts::comments,",
                "NewComment:::counter_core::__private::CounterCacheOn<users::comments,",
                "fncounter_caches()",
                // Two columns named `comments`: each cache's methods name its table too.
                "fnrecount_posts_comments",
                "fnrecount_all_users_comments",
                "fncounter_cache_users_comments()",
            ],
        );
        assert_eq!(
            compact.matches("fncounts(").count(),
            1,
            "only the cache with `when` counts conditionally"
        );
    }

    #[test]
    fn several_caches_errors() {
        let input: DeriveInput = parse_quote! {
            #[counter_cache(parent = P, column = ps::n, foreign_key = p_id)]
            #[counter_cache(parent = P, column = ps::n, foreign_key = p_id, key_type = i32)]
            #[counter_cache(parent = Q, column = qs::n, foreign_key = q_id)]
            #[counter_cache(parent = R, column = rs::n, foreign_key = r_id)]
            struct Child {
                p_id: i64,
                q_id: i64,
                r_id: i64,
            }
        };
        assert_cache_errors(
            &input,
            &[
                "at most 3 #[counter_cache(..)] attributes",
                "`key_type` describes the child's key",
                "already counts into this column",
            ],
        );
    }

    #[test]
    fn cache_key_and_skipped_field_errors() {
        let input: DeriveInput = parse_quote! {
            #[counter_cache(parent = P, column = ps::n, foreign_key = p_id, sum = n, key_type = i32)]
            struct Child {
                id: i64,
                #[diesel(skip_insertion)]
                p_id: i64,
                #[diesel(serialize_as = Wrapped, skip_insertion)]
                n: i32,
            }
        };
        assert_cache_errors(
            &input,
            &[
                "not supported by CounterCache: `serialize_as`",
                "`key_type` is for a child struct without a key field; this one has `id`",
                "`foreign_key = p_id` names a field with #[diesel(skip_insertion)]",
                "`p_id` is left out of the insert here",
                "`sum = n` names a field with #[diesel(skip_insertion)]",
                "`n` is left out of the insert here",
            ],
        );
    }
}
