//! A model's key as text and back: a Redis hash field ([`RedisCounter`](crate::RedisCounter)),
//! the tail of a Memcached item name (`MemcachedCounter`). Shared by both counters, so a key
//! reads the same in either store.
//!
//! One column: the value as text (`42`, `alice`), readable with `redis-cli`. Several columns:
//! each part as `<byte length>:<text>`, concatenated (`(7, "a:b")` is `1:73:a:b`), so no part
//! can be mistaken for a separator whatever it contains.

/// A primary key a cache-backed counter can store as text (a Redis hash field, a Memcached
/// item name's tail): the integer types, `String`, and tuples of them (composite keys) up to
/// four. The name is the Redis counter's, which had it first; the Memcached counter takes the
/// same keys.
pub trait RedisKey: Sized {
    /// Appends the field of this key.
    fn write_field(&self, out: &mut String);
    /// The key a field names, or `None` when it names none (a field written by something
    /// else than this library).
    fn read_field(field: &str) -> Option<Self>;

    /// The field of this key.
    fn field(&self) -> String {
        let mut out = String::new();
        self.write_field(&mut out);
        out
    }
}

macro_rules! integer_keys {
    ($($t:ty),*) => {$(
        impl RedisKey for $t {
            fn write_field(&self, out: &mut String) {
                use std::fmt::Write;
                let _ = write!(out, "{self}");
            }
            fn read_field(field: &str) -> Option<Self> {
                // `str::parse` takes a leading `+`, which `write_field` never writes: one
                // key, one field.
                if field.starts_with('+') {
                    return None;
                }
                field.parse().ok()
            }
        }
    )*};
}
integer_keys!(i16, i32, i64, u16, u32, u64);

impl RedisKey for String {
    fn write_field(&self, out: &mut String) {
        out.push_str(self);
    }
    fn read_field(field: &str) -> Option<Self> {
        Some(field.to_owned())
    }
}

/// Appends `<len>:<text>`: the one encoding of a list of strings here, used by composite keys
/// and by the ledger's list of kept fields.
pub(crate) fn push_part(out: &mut String, part: &str) {
    out.push_str(&part.len().to_string());
    out.push(':');
    out.push_str(part);
}

/// Splits `<len>:<text>` off the front of `rest`; the inverse of [`push_part`].
pub(crate) fn next_part<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let (len, tail) = rest.split_once(':')?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: usize = len.parse().ok()?;
    let part = tail.get(..len)?;
    *rest = &tail[len..];
    Some(part)
}

macro_rules! tuple_keys {
    ($($name:ident)+) => {
        impl<$($name: RedisKey),+> RedisKey for ($($name,)+) {
            fn write_field(&self, out: &mut String) {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $(push_part(out, &$name.field());)+
            }
            fn read_field(field: &str) -> Option<Self> {
                let mut rest = field;
                let key = ($($name::read_field(next_part(&mut rest)?)?,)+);
                rest.is_empty().then_some(key)
            }
        }
    };
}
tuple_keys!(A B);
tuple_keys!(A B C);
tuple_keys!(A B C D);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<K: RedisKey + PartialEq + std::fmt::Debug>(key: K, field: &str) {
        assert_eq!(key.field(), field);
        assert_eq!(K::read_field(field), Some(key));
    }

    #[test]
    fn keys_round_trip() {
        round_trip(42_i64, "42");
        round_trip(-7_i32, "-7");
        round_trip("alice".to_owned(), "alice");
        round_trip((7_i64, "a:b".to_owned()), "1:73:a:b");
        round_trip((1_i64, 2_i32, String::new()), "1:11:20:");
        round_trip(("é".to_owned(), 3_u64), "2:é1:3");
    }

    #[test]
    fn foreign_fields_name_no_key() {
        assert_eq!(i64::read_field("x"), None);
        assert_eq!(i64::read_field("+5"), None);
        assert_eq!(<(i64, i64)>::read_field("1:12:3"), None); // too short
        assert_eq!(<(i64, i64)>::read_field("1:11:2x"), None); // trailing text
        assert_eq!(<(i64, i64)>::read_field("9:1"), None);
        assert_eq!(<(String, i64)>::read_field("+1:a1:2"), None);
    }
}
