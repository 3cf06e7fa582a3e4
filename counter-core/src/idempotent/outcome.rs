//! What the ledger of idempotency keys holds for a call: its value ([`Outcome`]) or its
//! refusal, as text, and back.
//!
//! The text is a list of fields, each written `<length>:<bytes>`, so a field may hold any
//! text, a nested list included, and is read back without escaping: `ok` or `err`, then the
//! value's fields or the refusal's.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::error::{AtomicError, Limit};

/// A value an [`Idempotent`](crate::Idempotent) call can return: written to the ledger with
/// the call and read back, the same value, by a call that repeats its key.
///
/// Implemented for the integer types, `bool`, `()`, `String`, `Option`, `Vec` and tuples of
/// up to four: everything the operations return. For your own type, write its fields with
/// [`Outcome::write`] of each and read them back in the same order:
///
/// ```
/// use counter_core::Outcome;
///
/// #[derive(Debug, PartialEq)]
/// struct Sale { left: i32, sold: i64 }
///
/// impl Outcome for Sale {
///     fn write(&self, out: &mut String) {
///         (self.left, self.sold).write(out)
///     }
///     fn read(text: &str) -> Option<Self> {
///         let (left, sold) = <(i32, i64)>::read(text)?;
///         Some(Sale { left, sold })
///     }
/// }
///
/// let mut text = String::new();
/// Sale { left: 7, sold: 3 }.write(&mut text);
/// assert_eq!(Sale::read(&text), Some(Sale { left: 7, sold: 3 }));
/// ```
pub trait Outcome: Sized {
    /// Appends this value's text to `out`.
    fn write(&self, out: &mut String);
    /// The value `text` was written from; `None` when it is not such a text.
    fn read(text: &str) -> Option<Self>;
}

macro_rules! displayed {
    ($($t:ty),*) => {$(
        impl Outcome for $t {
            fn write(&self, out: &mut String) {
                out.push_str(&self.to_string());
            }
            fn read(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }
    )*};
}

displayed!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, bool, String);

impl Outcome for () {
    fn write(&self, _: &mut String) {}
    fn read(text: &str) -> Option<Self> {
        text.is_empty().then_some(())
    }
}

impl<T: Outcome> Outcome for Option<T> {
    fn write(&self, out: &mut String) {
        if let Some(value) = self {
            field(out, value);
        }
    }
    fn read(text: &str) -> Option<Self> {
        let mut fields = Fields(text);
        let value = fields.next().map(T::read);
        fields.end()?;
        match value {
            None => Some(None),
            Some(value) => value.map(Some),
        }
    }
}

impl<T: Outcome> Outcome for Vec<T> {
    fn write(&self, out: &mut String) {
        for value in self {
            field(out, value);
        }
    }
    fn read(text: &str) -> Option<Self> {
        let mut fields = Fields(text);
        let mut values = Vec::new();
        while !fields.0.is_empty() {
            values.push(T::read(fields.next()?)?);
        }
        Some(values)
    }
}

macro_rules! tuple {
    ($($t:ident . $i:tt),+) => {
        impl<$($t: Outcome),+> Outcome for ($($t,)+) {
            fn write(&self, out: &mut String) {
                $(field(out, &self.$i);)+
            }
            fn read(text: &str) -> Option<Self> {
                let mut fields = Fields(text);
                let value = ($($t::read(fields.next()?)?,)+);
                fields.end()?;
                Some(value)
            }
        }
    };
}

tuple!(A.0, B.1);
tuple!(A.0, B.1, C.2);
tuple!(A.0, B.1, C.2, D.3);

/// Appends `value` to `out` as one field.
pub(crate) fn field<T: Outcome>(out: &mut String, value: &T) {
    let mut text = String::new();
    value.write(&mut text);
    text_field(out, &text);
}

/// Appends `text` to `out` as one field.
fn text_field(out: &mut String, text: &str) {
    out.push_str(&text.len().to_string());
    out.push(':');
    out.push_str(text);
}

/// Reads fields off the front of a text.
struct Fields<'t>(&'t str);

impl<'t> Fields<'t> {
    /// The next field, `None` when there is none or the text is not a list of fields.
    fn next(&mut self) -> Option<&'t str> {
        let (len, rest) = self.0.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let value = rest.get(..len)?;
        self.0 = &rest[len..];
        Some(value)
    }

    /// `Some` when every field was read.
    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

/// The text of a call that returned `value`.
pub(crate) fn ok_text<T: Outcome>(value: &T) -> String {
    let mut out = String::from("ok");
    field(&mut out, value);
    out
}

/// The text of a call refused with `error`, or `None` when `error` is not a refusal (which
/// is not recorded: the call changed nothing, and running it again may succeed).
pub(crate) fn refusal_text(error: &AtomicError) -> Option<String> {
    let mut out = String::from("err");
    write_refusal(&mut out, error)?;
    Some(out)
}

fn write_refusal(out: &mut String, error: &AtomicError) -> Option<()> {
    let mut fields = |values: &[&str]| {
        for value in values {
            text_field(out, value);
        }
    };
    match error {
        AtomicError::NotFound => fields(&["not_found"]),
        AtomicError::Insufficient {
            available,
            requested,
        } => fields(&[
            "insufficient",
            &available.to_string(),
            &requested.to_string(),
        ]),
        AtomicError::OutOfRange {
            current,
            attempted,
            limit,
        } => {
            let (side, bound) = match limit {
                Limit::Min(v) => ("min", v),
                Limit::Max(v) => ("max", v),
            };
            fields(&[
                "out_of_range",
                &current.to_string(),
                &attempted.to_string(),
                side,
                &bound.to_string(),
            ])
        }
        AtomicError::Mismatch { expected, current } => {
            fields(&["mismatch", &expected.to_string(), &current.to_string()])
        }
        AtomicError::NegativeAmount { amount } => fields(&["negative", &amount.to_string()]),
        AtomicError::SameRow => fields(&["same_row"]),
        AtomicError::InColumn { column, error } => {
            let inner = refusal_text(error)?;
            fields(&["in_column", column, &inner]);
        }
        AtomicError::InRow { key, error } => {
            let inner = refusal_text(error)?;
            fields(&["in_row", key, &inner]);
        }
        _ => return None,
    }
    Some(())
}

/// The recorded result of a call: its value, or its refusal. `None` when `text` was not
/// written by [`ok_text`] or [`refusal_text`] for a `T`.
pub(crate) fn read_outcome<T: Outcome>(text: &str) -> Option<Result<T, AtomicError>> {
    if let Some(value) = text.strip_prefix("ok") {
        let mut fields = Fields(value);
        let value = T::read(fields.next()?)?;
        fields.end()?;
        return Some(Ok(value));
    }
    Some(Err(read_refusal(text.strip_prefix("err")?)?))
}

fn read_refusal(text: &str) -> Option<AtomicError> {
    let mut f = Fields(text);
    let number = |s: Option<&str>| s?.parse::<i128>().ok();
    let error = match f.next()? {
        "not_found" => AtomicError::NotFound,
        "insufficient" => AtomicError::Insufficient {
            available: number(f.next())?,
            requested: number(f.next())?,
        },
        "out_of_range" => AtomicError::OutOfRange {
            current: number(f.next())?,
            attempted: number(f.next())?,
            limit: match (f.next()?, number(f.next())?) {
                ("min", v) => Limit::Min(v),
                ("max", v) => Limit::Max(v),
                _ => return None,
            },
        },
        "mismatch" => AtomicError::Mismatch {
            expected: number(f.next())?,
            current: number(f.next())?,
        },
        "negative" => AtomicError::NegativeAmount {
            amount: number(f.next())?,
        },
        "same_row" => AtomicError::SameRow,
        "in_column" => AtomicError::InColumn {
            column: interned(f.next()?),
            error: Box::new(read_refusal(f.next()?.strip_prefix("err")?)?),
        },
        "in_row" => AtomicError::InRow {
            key: f.next()?.to_owned(),
            error: Box::new(read_refusal(f.next()?.strip_prefix("err")?)?),
        },
        _ => return None,
    };
    f.end()?;
    Some(error)
}

/// `name` as a `&'static str`, for [`AtomicError::InColumn`] read back from the ledger: each
/// distinct name is leaked once (column names are few), never per call.
fn interned(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Outcome + PartialEq + std::fmt::Debug>(value: T) {
        let text = ok_text(&value);
        assert_eq!(read_outcome::<T>(&text).unwrap().unwrap(), value, "{text}");
    }

    #[test]
    fn values_read_back_as_written() {
        round_trip(-7i32);
        round_trip(u64::MAX);
        round_trip(());
        round_trip((1i64, -2i16));
        round_trip((
            Some(3i32),
            None::<i64>,
            vec![1u32, 2, 3],
            String::from("a:b 1:"),
        ));
        round_trip(vec![(1i64, 2i64), (3, 4)]);
        round_trip(Vec::<i32>::new());
    }

    #[test]
    fn refusals_read_back_as_written() {
        let refusals = [
            AtomicError::NotFound,
            AtomicError::Insufficient {
                available: 2,
                requested: 5,
            },
            AtomicError::OutOfRange {
                current: 998,
                attempted: 1003,
                limit: Limit::Max(1000),
            },
            AtomicError::Mismatch {
                expected: 4,
                current: -9,
            },
            AtomicError::InColumn {
                column: "stock",
                error: Box::new(AtomicError::OutOfRange {
                    current: 1,
                    attempted: -1,
                    limit: Limit::Min(0),
                }),
            },
            AtomicError::InRow {
                key: "(1, \"a:b\")".into(),
                error: Box::new(AtomicError::NotFound),
            },
            AtomicError::SameRow,
            AtomicError::NegativeAmount { amount: -3 },
        ];
        for refusal in refusals {
            let text = refusal_text(&refusal).unwrap();
            let back = read_outcome::<i32>(&text).unwrap().unwrap_err();
            assert_eq!(back.to_string(), refusal.to_string(), "{text}");
            assert_eq!(format!("{back:?}"), format!("{refusal:?}"));
        }
    }

    #[test]
    fn other_errors_are_not_recorded() {
        assert!(refusal_text(&AtomicError::Locked).is_none());
        assert!(refusal_text(&AtomicError::custom("mine")).is_none());
        let inner = AtomicError::InColumn {
            column: "stock",
            error: Box::new(AtomicError::Locked),
        };
        assert!(refusal_text(&inner).is_none());
    }

    #[test]
    fn a_foreign_text_is_not_an_outcome() {
        for text in [
            "",
            "ok",
            "ok3:12",
            "ok2:1x",
            "err",
            "err5:other",
            "ok1:1junk",
        ] {
            assert!(read_outcome::<i32>(text).is_none(), "{text}");
        }
    }
}
