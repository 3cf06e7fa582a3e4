//! Every scenario, written once, generic over the backend ([`TestDb`]).
//!
//! `backend_tests!(Backend)` expands to one `#[test]` per scenario; `tests/sqlite.rs`,
//! `tests/postgres.rs` and `tests/mysql.rs` invoke it. Every scenario asserts exact values, and
//! after every error that the row is unchanged. Concurrency scenarios count outcomes exactly;
//! nothing is timed.
//!
//! All atomic operations are the functions `#[derive(AtomicField)]` generated on the models
//! (`Product::increment_stock`, `Product::atomic_stock()`, ...).

mod buffer;
mod keyed;
mod redis;
mod slotted;
mod transaction;

pub use buffer::*;
pub use keyed::*;
pub use redis::*;
pub use slotted::*;
pub use transaction::*;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Barrier;

use counter_core::{AtomicError, AtomicFieldOn, Limit, LockMode, RetryPolicy};
use diesel::connection::SimpleConnection;
use diesel::Connection;

use crate::db::{DbOf, TestDb};
use crate::models::{Account, CtWallet, Edge, Product};
use crate::schema::{ct_accounts, ct_edges, ct_products, ct_wallets};

/// Threads in every concurrency scenario.
pub const THREADS: usize = 8;

// ---------------------------------------------------------------------------------------------
// Assertion helpers
// ---------------------------------------------------------------------------------------------

/// Asserts that `$result` is `Err` matching `$pattern`.
#[macro_export]
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(,)?) => {
        match $result {
            Err($pattern) => {}
            other => panic!("expected Err({}), got {:?}", stringify!($pattern), other),
        }
    };
}

/// The fields of an `OutOfRange` error; panics on anything else.
#[track_caller]
pub fn out_of_range<T: Debug>(result: Result<T, AtomicError>) -> (i128, i128, Limit) {
    match result {
        Err(AtomicError::OutOfRange {
            current,
            attempted,
            limit,
        }) => (current, attempted, limit),
        other => panic!("expected Err(OutOfRange {{ .. }}), got {other:?}"),
    }
}

/// The fields of an `Insufficient` error `(available, requested)`; panics on anything else.
#[track_caller]
pub fn insufficient<T: Debug>(result: Result<T, AtomicError>) -> (i128, i128) {
    match result {
        Err(AtomicError::Insufficient {
            available,
            requested,
        }) => (available, requested),
        other => panic!("expected Err(Insufficient {{ .. }}), got {other:?}"),
    }
}

/// The amount of a `NegativeAmount` error; panics on anything else.
#[track_caller]
pub fn negative<T: Debug>(result: Result<T, AtomicError>) -> i128 {
    match result {
        Err(AtomicError::NegativeAmount { amount }) => amount,
        other => panic!("expected Err(NegativeAmount {{ .. }}), got {other:?}"),
    }
}

/// Runs `work(thread, conn)` on [`THREADS`] threads, each with its own pooled connection, all
/// released at once by a barrier; returns the results in thread order.
pub fn on_threads<B, T, F>(db: &B, work: F) -> Vec<T>
where
    B: TestDb,
    T: Send,
    F: Fn(usize, &mut B::Pooled) -> T + Sync,
{
    on_n_threads(db, THREADS, work)
}

/// [`on_threads`] on `threads` threads.
pub fn on_n_threads<B, T, F>(db: &B, threads: usize, work: F) -> Vec<T>
where
    B: TestDb,
    T: Send,
    F: Fn(usize, &mut B::Pooled) -> T + Sync,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    let mut conn = db.conn();
                    barrier.wait();
                    work(thread, &mut conn)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect()
    })
}

/// Errors counted by their message, for a failure report that says what went wrong.
fn error_summary<'a>(errors: impl IntoIterator<Item = &'a AtomicError>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in errors {
        *counts.entry(format!("{e:?}")).or_insert(0) += 1;
    }
    counts
}

/// Asserts that no call failed; lists every distinct error otherwise (a "database is locked"
/// on SQLite would show up here).
#[track_caller]
fn assert_no_errors<B: TestDb>(what: &str, errors: &[AtomicError]) {
    assert!(
        errors.is_empty(),
        "{}: {what}: {} call(s) failed: {:#?}",
        B::NAME,
        errors.len(),
        error_summary(errors)
    );
}

/// Keeps only the errors of a list of results.
fn errors_of<T>(results: Vec<Result<T, AtomicError>>) -> (Vec<T>, Vec<AtomicError>) {
    let mut oks = Vec::new();
    let mut errs = Vec::new();
    for r in results {
        match r {
            Ok(v) => oks.push(v),
            Err(e) => errs.push(e),
        }
    }
    (oks, errs)
}

// ---------------------------------------------------------------------------------------------
// Single-connection scenarios: every operation's result and every error
// ---------------------------------------------------------------------------------------------

/// `increment_*`/`decrement_*` return the new value; raw and pooled connections both work.
pub fn increment_and_decrement_return_the_new_value<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>> + AtomicFieldOn<ct_products::sold, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(10, 0);
    let mut conn = db.conn();
    assert_eq!(Product::increment_stock(&mut conn, id, 5).unwrap(), 15);
    assert_eq!(Product::decrement_stock(&mut conn, id, 3).unwrap(), 12);
    // The raw connection underneath the pooled one.
    assert_eq!(Product::increment_stock(&mut *conn, id, 1).unwrap(), 13);
    assert_eq!(Product::increment_sold(&mut conn, id, 7).unwrap(), 7);
    assert_eq!(Product::increment_sold(&mut *conn, id, 1).unwrap(), 8);
    assert_eq!(Product::decrement_stock(&mut conn, id, 13).unwrap(), 0);
    assert_eq!(Product::increment_stock(&mut conn, id, 1000).unwrap(), 1000);
    assert_eq!(db.product(id), (1000, 8));
    assert_eq!(Product::current_stock(&mut conn, id).unwrap(), 1000);
    assert_eq!(Product::current_sold(&mut conn, id).unwrap(), 8);
}

/// Incrementing past the declared `max` is `OutOfRange { Max(1000) }`; reaching it is fine.
pub fn increment_past_max_is_out_of_range<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(998, 4);
    let mut conn = db.conn();
    assert_eq!(
        out_of_range(Product::increment_stock(&mut conn, id, 3)),
        (998, 1001, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (998, 4));
    assert_eq!(
        out_of_range(Product::increment_stock(&mut conn, id, i32::MAX)),
        (998, 998 + i32::MAX as i128, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (998, 4));
    assert_eq!(Product::increment_stock(&mut conn, id, 2).unwrap(), 1000);
    assert_eq!(
        out_of_range(Product::increment_stock(&mut conn, id, 1)),
        (1000, 1001, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (1000, 4));
}

/// Decrementing below the declared `min` is `OutOfRange { Min(0) }`; reaching it is fine.
pub fn decrement_past_min_is_out_of_range<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(3, 0);
    let mut conn = db.conn();
    assert_eq!(
        out_of_range(Product::decrement_stock(&mut conn, id, 4)),
        (3, -1, Limit::Min(0))
    );
    assert_eq!(db.product(id), (3, 0));
    assert_eq!(
        out_of_range(Product::decrement_stock(&mut conn, id, i32::MAX)),
        (3, 3 - i32::MAX as i128, Limit::Min(0))
    );
    assert_eq!(db.product(id), (3, 0));
    assert_eq!(Product::decrement_stock(&mut conn, id, 3).unwrap(), 0);
    assert_eq!(
        out_of_range(Product::decrement_stock(&mut conn, id, 1)),
        (0, -1, Limit::Min(0))
    );
    assert_eq!(db.product(id), (0, 0));
}

/// `decrement_*_if_at_least` sells while enough is left, down to exactly zero.
pub fn decrement_if_at_least_sells_exactly<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(10, 0);
    let mut conn = db.conn();
    assert_eq!(
        Product::decrement_stock_if_at_least(&mut conn, id, 4).unwrap(),
        6
    );
    assert_eq!(
        Product::decrement_stock_if_at_least(&mut conn, id, 6).unwrap(),
        0
    );
    assert_eq!(db.product(id), (0, 0));
}

/// Asking for more than is left is `Insufficient { available, requested }`; nothing changes.
pub fn decrement_if_at_least_insufficient<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(3, 9);
    let mut conn = db.conn();
    assert_eq!(
        insufficient(Product::decrement_stock_if_at_least(&mut conn, id, 5)),
        (3, 5)
    );
    assert_eq!(db.product(id), (3, 9));
    assert_eq!(
        insufficient(Product::decrement_stock_if_at_least(
            &mut conn,
            id,
            i32::MAX
        )),
        (3, i32::MAX as i128)
    );
    assert_eq!(db.product(id), (3, 9));
    assert_eq!(
        Product::decrement_stock_if_at_least(&mut conn, id, 3).unwrap(),
        0
    );
    assert_eq!(
        insufficient(Product::decrement_stock_if_at_least(&mut conn, id, 1)),
        (0, 1)
    );
    assert_eq!(db.product(id), (0, 9));
}

/// With a declared minimum above zero (5): enough units but crossing the minimum is
/// `OutOfRange { Min(5) }`, too few units is `Insufficient`.
pub fn decrement_if_at_least_respects_declared_min<B: TestDb>()
where
    Edge: AtomicFieldOn<ct_edges::floored, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_edge(0, 0, 0, 8);
    let mut conn = db.conn();
    assert_eq!(
        out_of_range(Edge::decrement_floored_if_at_least(&mut conn, id, 4)),
        (8, 4, Limit::Min(5))
    );
    assert_eq!(db.edge(id), (0, 0, 0, 8));
    assert_eq!(
        insufficient(Edge::decrement_floored_if_at_least(&mut conn, id, 9)),
        (8, 9)
    );
    assert_eq!(db.edge(id), (0, 0, 0, 8));
    assert_eq!(
        Edge::decrement_floored_if_at_least(&mut conn, id, 3).unwrap(),
        5
    );
    assert_eq!(
        out_of_range(Edge::decrement_floored(&mut conn, id, 1)),
        (5, 4, Limit::Min(5))
    );
    assert_eq!(
        out_of_range(Edge::increment_floored(&mut conn, id, 46)),
        (5, 51, Limit::Max(50))
    );
    assert_eq!(Edge::increment_floored(&mut conn, id, 45).unwrap(), 50);
    assert_eq!(db.edge(id), (0, 0, 0, 50));
}

/// `take_*_up_to` takes `min(n, stock)`, then 0 from an empty row, which stays at 0.
pub fn take_up_to_takes_what_is_left<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(10, 2);
    let mut conn = db.conn();
    assert_eq!(Product::take_stock_up_to(&mut conn, id, 3).unwrap(), 3);
    assert_eq!(db.product(id), (7, 2));
    assert_eq!(Product::take_stock_up_to(&mut conn, id, 7).unwrap(), 7);
    assert_eq!(db.product(id), (0, 2));
    assert_eq!(Product::take_stock_up_to(&mut conn, id, 5).unwrap(), 0);
    assert_eq!(db.product(id), (0, 2));

    let id = db.new_product(10, 0);
    assert_eq!(Product::take_stock_up_to(&mut conn, id, 100).unwrap(), 10);
    assert_eq!(db.product(id), (0, 0));
    let id = db.new_product(1000, 0);
    assert_eq!(
        Product::take_stock_up_to(&mut conn, id, i32::MAX).unwrap(),
        1000
    );
    assert_eq!(db.product(id), (0, 0));
}

/// The floor of `take_*_up_to` is the declared minimum: negative (-500) or positive (5). A row
/// already below its floor (written by someone else) gives 0 and is left alone.
pub fn take_up_to_stops_at_the_declared_floor<B: TestDb>()
where
    Account: AtomicFieldOn<ct_accounts::balance_cents, DbOf<B>>,
    Edge: AtomicFieldOn<ct_edges::floored, DbOf<B>>,
{
    let db = B::open();
    let mut conn = db.conn();
    let id = db.new_account(100);
    assert_eq!(
        Account::take_balance_up_to(&mut conn, id, 1000).unwrap(),
        600
    );
    assert_eq!(db.account(id), -500);
    assert_eq!(Account::take_balance_up_to(&mut conn, id, 1).unwrap(), 0);
    assert_eq!(db.account(id), -500);
    let below = db.new_account(-600);
    assert_eq!(Account::take_balance_up_to(&mut conn, below, 5).unwrap(), 0);
    assert_eq!(db.account(below), -600);

    let id = db.new_edge(0, 0, 0, 8);
    assert_eq!(Edge::take_floored_up_to(&mut conn, id, 10).unwrap(), 3);
    assert_eq!(db.edge(id), (0, 0, 0, 5));
    assert_eq!(Edge::take_floored_up_to(&mut conn, id, 10).unwrap(), 0);
    assert_eq!(db.edge(id), (0, 0, 0, 5));
}

/// `update_*_locked` writes what the closure returns, called once without contention.
pub fn update_locked_writes_the_closure_result<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>> + AtomicFieldOn<ct_products::sold, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(21, 5);
    let mut conn = db.conn();
    let mut calls = 0;
    let new = Product::update_stock_locked(&mut conn, id, |v| {
        calls += 1;
        assert_eq!(v, 21, "the closure sees the current value");
        Ok(v * 2 + 1)
    })
    .unwrap();
    assert_eq!((new, calls), (43, 1));
    assert_eq!(db.product(id), (43, 5));
    // Unchanged value: fine, nothing to write.
    assert_eq!(Product::update_stock_locked(&mut conn, id, Ok).unwrap(), 43);
    // Down to the exact bounds.
    assert_eq!(
        Product::update_stock_locked(&mut conn, id, |_| Ok(0)).unwrap(),
        0
    );
    assert_eq!(
        Product::update_stock_locked(&mut *conn, id, |_| Ok(1000)).unwrap(),
        1000
    );
    assert_eq!(
        Product::update_sold_locked(&mut conn, id, |v| Ok(v - 105)).unwrap(),
        -100
    );
    assert_eq!(db.product(id), (1000, -100));
}

/// An `Err` from the closure comes back as it is and writes nothing.
pub fn update_locked_custom_error_writes_nothing<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(7, 1);
    let mut conn = db.conn();
    let result = Product::update_stock_locked(&mut conn, id, |v| {
        assert_eq!(v, 7);
        Err(AtomicError::custom("coupon already used"))
    });
    match result {
        Err(AtomicError::Custom(e)) => assert_eq!(e.to_string(), "coupon already used"),
        other => panic!("expected Err(Custom(..)), got {other:?}"),
    }
    assert_eq!(db.product(id), (7, 1));
    // A library error returned by the closure passes through too.
    assert_eq!(
        insufficient(Product::update_stock_locked(&mut conn, id, |v| {
            Err(AtomicError::Insufficient {
                available: v.into(),
                requested: 8,
            })
        })),
        (7, 8)
    );
    assert_eq!(db.product(id), (7, 1));
}

/// A closure result beyond a bound is `OutOfRange`, and nothing is written.
pub fn update_locked_out_of_range<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(990, 0);
    let mut conn = db.conn();
    assert_eq!(
        out_of_range(Product::update_stock_locked(&mut conn, id, |v| Ok(v + 11))),
        (990, 1001, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (990, 0));
    assert_eq!(
        out_of_range(Product::update_stock_locked(&mut conn, id, |_| Ok(-1))),
        (990, -1, Limit::Min(0))
    );
    assert_eq!(db.product(id), (990, 0));
    assert_eq!(
        out_of_range(Product::update_stock_locked(&mut conn, id, |_| Ok(
            i32::MIN
        ))),
        (990, i32::MIN as i128, Limit::Min(0))
    );
    assert_eq!(db.product(id), (990, 0));
}

/// `transfer_*` moves an amount and returns `(new_from, new_to)`, whichever id is smaller.
pub fn transfer_moves_between_rows<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let a = db.new_product(10, 0);
    let b = db.new_product(20, 0);
    assert!(a < b);
    let mut conn = db.conn();
    assert_eq!(
        Product::transfer_stock(&mut conn, a, b, 4).unwrap(),
        (6, 24)
    );
    assert_eq!((db.product(a).0, db.product(b).0), (6, 24));
    // From the larger id to the smaller: the result is still (from, to).
    assert_eq!(
        Product::transfer_stock(&mut conn, b, a, 24).unwrap(),
        (0, 30)
    );
    assert_eq!((db.product(a).0, db.product(b).0), (30, 0));
    assert_eq!(
        Product::transfer_stock(&mut *conn, a, b, 30).unwrap(),
        (0, 30)
    );
    assert_eq!((db.product(a).0, db.product(b).0), (0, 30));
}

/// A transfer respects both rows' bounds: the source's minimum (`Insufficient`, with what it
/// could give) and the target's maximum (`OutOfRange`); neither row changes on an error.
pub fn transfer_respects_both_bounds<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
    Account: AtomicFieldOn<ct_accounts::balance_cents, DbOf<B>>,
{
    let db = B::open();
    let a = db.new_product(5, 0);
    let b = db.new_product(998, 0);
    let mut conn = db.conn();
    let both = |db: &B| (db.product(a).0, db.product(b).0);
    assert_eq!(
        insufficient(Product::transfer_stock(&mut conn, a, b, 6)),
        (5, 6)
    );
    assert_eq!(both(&db), (5, 998));
    assert_eq!(
        out_of_range(Product::transfer_stock(&mut conn, a, b, 3)),
        (998, 1001, Limit::Max(1000))
    );
    assert_eq!(both(&db), (5, 998));
    assert_eq!(
        insufficient(Product::transfer_stock(&mut conn, b, a, 999)),
        (998, 999)
    );
    assert_eq!(both(&db), (5, 998));
    assert_eq!(
        Product::transfer_stock(&mut conn, a, b, 2).unwrap(),
        (3, 1000)
    );
    assert_eq!(both(&db), (3, 1000));

    // A negative floor: the source may go down to -500 and no further.
    let x = db.new_account(100);
    let y = db.new_account(0);
    assert_eq!(
        insufficient(Account::transfer_balance(&mut conn, x, y, 601)),
        (600, 601)
    );
    assert_eq!((db.account(x), db.account(y)), (100, 0));
    assert_eq!(
        Account::transfer_balance(&mut conn, x, y, 600).unwrap(),
        (-500, 600)
    );
    assert_eq!((db.account(x), db.account(y)), (-500, 600));
}

/// Every operation on a missing row is `NotFound`, also with amount 0, and creates nothing.
pub fn not_found_for_every_operation<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let existing = db.new_product(10, 0);
    let missing = crate::db::next_id();
    let mut conn = db.conn();
    assert_err!(
        Product::current_stock(&mut conn, missing),
        AtomicError::NotFound
    );
    for by in [0, 1] {
        assert_err!(
            Product::increment_stock(&mut conn, missing, by),
            AtomicError::NotFound
        );
        assert_err!(
            Product::decrement_stock(&mut conn, missing, by),
            AtomicError::NotFound
        );
        assert_err!(
            Product::decrement_stock_if_at_least(&mut conn, missing, by),
            AtomicError::NotFound
        );
        assert_err!(
            Product::take_stock_up_to(&mut conn, missing, by),
            AtomicError::NotFound
        );
        assert_err!(
            Product::transfer_stock(&mut conn, existing, missing, by),
            AtomicError::NotFound
        );
        assert_err!(
            Product::transfer_stock(&mut conn, missing, existing, by),
            AtomicError::NotFound
        );
    }
    let mut calls = 0;
    assert_err!(
        Product::update_stock_locked(&mut conn, missing, |v| {
            calls += 1;
            Ok(v + 1)
        }),
        AtomicError::NotFound
    );
    assert_eq!(calls, 0, "the closure never runs for a missing row");
    assert_err!(
        Product::atomic_stock()
            .lock(LockMode::NoWait)
            .update_locked(&mut conn, missing, |v| Ok(v + 1)),
        AtomicError::NotFound
    );
    assert_eq!(db.product(existing), (10, 0));
    assert!(
        !db.product_exists(missing),
        "no operation created the missing row"
    );
}

/// A negative amount is `NegativeAmount` for every operation that takes one; nothing changes.
pub fn negative_amounts_are_refused<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>> + AtomicFieldOn<ct_products::sold, DbOf<B>>,
{
    let db = B::open();
    let a = db.new_product(10, 10);
    let b = db.new_product(10, 10);
    let mut conn = db.conn();
    assert_eq!(negative(Product::increment_stock(&mut conn, a, -1)), -1);
    assert_eq!(negative(Product::decrement_stock(&mut conn, a, -2)), -2);
    assert_eq!(
        negative(Product::decrement_stock_if_at_least(&mut conn, a, -3)),
        -3
    );
    assert_eq!(negative(Product::take_stock_up_to(&mut conn, a, -4)), -4);
    assert_eq!(negative(Product::transfer_stock(&mut conn, a, b, -5)), -5);
    assert_eq!(
        negative(Product::increment_sold(&mut conn, a, i64::MIN)),
        i64::MIN as i128
    );
    assert_eq!(
        negative(Product::decrement_stock(&mut conn, a, i32::MIN)),
        i32::MIN as i128
    );
    assert_eq!((db.product(a), db.product(b)), ((10, 10), (10, 10)));
}

/// A transfer from a row to itself is `SameRow` (even for amount 0); nothing changes.
pub fn same_row_transfer_is_refused<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let a = db.new_product(10, 0);
    let mut conn = db.conn();
    assert_err!(
        Product::transfer_stock(&mut conn, a, a, 1),
        AtomicError::SameRow
    );
    assert_err!(
        Product::transfer_stock(&mut conn, a, a, 0),
        AtomicError::SameRow
    );
    assert_eq!(db.product(a), (10, 0));
}

/// Amount 0 returns the current value (0 for `take_*_up_to`) and changes nothing, even at the
/// bounds.
pub fn zero_amounts_change_nothing<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let mut conn = db.conn();
    for stock in [0, 17, 1000] {
        let id = db.new_product(stock, 3);
        let other = db.new_product(500, 0);
        assert_eq!(Product::increment_stock(&mut conn, id, 0).unwrap(), stock);
        assert_eq!(Product::decrement_stock(&mut conn, id, 0).unwrap(), stock);
        assert_eq!(
            Product::decrement_stock_if_at_least(&mut conn, id, 0).unwrap(),
            stock
        );
        assert_eq!(Product::take_stock_up_to(&mut conn, id, 0).unwrap(), 0);
        assert_eq!(
            Product::transfer_stock(&mut conn, id, other, 0).unwrap(),
            (stock, 500)
        );
        assert_eq!(
            Product::transfer_stock(&mut conn, other, id, 0).unwrap(),
            (500, stock)
        );
        assert_eq!((db.product(id), db.product(other)), ((stock, 3), (500, 0)));
    }
}

/// `i16` at its extremes: the type's range is the bound when none is declared.
pub fn type_overflow_i16<B: TestDb>()
where
    Edge: AtomicFieldOn<ct_edges::small, DbOf<B>>,
{
    let db = B::open();
    let (max, min) = (i16::MAX, i16::MIN);
    let (max_w, min_w) = (i128::from(max), i128::from(min));
    let id = db.new_edge(max - 1, 0, 0, 5);
    let mut conn = db.conn();
    assert_eq!(
        out_of_range(Edge::increment_small(&mut conn, id, 2)),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).0, max - 1);
    assert_eq!(Edge::increment_small(&mut conn, id, 1).unwrap(), max);
    assert_eq!(
        out_of_range(Edge::increment_small(&mut conn, id, max)),
        (max_w, 2 * max_w, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).0, max);
    // The whole range in one step, down and up.
    assert_eq!(Edge::decrement_small(&mut conn, id, max).unwrap(), 0);
    assert_eq!(Edge::decrement_small(&mut conn, id, max).unwrap(), -max);
    assert_eq!(
        out_of_range(Edge::decrement_small(&mut conn, id, 2)),
        (-max_w, -max_w - 2, Limit::Min(min_w))
    );
    assert_eq!(Edge::decrement_small(&mut conn, id, 1).unwrap(), min);
    assert_eq!(
        out_of_range(Edge::decrement_small(&mut conn, id, 1)),
        (min_w, min_w - 1, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id).0, min);
    assert_eq!(Edge::take_small_up_to(&mut conn, id, max).unwrap(), 0);
    assert_eq!(Edge::increment_small(&mut conn, id, max).unwrap(), -1);
    assert_eq!(db.edge(id), (-1, 0, 0, 5));
}

/// `i32` at its extremes.
pub fn type_overflow_i32<B: TestDb>()
where
    Edge: AtomicFieldOn<ct_edges::medium, DbOf<B>>,
{
    let db = B::open();
    let (max, min) = (i32::MAX, i32::MIN);
    let (max_w, min_w) = (i128::from(max), i128::from(min));
    let id = db.new_edge(0, max - 1, 0, 5);
    let mut conn = db.conn();
    assert_eq!(
        out_of_range(Edge::increment_medium(&mut conn, id, 2)),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).1, max - 1);
    assert_eq!(Edge::increment_medium(&mut conn, id, 1).unwrap(), max);
    assert_eq!(
        out_of_range(Edge::increment_medium(&mut conn, id, 1)),
        (max_w, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(
        Edge::decrement_medium_if_at_least(&mut conn, id, max).unwrap(),
        0
    );
    assert_eq!(
        Edge::update_medium_locked(&mut conn, id, |_| Ok(min + 1)).unwrap(),
        min + 1
    );
    assert_eq!(
        out_of_range(Edge::decrement_medium(&mut conn, id, 2)),
        (min_w + 1, min_w - 1, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id).1, min + 1);
    assert_eq!(Edge::decrement_medium(&mut conn, id, 1).unwrap(), min);
    assert_eq!(db.edge(id), (0, min, 0, 5));
}

/// `i64` at its extremes: `i64::MAX - 1` plus 2 is `OutOfRange`, and the stored value stays an
/// exact integer (SQLite would silently turn an overflowing sum into a REAL).
pub fn type_overflow_i64<B: TestDb>()
where
    Edge: AtomicFieldOn<ct_edges::big, DbOf<B>>,
    Product: AtomicFieldOn<ct_products::sold, DbOf<B>>,
{
    let db = B::open();
    let (max, min) = (i64::MAX, i64::MIN);
    let (max_w, min_w) = (i128::from(max), i128::from(min));
    let id = db.new_edge(0, 0, max - 1, 5);
    let mut conn = db.conn();
    assert_eq!(
        out_of_range(Edge::increment_big(&mut conn, id, 2)),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).2, max - 1);
    assert_eq!(
        out_of_range(Edge::increment_big(&mut conn, id, max)),
        (max_w - 1, 2 * max_w - 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).2, max - 1);
    assert_eq!(Edge::increment_big(&mut conn, id, 1).unwrap(), max);
    assert_eq!(
        out_of_range(Edge::increment_big(&mut conn, id, 1)),
        (max_w, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).2, max);
    assert_eq!(Edge::take_big_up_to(&mut conn, id, max).unwrap(), max);
    assert_eq!(db.edge(id).2, 0);
    assert_eq!(Edge::decrement_big(&mut conn, id, max).unwrap(), -max);
    assert_eq!(
        out_of_range(Edge::decrement_big(&mut conn, id, 2)),
        (-max_w, -max_w - 2, Limit::Min(min_w))
    );
    assert_eq!(
        out_of_range(Edge::decrement_big(&mut conn, id, max)),
        (-max_w, -2 * max_w, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id).2, -max);
    assert_eq!(Edge::decrement_big(&mut conn, id, 1).unwrap(), min);
    assert_eq!(
        out_of_range(Edge::decrement_big(&mut conn, id, 1)),
        (min_w, min_w - 1, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id), (0, 0, min, 5));

    // The unbounded i64 of the README model, too.
    let p = db.new_product(0, max - 1);
    assert_eq!(
        out_of_range(Product::increment_sold(&mut conn, p, 2)),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.product(p), (0, max - 1));
    assert_eq!(Product::increment_sold(&mut conn, p, 1).unwrap(), max);
    assert_eq!(db.product(p), (0, max));
}

/// Negative values on signed columns without a declared minimum: plain arithmetic below zero
/// (MySQL's `LAST_INSERT_ID` capture must carry negative results).
pub fn negative_values_without_min<B: TestDb>()
where
    Edge: AtomicFieldOn<ct_edges::small, DbOf<B>>
        + AtomicFieldOn<ct_edges::medium, DbOf<B>>
        + AtomicFieldOn<ct_edges::big, DbOf<B>>,
    Product: AtomicFieldOn<ct_products::sold, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_edge(-5, -5, -5, 5);
    let mut conn = db.conn();
    assert_eq!(Edge::decrement_small(&mut conn, id, 10).unwrap(), -15);
    assert_eq!(Edge::decrement_medium(&mut conn, id, 10).unwrap(), -15);
    assert_eq!(Edge::decrement_big(&mut conn, id, 10).unwrap(), -15);
    assert_eq!(db.edge(id), (-15, -15, -15, 5));
    assert_eq!(Edge::increment_big(&mut conn, id, 3).unwrap(), -12);
    assert_eq!(Edge::increment_big(&mut conn, id, 12).unwrap(), 0);
    assert_eq!(Edge::decrement_big(&mut conn, id, 1).unwrap(), -1);
    // Nothing above the floor (0): nothing taken.
    assert_eq!(Edge::take_medium_up_to(&mut conn, id, 3).unwrap(), 0);
    assert_eq!(
        insufficient(Edge::decrement_medium_if_at_least(&mut conn, id, 1)),
        (-15, 1)
    );
    assert_eq!(
        Edge::update_medium_locked(&mut conn, id, |v| Ok(v * 3)).unwrap(),
        -45
    );
    assert_eq!(db.edge(id), (-15, -45, -1, 5));

    let p = db.new_product(0, 0);
    assert_eq!(Product::decrement_sold(&mut conn, p, 7).unwrap(), -7);
    assert_eq!(db.product(p), (0, -7));
}

/// `#[diesel(column_name = ...)]` and an inferred table name reach the right column and table.
pub fn renamed_column_and_inferred_table<B: TestDb>()
where
    Account: AtomicFieldOn<ct_accounts::balance_cents, DbOf<B>>,
    CtWallet: AtomicFieldOn<ct_wallets::coins, DbOf<B>>,
{
    let db = B::open();
    let mut conn = db.conn();
    let acct = db.new_account(0);
    assert_eq!(
        Account::increment_balance(&mut conn, acct, 250).unwrap(),
        250
    );
    assert_eq!(
        Account::decrement_balance(&mut conn, acct, 700).unwrap(),
        -450
    );
    assert_eq!(
        out_of_range(Account::decrement_balance(&mut conn, acct, 51)),
        (-450, -501, Limit::Min(-500))
    );
    assert_eq!(db.account(acct), -450);
    assert_eq!(
        Account::atomic_balance()
            .update_locked(&mut conn, acct, |v| Ok(v + 1))
            .unwrap(),
        -449
    );
    assert_eq!(db.account(acct), -449);

    let w1 = db.new_wallet(90);
    let w2 = db.new_wallet(0);
    assert_eq!(CtWallet::increment_coins(&mut conn, w1, 10).unwrap(), 100);
    assert_eq!(
        out_of_range(CtWallet::increment_coins(&mut conn, w1, 1)),
        (100, 101, Limit::Max(100))
    );
    assert_eq!(
        CtWallet::transfer_coins(&mut conn, w1, w2, 40).unwrap(),
        (60, 40)
    );
    assert_eq!(CtWallet::take_coins_up_to(&mut conn, w2, 50).unwrap(), 40);
    assert_eq!(
        CtWallet::decrement_coins_if_at_least(&mut conn, w1, 60).unwrap(),
        0
    );
    assert_eq!((db.wallet(w1), db.wallet(w2)), (0, 0));
}

/// The `atomic_*()` handle with per-call options runs the same operations.
pub fn field_handle_with_options<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let a = db.new_product(10, 0);
    let b = db.new_product(10, 0);
    let mut conn = db.conn();
    let never = Product::atomic_stock().retry(RetryPolicy::NEVER);
    assert_eq!(never.increment(&mut conn, a, 5).unwrap(), 15);
    assert_eq!(never.decrement(&mut conn, a, 1).unwrap(), 14);
    assert_eq!(never.decrement_if_at_least(&mut conn, a, 4).unwrap(), 10);
    assert_eq!(never.take_up_to(&mut conn, a, 3).unwrap(), 3);
    let nowait = Product::atomic_stock()
        .retry(RetryPolicy::DEFAULT.with_max_attempts(3))
        .lock(LockMode::NoWait);
    assert_eq!(
        nowait.update_locked(&mut conn, a, |v| Ok(v * 10)).unwrap(),
        70
    );
    assert_eq!(nowait.transfer(&mut conn, a, b, 20).unwrap(), (50, 30));
    assert_eq!(insufficient(nowait.transfer(&mut conn, b, a, 31)), (30, 31));
    assert_eq!(
        out_of_range(never.increment(&mut conn, a, 951)),
        (50, 1001, Limit::Max(1000))
    );
    assert_eq!((db.product(a), db.product(b)), ((50, 0), (30, 0)));
}

/// With `LockMode::NoWait`, a row another transaction holds is `Locked` at once, for
/// `update_*_locked` and `transfer_*`; nothing is written, and the closure never runs.
pub fn nowait_on_a_held_row_is_locked<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let a = db.new_product(10, 0);
    let b = db.new_product(10, 0);
    let mut holder = db.conn();
    let mut conn = db.conn();
    let nowait = Product::atomic_stock().lock(LockMode::NoWait);
    holder
        .transaction::<_, diesel::result::Error, _>(|h| {
            h.batch_execute(&B::lock_product_sql(a))?;
            let mut calls = 0;
            let started = std::time::Instant::now();
            let result = nowait.update_locked(&mut conn, a, |v| {
                calls += 1;
                Ok(v + 1)
            });
            // Logged, not asserted: tests assert results, the benchmark measures time.
            eprintln!(
                "{}: NoWait on a held row returned {result:?} after {:?}",
                B::NAME,
                started.elapsed()
            );
            assert_err!(result, AtomicError::Locked);
            assert_eq!(calls, 0);
            assert_err!(nowait.transfer(&mut conn, b, a, 1), AtomicError::Locked);
            assert_err!(nowait.transfer(&mut conn, a, b, 1), AtomicError::Locked);
            Ok(())
        })
        .unwrap();
    assert_eq!((db.product(a), db.product(b)), ((10, 0), (10, 0)));
    // Released: the same calls now succeed.
    assert_eq!(
        nowait.update_locked(&mut conn, a, |v| Ok(v + 1)).unwrap(),
        11
    );
    assert_eq!(nowait.transfer(&mut conn, a, b, 1).unwrap(), (10, 11));
}

/// Single-statement operations inside the caller's transaction: a rollback discards them, a
/// commit applies them.
pub fn caller_transaction_single_statement_ops<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>> + AtomicFieldOn<ct_products::sold, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(10, 0);
    let mut conn = db.conn();
    let result = conn.transaction::<(), AtomicError, _>(|c| {
        assert_eq!(Product::increment_stock(c, id, 1)?, 11);
        assert_eq!(Product::decrement_stock_if_at_least(c, id, 5)?, 6);
        assert_eq!(Product::decrement_stock(c, id, 6)?, 0);
        assert_eq!(Product::increment_sold(c, id, 10)?, 10);
        assert_eq!(
            insufficient(Product::decrement_stock_if_at_least(c, id, 1)),
            (0, 1)
        );
        Err(AtomicError::custom("roll back"))
    });
    assert_err!(result, AtomicError::Custom(_));
    assert_eq!(db.product(id), (10, 0), "rolled back");

    conn.transaction::<(), AtomicError, _>(|c| {
        assert_eq!(Product::increment_stock(c, id, 1)?, 11);
        assert_eq!(Product::decrement_stock_if_at_least(c, id, 5)?, 6);
        assert_eq!(Product::increment_sold(c, id, 10)?, 10);
        Ok(())
    })
    .unwrap();
    assert_eq!(db.product(id), (6, 10), "committed");
}

/// Row-locking operations (`update_*_locked`, `transfer_*`, `take_*_up_to`) inside the caller's
/// transaction: a rollback discards them, a commit applies them, and an error of one of them
/// leaves the caller's transaction usable.
pub fn caller_transaction_row_locking_ops<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let a = db.new_product(10, 0);
    let b = db.new_product(20, 0);
    let mut conn = db.conn();
    let result = conn.transaction::<(), AtomicError, _>(|c| {
        assert_eq!(Product::update_stock_locked(c, a, |v| Ok(v + 5))?, 15);
        assert_eq!(Product::transfer_stock(c, a, b, 3)?, (12, 23));
        assert_eq!(Product::take_stock_up_to(c, b, 4)?, 4);
        Err(AtomicError::custom("roll back"))
    });
    assert_err!(result, AtomicError::Custom(_));
    assert_eq!((db.product(a).0, db.product(b).0), (10, 20), "rolled back");

    conn.transaction::<(), AtomicError, _>(|c| {
        assert_eq!(Product::update_stock_locked(c, a, |v| Ok(v + 5))?, 15);
        // Errors inside: nothing of theirs is written, the transaction goes on.
        assert_err!(
            Product::update_stock_locked(c, a, |_| Err(AtomicError::custom("no"))),
            AtomicError::Custom(_)
        );
        assert_eq!(
            out_of_range(Product::update_stock_locked(c, a, |_| Ok(1001))),
            (15, 1001, Limit::Max(1000))
        );
        assert_eq!(insufficient(Product::transfer_stock(c, a, b, 16)), (15, 16));
        assert_eq!(Product::transfer_stock(c, a, b, 3)?, (12, 23));
        assert_eq!(Product::take_stock_up_to(c, b, 4)?, 4);
        Ok(())
    })
    .unwrap();
    assert_eq!((db.product(a).0, db.product(b).0), (12, 19), "committed");
}

// ---------------------------------------------------------------------------------------------
// Concurrency: 8 threads, each with its own pooled connection
// ---------------------------------------------------------------------------------------------

/// (a) Concurrent increments lose nothing: every new value from `initial + 1` to
/// `initial + total` is returned exactly once, and each thread sees its values strictly grow.
pub fn concurrent_increments_lose_nothing<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::sold, DbOf<B>>,
{
    let db = B::open();
    let initial = 1_000_i64;
    let id = db.new_product(0, initial);
    let per_thread = B::ITERATIONS;
    let results = on_threads(&db, |_, conn| {
        (0..per_thread)
            .map(|_| Product::increment_sold(conn, id, 1))
            .collect::<Vec<_>>()
    });
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for (thread, results) in results.into_iter().enumerate() {
        let (values, errs) = errors_of(results);
        errors.extend(errs);
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "thread {thread} saw its values go back: {values:?}"
        );
        all.extend(values);
    }
    assert_no_errors::<B>("concurrent increments", &errors);
    let total = (THREADS * per_thread) as i64;
    all.sort_unstable();
    assert_eq!(all, ((initial + 1)..=(initial + total)).collect::<Vec<_>>());
    assert_eq!(db.product(id), (0, initial + total));
}

/// (b) The oversell storm: stock 100, 160 attempts to sell 1 over 8 threads: exactly 100 sales
/// (returning each stock level from 99 down to 0 once), 60 `Insufficient`, final stock 0.
pub fn oversell_storm<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(100, 0);
    let attempts_per_thread = 160 / THREADS;
    let results = on_threads(&db, |_, conn| {
        (0..attempts_per_thread)
            .map(|_| Product::decrement_stock_if_at_least(conn, id, 1))
            .collect::<Vec<_>>()
    });
    let (mut sold, errors) = errors_of(results.into_iter().flatten().collect());
    let (insufficient, other): (Vec<_>, Vec<_>) = errors.into_iter().partition(|e| {
        matches!(
            e,
            AtomicError::Insufficient {
                available: 0,
                requested: 1
            }
        )
    });
    assert_no_errors::<B>("oversell storm, besides Insufficient", &other);
    assert_eq!((sold.len(), insufficient.len()), (100, 60));
    sold.sort_unstable();
    assert_eq!(sold, (0..100).collect::<Vec<_>>());
    assert_eq!(db.product(id), (0, 0));
}

/// (c) Concurrent `take_*_up_to` with n from 1 to 7: the amounts taken add up to the initial
/// stock exactly, and the stock ends at 0.
pub fn concurrent_take_up_to_takes_exactly_the_stock<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let initial = 997;
    let id = db.new_product(initial, 0);
    let results = on_threads(&db, |thread, conn| {
        let mut taken = Vec::new();
        let mut errors = Vec::new();
        for i in 0.. {
            let n = ((thread + i) % 7 + 1) as i32;
            match Product::take_stock_up_to(conn, id, n) {
                Ok(0) => break,
                Ok(t) => {
                    assert!((1..=n).contains(&t), "took {t} when asking for {n}");
                    taken.push(t);
                }
                Err(e) => errors.push(e),
            }
        }
        (taken, errors)
    });
    let mut total = 0;
    let mut errors = Vec::new();
    for (taken, errs) in results {
        total += taken.iter().sum::<i32>();
        errors.extend(errs);
    }
    assert_no_errors::<B>("concurrent take_up_to", &errors);
    assert_eq!(total, initial);
    assert_eq!(db.product(id), (0, 0));
}

/// (d) `update_*_locked` with `v + 1` from 8 threads loses nothing.
pub fn concurrent_update_locked_loses_nothing<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::sold, DbOf<B>>,
{
    let db = B::open();
    let initial = 50_i64;
    let id = db.new_product(0, initial);
    let per_thread = B::ITERATIONS / 2;
    let results = on_threads(&db, |_, conn| {
        (0..per_thread)
            .map(|_| Product::update_sold_locked(conn, id, |v| Ok(v + 1)))
            .collect::<Vec<_>>()
    });
    let (mut values, errors) = errors_of(results.into_iter().flatten().collect());
    assert_no_errors::<B>("concurrent update_locked", &errors);
    let total = (THREADS * per_thread) as i64;
    values.sort_unstable();
    assert_eq!(
        values,
        ((initial + 1)..=(initial + total)).collect::<Vec<_>>()
    );
    assert_eq!(db.product(id), (0, initial + total));
}

/// (e) Opposite transfers A→B and B→A from 8 threads: no deadlock or other error surfaces,
/// the sum never changes, neither row leaves its bounds, and both end where they began (each
/// thread moves every amount there and back).
pub fn opposite_transfers_keep_the_sum<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    // Runs for a few seconds (the duration bounds the loop; nothing about time is asserted).
    const RUN_FOR: std::time::Duration = std::time::Duration::from_secs(3);
    let db = B::open();
    let a = db.new_product(500, 0);
    let b = db.new_product(500, 0);
    let until = std::time::Instant::now() + RUN_FOR;
    let results = on_threads(&db, |thread, conn| {
        let (from, to) = if thread % 2 == 0 { (a, b) } else { (b, a) };
        let mut out = Vec::new();
        let mut i = 0;
        while std::time::Instant::now() < until {
            let amount = i % 5 + 1;
            out.push(Product::transfer_stock(conn, from, to, amount));
            out.push(Product::transfer_stock(conn, to, from, amount));
            i += 1;
        }
        out
    });
    let transfers = results.iter().map(Vec::len).sum::<usize>();
    let (pairs, errors) = errors_of(results.into_iter().flatten().collect());
    assert_no_errors::<B>("opposite transfers", &errors);
    assert_eq!(pairs.len(), transfers);
    assert!(
        transfers >= THREADS * 2,
        "every thread transferred at least once"
    );
    eprintln!(
        "{}: {transfers} opposite transfers from {THREADS} threads, no error",
        B::NAME
    );
    for (from, to) in pairs {
        assert!(
            (0..=1000).contains(&from) && (0..=1000).contains(&to),
            "a transfer returned values out of bounds: ({from}, {to})"
        );
    }
    assert_eq!((db.product(a).0, db.product(b).0), (500, 500));
}

/// Expands to one `#[test]` per generic scenario for backend `$backend` (a [`TestDb`]).
#[macro_export]
macro_rules! backend_tests {
    ($backend:ty) => {
        $crate::backend_tests!(@tests $backend;
            increment_and_decrement_return_the_new_value,
            increment_past_max_is_out_of_range,
            decrement_past_min_is_out_of_range,
            decrement_if_at_least_sells_exactly,
            decrement_if_at_least_insufficient,
            decrement_if_at_least_respects_declared_min,
            take_up_to_takes_what_is_left,
            take_up_to_stops_at_the_declared_floor,
            update_locked_writes_the_closure_result,
            update_locked_custom_error_writes_nothing,
            update_locked_out_of_range,
            transfer_moves_between_rows,
            transfer_respects_both_bounds,
            not_found_for_every_operation,
            negative_amounts_are_refused,
            same_row_transfer_is_refused,
            zero_amounts_change_nothing,
            type_overflow_i16,
            type_overflow_i32,
            type_overflow_i64,
            negative_values_without_min,
            renamed_column_and_inferred_table,
            field_handle_with_options,
            nowait_on_a_held_row_is_locked,
            caller_transaction_single_statement_ops,
            caller_transaction_row_locking_ops,
            concurrent_increments_lose_nothing,
            oversell_storm,
            concurrent_take_up_to_takes_exactly_the_stock,
            concurrent_update_locked_loses_nothing,
            opposite_transfers_keep_the_sum,
            transaction_is_all_or_nothing,
            concurrent_transactions_move_stock_exactly,
            composite_key_every_operation,
            composite_key_first_unlocked,
            several_columns_in_one_statement,
            concurrent_sales_of_two_columns,
            increment_or_insert_inserts_then_adds,
            increment_or_insert_all_is_all_or_nothing,
            add_to_cart_fills_carts_exactly,
            add_to_cart_runs_out_of_stock_exactly,
            daily_counters_from_an_empty_table,
            buffer_counts_every_add,
            failed_flush_keeps_its_counts,
            two_buffers_flush_overlapping_keys,
            dropped_buffer_flushes,
            panicking_new_row_keeps_the_counts,
            increment_or_insert_under_a_case_insensitive_key,
            slotted_increments_lose_nothing,
            slotted_compact_while_incrementing,
            slotted_decrement_where_declared,
            redis_counts_every_add_exactly,
            redis_flush_crashed_after_each_step,
            redis_refuses_bad_input_and_keeps_what_it_cannot_write,
            redis_keeps_thousands_of_keys_without_rows,
            redis_counts_every_spelling_of_a_case_insensitive_key,
        );
    };
    (@tests $backend:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::scenarios::$name::<$backend>();
            }
        )*
    };
}
