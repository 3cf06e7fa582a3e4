//! The statements, as Diesel query nodes.
//!
//! Each node has a static [`QueryId`] built from the model, the column and a statement kind,
//! so Diesel prepares it once per connection and reuses it, exactly as it does for queries
//! written with its DSL. Identifiers are quoted by the backend (`push_identifier`), the table
//! is rendered by Diesel's own `table!` type (schema-qualified where declared), and every value
//! is a bind parameter.

mod assign;
mod child;
mod delta;
mod ledger;
mod lock;
mod memcached_ledger;
mod multi;
mod pair;
mod read_write;
mod set;
mod slots;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod take;
mod touch;
mod upsert;

pub(crate) use assign::{Assign, Highest, Lowest, Rule, Swap};
#[cfg(feature = "postgres")]
pub(crate) use child::InsertCounted;
pub(crate) use child::{
    Aggregate, DeleteChild, InsertChild, LinkOf, NoAnswer, ParentKeys, ReturnKey, UpdateChild,
    PARENT_PAGE,
};
#[cfg(feature = "mysql")]
pub(crate) use child::{ChildKeyBack, CountedBack};
#[cfg(feature = "mysql")]
pub(crate) use delta::{Captured, Unanswered};
pub(crate) use delta::{DeltaUpdate, Down, Returning, Up};
pub(crate) use ledger::{KeyClaim, KeyRow, KeySettle};
pub use ledger::{LedgerDialect, FLUSH_LEDGER};
pub(crate) use lock::{ForUpdate, NoWait, SkipLocked, Unlocked};
pub use memcached_ledger::{MemcachedLedger, MEMCACHED_LEDGER};
#[cfg(feature = "mysql")]
pub(crate) use multi::MultiCaptured;
pub(crate) use multi::{MultiSelect, MultiUpdate, MultiWrite};
pub(crate) use pair::{pair_order, First};
#[cfg(feature = "mysql")]
pub(crate) use read_write::LastInsertId;
pub(crate) use read_write::{read, read_locked, write};
pub(crate) use set::{AllRows, EachRow, LockKeys, ReadKeys, RowsRule, SetChange, WriteKeys};
pub(crate) use slots::{ParentRow, SlotAdd, SlotDelete, SlotSum, SlotsLocked, SlottedParentKeys};
#[cfg(feature = "mysql")]
pub(crate) use take::TakeCaptured;
#[cfg(feature = "postgres")]
pub(crate) use take::TakeFromLocked;
pub(crate) use touch::walk_touches;
#[cfg(feature = "mysql")]
pub(crate) use upsert::OnDuplicateKey;
pub(crate) use upsert::{Guarded, OnConflict, Unguarded, Upsert};

use std::marker::PhantomData;

/// The static identity of one statement shape: model, column, and a marker type naming the
/// statement and its variant.
pub(crate) struct StatementId<M, Col, Shape>(PhantomData<Marker<M, Col, Shape>>);

/// A `'static`, `Send + Sync` stand-in for the three types, whatever they are.
type Marker<M, Col, Shape> = fn() -> (M, Col, Shape);

/// `MySQL` keeps the last value given to `LAST_INSERT_ID(expr)` per connection, as an unsigned
/// 64-bit integer. XOR with the sign bit maps every signed and unsigned value of every
/// supported type into that range, order-preserving and reversible: the captured value never
/// fails a range check and never depends on `sql_mode`.
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) const CAPTURE_MASK: &str = "9223372036854775808";

/// Decodes a value captured with [`CAPTURE_MASK`].
#[cfg(feature = "mysql")]
pub(crate) fn decode_capture<V: crate::AtomicValue>(raw: u64) -> Option<V> {
    let bits = raw ^ (1u64 << 63);
    let wide = if V::MIN.to_i128() < 0 {
        i128::from(bits as i64)
    } else {
        i128::from(bits)
    };
    V::from_i128(wide)
}

#[cfg(all(test, feature = "mysql"))]
mod tests {
    use super::*;

    fn encode(v: i128) -> u64 {
        // What MySQL computes for `v ^ 9223372036854775808`: the two's complement bits of v.
        (v as i64 as u64) ^ (1u64 << 63)
    }

    #[test]
    fn capture_round_trips_every_type_extreme() {
        for v in [i64::MIN as i128, -5, 0, 7, i64::MAX as i128] {
            assert_eq!(decode_capture::<i64>(encode(v)), Some(v as i64));
        }
        assert_eq!(decode_capture::<i16>(encode(-300)), Some(-300));
        assert_eq!(decode_capture::<u64>(u64::MAX ^ (1 << 63)), Some(u64::MAX));
        assert_eq!(
            decode_capture::<u32>(encode(4_000_000_000)),
            Some(4_000_000_000)
        );
    }
}
