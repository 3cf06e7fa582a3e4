//! Pure arithmetic: the guard each statement carries, and what a miss means.
//!
//! Bounds are enforced in the direction of the change: an increment may not end above the
//! upper bound, a decrement may not end below the lower bound. A value that someone else
//! already wrote outside the bounds is not "repaired"; a change that moves it toward the range
//! is allowed. All arithmetic is in `i128`, so no guard can overflow.

use diesel::Column;

use crate::error::{AtomicError, Limit};
use crate::field::AtomicField;
use crate::value::AtomicValue;

/// The bounds in force for a column: declared ones, else the type's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub lo: i128,
    pub hi: i128,
}

impl Range {
    pub fn of<M: AtomicField<Col>, Col: Column>() -> Self {
        Range {
            lo: M::MIN.unwrap_or(M::Value::MIN).to_i128(),
            hi: M::MAX.unwrap_or(M::Value::MAX).to_i128(),
        }
    }

    /// The floor `take_*_up_to` stops at: the declared minimum, else zero.
    pub fn floor<M: AtomicField<Col>, Col: Column>() -> i128 {
        M::MIN.map_or(0, AtomicValue::to_i128)
    }
}

/// Which way a change moves the value (public only because `RawConnection` names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub enum Direction {
    Up,
    Down,
}

/// One guarded change: `col = col ± amount WHERE col <= guard` (up) or `col >= guard` (down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delta<V> {
    pub direction: Direction,
    pub amount: V,
    /// `None` when no value of the type can satisfy the guard: skip the statement.
    pub guard: Option<V>,
}

impl<V: AtomicValue> Delta<V> {
    /// Does a row holding `v` pass the guard?
    pub fn admits(&self, v: V) -> bool {
        match (self.guard, self.direction) {
            (None, _) => false,
            (Some(g), Direction::Up) => v <= g,
            (Some(g), Direction::Down) => v >= g,
        }
    }
}

/// Refuses negative amounts.
pub(crate) fn non_negative<V: AtomicValue>(amount: V) -> Result<i128, AtomicError> {
    let a = amount.to_i128();
    if a < 0 {
        Err(AtomicError::NegativeAmount { amount: a })
    } else {
        Ok(a)
    }
}

/// `col += amount` without ending above `range.hi`.
pub(crate) fn increment<V: AtomicValue>(range: Range, amount: V) -> Delta<V> {
    Delta {
        direction: Direction::Up,
        amount,
        guard: V::from_i128(range.hi - amount.to_i128()),
    }
}

/// `col -= amount` without ending below `range.lo`.
pub(crate) fn decrement<V: AtomicValue>(range: Range, amount: V) -> Delta<V> {
    Delta {
        direction: Direction::Down,
        amount,
        guard: V::from_i128(range.lo + amount.to_i128()),
    }
}

/// `col -= n` only when `col >= n`, and without ending below `range.lo`.
pub(crate) fn decrement_if_at_least<V: AtomicValue>(range: Range, n: V) -> Delta<V> {
    Delta {
        direction: Direction::Down,
        amount: n,
        guard: V::from_i128(n.to_i128() + range.lo.max(0)),
    }
}

/// The error for a value `current` that failed `delta`'s guard.
pub(crate) fn miss_error(
    range: Range,
    delta_kind: MissKind,
    current: i128,
    amount: i128,
) -> AtomicError {
    match delta_kind {
        MissKind::Increment => AtomicError::OutOfRange {
            current,
            attempted: current + amount,
            limit: Limit::Max(range.hi),
        },
        MissKind::Decrement => AtomicError::OutOfRange {
            current,
            attempted: current - amount,
            limit: Limit::Min(range.lo),
        },
        MissKind::AtLeast if current < amount => AtomicError::Insufficient {
            available: current,
            requested: amount,
        },
        MissKind::AtLeast => AtomicError::OutOfRange {
            current,
            attempted: current - amount,
            limit: Limit::Min(range.lo),
        },
    }
}

/// Which operation missed, to word its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MissKind {
    Increment,
    Decrement,
    AtLeast,
}

/// `take_up_to(n)`: take `min(n, col - floor)`, leaving at least `floor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub struct Take<V> {
    /// At most this much is taken; `n` clamped so that `floor + n` fits the type (the clamp
    /// never changes the result: no value can hold more than that above the floor).
    pub n: V,
    /// The value never goes below this.
    pub floor: V,
    /// `floor + n`: a row at or above it gives `n`, a row below it gives `col - floor`.
    pub threshold: V,
}

impl<V: AtomicValue> Take<V> {
    /// Plans a take; `None` when the floor is above the type's range (nothing can be taken).
    pub fn new(floor: i128, n: V) -> Option<Self> {
        let n = n.to_i128().min(V::MAX.to_i128() - floor);
        Some(Take {
            n: V::from_i128(n)?,
            floor: V::from_i128(floor)?,
            threshold: V::from_i128(floor + n)?,
        })
    }

    /// How much a row holding `v` gives.
    pub fn taken_from(&self, v: V) -> V {
        let (v, floor, n) = (v.to_i128(), self.floor.to_i128(), self.n.to_i128());
        let t = if v <= floor { 0 } else { n.min(v - floor) };
        V::from_i128(t).expect("0 <= taken <= n, which fits the type")
    }
}

/// Checks a value written by `update_*_locked` against the bounds, in the direction it moves.
pub(crate) fn check_transition(range: Range, current: i128, new: i128) -> Result<(), AtomicError> {
    if new > current && new > range.hi {
        return Err(AtomicError::OutOfRange {
            current,
            attempted: new,
            limit: Limit::Max(range.hi),
        });
    }
    if new < current && new < range.lo {
        return Err(AtomicError::OutOfRange {
            current,
            attempted: new,
            limit: Limit::Min(range.lo),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const I32: Range = Range {
        lo: i32::MIN as i128,
        hi: i32::MAX as i128,
    };
    const STOCK: Range = Range { lo: 0, hi: 1000 };

    #[test]
    fn increment_guard_leaves_room_for_the_amount() {
        assert_eq!(increment(STOCK, 3i32).guard, Some(997));
        assert_eq!(increment(I32, 1i32).guard, Some(i32::MAX - 1));
        assert!(increment(I32, 1i32).admits(i32::MAX - 1));
        assert!(!increment(I32, 1i32).admits(i32::MAX));
    }

    #[test]
    fn impossible_guards_are_none_not_wrapped() {
        let narrow = Range { lo: -5, hi: -5 };
        assert_eq!(increment(narrow, i16::MAX).guard, None);
        assert_eq!(decrement(Range { lo: 5, hi: 5 }, i16::MAX).guard, None);
        assert!(!increment(narrow, i16::MAX).admits(i16::MIN));
    }

    #[test]
    fn decrement_guard_keeps_the_minimum() {
        assert_eq!(decrement(STOCK, 4i32).guard, Some(4));
        assert_eq!(decrement(I32, 1i32).guard, Some(i32::MIN + 1));
    }

    #[test]
    fn at_least_guard_is_n_or_min_plus_n() {
        assert_eq!(decrement_if_at_least(STOCK, 7i64).guard, Some(7));
        assert_eq!(
            decrement_if_at_least(Range { lo: 5, hi: 9 }, 3i64).guard,
            Some(8)
        );
        assert_eq!(
            decrement_if_at_least(Range { lo: -50, hi: 9 }, 3i64).guard,
            Some(3)
        );
    }

    #[test]
    fn at_least_misses_are_insufficient_below_n_and_out_of_range_above() {
        let r = Range { lo: 5, hi: 100 };
        assert!(matches!(
            miss_error(r, MissKind::AtLeast, 2, 3),
            AtomicError::Insufficient {
                available: 2,
                requested: 3
            }
        ));
        assert!(matches!(
            miss_error(r, MissKind::AtLeast, 6, 3),
            AtomicError::OutOfRange {
                current: 6,
                attempted: 3,
                limit: Limit::Min(5)
            }
        ));
    }

    #[test]
    fn take_clamps_n_without_changing_the_result() {
        let t = Take::new(0, i16::MAX).unwrap();
        assert_eq!(t.threshold, i16::MAX);
        assert_eq!(t.taken_from(i16::MAX), i16::MAX);
        let t = Take::new(-10, i16::MAX).unwrap();
        assert_eq!(t.n, i16::MAX);
        assert_eq!(t.taken_from(i16::MAX), i16::MAX);
        assert_eq!(t.taken_from(-10), 0);
        assert_eq!(t.taken_from(-3), 7);
        let t = Take::new(0, 5i32).unwrap();
        assert_eq!(
            (t.taken_from(3), t.taken_from(5), t.taken_from(9)),
            (3, 5, 5)
        );
    }

    #[test]
    fn transitions_are_checked_in_their_direction() {
        assert!(check_transition(STOCK, 10, 1000).is_ok());
        assert!(check_transition(STOCK, 10, 1001).is_err());
        assert!(check_transition(STOCK, 10, -1).is_err());
        // Already out of range (a foreign writer): moving toward the range is allowed.
        assert!(check_transition(STOCK, -5, -2).is_ok());
        assert!(check_transition(STOCK, 2000, 1500).is_ok());
    }

    #[test]
    fn negative_amounts_are_refused() {
        assert!(matches!(
            non_negative(-1i32),
            Err(AtomicError::NegativeAmount { amount: -1 })
        ));
        assert_eq!(non_negative(0i64).unwrap(), 0);
    }
}
