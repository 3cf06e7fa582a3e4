//! The runtime without the macro: a hand-written `AtomicField` on an in-memory SQLite database.

use counter_core::{AtomicError, AtomicField, Field, Limit};
use diesel::prelude::*;

diesel::table! { items (id) { id -> BigInt, stock -> Integer, } }

struct Item;
impl AtomicField<items::stock> for Item {
    type Key = i64;
    type KeyColumns = (items::id,);
    type Value = i32;
    const MIN: Option<i32> = Some(0);
    const MAX: Option<i32> = Some(100);
    const NAME: &'static str = "stock";
}

fn conn(stock: i32) -> SqliteConnection {
    let mut c = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query("CREATE TABLE items (id BIGINT PRIMARY KEY, stock INTEGER NOT NULL)")
        .execute(&mut c)
        .unwrap();
    diesel::sql_query(format!("INSERT INTO items VALUES (1, {stock}), (2, 0)"))
        .execute(&mut c)
        .unwrap();
    c
}

fn stock(c: &mut SqliteConnection, id: i64) -> i32 {
    items::table.find(id).select(items::stock).first(c).unwrap()
}

#[test]
fn every_operation_on_sqlite() {
    let f = Field::<Item, items::stock>::new();
    let c = &mut conn(10);
    assert_eq!(f.increment(c, 1, 5).unwrap(), 15);
    assert_eq!(f.decrement(c, 1, 3).unwrap(), 12);
    assert_eq!(f.decrement_if_at_least(c, 1, 2).unwrap(), 10);
    assert!(matches!(
        f.decrement_if_at_least(c, 1, 11),
        Err(AtomicError::Insufficient {
            available: 10,
            requested: 11
        })
    ));
    assert!(matches!(
        f.increment(c, 1, 91),
        Err(AtomicError::OutOfRange {
            current: 10,
            attempted: 101,
            limit: Limit::Max(100)
        })
    ));
    assert!(matches!(f.increment(c, 9, 1), Err(AtomicError::NotFound)));
    assert!(matches!(
        f.increment(c, 1, -1),
        Err(AtomicError::NegativeAmount { amount: -1 })
    ));
    assert_eq!(f.take_up_to(c, 1, 4).unwrap(), 4);
    assert_eq!(f.take_up_to(c, 1, 40).unwrap(), 6);
    assert_eq!(f.take_up_to(c, 1, 40).unwrap(), 0);
    assert_eq!(stock(c, 1), 0);
    assert_eq!(f.update_locked(c, 1, |v| Ok(v + 7)).unwrap(), 7);
    assert_eq!(f.transfer(c, 1, 2, 5).unwrap(), (2, 5));
    assert!(matches!(
        f.transfer(c, 1, 2, 3),
        Err(AtomicError::Insufficient {
            available: 2,
            requested: 3
        })
    ));
    assert_eq!((stock(c, 1), stock(c, 2)), (2, 5));
}
