//! Checks a recorded history against the model of the counters. Pure: no database here.
//!
//! What a history must satisfy (each violation is an anomaly):
//! 1. Every outcome is one the model allows for that call: `NegativeAmount` exactly for a
//!    negative amount, `NotFound` exactly for a key of no row, `SameRow` exactly when both
//!    keys of a transfer name one row (as the database compares keys), `Insufficient` and
//!    `OutOfRange` only with numbers that prove the refusal (`available < requested`, an
//!    `attempted` value past the bound, a `current` value inside the bounds), a panic only
//!    from a closure that panics, `Conflict` anywhere (it guarantees the row is unchanged);
//!    nothing else. No call leaves its connection inside a transaction.
//! 2. Totals: each row's final value is its initial value plus the effects of the calls that
//!    returned `Ok` (the amount added, taken or moved).
//! 3. Bounds: no value any call saw or returned, and no final value, is outside the bounds.
//! 4. One order explains every value (rows no `take_up_to` touched): each successful change
//!    is an edge `before -> after` between values of its row (a read is a loop on the value it
//!    saw). The row really went through one sequence of committed values, from the initial to
//!    the final one, so the edges must form a single trail from initial to final (an Euler
//!    trail): at every value as many edges leave as arrive, but one more leaves the initial
//!    value and one more arrives at the final one, and every edge is connected to the initial
//!    value. A write reported as done that never happened (a value handed out twice, a lost
//!    update, a read of a value the row never held) breaks the balance or the connection.
//!    `take_up_to` returns only the amount taken, not where the row was, so a row it changed
//!    skips this check (its total is still checked); so does `increment_up_to`, its mirror.
//!
//! The set operations have their model in [`many`](super::many): every row or none.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use counter_core::{AtomicError, Limit};

use super::many::interpret_many;
use super::op::{refusal, Closure, Key, Op, Outcome, Record};

/// The bounds the counters declare.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub lo: i32,
    pub hi: i32,
}

/// What one call did to the rows, as far as its result tells.
#[derive(Debug, Default)]
pub(super) struct Effect {
    /// `(row, amount added)` for every row the call changed.
    pub deltas: Vec<(usize, i128)>,
    /// `(row, before, after)` for every value transition the call's result proves; a value it
    /// only saw is `(row, v, v)`.
    pub edges: Vec<(usize, i128, i128)>,
    /// Rows that `take_up_to` changed (no edge: the result does not say where the row was).
    pub taken: Vec<usize>,
    /// `(row, least, most)`: a change whose amount the result only bounds (a water mark that
    /// moved the row to its value from somewhere on one side of it).
    pub slack: Vec<(usize, i128, i128)>,
}

impl Effect {
    pub(super) fn none() -> Self {
        Effect::default()
    }

    fn change(row: usize, delta: i128, after: i128) -> Self {
        Effect {
            deltas: vec![(row, delta)],
            edges: vec![(row, after - delta, after)],
            taken: vec![],
            slack: vec![],
        }
    }

    /// `n` moved from row `from` (now `left`) to row `to` (now `added`); one row may be both.
    fn moved(from: usize, to: usize, n: i128, left: i128, added: i128) -> Self {
        let mut effect = Effect::change(from, -n, left);
        effect.deltas.push((to, n));
        effect.edges.push((to, added - n, added));
        effect
    }

    pub(super) fn saw(row: usize, value: i128) -> Self {
        Effect {
            edges: vec![(row, value, value)],
            ..Effect::default()
        }
    }
}

/// The verdict on one history.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Everything that broke the model, in words.
    pub anomalies: Vec<String>,
    /// How many calls of each operation ended how (`"transfer: Insufficient"` → 12).
    pub outcomes: BTreeMap<String, usize>,
    /// How many rows got the full order check (check 4).
    pub rows_ordered: usize,
}

/// Checks `records` (every call of one history) against the rows' `initial` and `last`
/// values.
pub fn check<K: Debug + Ord + Clone>(
    bounds: Bounds,
    initial: &[i32],
    last: &[i32],
    records: &[Record<K>],
) -> Verdict {
    let mut verdict = Verdict::default();
    let rows = initial.len();
    let mut totals: Vec<i128> = initial.iter().map(|&v| i128::from(v)).collect();
    let mut edges: Vec<Vec<(i128, i128)>> = vec![Vec::new(); rows];
    let mut taken = vec![false; rows];
    let mut slack: Vec<(i128, i128)> = vec![(0, 0); rows];
    for record in records {
        *verdict
            .outcomes
            .entry(format!(
                "{}: {}",
                record.op.name(),
                outcome_name(&record.outcome)
            ))
            .or_default() += 1;
        if record.left_in_transaction {
            verdict.anomalies.push(format!(
                "thread {}: {:?} returned {:?} and left its connection inside a transaction",
                record.thread, record.op, record.outcome
            ));
        }
        match interpret(bounds, &record.op.classic(), &record.outcome) {
            Ok(effect) => {
                for (row, delta) in effect.deltas {
                    totals[row] += delta;
                }
                for (row, before, after) in effect.edges {
                    edges[row].push((before, after));
                }
                for row in effect.taken {
                    taken[row] = true;
                }
                for (row, least, most) in effect.slack {
                    slack[row].0 += least;
                    slack[row].1 += most;
                    taken[row] = true;
                }
            }
            Err(why) => verdict.anomalies.push(format!(
                "thread {}: {:?} returned {:?}: {why}",
                record.thread, record.op, record.outcome
            )),
        }
    }
    for row in 0..rows {
        let (first, last) = (i128::from(initial[row]), i128::from(last[row]));
        let (least, most) = slack[row];
        if !(totals[row] + least..=totals[row] + most).contains(&last) {
            verdict.anomalies.push(format!(
                "row {row}: initial {first} plus the effects of the successful calls is {} \
                 (plus between {least} and {most} the water marks moved it), but the row holds \
                 {last}",
                totals[row]
            ));
        }
        if !inside(bounds, last) {
            verdict.anomalies.push(format!(
                "row {row}: final value {last} is outside {bounds:?}"
            ));
        }
        if !taken[row] {
            verdict.rows_ordered += 1;
            if let Err(why) = one_trail(first, last, &edges[row]) {
                verdict.anomalies.push(format!(
                    "row {row}: no single order of its committed values explains the results \
                     ({why}); initial {first}, final {last}"
                ));
            }
        }
    }
    verdict
}

/// A short name of an outcome, for the statistics.
fn outcome_name(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Value(_) | Outcome::Pair(..) | Outcome::Values(_) => "Ok".into(),
        Outcome::Panicked => "panicked".into(),
        Outcome::Failed(e) => {
            let text = format!("{e:?}");
            text.split([' ', '(', '{']).next().unwrap_or("?").to_owned()
        }
    }
}

pub(super) fn inside(bounds: Bounds, v: i128) -> bool {
    (i128::from(bounds.lo)..=i128::from(bounds.hi)).contains(&v)
}

/// The effect of one call if the model allows its outcome; why not otherwise.
fn interpret<K: Debug + Ord>(
    bounds: Bounds,
    op: &Op<K>,
    outcome: &Outcome,
) -> Result<Effect, String> {
    if let Op::Many(set_op, pairs) = op {
        return interpret_many(bounds, *set_op, pairs, outcome);
    }
    let (lo, hi) = (i128::from(bounds.lo), i128::from(bounds.hi));
    // Refusals that depend only on the arguments, in the order the library checks them: no
    // database is asked, so not even a conflict can come first.
    let amount = match op {
        Op::Increment(_, n)
        | Op::Decrement(_, n)
        | Op::DecrementIfAtLeast(_, n)
        | Op::TakeUpTo(_, n)
        | Op::IncrementUpTo(_, n)
        | Op::Transfer(_, _, n)
        | Op::Transaction(_, _, n) => Some(i128::from(*n)),
        Op::UpdateLocked(..)
        | Op::Current(_)
        | Op::CompareAndSet(..)
        | Op::SetMax(..)
        | Op::SetMin(..) => None,
        Op::IncrementOrInsert(..) | Op::Sale(..) | Op::Once(..) => {
            unreachable!("checked as `classic()`")
        }
        Op::Many(..) => unreachable!("checked above"),
    };
    if let Some(n) = amount.filter(|&n| n < 0) {
        return match outcome {
            Outcome::Failed(AtomicError::NegativeAmount { amount }) if *amount == n => {
                Ok(Effect::none())
            }
            _ => Err(format!("expected NegativeAmount {{ amount: {n} }}")),
        };
    }
    let n = amount.unwrap_or(0);
    if let Op::Transfer(from, to, _) = op {
        if from.key == to.key {
            return match outcome {
                Outcome::Failed(AtomicError::SameRow) => Ok(Effect::none()),
                _ => Err("expected SameRow for two equal keys".into()),
            };
        }
    }
    // A conflict that outlived the retry policy leaves the rows unchanged.
    if let Outcome::Failed(AtomicError::Conflict { .. }) = outcome {
        return Ok(Effect::none());
    }
    let expect = |wanted: &str, ok: bool| {
        if ok {
            Ok(Effect::none())
        } else {
            Err(format!("expected {wanted}"))
        }
    };
    let row_of = |k: &Key<K>| k.row;
    if let Op::Transfer(from, to, _) = op {
        let rows = (row_of(from), row_of(to));
        if matches!(rows, (Some(a), Some(b)) if a == b) {
            return expect(
                "SameRow",
                matches!(outcome, Outcome::Failed(AtomicError::SameRow)),
            );
        }
        let (Some(source), Some(target)) = rows else {
            return expect(
                "NotFound",
                matches!(outcome, Outcome::Failed(AtomicError::NotFound)),
            );
        };
        return match outcome {
            Outcome::Pair(a, b) => moved(bounds, source, target, n, (*a, *b)),
            Outcome::Failed(AtomicError::Insufficient {
                available,
                requested,
            }) if *requested == n && *available < n => {
                // `available` is the source's value less its lower bound.
                check_inside(bounds, &[available + lo])?;
                Ok(Effect::saw(source, available + lo))
            }
            Outcome::Failed(AtomicError::OutOfRange {
                current,
                attempted,
                limit: Limit::Max(limit),
            }) if past_max(bounds, n, *current, *attempted, *limit) => {
                check_inside(bounds, &[*current])?;
                Ok(Effect::saw(target, *current))
            }
            _ => Err("not an outcome a transfer can have".into()),
        };
    }
    if let Op::Transaction(a, b, _) = op {
        // In call order: the decrement of `a` first, then the increment of `b`.
        let Some(ra) = row_of(a) else {
            return expect(
                "NotFound",
                matches!(outcome, Outcome::Failed(AtomicError::NotFound)),
            );
        };
        let rb = row_of(b);
        return match outcome {
            Outcome::Failed(AtomicError::NotFound) if rb.is_none() => Ok(Effect::none()),
            Outcome::Pair(left, added) if rb.is_some() => {
                moved(bounds, ra, rb.expect("checked"), n, (*left, *added))
            }
            Outcome::Failed(AtomicError::Insufficient {
                available,
                requested,
            }) if *requested == n && *available < n => {
                check_inside(bounds, &[*available])?;
                Ok(Effect::saw(ra, *available))
            }
            // The decrement happened and was rolled back; `current` is `b` after it.
            Outcome::Failed(AtomicError::OutOfRange {
                current,
                attempted,
                limit: Limit::Max(limit),
            }) if rb.is_some_and(|rb| rb != ra)
                && past_max(bounds, n, *current, *attempted, *limit) =>
            {
                check_inside(bounds, &[*current])?;
                Ok(Effect::saw(rb.expect("checked"), *current))
            }
            _ => Err("not an outcome this transaction can have".into()),
        };
    }
    let (Op::Increment(key, _)
    | Op::Decrement(key, _)
    | Op::DecrementIfAtLeast(key, _)
    | Op::TakeUpTo(key, _)
    | Op::IncrementUpTo(key, _)
    | Op::CompareAndSet(key, _)
    | Op::SetMax(key, _)
    | Op::SetMin(key, _)
    | Op::UpdateLocked(key, _)
    | Op::Current(key)) = op
    else {
        unreachable!("transfers and transactions were handled above")
    };
    let Some(row) = key.row else {
        return expect(
            "NotFound",
            matches!(outcome, Outcome::Failed(AtomicError::NotFound)),
        );
    };
    // The value a successful call returned, checked against the bounds.
    let value = match outcome {
        Outcome::Value(v) => {
            let v = i128::from(*v);
            Some(v)
        }
        _ => None,
    };
    let out_of_range = |current: i128, attempted: i128, limit: &Limit| -> Result<Effect, String> {
        let allowed = match limit {
            Limit::Max(max) => *max == hi && attempted > hi && attempted > current,
            Limit::Min(min) => *min == lo && attempted < lo && attempted < current,
        };
        if !allowed {
            return Err(format!(
                "OutOfRange does not prove a crossed bound {bounds:?}"
            ));
        }
        check_inside(bounds, &[current])?;
        Ok(Effect::saw(row, current))
    };
    match (op, outcome) {
        (Op::Current(_), Outcome::Value(_)) => {
            let v = value.expect("a value");
            check_inside(bounds, &[v])?;
            Ok(Effect::saw(row, v))
        }
        (Op::Increment(..), Outcome::Value(_)) => after(bounds, row, n, value),
        (Op::Decrement(..) | Op::DecrementIfAtLeast(..), Outcome::Value(_)) => {
            after(bounds, row, -n, value)
        }
        (
            Op::Increment(..),
            Outcome::Failed(AtomicError::OutOfRange {
                current,
                attempted,
                limit,
            }),
        ) if *attempted == current + n && matches!(limit, Limit::Max(_)) => {
            out_of_range(*current, *attempted, limit)
        }
        (
            Op::Decrement(..),
            Outcome::Failed(AtomicError::OutOfRange {
                current,
                attempted,
                limit,
            }),
        ) if *attempted == current - n && matches!(limit, Limit::Min(_)) => {
            out_of_range(*current, *attempted, limit)
        }
        (
            Op::DecrementIfAtLeast(..),
            Outcome::Failed(AtomicError::Insufficient {
                available,
                requested,
            }),
        ) if *requested == n && *available < n => {
            check_inside(bounds, &[*available])?;
            Ok(Effect::saw(row, *available))
        }
        (Op::TakeUpTo(..), Outcome::Value(t)) => {
            // The floor is `lo` (the declared minimum). Taking less than asked empties the row
            // to the floor, so the row was at `lo + t`; taking nothing means it was at the
            // floor; only a full take leaves its starting point unknown.
            let t = i128::from(*t);
            if !(0..=n).contains(&t) {
                return Err(format!("took {t}, not between 0 and {n}"));
            }
            Ok(match t {
                _ if n == 0 => Effect::none(),
                0 => Effect::saw(row, lo),
                _ if t < n => Effect::change(row, -t, lo),
                _ => Effect {
                    deltas: vec![(row, -t)],
                    taken: vec![row],
                    edges: vec![],
                    slack: vec![],
                },
            })
        }
        (Op::IncrementUpTo(..), Outcome::Value(a)) => {
            // The mirror of a take: adding less than asked fills the row to `hi`, so it was
            // at `hi - a`; adding nothing means it was full; only a whole add leaves its
            // starting point unknown.
            let a = i128::from(*a);
            if !(0..=n).contains(&a) {
                return Err(format!("added {a}, not between 0 and {n}"));
            }
            Ok(match a {
                _ if n == 0 => Effect::none(),
                0 => Effect::saw(row, hi),
                _ if a < n => Effect::change(row, a, hi),
                _ => Effect {
                    deltas: vec![(row, a)],
                    taken: vec![row],
                    edges: vec![],
                    slack: vec![],
                },
            })
        }
        // The swap wrote `seen + d` over `seen`, the value its read saw.
        (Op::CompareAndSet(_, d), Outcome::Value(_)) => after(bounds, row, i128::from(*d), value),
        (Op::CompareAndSet(..), Outcome::Failed(AtomicError::Mismatch { expected, current }))
            if expected != current =>
        {
            check_inside(bounds, &[*expected, *current])?;
            let mut effect = Effect::saw(row, *expected);
            effect.edges.push((row, *current, *current));
            Ok(effect)
        }
        // Refused before the swap's statement: moving from what the read saw crosses a bound.
        (
            Op::CompareAndSet(_, d),
            Outcome::Failed(AtomicError::OutOfRange {
                current,
                attempted,
                limit,
            }),
        ) if *attempted == current + i128::from(*d) => out_of_range(*current, *attempted, limit),
        (Op::UpdateLocked(_, Closure::Add(d)), Outcome::Value(_)) => {
            after(bounds, row, i128::from(*d), value)
        }
        (
            Op::UpdateLocked(_, Closure::Add(d)),
            Outcome::Failed(AtomicError::OutOfRange {
                current,
                attempted,
                limit,
            }),
        ) if *attempted == current + i128::from(*d) => out_of_range(*current, *attempted, limit),
        (Op::UpdateLocked(_, Closure::RefuseBelow(d)), Outcome::Value(_)) => {
            after(bounds, row, -i128::from(*d), value)
        }
        (Op::UpdateLocked(_, Closure::RefuseBelow(d)), Outcome::Failed(AtomicError::Custom(e))) => {
            // The closure saw a value below `d` and said which.
            let seen = (0..*d)
                .find(|&v| e.to_string() == refusal(v))
                .ok_or_else(|| format!("a refusal of a value below {d}"))?;
            check_inside(bounds, &[i128::from(seen)])?;
            Ok(Effect::saw(row, i128::from(seen)))
        }
        (Op::UpdateLocked(_, Closure::Panic), Outcome::Panicked) => Ok(Effect::none()),
        (Op::SetMax(_, v), Outcome::Value(_)) => water_mark(bounds, row, true, *v, value),
        (Op::SetMin(_, v), Outcome::Value(_)) => water_mark(bounds, row, false, *v, value),
        // Only a mark past the bound refuses, and only a row on the near side of it.
        (
            Op::SetMax(_, v) | Op::SetMin(_, v),
            Outcome::Failed(AtomicError::OutOfRange {
                current,
                attempted,
                limit,
            }),
        ) if *attempted == i128::from(*v) => out_of_range(*current, *attempted, limit),
        _ => Err("not an outcome the model allows for this call".into()),
    }
}

/// The effect of `n` moved from row `from` to row `to`, which returned their new values.
fn moved(
    bounds: Bounds,
    from: usize,
    to: usize,
    n: i128,
    (left, added): (i32, i32),
) -> Result<Effect, String> {
    let (left, added) = (i128::from(left), i128::from(added));
    check_inside(bounds, &[left, added])?;
    Ok(Effect::moved(from, to, n, left, added))
}

/// Does an `OutOfRange { current, attempted, limit: Max(limit) }` prove that adding `n` to
/// `current` would pass the upper bound?
fn past_max(bounds: Bounds, n: i128, current: i128, attempted: i128, limit: i128) -> bool {
    limit == i128::from(bounds.hi) && attempted == current + n && attempted > limit
}

/// The effect of `set_max(v)` (`high`) or `set_min(v)` that returned `value`: the mark when
/// the row moved to it (from somewhere between the bound and `v`), else the row's own value,
/// which it kept.
fn water_mark(
    bounds: Bounds,
    row: usize,
    high: bool,
    v: i32,
    value: Option<i128>,
) -> Result<Effect, String> {
    let (r, v) = (value.expect("a value"), i128::from(v));
    check_inside(bounds, &[r])?;
    let (lo, hi) = (i128::from(bounds.lo), i128::from(bounds.hi));
    match (high, r.cmp(&v)) {
        (true, std::cmp::Ordering::Greater) | (false, std::cmp::Ordering::Less) => {
            Ok(Effect::saw(row, r))
        }
        (true, std::cmp::Ordering::Equal) => Ok(Effect {
            slack: vec![(row, 0, v - lo)],
            ..Effect::default()
        }),
        (false, std::cmp::Ordering::Equal) => Ok(Effect {
            slack: vec![(row, v - hi, 0)],
            ..Effect::default()
        }),
        _ => Err(format!("returned {r}, on the wrong side of the mark {v}")),
    }
}

/// The effect of a successful change by `delta` that returned the new value `value`.
fn after(bounds: Bounds, row: usize, delta: i128, value: Option<i128>) -> Result<Effect, String> {
    let v = value.expect("a value");
    check_inside(bounds, &[v])?;
    Ok(Effect::change(row, delta, v))
}

pub(super) fn check_inside(bounds: Bounds, values: &[i128]) -> Result<(), String> {
    match values.iter().find(|&&v| !inside(bounds, v)) {
        Some(v) => Err(format!("value {v} is outside {bounds:?}")),
        None => Ok(()),
    }
}

/// Can `edges` be walked as one trail from `first` to `last`, using each edge once?
fn one_trail(first: i128, last: i128, edges: &[(i128, i128)]) -> Result<(), String> {
    // Leaving minus arriving at each value, less what a trail from `first` to `last` needs.
    let mut surplus: HashMap<i128, i64> = HashMap::new();
    for &(from, to) in edges {
        *surplus.entry(from).or_default() += 1;
        *surplus.entry(to).or_default() -= 1;
    }
    *surplus.entry(first).or_default() -= 1;
    *surplus.entry(last).or_default() += 1;
    let mut unbalanced: Vec<_> = surplus.into_iter().filter(|&(_, s)| s != 0).collect();
    if !unbalanced.is_empty() {
        unbalanced.sort();
        let shown: Vec<String> = unbalanced
            .iter()
            .take(6)
            .map(|(v, s)| format!("{v}: {s:+}"))
            .collect();
        return Err(format!(
            "at these values more changes left than arrived (+) or the reverse (-): {}",
            shown.join(", ")
        ));
    }
    // Every edge must hang together with `first` (union-find over the values).
    let mut parent: HashMap<i128, i128> = HashMap::new();
    fn root(parent: &mut HashMap<i128, i128>, v: i128) -> i128 {
        let p = *parent.entry(v).or_insert(v);
        if p == v {
            return v;
        }
        let r = root(parent, p);
        parent.insert(v, r);
        r
    }
    for &(from, to) in edges {
        let (a, b) = (root(&mut parent, from), root(&mut parent, to));
        parent.insert(a, b);
    }
    let start = root(&mut parent, first);
    if let Some(&(from, to)) = edges
        .iter()
        .find(|&&(from, _)| root(&mut parent, from) != start)
    {
        return Err(format!(
            "the change {from} -> {to} is not reachable from the initial value"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trail_through_every_change_passes() {
        assert!(one_trail(5, 5, &[]).is_ok());
        assert!(one_trail(5, 7, &[(5, 6), (6, 7), (6, 6)]).is_ok());
        assert!(one_trail(5, 5, &[(5, 6), (6, 5), (5, 4), (4, 5)]).is_ok());
    }

    #[test]
    fn a_value_handed_out_twice_fails() {
        // Two decrements both claimed 10 -> 9; only one can have happened.
        assert!(one_trail(10, 8, &[(10, 9), (10, 9), (9, 8)]).is_err());
        // A lost update: two increments both returned 6, the row holds 6.
        assert!(one_trail(5, 6, &[(5, 6), (5, 6)]).is_err());
    }

    fn record(op: Op<i64>, outcome: Outcome) -> Record<i64> {
        Record {
            thread: 0,
            op,
            outcome,
            left_in_transaction: false,
        }
    }

    fn row(r: usize) -> Key<i64> {
        Key {
            key: r as i64,
            row: Some(r),
        }
    }

    const B: Bounds = Bounds { lo: 0, hi: 100 };

    #[test]
    fn a_consistent_history_has_no_anomaly() {
        let records = [
            record(Op::DecrementIfAtLeast(row(0), 3), Outcome::Value(7)),
            record(Op::Increment(row(0), 1), Outcome::Value(8)),
            record(Op::Current(row(0)), Outcome::Value(10)),
            record(Op::Transfer(row(0), row(1), 8), Outcome::Pair(0, 8)),
            record(
                Op::DecrementIfAtLeast(row(0), 1),
                Outcome::Failed(AtomicError::Insufficient {
                    available: 0,
                    requested: 1,
                }),
            ),
        ];
        let verdict = check(B, &[10, 0], &[0, 8], &records);
        assert!(verdict.anomalies.is_empty(), "{:?}", verdict.anomalies);
    }

    #[test]
    fn an_ok_for_a_write_that_did_not_happen_is_found() {
        // Two sales both returned 9 from a stock of 10, and the row holds 9.
        let records = [
            record(Op::DecrementIfAtLeast(row(0), 1), Outcome::Value(9)),
            record(Op::DecrementIfAtLeast(row(0), 1), Outcome::Value(9)),
        ];
        let verdict = check(B, &[10], &[9], &records);
        assert_eq!(verdict.anomalies.len(), 2, "{:?}", verdict.anomalies);
    }

    #[test]
    fn errors_the_model_does_not_allow_are_found() {
        let alias = Key {
            key: 7,
            row: Some(0),
        };
        let records = [
            // A transfer between two spellings of one row must be SameRow.
            record(Op::Transfer(row(0), alias, 1), Outcome::Pair(9, 11)),
            // An existing row is never NotFound.
            record(Op::Current(row(0)), Outcome::Failed(AtomicError::NotFound)),
            // Insufficient must prove it: 5 available covers 3.
            record(
                Op::DecrementIfAtLeast(row(0), 3),
                Outcome::Failed(AtomicError::Insufficient {
                    available: 5,
                    requested: 3,
                }),
            ),
            // Only the panicking closure may panic.
            record(Op::UpdateLocked(row(0), Closure::Add(1)), Outcome::Panicked),
        ];
        let verdict = check(B, &[10], &[10], &records);
        assert_eq!(verdict.anomalies.len(), 4, "{:?}", verdict.anomalies);
    }

    #[test]
    fn a_connection_left_in_a_transaction_is_found() {
        let mut r = record(Op::UpdateLocked(row(0), Closure::Panic), Outcome::Panicked);
        r.left_in_transaction = true;
        let verdict = check(B, &[10], &[10], &[r]);
        assert_eq!(verdict.anomalies.len(), 1, "{:?}", verdict.anomalies);
    }

    #[test]
    fn a_read_of_a_value_the_row_never_held_fails() {
        assert!(one_trail(5, 6, &[(5, 6), (9, 9)]).is_err());
    }
}
