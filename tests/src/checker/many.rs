//! The model of the set operations (`increment_many`, `decrement_many`,
//! `decrement_if_at_least_many`) for [`history`](super::history): every row or none. Pure: no
//! database here.
//!
//! What a set call may return, given its pairs (keys as Rust orders them, amounts summed per
//! key):
//! - a negative amount anywhere: `InRow { key, NegativeAmount { amount } }` naming a key given
//!   with that amount, before any row is looked at;
//! - `Conflict`: nothing changed;
//! - `Ok`: every key once, in key order, none of them a key of no row, every value inside the
//!   bounds; each row moves by the sum of its keys' amounts (several keys can spell one row:
//!   the database compares them, not Rust), and ends at the value of its last key;
//! - `InRow { key, error }`: nothing changed; `key` is one of the set's, no key of no row comes
//!   before it in key order (it would have refused first), and `error` is that key's refusal
//!   with its summed amount: `NotFound` exactly for a key of no row, `OutOfRange` past the
//!   maximum (increment) or minimum (decrement), `Insufficient` (checkout), each with numbers
//!   that prove it. The value it reports is one the row held, unless another spelling of the
//!   row in the same set had changed it first inside the call's own (rolled back) transaction.

use std::collections::BTreeMap;
use std::fmt::Debug;

use counter_core::{AtomicError, Limit};

use super::history::{check_inside, Bounds, Effect};
use super::op::{Key, Outcome, SetOp};

/// The effect of a set call if the model allows its outcome; why not otherwise.
pub(super) fn interpret_many<K: Debug + Ord>(
    bounds: Bounds,
    set_op: SetOp,
    pairs: &[(Key<K>, i32)],
    outcome: &Outcome,
) -> Result<Effect, String> {
    let name = |key: &K| format!("{key:?}");
    if pairs.iter().any(|&(_, n)| n < 0) {
        return match outcome {
            Outcome::Failed(AtomicError::InRow { key, error }) => match **error {
                AtomicError::NegativeAmount { amount }
                    if pairs
                        .iter()
                        .any(|(k, n)| i128::from(*n) == amount && name(&k.key) == *key) =>
                {
                    Ok(Effect::none())
                }
                _ => Err("expected NegativeAmount naming a key given with that amount".into()),
            },
            _ => Err("expected InRow { NegativeAmount } for a negative amount".into()),
        };
    }
    if let Outcome::Failed(AtomicError::Conflict { .. }) = outcome {
        return Ok(Effect::none());
    }
    // Each key, in key order: its row (as the model knows it) and its amounts summed.
    let mut keys: BTreeMap<&K, (Option<usize>, i128)> = BTreeMap::new();
    for (k, n) in pairs {
        keys.entry(&k.key).or_insert((k.row, 0)).1 += i128::from(*n);
    }
    let signed = |total: i128| match set_op {
        SetOp::Increment => total,
        SetOp::Decrement | SetOp::AtLeast => -total,
    };
    match outcome {
        Outcome::Values(values) => {
            let expected: Vec<String> = keys.keys().map(|k| name(k)).collect();
            let returned: Vec<&String> = values.iter().map(|(k, _)| k).collect();
            if returned != expected.iter().collect::<Vec<_>>() {
                return Err(format!("expected each key once in key order: {expected:?}"));
            }
            // Per row: the amount it moved by, and its value after the last of its keys.
            let mut rows: BTreeMap<usize, (i128, i128)> = BTreeMap::new();
            for ((key, &(row, total)), &(_, value)) in keys.iter().zip(values) {
                let Some(row) = row else {
                    return Err(format!("Ok, but key {key:?} has no row"));
                };
                check_inside(bounds, &[i128::from(value)])?;
                let moved = rows.entry(row).or_default();
                *moved = (moved.0 + signed(total), i128::from(value));
            }
            let mut effect = Effect::none();
            for (row, (delta, after)) in rows {
                check_inside(bounds, &[after - delta])?;
                effect.deltas.push((row, delta));
                effect.edges.push((row, after - delta, after));
            }
            Ok(effect)
        }
        Outcome::Failed(AtomicError::InRow { key, error }) => {
            let Some((&named, &(row, total))) = keys.iter().find(|(k, _)| name(k) == *key) else {
                return Err(format!("InRow names {key}, not a key of the set"));
            };
            if let Some((earlier, _)) = keys
                .range::<&K, _>(..named)
                .find(|(_, (row, _))| row.is_none())
            {
                return Err(format!(
                    "{earlier:?}, a key of no row, comes before {key} in key order"
                ));
            }
            let Some(row) = row else {
                return match **error {
                    AtomicError::NotFound => Ok(Effect::none()),
                    _ => Err(format!("expected NotFound for {key}, a key of no row")),
                };
            };
            let (lo, hi) = (i128::from(bounds.lo), i128::from(bounds.hi));
            let seen = match (set_op, &**error) {
                (
                    SetOp::Increment,
                    &AtomicError::OutOfRange {
                        current,
                        attempted,
                        limit: Limit::Max(max),
                    },
                ) if max == hi && attempted == current + total && attempted > hi => current,
                (
                    SetOp::Decrement,
                    &AtomicError::OutOfRange {
                        current,
                        attempted,
                        limit: Limit::Min(min),
                    },
                ) if min == lo && attempted == current - total && attempted < lo => current,
                (
                    SetOp::AtLeast,
                    &AtomicError::Insufficient {
                        available,
                        requested,
                    },
                ) if requested == total && available < requested => available,
                _ => return Err(format!("not a refusal of {key} by its amount {total}")),
            };
            check_inside(bounds, &[seen])?;
            let spellings = keys.values().filter(|(r, _)| *r == Some(row)).count();
            Ok(if spellings == 1 {
                Effect::saw(row, seen)
            } else {
                Effect::none()
            })
        }
        _ => Err("not an outcome a set operation can have".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds { lo: 0, hi: 100 };

    fn key(key: i64, row: Option<usize>) -> Key<i64> {
        Key { key, row }
    }

    fn values(pairs: &[(i64, i32)]) -> Outcome {
        Outcome::Values(pairs.iter().map(|(k, v)| (format!("{k:?}"), *v)).collect())
    }

    fn in_row(key: i64, error: AtomicError) -> Outcome {
        Outcome::Failed(AtomicError::InRow {
            key: format!("{key:?}"),
            error: Box::new(error),
        })
    }

    #[test]
    fn a_set_moves_each_row_by_its_keys_summed() {
        // Keys 2 and 3 spell row 1; key 1 is row 0, given twice.
        let pairs = [
            (key(3, Some(1)), 4),
            (key(1, Some(0)), 2),
            (key(2, Some(1)), 1),
            (key(1, Some(0)), 3),
        ];
        let effect = interpret_many(
            B,
            SetOp::AtLeast,
            &pairs,
            &values(&[(1, 5), (2, 9), (3, 5)]),
        )
        .unwrap();
        assert_eq!(effect.deltas, [(0, -5), (1, -5)]);
        assert_eq!(effect.edges, [(0, 10, 5), (1, 10, 5)]);
    }

    #[test]
    fn an_ok_must_list_every_key_in_key_order_and_no_missing_one() {
        let pairs = [(key(2, Some(1)), 1), (key(1, Some(0)), 1)];
        let swapped = values(&[(2, 5), (1, 5)]);
        assert!(interpret_many(B, SetOp::Increment, &pairs, &swapped).is_err());
        let with_missing = [(key(1, Some(0)), 1), (key(9, None), 1)];
        let ok = values(&[(1, 5), (9, 5)]);
        assert!(interpret_many(B, SetOp::Increment, &with_missing, &ok).is_err());
    }

    #[test]
    fn a_refusal_names_the_first_refusing_key() {
        let pairs = [
            (key(5, None), 1),
            (key(1, Some(0)), 7),
            (key(3, Some(1)), 1),
        ];
        let short = AtomicError::Insufficient {
            available: 6,
            requested: 7,
        };
        let effect = interpret_many(B, SetOp::AtLeast, &pairs, &in_row(1, short)).unwrap();
        assert_eq!(effect.edges, [(0, 6, 6)]);
        let missing = interpret_many(B, SetOp::AtLeast, &pairs, &in_row(5, AtomicError::NotFound));
        assert!(missing.is_ok());
        // A key of no row before the named one would have refused first.
        let pairs = [(key(0, None), 1), (key(1, Some(0)), 7)];
        let short = AtomicError::Insufficient {
            available: 6,
            requested: 7,
        };
        assert!(interpret_many(B, SetOp::AtLeast, &pairs, &in_row(1, short)).is_err());
    }

    #[test]
    fn a_refusal_must_prove_itself_with_the_summed_amount() {
        let pairs = [(key(1, Some(0)), 60), (key(1, Some(0)), 50)];
        let past = AtomicError::OutOfRange {
            current: 0,
            attempted: 110,
            limit: Limit::Max(100),
        };
        assert!(interpret_many(B, SetOp::Increment, &pairs, &in_row(1, past)).is_ok());
        let one_amount = AtomicError::OutOfRange {
            current: 60,
            attempted: 110,
            limit: Limit::Max(100),
        };
        assert!(interpret_many(B, SetOp::Increment, &pairs, &in_row(1, one_amount)).is_err());
        let negative = [(key(1, Some(0)), 1), (key(2, None), -4)];
        let named = in_row(2, AtomicError::NegativeAmount { amount: -4 });
        assert!(interpret_many(B, SetOp::Decrement, &negative, &named).is_ok());
        let not_found = in_row(2, AtomicError::NotFound);
        assert!(interpret_many(B, SetOp::Decrement, &negative, &not_found).is_err());
    }
}
