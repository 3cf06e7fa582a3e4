//! The models the checker runs on: how their keys are made and spelled, and how a row is
//! written and read without the library.

use counter_core::AtomicField;

use super::op::Keys;
use crate::models::{CkCounter, CkName};
use crate::next_id;
use crate::schema::{ck_counters, ck_names};

/// A model with one atomic `i32` column the checker drives.
pub trait Subject: AtomicField<Self::Col, Value = i32> {
    /// The atomic column.
    type Col: diesel::Column + 'static;
    /// For messages.
    const SUBJECT: &'static str;
    /// The table and its key column, for the checker's own SQL.
    const TABLE: &'static str;
    const KEY_COLUMN: &'static str;

    /// Keys for `rows` new rows and for a row that does not exist. `trailing_space`: the
    /// database ignores trailing spaces in this key (MariaDB's PAD SPACE collations).
    fn keys(rows: usize, trailing_space: bool) -> Keys<Self::Key>;

    /// The key as an SQL literal.
    fn literal(key: &Self::Key) -> String;
}

impl Subject for CkCounter {
    type Col = ck_counters::v;
    const SUBJECT: &'static str = "integer key";
    const TABLE: &'static str = "ck_counters";
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
    type Col = ck_names::v;
    const SUBJECT: &'static str = "case-insensitive string key";
    const TABLE: &'static str = "ck_names";
    const KEY_COLUMN: &'static str = "name";

    /// Each row is inserted as `kN-rI` and also named `KN-RI` (and `kN-rI ` where trailing
    /// spaces do not count); the missing key likewise.
    fn keys(rows: usize, trailing_space: bool) -> Keys<String> {
        let unique = next_id();
        let spellings = |base: String| {
            let mut all = vec![base.clone(), base.to_uppercase()];
            if trailing_space {
                all.push(format!("{base} "));
            }
            all
        };
        Keys {
            rows: (0..rows)
                .map(|i| spellings(format!("k{unique}-r{i}")))
                .collect(),
            missing: spellings(format!("k{unique}-missing")),
        }
    }

    fn literal(key: &String) -> String {
        format!("'{key}'")
    }
}
