//! The models the checker runs on: how their keys are made and spelled, and how a row is
//! written and read without the library.

use counter_core::{AtomicField, Change};

use super::op::Keys;
use crate::models::{CkCounter, CkName, CkPair};
use crate::next_id;
use crate::schema::{ck_ints, ck_pairs, ck_texts};

/// The key of a subject.
pub type KeyOf<S> = <S as AtomicField<<S as Subject>::Col>>::Key;

/// The two-column sale of a subject: `v` down if enough, `w` up.
pub type SaleOf<S> = (
    Change<<S as Subject>::Col, i32>,
    Change<<S as Subject>::Sold, i64>,
);

/// A model with one checked atomic `i32` column, and a second atomic column the two-column
/// changes add to.
pub trait Subject:
    AtomicField<Self::Col, Value = i32>
    + AtomicField<
        Self::Sold,
        Value = i64,
        Key = <Self as AtomicField<Self::Col>>::Key,
        KeyColumns = <Self as AtomicField<Self::Col>>::KeyColumns,
    > + Sized
{
    /// The checked atomic column.
    type Col: diesel::Column + 'static;
    /// The second column of the two-column changes.
    type Sold: diesel::Column + 'static;
    /// The row `increment_or_insert` is given for `key` (the history's rows all exist, so it
    /// is never inserted).
    fn row(key: &<Self as AtomicField<Self::Col>>::Key) -> Self;
    /// For messages.
    const SUBJECT: &'static str;
    /// The table and its key columns (comma-separated), for the checker's own SQL.
    const TABLE: &'static str;
    const KEY_COLUMN: &'static str;

    /// Keys for `rows` new rows and for a row that does not exist. `trailing_space`: the
    /// database ignores trailing spaces in this key (MariaDB's PAD SPACE collations).
    fn keys(rows: usize, trailing_space: bool) -> Keys<<Self as AtomicField<Self::Col>>::Key>;

    /// The key as SQL literals, comma-separated like `KEY_COLUMN`.
    fn literal(key: &<Self as AtomicField<Self::Col>>::Key) -> String;
}

/// Spellings of one string key: as inserted, upper-cased, and with a trailing space where the
/// database ignores trailing spaces.
fn spellings(base: String, trailing_space: bool) -> Vec<String> {
    let mut all = vec![base.clone(), base.to_uppercase()];
    if trailing_space {
        all.push(format!("{base} "));
    }
    all
}

impl Subject for CkCounter {
    type Col = ck_ints::v;
    type Sold = ck_ints::w;
    const SUBJECT: &'static str = "integer key";
    const TABLE: &'static str = "ck_ints";

    fn row(key: &i64) -> Self {
        CkCounter {
            id: *key,
            v: 0,
            w: 0,
        }
    }
    const KEY_COLUMN: &'static str = "id";

    fn keys(rows: usize, _: bool) -> Keys<i64> {
        Keys {
            rows: (0..rows).map(|_| vec![next_id()]).collect(),
            missing: vec![next_id()],
        }
    }

    fn literal(key: &i64) -> String {
        key.to_string()
    }
}

impl Subject for CkName {
    type Col = ck_texts::v;
    type Sold = ck_texts::w;
    const SUBJECT: &'static str = "case-insensitive string key";
    const TABLE: &'static str = "ck_texts";

    fn row(key: &String) -> Self {
        CkName {
            name: key.clone(),
            v: 0,
            w: 0,
        }
    }
    const KEY_COLUMN: &'static str = "name";

    /// Each row is inserted as `kN-rI` and also named `KN-RI` (and `kN-rI ` where trailing
    /// spaces do not count); the missing key likewise.
    fn keys(rows: usize, trailing_space: bool) -> Keys<String> {
        let unique = next_id();
        Keys {
            rows: (0..rows)
                .map(|i| spellings(format!("k{unique}-r{i}"), trailing_space))
                .collect(),
            missing: spellings(format!("k{unique}-missing"), trailing_space),
        }
    }

    fn literal(key: &String) -> String {
        format!("'{key}'")
    }
}

impl Subject for CkPair {
    type Col = ck_pairs::v;
    type Sold = ck_pairs::w;
    const SUBJECT: &'static str = "composite key (integer, case-insensitive string)";
    const TABLE: &'static str = "ck_pairs";
    const KEY_COLUMN: &'static str = "a, b";

    fn row(key: &(i64, String)) -> Self {
        CkPair {
            a: key.0,
            b: key.1.clone(),
            v: 0,
            w: 0,
        }
    }

    /// Rows alternate between two integers, so the integer half alone names two rows; each
    /// row's string half is spelled as `CkName` spells its key. The missing key pairs the
    /// integer of row 0 with the string of row 1: each half exists, never together.
    fn keys(rows: usize, trailing_space: bool) -> Keys<(i64, String)> {
        let (unique, first, second) = (next_id(), next_id(), next_id());
        let key = |i: usize, name: &str| {
            let a = if i % 2 == 0 { first } else { second };
            spellings(format!("p{unique}-{name}"), trailing_space)
                .into_iter()
                .map(|b| (a, b))
                .collect()
        };
        Keys {
            rows: (0..rows).map(|i| key(i, &format!("r{i}"))).collect(),
            missing: key(0, "r1"),
        }
    }

    fn literal(key: &(i64, String)) -> String {
        format!("{}, '{}'", key.0, key.1)
    }
}
