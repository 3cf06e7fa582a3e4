//! The scenarios on MySQL/MariaDB (`COUNTER_MYSQL_URL`, else a testcontainers container), plus
//! `INT UNSIGNED`/`BIGINT UNSIGNED` (`u32`/`u64`) fields, which exist only on MySQL.

use counter_core::{AtomicError, Limit};
use counter_tests::models::UnsignedCounter;
use counter_tests::scenarios::{insufficient, on_threads, out_of_range, THREADS};
use counter_tests::schema::ct_unsigned;
use counter_tests::{next_id, Mysql, TestDb};
use diesel::prelude::*;

counter_tests::backend_tests!(counter_tests::Mysql);

fn new_unsigned(db: &Mysql, u32v: u32, u64v: u64) -> i64 {
    let id = next_id();
    diesel::insert_into(ct_unsigned::table)
        .values((
            ct_unsigned::id.eq(id),
            ct_unsigned::u32v.eq(u32v),
            ct_unsigned::u64v.eq(u64v),
        ))
        .execute(&mut *db.conn())
        .expect("insert unsigned");
    id
}

fn unsigned(db: &Mysql, id: i64) -> (u32, u64) {
    ct_unsigned::table
        .find(id)
        .select((ct_unsigned::u32v, ct_unsigned::u64v))
        .first(&mut *db.conn())
        .expect("read unsigned")
}

/// `u32` up to `u32::MAX` and no further (`OutOfRange { Max(4294967295) }`), down to 0 and no
/// further (`OutOfRange { Min(0) }`).
#[test]
fn unsigned_u32_edges() {
    let db = Mysql::open();
    let (max, max_w) = (u32::MAX, i128::from(u32::MAX));
    let id = new_unsigned(&db, max - 1, 0);
    let mut conn = db.conn();
    assert_eq!(
        out_of_range(UnsignedCounter::increment_u32v(&mut conn, id, 2)),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(unsigned(&db, id), (max - 1, 0));
    assert_eq!(
        UnsignedCounter::increment_u32v(&mut conn, id, 1).unwrap(),
        max
    );
    assert_eq!(
        out_of_range(UnsignedCounter::increment_u32v(&mut conn, id, max)),
        (max_w, 2 * max_w, Limit::Max(max_w))
    );
    assert_eq!(unsigned(&db, id), (max, 0));
    // Values above i32::MAX survive every path (LAST_INSERT_ID capture, locked read).
    assert_eq!(
        UnsignedCounter::decrement_u32v_if_at_least(&mut conn, id, 5).unwrap(),
        max - 5
    );
    assert_eq!(
        UnsignedCounter::update_u32v_locked(&mut conn, id, |v| Ok(v + 5)).unwrap(),
        max
    );
    assert_eq!(
        UnsignedCounter::take_u32v_up_to(&mut conn, id, max).unwrap(),
        max
    );
    assert_eq!(unsigned(&db, id), (0, 0));
    assert_eq!(
        out_of_range(UnsignedCounter::decrement_u32v(&mut conn, id, 1)),
        (0, -1, Limit::Min(0))
    );
    assert_eq!(
        insufficient(UnsignedCounter::decrement_u32v_if_at_least(
            &mut conn, id, 1
        )),
        (0, 1)
    );
    assert_eq!(
        UnsignedCounter::take_u32v_up_to(&mut conn, id, 1).unwrap(),
        0
    );
    assert_eq!(unsigned(&db, id), (0, 0));
}

/// `u64` up to `u64::MAX` (beyond `i64::MAX`, where the capture's sign trick matters) and down
/// to 0.
#[test]
fn unsigned_u64_edges() {
    let db = Mysql::open();
    let (max, max_w) = (u64::MAX, i128::from(u64::MAX));
    let id = new_unsigned(&db, 0, max - 1);
    let mut conn = db.conn();
    assert_eq!(
        out_of_range(UnsignedCounter::increment_u64v(&mut conn, id, 2)),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(unsigned(&db, id), (0, max - 1));
    assert_eq!(
        UnsignedCounter::increment_u64v(&mut conn, id, 1).unwrap(),
        max
    );
    assert_eq!(
        UnsignedCounter::decrement_u64v(&mut conn, id, u64::MAX / 2).unwrap(),
        max - u64::MAX / 2
    );
    assert_eq!(
        UnsignedCounter::decrement_u64v(&mut conn, id, max - u64::MAX / 2).unwrap(),
        0
    );
    assert_eq!(
        out_of_range(UnsignedCounter::decrement_u64v(&mut conn, id, 1)),
        (0, -1, Limit::Min(0))
    );
    assert_eq!(unsigned(&db, id), (0, 0));
    assert_eq!(
        UnsignedCounter::increment_u64v(&mut conn, id, i64::MAX as u64 + 10).unwrap(),
        i64::MAX as u64 + 10
    );
    assert_eq!(
        UnsignedCounter::take_u64v_up_to(&mut conn, id, 4).unwrap(),
        4
    );
    assert_eq!(unsigned(&db, id), (0, i64::MAX as u64 + 6));
    let other = new_unsigned(&db, 0, 0);
    assert_eq!(
        UnsignedCounter::transfer_u64v(&mut conn, id, other, i64::MAX as u64 + 1).unwrap(),
        (5, i64::MAX as u64 + 1)
    );
    assert_eq!(
        insufficient(UnsignedCounter::transfer_u64v(&mut conn, id, other, 6)),
        (5, 6)
    );
    assert_eq!(unsigned(&db, other), (0, i64::MAX as u64 + 1));
}

/// Concurrent decrements of an unsigned counter stop at exactly 0.
#[test]
fn unsigned_oversell_storm() {
    let db = Mysql::open();
    let id = new_unsigned(&db, 100, 0);
    let results = on_threads(&db, |_, conn| {
        (0..160 / THREADS)
            .map(|_| UnsignedCounter::decrement_u32v_if_at_least(conn, id, 1))
            .collect::<Vec<_>>()
    });
    let results: Vec<_> = results.into_iter().flatten().collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let short = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(AtomicError::Insufficient {
                    available: 0,
                    requested: 1
                })
            )
        })
        .count();
    assert_eq!((ok, short), (100, 60), "{results:?}");
    assert_eq!(unsigned(&db, id), (0, 0));
}
