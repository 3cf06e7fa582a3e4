//! The plan of a change to a set of rows: amounts summed per key, keys in order, and one
//! [`Plan`] per row, checked before any SQL runs.
//!
//! Set operations (`increment_many`, the checkout) and flushes share it: they differ in what a
//! row that refuses does to the others (every row or none, or each row on its own), never in
//! what a row's change is.

use std::collections::BTreeMap;
use std::fmt::Debug;

use diesel::Column;

use crate::error::AtomicError;
use crate::field::AtomicField;
use crate::plan::{non_negative, refusal, Op, Plan, Range};
use crate::value::AtomicValue;

/// One row's change: its key, the summed amount, and the plan of it.
#[derive(Debug, Clone)]
#[doc(hidden)]
pub struct RowPlan<K, V> {
    pub key: K,
    /// The amounts of the key, summed.
    pub total: i128,
    /// `None` when `total` does not fit the column's type: no row can take it.
    pub plan: Option<Plan<V>>,
}

/// Every row's change, in key order, one row per key.
#[derive(Debug, Clone)]
pub(crate) struct SetPlan<K, V> {
    op: Op,
    range: Range,
    pub rows: Vec<RowPlan<K, V>>,
}

impl<K: Ord + Clone + Debug, V: AtomicValue> SetPlan<K, V> {
    /// `op` by each pair's amount on its key's row, amounts of one key summed. A negative
    /// amount is `InRow { NegativeAmount }` naming its key, before anything runs.
    pub(crate) fn of<M, Col>(
        op: Op,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, AtomicError>
    where
        M: AtomicField<Col, Key = K, Value = V>,
        Col: Column,
    {
        let range = Range::of::<M, Col>();
        let mut totals: BTreeMap<K, i128> = BTreeMap::new();
        for (key, amount) in pairs {
            let amount = non_negative(amount).map_err(|error| in_row(&key, error))?;
            *totals.entry(key).or_insert(0) += amount;
        }
        let rows = totals
            .into_iter()
            .map(|(key, total)| {
                let plan = match V::from_i128(total) {
                    Some(amount) => Some(Plan::new(op, range, amount)?),
                    None => None,
                };
                Ok(RowPlan { key, total, plan })
            })
            .collect::<Result<_, AtomicError>>()?;
        Ok(SetPlan { op, range, rows })
    }

    /// Why `row` refuses a row holding `current`; `None` when it takes the change.
    pub(crate) fn refusal(&self, row: &RowPlan<K, V>, current: V) -> Option<AtomicError> {
        match &row.plan {
            Some(plan) => plan.refusal(current),
            None => Some(refusal(self.op, self.range, current.to_i128(), row.total)),
        }
    }

    /// The value a row holding `current` ends at, or its refusal.
    pub(crate) fn apply_to(&self, row: &RowPlan<K, V>, current: V) -> Result<V, AtomicError> {
        match &row.plan {
            Some(plan) => plan.apply_to(current),
            None => Err(refusal(self.op, self.range, current.to_i128(), row.total)),
        }
    }
}

/// `error` of the row `key`, as a set operation reports it.
pub(crate) fn in_row<K: Debug>(key: &K, error: AtomicError) -> AtomicError {
    AtomicError::InRow {
        key: format!("{key:?}"),
        error: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    diesel::table! { items (id) { id -> BigInt, stock -> SmallInt, } }
    struct Item;
    impl AtomicField<items::stock> for Item {
        type Key = i64;
        type KeyColumns = (items::id,);
        type Value = i16;
        const MIN: Option<i16> = Some(0);
        const MAX: Option<i16> = None;
        const NAME: &'static str = "stock";
    }

    #[test]
    fn amounts_are_summed_per_key_in_key_order() {
        let set = SetPlan::of::<Item, items::stock>(Op::AtLeast, [(3, 2), (1, 1), (3, 5)]).unwrap();
        let rows: Vec<_> = set.rows.iter().map(|r| (r.key, r.total)).collect();
        assert_eq!(rows, [(1, 1), (3, 7)]);
        assert_eq!(set.apply_to(&set.rows[1], 10).unwrap(), 3);
        assert!(matches!(
            set.refusal(&set.rows[1], 6),
            Some(AtomicError::Insufficient {
                available: 6,
                requested: 7
            })
        ));
    }

    #[test]
    fn a_sum_past_the_type_refuses_every_row_with_the_true_amounts() {
        let set = SetPlan::of::<Item, items::stock>(Op::AtLeast, [(1, i16::MAX), (1, 2)]).unwrap();
        assert!(set.rows[0].plan.is_none());
        assert!(matches!(
            set.apply_to(&set.rows[0], 5),
            Err(AtomicError::Insufficient {
                available: 5,
                requested: 32769
            })
        ));
    }

    #[test]
    fn a_negative_amount_names_its_key() {
        let err = SetPlan::of::<Item, items::stock>(Op::Increment, [(1, 1), (9, -1)]).unwrap_err();
        match err {
            AtomicError::InRow { key, error } => {
                assert_eq!(key, "9");
                assert!(matches!(*error, AtomicError::NegativeAmount { amount: -1 }));
            }
            other => panic!("{other:?}"),
        }
    }
}
