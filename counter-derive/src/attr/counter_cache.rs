//! `#[counter_cache(parent = .., column = .., foreign_key = .., sum = .., when = .., change = ..,
//! key_type = .., slotted)]` on the struct of `#[derive(CounterCache)]`: every key is known, so an
//! unknown or repeated one is reported, and each value keeps its tokens for error spans.
//!
//! Only the syntax is read here: whether `foreign_key` names a field, which keys are missing,
//! what `change` says, is `cache_valid.rs`'s business.

use super::skip_value;
use crate::ctxt::Ctxt;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Ident, Meta, Path, Result, Type};

/// The keys `#[counter_cache(...)]` accepts.
pub const CACHE_KEYS: &str = "`parent`, `column`, `foreign_key`, and optionally `sum`, `when`, \
     `change`, `key_type`, `slotted`";

/// One `#[counter_cache(...)]` attribute, read.
pub struct CounterCacheAttr<'a> {
    /// The attribute, for the errors about what it lacks.
    pub original: &'a Attribute,
    /// Whether it was read to its end: after a syntax error the keys behind it are unknown,
    /// so none is reported missing.
    pub complete: bool,
    pub parent: Option<Keyed<Path>>,
    pub column: Option<Keyed<Path>>,
    pub foreign_key: Option<Keyed<Ident>>,
    pub sum: Option<Keyed<Ident>>,
    pub when: Option<Keyed<Ident>>,
    pub change: Option<Keyed<Ident>>,
    pub key_type: Option<Keyed<Type>>,
    /// `slotted`: the parent's column is a slotted counter; the word as written, for spans.
    pub slotted: Option<Ident>,
}

/// `key = value`: the value with the key it was given under.
pub struct Keyed<T> {
    pub key: Ident,
    pub value: T,
}

/// Reads every `#[counter_cache]` attribute of the struct, in order.
pub fn counter_caches<'a>(cx: &Ctxt, attrs: &'a [Attribute]) -> Vec<CounterCacheAttr<'a>> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("counter_cache"))
        .map(|attr| read(cx, attr))
        .collect()
}

fn read<'a>(cx: &Ctxt, attr: &'a Attribute) -> CounterCacheAttr<'a> {
    let mut out = CounterCacheAttr {
        original: attr,
        complete: true,
        parent: None,
        column: None,
        foreign_key: None,
        sum: None,
        when: None,
        change: None,
        key_type: None,
        slotted: None,
    };
    if !matches!(attr.meta, Meta::List(_)) {
        cx.error_spanned_by(
            attr,
            "expected #[counter_cache(parent = Parent, column = parents::counter, foreign_key = \
             parent_id)]",
        );
        out.complete = false;
        return out;
    }
    if let Err(err) = attr.parse_nested_meta(|meta| key(cx, &mut out, meta)) {
        cx.syn_error(err);
        out.complete = false;
    }
    out
}

fn key(cx: &Ctxt, out: &mut CounterCacheAttr, meta: ParseNestedMeta) -> Result<()> {
    let Some(key) = meta.path.get_ident().cloned() else {
        return unknown(cx, meta);
    };
    let name = key.to_string();
    let repeated = match name.as_str() {
        "parent" => set(&mut out.parent, &key, meta.value()?.parse()?),
        "column" => set(&mut out.column, &key, meta.value()?.parse()?),
        "foreign_key" => set(&mut out.foreign_key, &key, meta.value()?.parse()?),
        "sum" => set(&mut out.sum, &key, meta.value()?.parse()?),
        "when" => set(&mut out.when, &key, meta.value()?.parse()?),
        "change" => set(&mut out.change, &key, meta.value()?.parse()?),
        "key_type" => set(&mut out.key_type, &key, meta.value()?.parse()?),
        "slotted" => {
            if !(meta.input.is_empty() || meta.input.peek(syn::Token![,])) {
                cx.error_spanned_by(
                    &key,
                    "`slotted` takes no value: write #[counter_cache(.., slotted)]",
                );
                return skip_value(meta.input);
            }
            out.slotted.replace(key.clone()).is_some()
        }
        _ => return unknown(cx, meta),
    };
    if repeated {
        cx.error_spanned_by(
            &key,
            format!("duplicate key `{key}` in #[counter_cache]; give each key only once"),
        );
    }
    Ok(())
}

/// Keeps the first value; whether there was one already.
fn set<T>(slot: &mut Option<Keyed<T>>, key: &Ident, value: T) -> bool {
    if slot.is_some() {
        return true;
    }
    *slot = Some(Keyed {
        key: key.clone(),
        value,
    });
    false
}

fn unknown(cx: &Ctxt, meta: ParseNestedMeta) -> Result<()> {
    let name = meta.path.to_token_stream().to_string().replace(' ', "");
    cx.error_spanned_by(
        &meta.path,
        format!("unknown key `{name}` in #[counter_cache(...)]; expected one of {CACHE_KEYS}"),
    );
    skip_value(meta.input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn messages(result: syn::Result<()>) -> Vec<String> {
        result
            .err()
            .map(|err| err.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn reads_every_key() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[derive(Debug)]),
            parse_quote!(#[counter_cache(
                parent = crate::Product,
                column = crate::schema::products::stock,
                foreign_key = product_id,
                sum = quantity,
                when = paid,
                change = decrement_if_at_least,
                key_type = ::core::primitive::i32,
            )]),
        ];
        let cx = Ctxt::new();
        let caches = counter_caches(&cx, &attrs);
        cx.check().unwrap();
        assert_eq!(caches.len(), 1);
        let cache = &caches[0];
        assert!(cache.complete);
        let tokens = |t: &dyn ToTokens| t.to_token_stream().to_string();
        assert_eq!(
            tokens(&cache.parent.as_ref().unwrap().value),
            "crate :: Product"
        );
        assert_eq!(
            tokens(&cache.column.as_ref().unwrap().value),
            "crate :: schema :: products :: stock"
        );
        assert_eq!(cache.foreign_key.as_ref().unwrap().value, "product_id");
        assert_eq!(cache.sum.as_ref().unwrap().value, "quantity");
        assert_eq!(cache.when.as_ref().unwrap().value, "paid");
        assert_eq!(
            cache.change.as_ref().unwrap().value,
            "decrement_if_at_least"
        );
        assert_eq!(
            tokens(&cache.key_type.as_ref().unwrap().value),
            ":: core :: primitive :: i32"
        );
    }

    #[test]
    fn reads_slotted_as_a_bare_word() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[counter_cache(parent = A, column = a::n, foreign_key = a_id, slotted)]),
            parse_quote!(#[counter_cache(slotted = true, parent = A, slotted, slotted)]),
        ];
        let cx = Ctxt::new();
        let caches = counter_caches(&cx, &attrs);
        let messages = messages(cx.check());
        assert_eq!(caches[0].slotted.as_ref().unwrap(), "slotted");
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(messages[0].contains("`slotted` takes no value"));
        assert!(messages[1].contains("duplicate key `slotted`"));
        assert!(caches[1].parent.is_some() && caches[1].slotted.is_some());
    }

    #[test]
    fn reports_unknown_and_repeated_keys_and_reads_on() {
        let attrs: Vec<Attribute> = vec![parse_quote!(#[counter_cache(
            parent = A, step = 2, parent = B, column = a::n, foreign_key = a_id
        )])];
        let cx = Ctxt::new();
        let caches = counter_caches(&cx, &attrs);
        let messages = messages(cx.check());
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(messages[0].contains("unknown key `step`"));
        assert!(messages[1].contains("duplicate key `parent`"));
        let cache = &caches[0];
        assert!(cache.complete);
        assert!(cache.parent.as_ref().unwrap().value.is_ident("A"));
        assert_eq!(cache.foreign_key.as_ref().unwrap().value, "a_id");
    }

    #[test]
    fn a_syntax_error_leaves_the_attribute_incomplete() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[counter_cache(parent = 5)]),
            parse_quote!(#[counter_cache]),
        ];
        let cx = Ctxt::new();
        let caches = counter_caches(&cx, &attrs);
        assert_eq!(messages(cx.check()).len(), 2);
        assert!(caches.iter().all(|cache| !cache.complete));
    }
}
