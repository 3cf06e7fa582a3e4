//! Pure arithmetic: the guard each statement carries, and what a miss means.
//!
//! Bounds are enforced in the direction of the change: an increment may not end above the
//! upper bound, a decrement may not end below the lower bound. A value that someone else
//! already wrote outside the bounds is not "repaired"; a change that moves it toward the range
//! is allowed. All arithmetic is in `i128`, so no guard can overflow.

use diesel::Column;

use crate::error::{AtomicError, Limit};
use crate::field::{AtomicField, CacheChange};
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

/// Which way a change moves the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub enum Direction {
    Up,
    Down,
}

/// Which guarded operation a [`Plan`] is: it decides the guard and how a miss is worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `c + n`, not past the upper bound.
    Increment,
    /// `c - n`, not past the lower bound.
    Decrement,
    /// `c - n` only when `c >= n`, and not past the lower bound.
    AtLeast,
}

/// One guarded change, planned once and carried whole: the amount (checked non-negative
/// before anything else), the bounds in force, the guard the statement carries, what a row
/// that fails the guard means (the error to give), and the value a locked row ends at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub struct Plan<V> {
    op: Op,
    amount: V,
    /// `None` when no value of the type can satisfy the guard: skip the statement.
    guard: Option<V>,
    range: Range,
}

/// What a guarded statement sends: `col = col ± amount WHERE col <= guard` (up) or
/// `col >= guard` (down). Exists only for a plan some value can pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub struct Delta<V> {
    pub direction: Direction,
    pub amount: V,
    pub guard: V,
}

impl<V: AtomicValue> Plan<V> {
    /// Plans `op` by `amount` under `range`: `NegativeAmount` first, before any statement.
    pub(crate) fn new(op: Op, range: Range, amount: V) -> Result<Self, AtomicError> {
        let a = non_negative(amount)?;
        let guard = if a == 0 {
            // The zero rule, here and nowhere else: a zero amount changes nothing and refuses
            // nothing, not even on a value someone else wrote outside the bounds.
            Some(match op {
                Op::Increment => V::MAX,
                Op::Decrement | Op::AtLeast => V::MIN,
            })
        } else {
            V::from_i128(match op {
                // `col + a` without ending above `hi`.
                Op::Increment => range.hi - a,
                // `col - a` without ending below `lo`.
                Op::Decrement => range.lo + a,
                // `col - a` only when `col >= a`, and without ending below `lo`.
                Op::AtLeast => a + range.lo.max(0),
            })
        };
        Ok(Plan {
            op,
            amount,
            guard,
            range,
        })
    }

    /// [`Plan::new`] under the bounds of column `Col` of `M`.
    pub(crate) fn of<M, Col>(op: Op, amount: V) -> Result<Self, AtomicError>
    where
        M: AtomicField<Col, Value = V>,
        Col: Column,
    {
        Self::new(op, Range::of::<M, Col>(), amount)
    }

    /// Which way the value moves.
    pub fn direction(&self) -> Direction {
        match self.op {
            Op::Increment => Direction::Up,
            Op::Decrement | Op::AtLeast => Direction::Down,
        }
    }

    /// The amount, as given.
    pub fn amount(&self) -> V {
        self.amount
    }

    /// Does the change move nothing (a zero amount)? Then no statement needs to run.
    pub fn moves_nothing(&self) -> bool {
        self.amount == V::ZERO
    }

    /// What the guarded statement sends; `None` when no row can pass the guard.
    pub fn delta(&self) -> Option<Delta<V>> {
        Some(Delta {
            direction: self.direction(),
            amount: self.amount,
            guard: self.guard?,
        })
    }

    /// Does a row holding `v` pass the guard?
    pub fn admits(&self, v: V) -> bool {
        match (self.guard, self.direction()) {
            (None, _) => false,
            (Some(g), Direction::Up) => v <= g,
            (Some(g), Direction::Down) => v >= g,
        }
    }

    /// The error for a row holding `current`, when it fails the guard; `None` when it passes.
    pub fn refusal(&self, current: V) -> Option<AtomicError> {
        if self.admits(current) {
            return None;
        }
        Some(refusal(
            self.op,
            self.range,
            current.to_i128(),
            self.amount.to_i128(),
        ))
    }

    /// Applied under a row lock: the value a row holding `current` ends at, or the refusal.
    pub fn apply_to(&self, current: V) -> Result<V, AtomicError> {
        if let Some(refused) = self.refusal(current) {
            return Err(refused);
        }
        let (c, a) = (current.to_i128(), self.amount.to_i128());
        let new = match self.direction() {
            Direction::Up => c + a,
            Direction::Down => c - a,
        };
        Ok(V::from_i128(new).expect("the guard keeps the result in range"))
    }
}

/// Why `op` by `amount` refuses a row holding `current` within `range` (the guard said no):
/// `Insufficient` for a take of more than the row holds, else `OutOfRange` naming the bound.
/// `amount` may exceed the column's type (a set operation's summed amounts).
pub(crate) fn refusal(op: Op, range: Range, current: i128, amount: i128) -> AtomicError {
    match op {
        Op::Increment => AtomicError::OutOfRange {
            current,
            attempted: current + amount,
            limit: Limit::Max(range.hi),
        },
        Op::AtLeast if current < amount => AtomicError::Insufficient {
            available: current,
            requested: amount,
        },
        Op::Decrement | Op::AtLeast => AtomicError::OutOfRange {
            current,
            attempted: current - amount,
            limit: Limit::Min(range.lo),
        },
    }
}

/// A counter cache's change of its parent when a child row worth `amount` is inserted
/// (`inserted`) or deleted: the cache's own direction, or its reverse. A signed sum's negative
/// row moves the parent the other way, except for `DecrementIfAtLeast` (an order of -3 units
/// is refused with `NegativeAmount`).
pub(crate) fn cache_plan<M, Col>(
    change: CacheChange,
    amount: M::Value,
    inserted: bool,
) -> Result<Plan<M::Value>, AtomicError>
where
    M: AtomicField<Col>,
    Col: Column,
{
    use CacheChange::{Decrement, DecrementIfAtLeast, Increment};
    let op = match (change, inserted) {
        (Increment, true) | (Decrement | DecrementIfAtLeast, false) => Op::Increment,
        (Increment, false) | (Decrement, true) => Op::Decrement,
        (DecrementIfAtLeast, true) => Op::AtLeast,
    };
    let a = amount.to_i128();
    if a >= 0 || op == Op::AtLeast {
        return Plan::of::<M, Col>(op, amount);
    }
    let flipped = match op {
        Op::Increment => Op::Decrement,
        Op::Decrement | Op::AtLeast => Op::Increment,
    };
    let magnitude = M::Value::from_i128(-a).ok_or(AtomicError::OutOfRange {
        current: 0,
        attempted: -a,
        limit: Limit::Max(M::Value::MAX.to_i128()),
    })?;
    Plan::of::<M, Col>(flipped, magnitude)
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

/// A clamped move: `take_up_to(n)` takes `min(n, col - floor)`, leaving at least the floor
/// (`Down`); `increment_up_to(n)` adds `min(n, ceiling - col)`, ending at most at the ceiling
/// (`Up`). Either reports how much it moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub struct Take<V> {
    /// `Down` takes, `Up` fills.
    pub direction: Direction,
    /// At most this much moves; `n` clamped so that `limit ∓ n` fits the type (the clamp never
    /// changes the result: no value can be further than that from the limit).
    pub n: V,
    /// The value never passes this: the floor of a take, the ceiling of a fill.
    pub limit: V,
    /// `limit ± n`: a row at or beyond it (from the limit) moves by `n`, a row nearer moves to
    /// the limit.
    pub threshold: V,
}

impl<V: AtomicValue> Take<V> {
    /// Plans a take; `None` when the floor is above the type's range (nothing can be taken).
    pub fn new(floor: i128, n: V) -> Option<Self> {
        let n = n.to_i128().min(V::MAX.to_i128() - floor);
        Some(Take {
            direction: Direction::Down,
            n: V::from_i128(n)?,
            limit: V::from_i128(floor)?,
            threshold: V::from_i128(floor + n)?,
        })
    }

    /// Plans a fill; `None` when the ceiling is below the type's range (nothing can be added).
    pub fn fill(ceiling: i128, n: V) -> Option<Self> {
        let n = n.to_i128().min(ceiling - V::MIN.to_i128());
        Some(Take {
            direction: Direction::Up,
            n: V::from_i128(n)?,
            limit: V::from_i128(ceiling)?,
            threshold: V::from_i128(ceiling - n)?,
        })
    }

    /// The move `direction` of at most `n` within the bounds of column `Col` of `M`: a take
    /// down to the floor, a fill up to the ceiling; `None` when nothing can move (`n` is 0, or
    /// the limit is outside the type).
    pub(crate) fn of<M, Col>(direction: Direction, n: V) -> Option<Self>
    where
        M: AtomicField<Col, Value = V>,
        Col: Column,
    {
        match direction {
            Direction::Down => Take::new(Range::floor::<M, Col>(), n),
            Direction::Up => Take::fill(Range::of::<M, Col>().hi, n),
        }
        .filter(|t| t.n != V::ZERO)
    }

    /// How much a row holding `v` moves.
    pub fn taken_from(&self, v: V) -> V {
        let (v, limit, n) = (v.to_i128(), self.limit.to_i128(), self.n.to_i128());
        let room = match self.direction {
            Direction::Down => v - limit,
            Direction::Up => limit - v,
        };
        V::from_i128(room.clamp(0, n)).expect("0 <= moved <= n, which fits the type")
    }

    /// The value a row holding `v` ends at.
    pub fn after(&self, v: V) -> V {
        let moved = self.taken_from(v).to_i128();
        let after = match self.direction {
            Direction::Down => v.to_i128() - moved,
            Direction::Up => v.to_i128() + moved,
        };
        V::from_i128(after).expect("between the value and the limit")
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

    fn plan<V: AtomicValue>(op: Op, range: Range, amount: V) -> Plan<V> {
        Plan::new(op, range, amount).unwrap()
    }

    diesel::table! { parents (id) { id -> BigInt, n -> Integer, } }

    struct Parent;
    impl AtomicField<parents::n> for Parent {
        type Key = i64;
        type KeyColumns = (parents::id,);
        type Value = i32;
        const MIN: Option<i32> = Some(0);
        const MAX: Option<i32> = None;
        const NAME: &'static str = "n";
    }

    fn cache(change: CacheChange, amount: i32, inserted: bool) -> Result<(Op, i32), AtomicError> {
        cache_plan::<Parent, parents::n>(change, amount, inserted).map(|p| (p.op, p.amount))
    }

    #[test]
    fn a_cache_moves_its_parent_one_way_on_insert_and_back_on_delete() {
        use CacheChange::*;
        assert_eq!(cache(Increment, 2, true).unwrap(), (Op::Increment, 2));
        assert_eq!(cache(Increment, 2, false).unwrap(), (Op::Decrement, 2));
        assert_eq!(cache(Decrement, 2, true).unwrap(), (Op::Decrement, 2));
        assert_eq!(cache(Decrement, 2, false).unwrap(), (Op::Increment, 2));
        assert_eq!(
            cache(DecrementIfAtLeast, 2, true).unwrap(),
            (Op::AtLeast, 2)
        );
        assert_eq!(
            cache(DecrementIfAtLeast, 2, false).unwrap(),
            (Op::Increment, 2)
        );
        // A signed sum's negative row moves the other way; a negative order is refused.
        assert_eq!(cache(Increment, -3, true).unwrap(), (Op::Decrement, 3));
        assert_eq!(cache(Increment, -3, false).unwrap(), (Op::Increment, 3));
        assert_eq!(cache(Decrement, -3, true).unwrap(), (Op::Increment, 3));
        assert!(matches!(
            cache(DecrementIfAtLeast, -3, true),
            Err(AtomicError::NegativeAmount { amount: -3 })
        ));
        assert!(matches!(
            cache(Increment, i32::MIN, true),
            Err(AtomicError::OutOfRange { .. })
        ));
    }

    #[test]
    fn increment_guard_leaves_room_for_the_amount() {
        assert_eq!(plan(Op::Increment, STOCK, 3i32).guard, Some(997));
        assert_eq!(plan(Op::Increment, I32, 1i32).guard, Some(i32::MAX - 1));
        assert!(plan(Op::Increment, I32, 1i32).admits(i32::MAX - 1));
        assert!(!plan(Op::Increment, I32, 1i32).admits(i32::MAX));
    }

    #[test]
    fn impossible_guards_are_none_not_wrapped() {
        let narrow = Range { lo: -5, hi: -5 };
        assert_eq!(plan(Op::Increment, narrow, i16::MAX).guard, None);
        assert_eq!(plan(Op::Increment, narrow, i16::MAX).delta(), None);
        let five = Range { lo: 5, hi: 5 };
        assert_eq!(plan(Op::Decrement, five, i16::MAX).guard, None);
        assert!(!plan(Op::Increment, narrow, i16::MAX).admits(i16::MIN));
    }

    #[test]
    fn decrement_guard_keeps_the_minimum() {
        assert_eq!(plan(Op::Decrement, STOCK, 4i32).guard, Some(4));
        assert_eq!(plan(Op::Decrement, I32, 1i32).guard, Some(i32::MIN + 1));
    }

    #[test]
    fn at_least_guard_is_n_or_min_plus_n() {
        assert_eq!(plan(Op::AtLeast, STOCK, 7i64).guard, Some(7));
        assert_eq!(
            plan(Op::AtLeast, Range { lo: 5, hi: 9 }, 3i64).guard,
            Some(8)
        );
        assert_eq!(
            plan(Op::AtLeast, Range { lo: -50, hi: 9 }, 3i64).guard,
            Some(3)
        );
    }

    #[test]
    fn at_least_misses_are_insufficient_below_n_and_out_of_range_above() {
        let r = Range { lo: 5, hi: 100 };
        assert!(matches!(
            plan(Op::AtLeast, r, 3i64).refusal(2),
            Some(AtomicError::Insufficient {
                available: 2,
                requested: 3
            })
        ));
        assert!(matches!(
            plan(Op::AtLeast, r, 3i64).refusal(6),
            Some(AtomicError::OutOfRange {
                current: 6,
                attempted: 3,
                limit: Limit::Min(5)
            })
        ));
    }

    #[test]
    fn increment_and_decrement_misses_name_the_bound() {
        assert!(matches!(
            plan(Op::Increment, STOCK, 5i32).refusal(999),
            Some(AtomicError::OutOfRange {
                current: 999,
                attempted: 1004,
                limit: Limit::Max(1000)
            })
        ));
        assert!(matches!(
            plan(Op::Decrement, STOCK, 5i32).refusal(2),
            Some(AtomicError::OutOfRange {
                current: 2,
                attempted: -3,
                limit: Limit::Min(0)
            })
        ));
        assert!(plan(Op::Decrement, STOCK, 5i32).refusal(5).is_none());
    }

    #[test]
    fn a_zero_amount_refuses_nothing_even_out_of_range() {
        for op in [Op::Increment, Op::Decrement, Op::AtLeast] {
            let zero = plan(op, STOCK, 0i32);
            assert!(zero.moves_nothing());
            for v in [i32::MIN, -5, 0, 2000, i32::MAX] {
                assert!(zero.admits(v), "{op:?} {v}");
                assert_eq!(zero.apply_to(v).unwrap(), v);
            }
        }
        assert!(!plan(Op::Increment, STOCK, 1i32).moves_nothing());
    }

    #[test]
    fn the_amount_is_checked_before_anything_else() {
        let impossible = Range { lo: 5, hi: 5 };
        assert!(matches!(
            Plan::new(Op::Increment, impossible, -1i32),
            Err(AtomicError::NegativeAmount { amount: -1 })
        ));
    }

    #[test]
    fn applied_under_a_lock_the_plan_moves_the_value_or_refuses() {
        assert_eq!(plan(Op::Increment, STOCK, 5i32).apply_to(10).unwrap(), 15);
        assert_eq!(plan(Op::AtLeast, STOCK, 10i32).apply_to(10).unwrap(), 0);
        assert!(matches!(
            plan(Op::AtLeast, STOCK, 11i32).apply_to(10),
            Err(AtomicError::Insufficient {
                available: 10,
                requested: 11
            })
        ));
        let d = plan(Op::Decrement, STOCK, 4i32).delta().unwrap();
        assert_eq!((d.direction, d.amount, d.guard), (Direction::Down, 4, 4));
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
        assert_eq!((t.after(3), t.after(9), t.after(-2)), (0, 4, -2));
    }

    #[test]
    fn fill_adds_up_to_the_ceiling_and_clamps_like_take() {
        let f = Take::fill(40, 15i32).unwrap();
        assert_eq!((f.direction, f.limit, f.threshold), (Direction::Up, 40, 25));
        assert_eq!(
            (
                f.taken_from(30),
                f.taken_from(25),
                f.taken_from(40),
                f.taken_from(45)
            ),
            (10, 15, 0, 0)
        );
        assert_eq!((f.after(30), f.after(0), f.after(45)), (40, 15, 45));
        let f = Take::fill(i16::MAX as i128, i16::MAX).unwrap();
        assert_eq!(f.taken_from(i16::MIN), i16::MAX);
        let f = Take::fill(10, i16::MAX).unwrap();
        assert_eq!((f.n, f.threshold), (i16::MAX, 10 - i16::MAX));
        assert_eq!(f.after(i16::MIN), i16::MIN + i16::MAX);
        assert_eq!(Take::fill(i16::MIN as i128 - 1, 1i16), None);
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
