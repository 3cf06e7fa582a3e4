//! `#[atomic]` and `#[atomic(min = .., max = .., retries = .., touch = .., slots = .., table = ..,
//! allow_decrement)]` on the struct and its fields: every key is known, so an unknown or
//! repeated one is reported, and each value keeps its tokens.

use super::skip_value;
use crate::ctxt::Ctxt;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Error, Expr, Ident, Lit, LitInt, LitStr, Meta, Path, Result, UnOp};

/// The keys `#[atomic(...)]` accepts on a field.
const FIELD_KEYS: &str = "`min`, `max`, `retries`, `touch`, and for a slotted counter `slots`, \
     `table`, `allow_decrement`";

/// Where an `#[atomic]` attribute sits; the struct accepts fewer keys.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Level {
    Struct,
    Field,
}

/// Everything from the `#[atomic]` attributes of one item, merged.
#[derive(Default)]
pub struct Atomic<'a> {
    /// The first `#[atomic]` attribute; `None` if the item has none.
    pub original: Option<&'a Attribute>,
    pub min: Option<Int>,
    pub max: Option<Int>,
    pub retries: Option<Int>,
    /// `slots = N`: a slotted counter over N rows of `table`.
    pub slots: Option<Int>,
    /// `table = path`: the slotted counter's slot table (`table!` module).
    pub table: Option<Path>,
    /// `allow_decrement`: a slotted counter that may go down (and below zero).
    pub allow_decrement: Option<Ident>,
    /// `touch = column`: a timestamp column each change of the field also sets.
    pub touch: Option<Touch>,
}

/// `touch = updated_at`.
#[derive(Clone)]
pub struct Touch {
    /// The `touch` key, which errors about the declaration span.
    pub key: Ident,
    /// The timestamp column, a column of the model's `table!`.
    pub column: Ident,
}

/// `key = <integer literal>`, e.g. `min = -1`, or for a bound of a `Decimal` field a quoted
/// decimal, `min = "-0.50"`.
#[derive(Clone)]
pub struct Int {
    pub key: Ident,
    /// The value as written (`-1` is a unary minus around the literal);
    /// errors about the value span this.
    pub expr: Expr,
    /// The integer literal, or for a quoted decimal an unsuffixed stand-in with its span.
    pub lit: LitInt,
    /// The value including its sign, in units of the last written decimal (`"-0.50"` is
    /// `-50`); for a `Decimal<P, S>` field's bound, once the model is built, in `10^-S`
    /// units. Literals outside `i128` are rejected while parsing; every counter type fits.
    pub value: i128,
    /// Digits after the point as written (`Some(2)` for `"-0.50"`), `None` for an integer
    /// literal; for a `Decimal<P, S>` field's bound, once the model is built, `Some(S)`.
    pub decimals: Option<u32>,
}

impl Int {
    /// The value as a message shows it: `-1`, or `-0.50` for a decimal.
    pub fn display(&self) -> String {
        match self.decimals {
            None | Some(0) => self.value.to_string(),
            Some(decimals) => {
                let Some(one) = 10u128.checked_pow(decimals) else {
                    return format!("{}e-{decimals}", self.value);
                };
                let abs = self.value.unsigned_abs();
                let sign = if self.value < 0 { "-" } else { "" };
                format!(
                    "{sign}{}.{:0width$}",
                    abs / one,
                    abs % one,
                    width = decimals as usize
                )
            }
        }
    }
}

/// Reads all `#[atomic]` attributes of a struct or field.
pub fn atomic<'a>(cx: &Ctxt, attrs: &'a [Attribute], level: Level) -> Atomic<'a> {
    let mut out = Atomic::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("atomic")) {
        out.original.get_or_insert(attr);
        match &attr.meta {
            Meta::Path(_) => {
                if level == Level::Struct {
                    cx.error_spanned_by(
                        attr,
                        "a bare #[atomic] belongs on a counter field; on the struct the only \
                         option is #[atomic(retries = N)]",
                    );
                }
            }
            Meta::NameValue(_) => cx.error_spanned_by(
                attr,
                "expected #[atomic] or #[atomic(min = .., max = .., retries = ..)]",
            ),
            Meta::List(_) => {
                let parsed = attr.parse_nested_meta(|meta| atomic_key(cx, &mut out, meta, level));
                if let Err(err) = parsed {
                    cx.syn_error(err);
                }
            }
        }
    }
    out
}

fn atomic_key(cx: &Ctxt, out: &mut Atomic, meta: ParseNestedMeta, level: Level) -> Result<()> {
    if level == Level::Field {
        if let Some(key) = meta.path.get_ident() {
            if key == "table" {
                let path: Path = meta.value()?.parse()?;
                if out.table.replace(path).is_some() {
                    cx.error_spanned_by(key, "duplicate key `table` in #[atomic]; give it once");
                }
                return Ok(());
            }
            if key == "touch" {
                let column: Ident = meta.value()?.parse()?;
                let touch = Touch {
                    key: key.clone(),
                    column,
                };
                if out.touch.replace(touch).is_some() {
                    cx.error_spanned_by(key, "duplicate key `touch` in #[atomic]; give it once");
                }
                return Ok(());
            }
            if key == "allow_decrement" {
                if out.allow_decrement.replace(key.clone()).is_some() {
                    cx.error_spanned_by(key, "duplicate key `allow_decrement` in #[atomic]");
                }
                return Ok(());
            }
        }
    }
    let (key, slot) = match meta.path.get_ident() {
        Some(key) if key == "slots" && level == Level::Field => (key, &mut out.slots),
        Some(key) if key == "min" => (key, &mut out.min),
        Some(key) if key == "max" => (key, &mut out.max),
        Some(key) if key == "retries" => (key, &mut out.retries),
        _ => {
            let name = meta.path.to_token_stream().to_string().replace(' ', "");
            let msg = match level {
                Level::Field => {
                    format!("unknown key `{name}` in #[atomic(...)]; expected one of {FIELD_KEYS}")
                }
                Level::Struct if name == "touch" => "`touch` names the timestamp column of one \
                     field's changes; move it to #[atomic(touch = ..)] on each field whose \
                     changes should set it"
                    .to_owned(),
                Level::Struct => format!(
                    "unknown key `{name}` in #[atomic(...)] on a struct; the only struct-level \
                     key is `retries`"
                ),
            };
            cx.error_spanned_by(&meta.path, msg);
            return skip_value(meta.input);
        }
    };
    if level == Level::Struct && key != "retries" {
        cx.error_spanned_by(
            key,
            format!("`{key}` is a per-field bound; move it to #[atomic({key} = ..)] on the field"),
        );
        return skip_value(meta.input);
    }
    let expr: Expr = meta.value()?.parse()?;
    if slot.is_some() {
        cx.error_spanned_by(
            key,
            format!("duplicate key `{key}` in #[atomic]; give each key only once"),
        );
        return Ok(());
    }
    let quoted = match &expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(text),
            ..
        }) if key == "min" || key == "max" => Some(text.clone()),
        _ => None,
    };
    let parsed = match quoted {
        Some(text) => {
            decimal_literal(&text).map(|(lit, value, decimals)| (lit, value, Some(decimals)))
        }
        None => int_literal(&expr).map(|(lit, value)| (lit, value, None)),
    };
    match parsed {
        Ok((lit, value, decimals)) => {
            *slot = Some(Int {
                key: key.clone(),
                expr,
                lit,
                value,
                decimals,
            });
        }
        Err(err) => cx.syn_error(err),
    }
    Ok(())
}

/// `"-12.50"` as `(stand-in literal, -1250, 2)`.
fn decimal_literal(text: &LitStr) -> Result<(LitInt, i128, u32)> {
    let written = text.value();
    let (negative, digits) = match written.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, written.strip_prefix('+').unwrap_or(&written)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !(whole.is_empty() && fraction.is_empty())
        && whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit());
    let value = format!("{whole}{fraction}");
    let parsed = if value.is_empty() || !well_formed {
        None
    } else {
        value.parse::<i128>().ok()
    };
    let Some(value) = parsed else {
        return Err(Error::new_spanned(
            text,
            format!(
                "expected a decimal such as \"0.00\" or \"-12.50\" for a Decimal field's \
                 bound, got {written:?}"
            ),
        ));
    };
    let value = if negative { -value } else { value };
    let lit = LitInt::new(&value.unsigned_abs().to_string(), text.span());
    Ok((lit, value, fraction.len() as u32))
}

/// Accepts `5`, `-5`, and either wrapped in an invisible group (which is
/// what a `macro_rules!` `$e:expr` becomes).
fn int_literal(expr: &Expr) -> Result<(LitInt, i128)> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(lit), ..
        }) => Ok((lit.clone(), parse_i128(lit)?)),
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => match &*unary.expr {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Int(lit), ..
            }) => Ok((lit.clone(), -parse_i128(lit)?)),
            _ => Err(not_an_integer(expr)),
        },
        Expr::Group(group) => int_literal(&group.expr),
        _ => Err(not_an_integer(expr)),
    }
}

fn parse_i128(lit: &LitInt) -> Result<i128> {
    lit.base10_parse::<i128>().map_err(|_| {
        Error::new_spanned(
            lit,
            "integer literal is too large for any counter type; the widest is u64 \
             (max 18446744073709551615)",
        )
    })
}

fn not_an_integer(expr: &Expr) -> Error {
    Error::new_spanned(
        expr,
        "expected an integer literal such as `0` or `-10`; constants and expressions are not \
         supported here",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn field_attrs(attrs: &[Attribute]) -> (Atomic<'_>, syn::Result<()>) {
        let cx = Ctxt::new();
        let atomic = atomic(&cx, attrs, Level::Field);
        (atomic, cx.check())
    }

    fn messages(result: syn::Result<()>) -> Vec<String> {
        result
            .err()
            .map(|err| err.into_iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn reads_quoted_decimals_and_shows_any_of_them() {
        let attrs: Vec<Attribute> = vec![parse_quote!(#[atomic(min = "-0.50", max = "+12")])];
        let (atomic, result) = field_attrs(&attrs);
        result.unwrap();
        let (min, max) = (atomic.min.unwrap(), atomic.max.unwrap());
        assert_eq!(
            (min.value, min.decimals, min.display()),
            (-50, Some(2), "-0.50".into())
        );
        assert_eq!(
            (max.value, max.decimals, max.display()),
            (12, Some(0), "12".into())
        );
        // 39 decimals: shown without overflowing 10^39 (the message of a refused bound).
        let tiny = format!("0.{}1", "0".repeat(38));
        let attrs: Vec<Attribute> = vec![parse_quote!(#[atomic(min = #tiny)])];
        let (atomic, result) = field_attrs(&attrs);
        result.unwrap();
        assert_eq!(atomic.min.unwrap().display(), "1e-39");
        let attrs: Vec<Attribute> = vec![parse_quote!(#[atomic(retries = "3")])];
        assert!(field_attrs(&attrs).1.is_err());
    }

    #[test]
    fn reads_bounds_and_retries() {
        let attrs: Vec<Attribute> =
            vec![parse_quote!(#[atomic(min = -5, max = 1000, retries = 3)])];
        let (atomic, result) = field_attrs(&attrs);
        assert!(result.is_ok());
        assert!(atomic.original.is_some());
        assert_eq!(atomic.min.unwrap().value, -5);
        assert_eq!(atomic.max.unwrap().value, 1000);
        assert_eq!(atomic.retries.unwrap().value, 3);
    }

    #[test]
    fn bare_and_empty_atomic_have_no_keys() {
        for attr in [parse_quote!(#[atomic]), parse_quote!(#[atomic()])] {
            let attrs: Vec<Attribute> = vec![attr];
            let (atomic, result) = field_attrs(&attrs);
            assert!(result.is_ok());
            assert!(atomic.original.is_some());
            assert!(atomic.min.is_none() && atomic.max.is_none() && atomic.retries.is_none());
        }
    }

    #[test]
    fn no_atomic_attribute() {
        let attrs: Vec<Attribute> = vec![parse_quote!(#[serde(default)])];
        let (atomic, result) = field_attrs(&attrs);
        assert!(result.is_ok());
        assert!(atomic.original.is_none());
    }

    #[test]
    fn huge_literals_parse_through_i128() {
        let attrs: Vec<Attribute> = vec![parse_quote!(#[atomic(max = 18446744073709551615)])];
        let (atomic, result) = field_attrs(&attrs);
        assert!(result.is_ok());
        assert_eq!(atomic.max.unwrap().value, i128::from(u64::MAX));
    }

    #[test]
    fn reports_every_mistake() {
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[atomic(minimum = 0, min = 1.5)]),
            parse_quote!(#[atomic(max = 1, max = 2, retries = LIMIT)]),
        ];
        let (_, result) = field_attrs(&attrs);
        let messages = messages(result);
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(messages[0].contains("unknown key `minimum`"));
        assert!(messages[0].contains("`min`, `max`, `retries`"));
        assert!(messages[1].contains("expected an integer literal"));
        assert!(messages[2].contains("duplicate key `max`"));
        assert!(messages[3].contains("expected an integer literal"));
    }

    #[test]
    fn reads_touch_once() {
        let attrs: Vec<Attribute> = vec![parse_quote!(#[atomic(min = 0, touch = updated_at)])];
        let (parsed, result) = field_attrs(&attrs);
        assert!(result.is_ok());
        assert_eq!(parsed.touch.unwrap().column, "updated_at");
        let attrs: Vec<Attribute> = vec![parse_quote!(#[atomic(touch = a, touch = b)])];
        let twice = messages(field_attrs(&attrs).1);
        assert_eq!(twice.len(), 1, "{twice:#?}");
        assert!(twice[0].contains("duplicate key `touch`"));
        let cx = Ctxt::new();
        let attrs: Vec<Attribute> = vec![parse_quote!(#[atomic(touch = updated_at)])];
        atomic(&cx, &attrs, Level::Struct);
        let on_struct = messages(cx.check());
        assert_eq!(on_struct.len(), 1, "{on_struct:#?}");
        assert!(on_struct[0].contains("on each field"));
    }

    #[test]
    fn struct_level_takes_only_retries() {
        let attrs: Vec<Attribute> = vec![parse_quote!(#[atomic(retries = 5, min = 0)])];
        let cx = Ctxt::new();
        let atomic = atomic(&cx, &attrs, Level::Struct);
        let messages = messages(cx.check());
        assert_eq!(atomic.retries.unwrap().value, 5);
        assert_eq!(messages.len(), 1);
        assert!(messages[0].contains("per-field bound"));
    }
}
