//! `Decimal<P, S>` fields (`NUMERIC(12, 2)` balances): every operation gives the exact
//! decimal, on SQLite too, whose `NUMERIC` column holds a double; refusals carry amounts in
//! the field's `10^-S` units; a result past the column's precision is `OutOfRange` with the
//! row unchanged; and a storm of debits, credits and transfers of odd cents keeps every cent.

use counter_core::{
    AtomicError, AtomicFieldOn, Change, ChangeColumn, Changes, FlushPolicy, Limit, NewRow,
    UpsertRow,
};
use rand::{Rng, SeedableRng};

use super::assert::{insufficient, out_of_range};
use crate::client::{on_workers, Client, TestBuffer};
use crate::db::{DbOf, TestDb, WideRows};
use crate::models::{Ledger, Money, Wide};
use crate::schema::{ct_ledger, ct_wide};

/// This file's scenarios on every backend, for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! decimal_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            decimals_are_exact_through_every_operation,
            decimal_refusals_carry_units_and_write_nothing,
            decimal_storm_keeps_every_cent,
        );
    };
}

/// This file's scenarios on a server (PostgreSQL and MySQL compute decimals exactly at any
/// precision), for `tests/postgres.rs`, `tests/mysql.rs` and their async clients.
#[macro_export]
macro_rules! decimal_server_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            eighteen_digit_decimals_stay_exact,
        );
    };
}

/// The value of a decimal literal, for the tests' own arithmetic.
pub fn m(text: &str) -> Money {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} is not Money: {e}"))
}

/// The `(balance, best)` change `update_atomic` takes.
pub type BalanceAndBest = (
    Change<ct_ledger::balance, Money>,
    Change<ct_ledger::best, Money>,
);

/// Each operation once or more on two rows, with amounts whose doubles are inexact (0.1, 0.7,
/// 0.3): every returned value and every stored value is the exact decimal. On SQLite,
/// 0.70 + 0.10 in doubles is 0.7999999999999999; without the statement rounding back to the
/// scale, the following `balance >= 0.80` guard refused a debit the row could pay.
pub async fn decimals_are_exact_through_every_operation<C: Client>(client: &C)
where
    Ledger: AtomicFieldOn<ct_ledger::balance, DbOf<C::Db>>
        + AtomicFieldOn<ct_ledger::best, DbOf<C::Db>>
        + AtomicFieldOn<ct_ledger::small, DbOf<C::Db>>,
    BalanceAndBest: Changes<Ledger, DbOf<C::Db>, Key = i64, Values = (Money, Money)>,
    for<'r> &'r Ledger: UpsertRow<Ledger, ct_ledger::balance, DbOf<C::Db>>,
    Ledger: NewRow<Ledger, ct_ledger::balance, DbOf<C::Db>>,
{
    let db = client.db();
    let (a, b) = (db.new_ledger(m("0.70")), db.new_ledger(m("0.00")));
    let c = &mut client.conn().await;

    assert_eq!(
        C::done(Ledger::increment_balance(c, a, m("0.10")))
            .await
            .unwrap(),
        m("0.80")
    );
    assert_eq!(
        C::done(Ledger::decrement_balance_if_at_least(c, a, m("0.80")))
            .await
            .unwrap(),
        m("0.00")
    );
    for tenth in 1..=10 {
        assert_eq!(
            C::done(Ledger::increment_balance(c, a, m("0.10")))
                .await
                .unwrap(),
            Money::from_units(tenth * 10).unwrap()
        );
    }
    for _ in 0..3 {
        C::done(Ledger::decrement_balance(c, a, m("0.30")))
            .await
            .unwrap();
    }
    assert_eq!(db.ledger(a).0, m("0.10"));
    assert_eq!(
        C::done(Ledger::take_balance_up_to(c, a, m("0.25")))
            .await
            .unwrap(),
        m("0.10")
    );
    assert_eq!(db.ledger(a).0, m("0.00"));

    // Up to the declared max, 1,000,000.00.
    assert_eq!(
        C::done(Ledger::increment_balance(c, b, m("999999.95")))
            .await
            .unwrap(),
        m("999999.95")
    );
    assert_eq!(
        C::done(Ledger::increment_balance_up_to(c, b, m("0.10")))
            .await
            .unwrap(),
        m("0.05")
    );
    assert_eq!(
        C::done(Ledger::increment_balance_up_to(c, b, m("0.10")))
            .await
            .unwrap(),
        m("0.00")
    );
    assert_eq!(
        C::done(Ledger::transfer_balance(c, b, a, m("0.07")))
            .await
            .unwrap(),
        (m("999999.93"), m("0.07"))
    );

    // High-water marks and compare-and-set.
    assert_eq!(
        C::done(Ledger::set_best_max(c, a, m("12.34")))
            .await
            .unwrap(),
        m("12.34")
    );
    assert_eq!(
        C::done(Ledger::set_best_max(c, a, m("12.33")))
            .await
            .unwrap(),
        m("12.34")
    );
    assert_eq!(
        C::done(Ledger::set_best_min(c, a, m("0.07")))
            .await
            .unwrap(),
        m("0.07")
    );
    assert!(matches!(
        C::done(Ledger::compare_and_set_balance(c, a, m("0.08"), m("3.33"))).await,
        Err(AtomicError::Mismatch {
            expected: 8,
            current: 7
        })
    ));
    assert_eq!(
        C::done(Ledger::compare_and_set_balance(c, a, m("0.07"), m("3.33")))
            .await
            .unwrap(),
        m("3.33")
    );
    assert_eq!(
        C::done(Ledger::update_balance_locked(c, a, |v| {
            Ok(Money::from_units(v.units() * 3).unwrap())
        }))
        .await
        .unwrap(),
        m("9.99")
    );

    // Two columns in one statement, sets of rows, increment-or-insert.
    let both = (
        ct_ledger::balance.increment(m("0.01")),
        ct_ledger::best.increment(m("0.10")),
    );
    assert_eq!(
        C::done(Ledger::update_atomic(c, a, both)).await.unwrap(),
        (m("10.00"), m("0.17"))
    );
    C::done(Ledger::increment_balance_many(
        c,
        [(a, m("0.10")), (b, m("0.00"))],
    ))
    .await
    .unwrap();
    C::done(Ledger::decrement_balance_if_at_least_many(
        c,
        [(a, m("0.30")), (b, m("0.70"))],
    ))
    .await
    .unwrap();
    let fresh = Ledger {
        id: crate::db::next_id(),
        balance: m("0.10"),
        best: Money::ZERO,
        small: Default::default(),
    };
    assert_eq!(
        C::done(Ledger::increment_balance_or_insert(c, &fresh, m("0.20")))
            .await
            .unwrap(),
        m("0.10"),
        "a new row is inserted as given"
    );
    assert_eq!(
        C::done(Ledger::increment_balance_or_insert(c, &fresh, m("0.20")))
            .await
            .unwrap(),
        m("0.30")
    );

    // Under an idempotency key: applied once, the recorded decimal answered again exactly.
    let key = super::idempotent::fresh_key("decimal");
    for _ in 0..3 {
        let sent = C::once(c, counter_core::Idempotent::key(&key), async |c| {
            C::done(Ledger::decrement_balance(c, a, m("0.05"))).await
        })
        .await;
        assert_eq!(sent.unwrap(), m("9.75"));
    }
    C::done(Ledger::increment_balance(c, a, m("0.05")))
        .await
        .unwrap();

    // A buffer's flush of odd cents.
    let buffer = client.buffer(
        Ledger::atomic_balance(),
        |&id: &i64, balance| Ledger {
            id,
            balance,
            best: Money::ZERO,
            small: Default::default(),
        },
        FlushPolicy::MANUAL,
    );
    for _ in 0..3 {
        buffer.add(a, m("0.10")).unwrap();
    }
    assert_eq!(buffer.flush().await.unwrap().written, 1);
    buffer.shutdown().await.unwrap();

    assert_eq!(db.ledger(a).0, m("10.10"));
    assert_eq!(db.ledger(b).0, m("999999.23"));
    assert_eq!(db.ledger(fresh.id).0, m("0.30"));
}

/// Refusals of a decimal field carry their amounts in its `10^-S` units (`Insufficient {
/// available: 5, requested: 6 }` is 0.05 against 0.06); a change past the declared `max` or
/// past the column's precision (`NUMERIC(4, 2)` holds ±99.99) is `OutOfRange` before any SQL
/// runs, and the row keeps its value.
pub async fn decimal_refusals_carry_units_and_write_nothing<C: Client>(client: &C)
where
    Ledger: AtomicFieldOn<ct_ledger::balance, DbOf<C::Db>>
        + AtomicFieldOn<ct_ledger::small, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_ledger(m("0.05"));
    let c = &mut client.conn().await;
    assert_eq!(
        insufficient(C::done(Ledger::decrement_balance_if_at_least(c, a, m("0.06"))).await),
        (5, 6)
    );
    assert_eq!(
        out_of_range(C::done(Ledger::decrement_balance(c, a, m("0.06"))).await),
        (5, -1, Limit::Min(0))
    );
    assert_eq!(
        out_of_range(C::done(Ledger::increment_balance(c, a, m("999999.96"))).await),
        (5, 100_000_001, Limit::Max(100_000_000))
    );
    assert!(matches!(
        C::done(Ledger::increment_balance(c, a, m("-0.01"))).await,
        Err(AtomicError::NegativeAmount { amount: -1 })
    ));
    assert_eq!(
        C::done(Ledger::increment_small(c, a, "99.90".parse().unwrap()))
            .await
            .unwrap()
            .to_string(),
        "99.90"
    );
    assert_eq!(
        out_of_range(C::done(Ledger::increment_small(c, a, "0.10".parse().unwrap())).await),
        (9_990, 10_000, Limit::Max(9_999))
    );
    assert_eq!(
        C::done(Ledger::decrement_small(c, a, "99.90".parse().unwrap()))
            .await
            .unwrap()
            .to_string(),
        "0.00"
    );
    let (balance, _, small) = db.ledger(a);
    assert_eq!((balance, small.to_string().as_str()), (m("0.05"), "0.00"));
    assert!(matches!(
        "0.001".parse::<Money>(),
        Err(counter_core::DecimalError::Scale { scale: 2, .. })
    ));
}

/// `C::WORKERS` workers each run 60 random debits (`decrement_balance_if_at_least`), credits
/// and transfers of 0.01 to 99.99 over four accounts of 250.00: the sum of the balances is
/// 1,000.00 plus the credits less the debits that succeeded, to the cent; no balance is below
/// 0.00; every refusal names an available amount below the one requested.
pub async fn decimal_storm_keeps_every_cent<C: Client>(client: &C)
where
    Ledger: AtomicFieldOn<ct_ledger::balance, DbOf<C::Db>>,
{
    let db = client.db();
    let ids: Vec<i64> = (0..4).map(|_| db.new_ledger(m("250.00"))).collect();
    let results = on_workers(client, async |worker, conn| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(worker as u64);
        let (mut net, mut refused, mut moved) = (0i128, 0, 0);
        for _ in 0..60 {
            let amount = Money::from_units(rng.random_range(1..=9_999)).unwrap();
            let from = ids[rng.random_range(0..4)];
            let result = match rng.random_range(0..3) {
                0 => C::done(Ledger::decrement_balance_if_at_least(conn, from, amount))
                    .await
                    .map(|_| -amount.units()),
                1 => C::done(Ledger::increment_balance(conn, from, amount))
                    .await
                    .map(|_| amount.units()),
                _ => {
                    let to = ids[(ids.iter().position(|&id| id == from).unwrap() + 1) % 4];
                    C::done(Ledger::transfer_balance(conn, from, to, amount))
                        .await
                        .map(|(f, t)| {
                            assert!(f >= Money::ZERO && t >= Money::ZERO, "({f}, {t})");
                            moved += 1;
                            0
                        })
                }
            };
            match result {
                Ok(change) => net += change,
                Err(AtomicError::Insufficient {
                    available,
                    requested,
                }) => {
                    assert!(
                        (0..requested).contains(&available) && requested == amount.units(),
                        "{available} of {requested}"
                    );
                    refused += 1;
                }
                Err(AtomicError::Conflict { .. })
                    if super::harness::serializable_postgres(client) => {}
                Err(other) => panic!("{}: {other:?}", client.name()),
            }
        }
        (net, refused, moved)
    });
    let (net, refused, moved) = results
        .into_iter()
        .fold((0, 0, 0), |(n, r, m), (n1, r1, m1)| {
            (n + n1, r + r1, m + m1)
        });
    eprintln!(
        "{}: net {} cents, {refused} refused, {moved} transfers",
        client.name(),
        net
    );
    assert!(
        moved > 0 && refused > 0,
        "{moved} transfers, {refused} refused"
    );
    let balances: Vec<Money> = ids.iter().map(|&id| db.ledger(id).0).collect();
    let sum: i128 = balances.iter().map(|b| b.units()).sum();
    assert_eq!(sum, 100_000 + net, "{balances:?}");
    assert!(balances.iter().all(|&b| b >= Money::ZERO), "{balances:?}");
}

/// `NUMERIC(18, 2)` at the edge of its range, with cents that a double cannot tell apart
/// (9,999,999,999,999,999.98 and .99 are one double): every step is exact, the capture of an
/// 18-digit value on MySQL included, and the type's own range refuses before SQL. On MySQL over
/// diesel-async, parameters arrive as text, which MySQL would add in doubles: the statement
/// casts them to `DECIMAL(18, 2)`, and without that cast this test fails there.
pub async fn eighteen_digit_decimals_stay_exact<C: Client>(client: &C)
where
    C::Db: WideRows,
    Wide: AtomicFieldOn<ct_wide::amount, DbOf<C::Db>>,
{
    type Wide18 = counter_core::Decimal<18, 2>;
    let w = |text: &str| text.parse::<Wide18>().unwrap();
    let db = client.db();
    let id = db.new_wide(w("9999999999999999.90"));
    let c = &mut client.conn().await;
    for cents in 91..=99 {
        assert_eq!(
            C::done(Wide::increment_amount(c, id, w("0.01")))
                .await
                .unwrap(),
            w(&format!("9999999999999999.{cents}"))
        );
    }
    assert_eq!(db.wide(id), Wide18::MAX);
    assert_eq!(
        out_of_range(C::done(Wide::increment_amount(c, id, w("0.01"))).await),
        (
            Wide18::MAX.units(),
            Wide18::MAX.units() + 1,
            Limit::Max(Wide18::MAX.units())
        )
    );
    assert_eq!(
        C::done(Wide::decrement_amount(c, id, w("0.03")))
            .await
            .unwrap(),
        w("9999999999999999.96")
    );
    assert_eq!(
        C::done(Wide::take_amount_up_to(c, id, w("0.01")))
            .await
            .unwrap(),
        w("0.01")
    );
    assert_eq!(
        C::done(Wide::set_amount_min(c, id, w("-9999999999999999.99")))
            .await
            .unwrap(),
        Wide18::MIN
    );
    assert_eq!(
        C::done(Wide::increment_amount(c, id, w("0.01")))
            .await
            .unwrap(),
        w("-9999999999999999.98")
    );
    assert_eq!(db.wide(id), w("-9999999999999999.98"));
}
