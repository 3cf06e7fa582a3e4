//! Every scenario, written once: an `async fn` generic over the [`Client`], so the same source
//! runs on blocking Diesel connections and on diesel-async ones, on every backend.
//!
//! `backend_tests!(client)` expands to one `#[test]` per scenario: `tests/sqlite.rs`,
//! `tests/postgres.rs` and `tests/mysql.rs` invoke it with a [`BlockingClient`](crate::client::BlockingClient),
//! `tests/async.rs` with an [`AsyncClient`](crate::client::AsyncClient) of each backend (and of
//! SQLite's rollback journal). `blocking_tests!(Backend)` adds the few that only the blocking
//! API has. Every scenario asserts exact values, and after every error that the row is
//! unchanged. Concurrency scenarios count outcomes exactly; nothing is timed.
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
use std::future::Future;
use std::sync::Barrier;
use std::task::Poll;

use counter_core::{
    AtomicError, AtomicFieldOn, Change, ChangeColumn, Changes, Limit, LockMode, RetryPolicy,
};
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::Connection;

pub use crate::client::{on_barrier_threads, on_n_workers, on_workers, Client};
use crate::db::{DbOf, TestDb};
use crate::models::{Account, CtWallet, Edge, Product};
use crate::schema::{ct_accounts, ct_edges, ct_products, ct_wallets};

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

/// Threads of [`on_threads`], for the tests of one backend's blocking connections.
pub const THREADS: usize = 8;

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
    on_barrier_threads(threads, |thread, barrier| {
        let mut conn = db.conn();
        barrier.wait();
        work(thread, &mut conn)
    })
}

/// `catch_unwind` for a future: a panic while it was polled, as `Err`.
pub async fn catch_panic<F: Future>(future: F) -> std::thread::Result<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

/// The sale: `stock` down if enough, `sold` up.
type Sale = (
    Change<ct_products::stock, i32>,
    Change<ct_products::sold, i64>,
);

/// Does `client` run on PostgreSQL under SERIALIZABLE (`.ci/run`'s second run), where a hot
/// row can spend a call's whole retry budget on serialization failures?
pub fn serializable_postgres<C: Client>(_: &C) -> bool {
    <C::Db as TestDb>::NAME == "PostgreSQL" && crate::db::pg_serializable()
}

/// The transaction manager of the harness's blocking connections.
type HarnessTransaction<C> =
    <<<C as Client>::Db as TestDb>::Conn as Connection>::TransactionManager;

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
fn assert_no_errors<C: Client>(client: &C, what: &str, errors: &[AtomicError]) {
    assert!(
        errors.is_empty(),
        "{}: {what}: {} call(s) failed: {:#?}",
        client.name(),
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
pub async fn increment_and_decrement_return_the_new_value<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Product::increment_stock(&mut conn, id, 5))
            .await
            .unwrap(),
        15
    );
    assert_eq!(
        C::done(Product::decrement_stock(&mut conn, id, 3))
            .await
            .unwrap(),
        12
    );
    // The raw connection underneath the pooled one.
    assert_eq!(
        C::done(Product::increment_stock(&mut *conn, id, 1))
            .await
            .unwrap(),
        13
    );
    assert_eq!(
        C::done(Product::increment_sold(&mut conn, id, 7))
            .await
            .unwrap(),
        7
    );
    assert_eq!(
        C::done(Product::increment_sold(&mut *conn, id, 1))
            .await
            .unwrap(),
        8
    );
    assert_eq!(
        C::done(Product::decrement_stock(&mut conn, id, 13))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Product::increment_stock(&mut conn, id, 1000))
            .await
            .unwrap(),
        1000
    );
    assert_eq!(db.product(id), (1000, 8));
    assert_eq!(
        C::done(Product::current_stock(&mut conn, id))
            .await
            .unwrap(),
        1000
    );
    assert_eq!(
        C::done(Product::current_sold(&mut conn, id)).await.unwrap(),
        8
    );
}

/// Incrementing past the declared `max` is `OutOfRange { Max(1000) }`; reaching it is fine.
pub async fn increment_past_max_is_out_of_range<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(998, 4);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Product::increment_stock(&mut conn, id, 3)).await),
        (998, 1001, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (998, 4));
    assert_eq!(
        out_of_range(C::done(Product::increment_stock(&mut conn, id, i32::MAX)).await),
        (998, 998 + i32::MAX as i128, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (998, 4));
    assert_eq!(
        C::done(Product::increment_stock(&mut conn, id, 2))
            .await
            .unwrap(),
        1000
    );
    assert_eq!(
        out_of_range(C::done(Product::increment_stock(&mut conn, id, 1)).await),
        (1000, 1001, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (1000, 4));
}

/// Decrementing below the declared `min` is `OutOfRange { Min(0) }`; reaching it is fine.
pub async fn decrement_past_min_is_out_of_range<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(3, 0);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Product::decrement_stock(&mut conn, id, 4)).await),
        (3, -1, Limit::Min(0))
    );
    assert_eq!(db.product(id), (3, 0));
    assert_eq!(
        out_of_range(C::done(Product::decrement_stock(&mut conn, id, i32::MAX)).await),
        (3, 3 - i32::MAX as i128, Limit::Min(0))
    );
    assert_eq!(db.product(id), (3, 0));
    assert_eq!(
        C::done(Product::decrement_stock(&mut conn, id, 3))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        out_of_range(C::done(Product::decrement_stock(&mut conn, id, 1)).await),
        (0, -1, Limit::Min(0))
    );
    assert_eq!(db.product(id), (0, 0));
}

/// `decrement_*_if_at_least` sells while enough is left, down to exactly zero.
pub async fn decrement_if_at_least_sells_exactly<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Product::decrement_stock_if_at_least(&mut conn, id, 4))
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        C::done(Product::decrement_stock_if_at_least(&mut conn, id, 6))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.product(id), (0, 0));
}

/// Asking for more than is left is `Insufficient { available, requested }`; nothing changes.
pub async fn decrement_if_at_least_insufficient<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(3, 9);
    let mut conn = client.conn().await;
    assert_eq!(
        insufficient(C::done(Product::decrement_stock_if_at_least(&mut conn, id, 5)).await),
        (3, 5)
    );
    assert_eq!(db.product(id), (3, 9));
    assert_eq!(
        insufficient(
            C::done(Product::decrement_stock_if_at_least(
                &mut conn,
                id,
                i32::MAX
            ))
            .await
        ),
        (3, i32::MAX as i128)
    );
    assert_eq!(db.product(id), (3, 9));
    assert_eq!(
        C::done(Product::decrement_stock_if_at_least(&mut conn, id, 3))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        insufficient(C::done(Product::decrement_stock_if_at_least(&mut conn, id, 1)).await),
        (0, 1)
    );
    assert_eq!(db.product(id), (0, 9));
}

/// With a declared minimum above zero (5): enough units but crossing the minimum is
/// `OutOfRange { Min(5) }`, too few units is `Insufficient`.
pub async fn decrement_if_at_least_respects_declared_min<C: Client>(client: &C)
where
    Edge: AtomicFieldOn<ct_edges::floored, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_edge(0, 0, 0, 8);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Edge::decrement_floored_if_at_least(&mut conn, id, 4)).await),
        (8, 4, Limit::Min(5))
    );
    assert_eq!(db.edge(id), (0, 0, 0, 8));
    assert_eq!(
        insufficient(C::done(Edge::decrement_floored_if_at_least(&mut conn, id, 9)).await),
        (8, 9)
    );
    assert_eq!(db.edge(id), (0, 0, 0, 8));
    assert_eq!(
        C::done(Edge::decrement_floored_if_at_least(&mut conn, id, 3))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_floored(&mut conn, id, 1)).await),
        (5, 4, Limit::Min(5))
    );
    assert_eq!(
        out_of_range(C::done(Edge::increment_floored(&mut conn, id, 46)).await),
        (5, 51, Limit::Max(50))
    );
    assert_eq!(
        C::done(Edge::increment_floored(&mut conn, id, 45))
            .await
            .unwrap(),
        50
    );
    assert_eq!(db.edge(id), (0, 0, 0, 50));
}

/// `take_*_up_to` takes `min(n, stock)`, then 0 from an empty row, which stays at 0.
pub async fn take_up_to_takes_what_is_left<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 2);
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Product::take_stock_up_to(&mut conn, id, 3))
            .await
            .unwrap(),
        3
    );
    assert_eq!(db.product(id), (7, 2));
    assert_eq!(
        C::done(Product::take_stock_up_to(&mut conn, id, 7))
            .await
            .unwrap(),
        7
    );
    assert_eq!(db.product(id), (0, 2));
    assert_eq!(
        C::done(Product::take_stock_up_to(&mut conn, id, 5))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.product(id), (0, 2));

    let id = db.new_product(10, 0);
    assert_eq!(
        C::done(Product::take_stock_up_to(&mut conn, id, 100))
            .await
            .unwrap(),
        10
    );
    assert_eq!(db.product(id), (0, 0));
    let id = db.new_product(1000, 0);
    assert_eq!(
        C::done(Product::take_stock_up_to(&mut conn, id, i32::MAX))
            .await
            .unwrap(),
        1000
    );
    assert_eq!(db.product(id), (0, 0));
}

/// The floor of `take_*_up_to` is the declared minimum: negative (-500) or positive (5). A row
/// already below its floor (written by someone else) gives 0 and is left alone.
pub async fn take_up_to_stops_at_the_declared_floor<C: Client>(client: &C)
where
    Account: AtomicFieldOn<ct_accounts::balance_cents, DbOf<C::Db>>,
    Edge: AtomicFieldOn<ct_edges::floored, DbOf<C::Db>>,
{
    let db = client.db();
    let mut conn = client.conn().await;
    let id = db.new_account(100);
    assert_eq!(
        C::done(Account::take_balance_up_to(&mut conn, id, 1000))
            .await
            .unwrap(),
        600
    );
    assert_eq!(db.account(id), -500);
    assert_eq!(
        C::done(Account::take_balance_up_to(&mut conn, id, 1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.account(id), -500);
    let below = db.new_account(-600);
    assert_eq!(
        C::done(Account::take_balance_up_to(&mut conn, below, 5))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.account(below), -600);

    let id = db.new_edge(0, 0, 0, 8);
    assert_eq!(
        C::done(Edge::take_floored_up_to(&mut conn, id, 10))
            .await
            .unwrap(),
        3
    );
    assert_eq!(db.edge(id), (0, 0, 0, 5));
    assert_eq!(
        C::done(Edge::take_floored_up_to(&mut conn, id, 10))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.edge(id), (0, 0, 0, 5));
}

/// `update_*_locked` writes what the closure returns, called once without contention.
pub async fn update_locked_writes_the_closure_result<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(21, 5);
    let mut conn = client.conn().await;
    let mut calls = 0;
    let new = C::done(Product::update_stock_locked(&mut conn, id, |v| {
        calls += 1;
        assert_eq!(v, 21, "the closure sees the current value");
        Ok(v * 2 + 1)
    }))
    .await
    .unwrap();
    assert_eq!((new, calls), (43, 1));
    assert_eq!(db.product(id), (43, 5));
    // Unchanged value: fine, nothing to write.
    assert_eq!(
        C::done(Product::update_stock_locked(&mut conn, id, Ok))
            .await
            .unwrap(),
        43
    );
    // Down to the exact bounds.
    assert_eq!(
        C::done(Product::update_stock_locked(&mut conn, id, |_| Ok(0)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Product::update_stock_locked(&mut *conn, id, |_| Ok(1000)))
            .await
            .unwrap(),
        1000
    );
    assert_eq!(
        C::done(Product::update_sold_locked(&mut conn, id, |v| Ok(v - 105)))
            .await
            .unwrap(),
        -100
    );
    assert_eq!(db.product(id), (1000, -100));
}

/// An `Err` from the closure comes back as it is and writes nothing.
pub async fn update_locked_custom_error_writes_nothing<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(7, 1);
    let mut conn = client.conn().await;
    let result = C::done(Product::update_stock_locked(&mut conn, id, |v| {
        assert_eq!(v, 7);
        Err(AtomicError::custom("coupon already used"))
    }))
    .await;
    match result {
        Err(AtomicError::Custom(e)) => assert_eq!(e.to_string(), "coupon already used"),
        other => panic!("expected Err(Custom(..)), got {other:?}"),
    }
    assert_eq!(db.product(id), (7, 1));
    // A library error returned by the closure passes through too.
    assert_eq!(
        insufficient(
            C::done(Product::update_stock_locked(&mut conn, id, |v| {
                Err(AtomicError::Insufficient {
                    available: v.into(),
                    requested: 8,
                })
            }))
            .await
        ),
        (7, 8)
    );
    assert_eq!(db.product(id), (7, 1));
}

/// A closure result beyond a bound is `OutOfRange`, and nothing is written.
pub async fn update_locked_out_of_range<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(990, 0);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Product::update_stock_locked(&mut conn, id, |v| Ok(v + 11))).await),
        (990, 1001, Limit::Max(1000))
    );
    assert_eq!(db.product(id), (990, 0));
    assert_eq!(
        out_of_range(C::done(Product::update_stock_locked(&mut conn, id, |_| Ok(-1))).await),
        (990, -1, Limit::Min(0))
    );
    assert_eq!(db.product(id), (990, 0));
    assert_eq!(
        out_of_range(
            C::done(Product::update_stock_locked(&mut conn, id, |_| Ok(
                i32::MIN
            )))
            .await
        ),
        (990, i32::MIN as i128, Limit::Min(0))
    );
    assert_eq!(db.product(id), (990, 0));
}

/// `transfer_*` moves an amount and returns `(new_from, new_to)`, whichever id is smaller.
pub async fn transfer_moves_between_rows<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(10, 0);
    let b = db.new_product(20, 0);
    assert!(a < b);
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Product::transfer_stock(&mut conn, a, b, 4))
            .await
            .unwrap(),
        (6, 24)
    );
    assert_eq!((db.product(a).0, db.product(b).0), (6, 24));
    // From the larger id to the smaller: the result is still (from, to).
    assert_eq!(
        C::done(Product::transfer_stock(&mut conn, b, a, 24))
            .await
            .unwrap(),
        (0, 30)
    );
    assert_eq!((db.product(a).0, db.product(b).0), (30, 0));
    assert_eq!(
        C::done(Product::transfer_stock(&mut *conn, a, b, 30))
            .await
            .unwrap(),
        (0, 30)
    );
    assert_eq!((db.product(a).0, db.product(b).0), (0, 30));
}

/// A transfer respects both rows' bounds: the source's minimum (`Insufficient`, with what it
/// could give) and the target's maximum (`OutOfRange`); neither row changes on an error.
pub async fn transfer_respects_both_bounds<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
    Account: AtomicFieldOn<ct_accounts::balance_cents, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(5, 0);
    let b = db.new_product(998, 0);
    let mut conn = client.conn().await;
    let both = |db: &C::Db| (db.product(a).0, db.product(b).0);
    assert_eq!(
        insufficient(C::done(Product::transfer_stock(&mut conn, a, b, 6)).await),
        (5, 6)
    );
    assert_eq!(both(db), (5, 998));
    assert_eq!(
        out_of_range(C::done(Product::transfer_stock(&mut conn, a, b, 3)).await),
        (998, 1001, Limit::Max(1000))
    );
    assert_eq!(both(db), (5, 998));
    assert_eq!(
        insufficient(C::done(Product::transfer_stock(&mut conn, b, a, 999)).await),
        (998, 999)
    );
    assert_eq!(both(db), (5, 998));
    assert_eq!(
        C::done(Product::transfer_stock(&mut conn, a, b, 2))
            .await
            .unwrap(),
        (3, 1000)
    );
    assert_eq!(both(db), (3, 1000));

    // A negative floor: the source may go down to -500 and no further.
    let x = db.new_account(100);
    let y = db.new_account(0);
    assert_eq!(
        insufficient(C::done(Account::transfer_balance(&mut conn, x, y, 601)).await),
        (600, 601)
    );
    assert_eq!((db.account(x), db.account(y)), (100, 0));
    assert_eq!(
        C::done(Account::transfer_balance(&mut conn, x, y, 600))
            .await
            .unwrap(),
        (-500, 600)
    );
    assert_eq!((db.account(x), db.account(y)), (-500, 600));
}

/// Every operation on a missing row is `NotFound`, also with amount 0, and creates nothing.
pub async fn not_found_for_every_operation<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let existing = db.new_product(10, 0);
    let missing = crate::db::next_id();
    let mut conn = client.conn().await;
    assert_err!(
        C::done(Product::current_stock(&mut conn, missing)).await,
        AtomicError::NotFound
    );
    for by in [0, 1] {
        assert_err!(
            C::done(Product::increment_stock(&mut conn, missing, by)).await,
            AtomicError::NotFound
        );
        assert_err!(
            C::done(Product::decrement_stock(&mut conn, missing, by)).await,
            AtomicError::NotFound
        );
        assert_err!(
            C::done(Product::decrement_stock_if_at_least(&mut conn, missing, by)).await,
            AtomicError::NotFound
        );
        assert_err!(
            C::done(Product::take_stock_up_to(&mut conn, missing, by)).await,
            AtomicError::NotFound
        );
        assert_err!(
            C::done(Product::transfer_stock(&mut conn, existing, missing, by)).await,
            AtomicError::NotFound
        );
        assert_err!(
            C::done(Product::transfer_stock(&mut conn, missing, existing, by)).await,
            AtomicError::NotFound
        );
    }
    let mut calls = 0;
    assert_err!(
        C::done(Product::update_stock_locked(&mut conn, missing, |v| {
            calls += 1;
            Ok(v + 1)
        }))
        .await,
        AtomicError::NotFound
    );
    assert_eq!(calls, 0, "the closure never runs for a missing row");
    assert_err!(
        C::done(
            Product::atomic_stock()
                .lock(LockMode::NoWait)
                .update_locked(&mut conn, missing, |v| Ok(v + 1))
        )
        .await,
        AtomicError::NotFound
    );
    assert_eq!(db.product(existing), (10, 0));
    assert!(
        !db.product_exists(missing),
        "no operation created the missing row"
    );
}

/// A negative amount is `NegativeAmount` for every operation that takes one; nothing changes.
pub async fn negative_amounts_are_refused<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(10, 10);
    let b = db.new_product(10, 10);
    let mut conn = client.conn().await;
    assert_eq!(
        negative(C::done(Product::increment_stock(&mut conn, a, -1)).await),
        -1
    );
    assert_eq!(
        negative(C::done(Product::decrement_stock(&mut conn, a, -2)).await),
        -2
    );
    assert_eq!(
        negative(C::done(Product::decrement_stock_if_at_least(&mut conn, a, -3)).await),
        -3
    );
    assert_eq!(
        negative(C::done(Product::take_stock_up_to(&mut conn, a, -4)).await),
        -4
    );
    assert_eq!(
        negative(C::done(Product::transfer_stock(&mut conn, a, b, -5)).await),
        -5
    );
    assert_eq!(
        negative(C::done(Product::increment_sold(&mut conn, a, i64::MIN)).await),
        i64::MIN as i128
    );
    assert_eq!(
        negative(C::done(Product::decrement_stock(&mut conn, a, i32::MIN)).await),
        i32::MIN as i128
    );
    assert_eq!((db.product(a), db.product(b)), ((10, 10), (10, 10)));
}

/// A transfer from a row to itself is `SameRow` (even for amount 0); nothing changes.
pub async fn same_row_transfer_is_refused<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(10, 0);
    let mut conn = client.conn().await;
    assert_err!(
        C::done(Product::transfer_stock(&mut conn, a, a, 1)).await,
        AtomicError::SameRow
    );
    assert_err!(
        C::done(Product::transfer_stock(&mut conn, a, a, 0)).await,
        AtomicError::SameRow
    );
    assert_eq!(db.product(a), (10, 0));
}

/// Amount 0 returns the current value (0 for `take_*_up_to`) and changes nothing, even at the
/// bounds.
pub async fn zero_amounts_change_nothing<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let mut conn = client.conn().await;
    for stock in [0, 17, 1000] {
        let id = db.new_product(stock, 3);
        let other = db.new_product(500, 0);
        assert_eq!(
            C::done(Product::increment_stock(&mut conn, id, 0))
                .await
                .unwrap(),
            stock
        );
        assert_eq!(
            C::done(Product::decrement_stock(&mut conn, id, 0))
                .await
                .unwrap(),
            stock
        );
        assert_eq!(
            C::done(Product::decrement_stock_if_at_least(&mut conn, id, 0))
                .await
                .unwrap(),
            stock
        );
        assert_eq!(
            C::done(Product::take_stock_up_to(&mut conn, id, 0))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            C::done(Product::transfer_stock(&mut conn, id, other, 0))
                .await
                .unwrap(),
            (stock, 500)
        );
        assert_eq!(
            C::done(Product::transfer_stock(&mut conn, other, id, 0))
                .await
                .unwrap(),
            (500, stock)
        );
        assert_eq!((db.product(id), db.product(other)), ((stock, 3), (500, 0)));
    }
}

/// `i16` at its extremes: the type's range is the bound when none is declared.
pub async fn type_overflow_i16<C: Client>(client: &C)
where
    Edge: AtomicFieldOn<ct_edges::small, DbOf<C::Db>>,
{
    let db = client.db();
    let (max, min) = (i16::MAX, i16::MIN);
    let (max_w, min_w) = (i128::from(max), i128::from(min));
    let id = db.new_edge(max - 1, 0, 0, 5);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Edge::increment_small(&mut conn, id, 2)).await),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).0, max - 1);
    assert_eq!(
        C::done(Edge::increment_small(&mut conn, id, 1))
            .await
            .unwrap(),
        max
    );
    assert_eq!(
        out_of_range(C::done(Edge::increment_small(&mut conn, id, max)).await),
        (max_w, 2 * max_w, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).0, max);
    // The whole range in one step, down and up.
    assert_eq!(
        C::done(Edge::decrement_small(&mut conn, id, max))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Edge::decrement_small(&mut conn, id, max))
            .await
            .unwrap(),
        -max
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_small(&mut conn, id, 2)).await),
        (-max_w, -max_w - 2, Limit::Min(min_w))
    );
    assert_eq!(
        C::done(Edge::decrement_small(&mut conn, id, 1))
            .await
            .unwrap(),
        min
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_small(&mut conn, id, 1)).await),
        (min_w, min_w - 1, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id).0, min);
    assert_eq!(
        C::done(Edge::take_small_up_to(&mut conn, id, max))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Edge::increment_small(&mut conn, id, max))
            .await
            .unwrap(),
        -1
    );
    assert_eq!(db.edge(id), (-1, 0, 0, 5));
}

/// `i32` at its extremes.
pub async fn type_overflow_i32<C: Client>(client: &C)
where
    Edge: AtomicFieldOn<ct_edges::medium, DbOf<C::Db>>,
{
    let db = client.db();
    let (max, min) = (i32::MAX, i32::MIN);
    let (max_w, min_w) = (i128::from(max), i128::from(min));
    let id = db.new_edge(0, max - 1, 0, 5);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Edge::increment_medium(&mut conn, id, 2)).await),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).1, max - 1);
    assert_eq!(
        C::done(Edge::increment_medium(&mut conn, id, 1))
            .await
            .unwrap(),
        max
    );
    assert_eq!(
        out_of_range(C::done(Edge::increment_medium(&mut conn, id, 1)).await),
        (max_w, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(
        C::done(Edge::decrement_medium_if_at_least(&mut conn, id, max))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Edge::update_medium_locked(&mut conn, id, |_| Ok(min + 1)))
            .await
            .unwrap(),
        min + 1
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_medium(&mut conn, id, 2)).await),
        (min_w + 1, min_w - 1, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id).1, min + 1);
    assert_eq!(
        C::done(Edge::decrement_medium(&mut conn, id, 1))
            .await
            .unwrap(),
        min
    );
    assert_eq!(db.edge(id), (0, min, 0, 5));
}

/// `i64` at its extremes: `i64::MAX - 1` plus 2 is `OutOfRange`, and the stored value stays an
/// exact integer (SQLite would silently turn an overflowing sum into a REAL).
pub async fn type_overflow_i64<C: Client>(client: &C)
where
    Edge: AtomicFieldOn<ct_edges::big, DbOf<C::Db>>,
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let (max, min) = (i64::MAX, i64::MIN);
    let (max_w, min_w) = (i128::from(max), i128::from(min));
    let id = db.new_edge(0, 0, max - 1, 5);
    let mut conn = client.conn().await;
    assert_eq!(
        out_of_range(C::done(Edge::increment_big(&mut conn, id, 2)).await),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).2, max - 1);
    assert_eq!(
        out_of_range(C::done(Edge::increment_big(&mut conn, id, max)).await),
        (max_w - 1, 2 * max_w - 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).2, max - 1);
    assert_eq!(
        C::done(Edge::increment_big(&mut conn, id, 1))
            .await
            .unwrap(),
        max
    );
    assert_eq!(
        out_of_range(C::done(Edge::increment_big(&mut conn, id, 1)).await),
        (max_w, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.edge(id).2, max);
    assert_eq!(
        C::done(Edge::take_big_up_to(&mut conn, id, max))
            .await
            .unwrap(),
        max
    );
    assert_eq!(db.edge(id).2, 0);
    assert_eq!(
        C::done(Edge::decrement_big(&mut conn, id, max))
            .await
            .unwrap(),
        -max
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_big(&mut conn, id, 2)).await),
        (-max_w, -max_w - 2, Limit::Min(min_w))
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_big(&mut conn, id, max)).await),
        (-max_w, -2 * max_w, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id).2, -max);
    assert_eq!(
        C::done(Edge::decrement_big(&mut conn, id, 1))
            .await
            .unwrap(),
        min
    );
    assert_eq!(
        out_of_range(C::done(Edge::decrement_big(&mut conn, id, 1)).await),
        (min_w, min_w - 1, Limit::Min(min_w))
    );
    assert_eq!(db.edge(id), (0, 0, min, 5));

    // The unbounded i64 of the README model, too.
    let p = db.new_product(0, max - 1);
    assert_eq!(
        out_of_range(C::done(Product::increment_sold(&mut conn, p, 2)).await),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(db.product(p), (0, max - 1));
    assert_eq!(
        C::done(Product::increment_sold(&mut conn, p, 1))
            .await
            .unwrap(),
        max
    );
    assert_eq!(db.product(p), (0, max));
}

/// Negative values on signed columns without a declared minimum: plain arithmetic below zero
/// (MySQL's `LAST_INSERT_ID` capture must carry negative results).
pub async fn negative_values_without_min<C: Client>(client: &C)
where
    Edge: AtomicFieldOn<ct_edges::small, DbOf<C::Db>>
        + AtomicFieldOn<ct_edges::medium, DbOf<C::Db>>
        + AtomicFieldOn<ct_edges::big, DbOf<C::Db>>,
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_edge(-5, -5, -5, 5);
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Edge::decrement_small(&mut conn, id, 10))
            .await
            .unwrap(),
        -15
    );
    assert_eq!(
        C::done(Edge::decrement_medium(&mut conn, id, 10))
            .await
            .unwrap(),
        -15
    );
    assert_eq!(
        C::done(Edge::decrement_big(&mut conn, id, 10))
            .await
            .unwrap(),
        -15
    );
    assert_eq!(db.edge(id), (-15, -15, -15, 5));
    assert_eq!(
        C::done(Edge::increment_big(&mut conn, id, 3))
            .await
            .unwrap(),
        -12
    );
    assert_eq!(
        C::done(Edge::increment_big(&mut conn, id, 12))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        C::done(Edge::decrement_big(&mut conn, id, 1))
            .await
            .unwrap(),
        -1
    );
    // Nothing above the floor (0): nothing taken.
    assert_eq!(
        C::done(Edge::take_medium_up_to(&mut conn, id, 3))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        insufficient(C::done(Edge::decrement_medium_if_at_least(&mut conn, id, 1)).await),
        (-15, 1)
    );
    assert_eq!(
        C::done(Edge::update_medium_locked(&mut conn, id, |v| Ok(v * 3)))
            .await
            .unwrap(),
        -45
    );
    assert_eq!(db.edge(id), (-15, -45, -1, 5));

    let p = db.new_product(0, 0);
    assert_eq!(
        C::done(Product::decrement_sold(&mut conn, p, 7))
            .await
            .unwrap(),
        -7
    );
    assert_eq!(db.product(p), (0, -7));
}

/// `#[diesel(column_name = ...)]` and an inferred table name reach the right column and table.
pub async fn renamed_column_and_inferred_table<C: Client>(client: &C)
where
    Account: AtomicFieldOn<ct_accounts::balance_cents, DbOf<C::Db>>,
    CtWallet: AtomicFieldOn<ct_wallets::coins, DbOf<C::Db>>,
{
    let db = client.db();
    let mut conn = client.conn().await;
    let acct = db.new_account(0);
    assert_eq!(
        C::done(Account::increment_balance(&mut conn, acct, 250))
            .await
            .unwrap(),
        250
    );
    assert_eq!(
        C::done(Account::decrement_balance(&mut conn, acct, 700))
            .await
            .unwrap(),
        -450
    );
    assert_eq!(
        out_of_range(C::done(Account::decrement_balance(&mut conn, acct, 51)).await),
        (-450, -501, Limit::Min(-500))
    );
    assert_eq!(db.account(acct), -450);
    assert_eq!(
        C::done(Account::atomic_balance().update_locked(&mut conn, acct, |v| Ok(v + 1)))
            .await
            .unwrap(),
        -449
    );
    assert_eq!(db.account(acct), -449);

    let w1 = db.new_wallet(90);
    let w2 = db.new_wallet(0);
    assert_eq!(
        C::done(CtWallet::increment_coins(&mut conn, w1, 10))
            .await
            .unwrap(),
        100
    );
    assert_eq!(
        out_of_range(C::done(CtWallet::increment_coins(&mut conn, w1, 1)).await),
        (100, 101, Limit::Max(100))
    );
    assert_eq!(
        C::done(CtWallet::transfer_coins(&mut conn, w1, w2, 40))
            .await
            .unwrap(),
        (60, 40)
    );
    assert_eq!(
        C::done(CtWallet::take_coins_up_to(&mut conn, w2, 50))
            .await
            .unwrap(),
        40
    );
    assert_eq!(
        C::done(CtWallet::decrement_coins_if_at_least(&mut conn, w1, 60))
            .await
            .unwrap(),
        0
    );
    assert_eq!((db.wallet(w1), db.wallet(w2)), (0, 0));
}

/// The `atomic_*()` handle with per-call options runs the same operations.
pub async fn field_handle_with_options<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(10, 0);
    let b = db.new_product(10, 0);
    let mut conn = client.conn().await;
    let never = Product::atomic_stock().retry(RetryPolicy::NEVER);
    assert_eq!(C::done(never.increment(&mut conn, a, 5)).await.unwrap(), 15);
    assert_eq!(C::done(never.decrement(&mut conn, a, 1)).await.unwrap(), 14);
    assert_eq!(
        C::done(never.decrement_if_at_least(&mut conn, a, 4))
            .await
            .unwrap(),
        10
    );
    assert_eq!(C::done(never.take_up_to(&mut conn, a, 3)).await.unwrap(), 3);
    let nowait = Product::atomic_stock()
        .retry(RetryPolicy::DEFAULT.with_max_attempts(3))
        .lock(LockMode::NoWait);
    assert_eq!(
        C::done(nowait.update_locked(&mut conn, a, |v| Ok(v * 10)))
            .await
            .unwrap(),
        70
    );
    assert_eq!(
        C::done(nowait.transfer(&mut conn, a, b, 20)).await.unwrap(),
        (50, 30)
    );
    assert_eq!(
        insufficient(C::done(nowait.transfer(&mut conn, b, a, 31)).await),
        (30, 31)
    );
    assert_eq!(
        out_of_range(C::done(never.increment(&mut conn, a, 951)).await),
        (50, 1001, Limit::Max(1000))
    );
    assert_eq!((db.product(a), db.product(b)), ((50, 0), (30, 0)));
}

/// With `LockMode::NoWait`, a row another transaction holds is `Locked` at once, for
/// `update_*_locked` and `transfer_*`; nothing is written, and the closure never runs.
pub async fn nowait_on_a_held_row_is_locked<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(10, 0);
    let b = db.new_product(10, 0);
    // The holder is a blocking connection of the harness: another program's transaction.
    let mut holder = db.conn();
    let mut conn = client.conn().await;
    let nowait = Product::atomic_stock().lock(LockMode::NoWait);
    HarnessTransaction::<C>::begin_transaction(&mut *holder).unwrap();
    holder
        .batch_execute(&<C::Db as TestDb>::lock_product_sql(a))
        .unwrap();
    let mut calls = 0;
    let started = std::time::Instant::now();
    let result = C::done(nowait.update_locked(&mut conn, a, |v| {
        calls += 1;
        Ok(v + 1)
    }))
    .await;
    // Logged, not asserted: tests assert results, the benchmark measures time.
    eprintln!(
        "{}: NoWait on a held row returned {result:?} after {:?}",
        client.name(),
        started.elapsed()
    );
    assert_err!(result, AtomicError::Locked);
    assert_eq!(calls, 0);
    assert_err!(
        C::done(nowait.transfer(&mut conn, b, a, 1)).await,
        AtomicError::Locked
    );
    assert_err!(
        C::done(nowait.transfer(&mut conn, a, b, 1)).await,
        AtomicError::Locked
    );
    HarnessTransaction::<C>::commit_transaction(&mut *holder).unwrap();
    assert_eq!((db.product(a), db.product(b)), ((10, 0), (10, 0)));
    // Released: the same calls now succeed.
    assert_eq!(
        C::done(nowait.update_locked(&mut conn, a, |v| Ok(v + 1)))
            .await
            .unwrap(),
        11
    );
    assert_eq!(
        C::done(nowait.transfer(&mut conn, a, b, 1)).await.unwrap(),
        (10, 11)
    );
}

/// Single-statement operations inside the caller's transaction: a rollback discards them, a
/// commit applies them.
pub async fn caller_transaction_single_statement_ops<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(10, 0);
    let mut conn = client.conn().await;
    let result: Result<(), _> = C::own_transaction(&mut conn, async |c| {
        assert_eq!(C::done(Product::increment_stock(c, id, 1)).await?, 11);
        assert_eq!(
            C::done(Product::decrement_stock_if_at_least(c, id, 5)).await?,
            6
        );
        assert_eq!(C::done(Product::decrement_stock(c, id, 6)).await?, 0);
        assert_eq!(C::done(Product::increment_sold(c, id, 10)).await?, 10);
        assert_eq!(
            insufficient(C::done(Product::decrement_stock_if_at_least(c, id, 1)).await),
            (0, 1)
        );
        Err(AtomicError::custom("roll back"))
    })
    .await;
    assert_err!(result, AtomicError::Custom(_));
    assert_eq!(db.product(id), (10, 0), "rolled back");

    C::own_transaction(&mut conn, async |c| {
        assert_eq!(C::done(Product::increment_stock(c, id, 1)).await?, 11);
        assert_eq!(
            C::done(Product::decrement_stock_if_at_least(c, id, 5)).await?,
            6
        );
        assert_eq!(C::done(Product::increment_sold(c, id, 10)).await?, 10);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(db.product(id), (6, 10), "committed");
}

/// Row-locking operations (`update_*_locked`, `transfer_*`, `take_*_up_to`) inside the caller's
/// transaction: a rollback discards them, a commit applies them, and an error of one of them
/// leaves the caller's transaction usable.
pub async fn caller_transaction_row_locking_ops<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let a = db.new_product(10, 0);
    let b = db.new_product(20, 0);
    let mut conn = client.conn().await;
    let result: Result<(), _> = C::own_transaction(&mut conn, async |c| {
        assert_eq!(
            C::done(Product::update_stock_locked(c, a, |v| Ok(v + 5))).await?,
            15
        );
        assert_eq!(
            C::done(Product::transfer_stock(c, a, b, 3)).await?,
            (12, 23)
        );
        assert_eq!(C::done(Product::take_stock_up_to(c, b, 4)).await?, 4);
        Err(AtomicError::custom("roll back"))
    })
    .await;
    assert_err!(result, AtomicError::Custom(_));
    assert_eq!((db.product(a).0, db.product(b).0), (10, 20), "rolled back");

    C::own_transaction(&mut conn, async |c| {
        assert_eq!(
            C::done(Product::update_stock_locked(c, a, |v| Ok(v + 5))).await?,
            15
        );
        // Errors inside: nothing of theirs is written, the transaction goes on.
        assert_err!(
            C::done(Product::update_stock_locked(c, a, |_| Err(
                AtomicError::custom("no")
            )))
            .await,
            AtomicError::Custom(_)
        );
        assert_eq!(
            out_of_range(C::done(Product::update_stock_locked(c, a, |_| Ok(1001))).await),
            (15, 1001, Limit::Max(1000))
        );
        assert_eq!(
            insufficient(C::done(Product::transfer_stock(c, a, b, 16)).await),
            (15, 16)
        );
        assert_eq!(
            C::done(Product::transfer_stock(c, a, b, 3)).await?,
            (12, 23)
        );
        assert_eq!(C::done(Product::take_stock_up_to(c, b, 4)).await?, 4);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!((db.product(a).0, db.product(b).0), (12, 19), "committed");
}

/// Two callers' transactions lock two rows in opposite orders with `update_*_locked` (each a
/// savepoint inside the caller's transaction): one of them is the deadlock's victim, and gets
/// `Conflict` (to roll back and re-run its transaction), whatever the server rolled back
/// (MySQL rolls back the victim's whole transaction, its savepoint with it). The other
/// commits both its changes (or, under SERIALIZABLE, may get a `Conflict` too); the rows hold
/// exactly what committed. SQLite, which locks the whole file, has no such deadlock.
pub async fn a_deadlock_inside_the_callers_transaction_is_a_conflict<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    if <C::Db as TestDb>::NAME == "SQLite" {
        return;
    }
    let db = client.db();
    let rows = [db.new_product(0, 10), db.new_product(0, 10)];
    let both_hold_one = Barrier::new(2);
    let results = on_n_workers(client, 2, async |worker, conn| {
        let (first, second) = (rows[worker], rows[1 - worker]);
        C::own_transaction(conn, async |c| {
            let held = C::done(Product::update_sold_locked(c, first, |v| Ok(v + 1))).await;
            both_hold_one.wait();
            held?;
            C::done(Product::update_sold_locked(c, second, |v| Ok(v + 1))).await
        })
        .await
    });
    let (done, errors) = errors_of(results);
    // Under SERIALIZABLE the other may fail too (PostgreSQL's read/write dependencies between
    // the two): then it is a `Conflict` as well.
    assert!(
        !errors.is_empty()
            && errors
                .iter()
                .all(|e| matches!(e, AtomicError::Conflict { attempts: 1, .. })),
        "{}: the victim got {errors:?}",
        client.name()
    );
    let committed = done.len() as i64;
    assert_eq!(committed + errors.len() as i64, 2);
    assert_eq!(
        (db.product(rows[0]).1, db.product(rows[1]).1),
        (10 + committed, 10 + committed)
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrency: `C::WORKERS` workers (8 blocking threads, 16 async), each with its own pooled
// connection
// ---------------------------------------------------------------------------------------------

/// (a) Concurrent increments lose nothing: every new value from `initial + 1` to
/// `initial + total` is returned exactly once, and each worker sees its values strictly grow.
pub async fn concurrent_increments_lose_nothing<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let initial = 1_000_i64;
    let id = db.new_product(0, initial);
    let per_worker = C::ITERATIONS;
    let results = on_workers(client, async |_, conn| {
        let mut results = Vec::new();
        for _ in 0..per_worker {
            results.push(C::done(Product::increment_sold(conn, id, 1)).await);
        }
        results
    });
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for (worker, results) in results.into_iter().enumerate() {
        let (values, errs) = errors_of(results);
        errors.extend(errs);
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "worker {worker} saw its values go back: {values:?}"
        );
        all.extend(values);
    }
    assert_no_errors(client, "concurrent increments", &errors);
    let total = (C::WORKERS * per_worker) as i64;
    all.sort_unstable();
    assert_eq!(all, ((initial + 1)..=(initial + total)).collect::<Vec<_>>());
    assert_eq!(db.product(id), (0, initial + total));
}

/// (b) The oversell storm: stock 100, 160 attempts to sell 1 over the workers: exactly 100
/// sales (returning each stock level from 99 down to 0 once), 60 `Insufficient`, final stock 0.
pub async fn oversell_storm<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let id = db.new_product(100, 0);
    let attempts_per_worker = 160 / C::WORKERS;
    let results = on_workers(client, async |_, conn| {
        let mut results = Vec::new();
        for _ in 0..attempts_per_worker {
            results.push(C::done(Product::decrement_stock_if_at_least(conn, id, 1)).await);
        }
        results
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
    assert_no_errors(client, "oversell storm, besides Insufficient", &other);
    assert_eq!((sold.len(), insufficient.len()), (100, 60));
    sold.sort_unstable();
    assert_eq!(sold, (0..100).collect::<Vec<_>>());
    assert_eq!(db.product(id), (0, 0));
}

/// (c) Concurrent `take_*_up_to` with n from 1 to 7: the amounts taken add up to the initial
/// stock exactly, and the stock ends at 0.
pub async fn concurrent_take_up_to_takes_exactly_the_stock<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    let db = client.db();
    let initial = 997;
    let id = db.new_product(initial, 0);
    let results = on_workers(client, async |worker, conn| {
        let mut taken = Vec::new();
        let mut errors = Vec::new();
        for i in 0.. {
            let n = ((worker + i) % 7 + 1) as i32;
            match C::done(Product::take_stock_up_to(conn, id, n)).await {
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
    assert_no_errors(client, "concurrent take_up_to", &errors);
    assert_eq!(total, initial);
    assert_eq!(db.product(id), (0, 0));
}

/// (d) `update_*_locked` with `v + 1` from every worker loses nothing.
pub async fn concurrent_update_locked_loses_nothing<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
{
    let db = client.db();
    let initial = 50_i64;
    let id = db.new_product(0, initial);
    let per_worker = C::ITERATIONS / 2;
    let results = on_workers(client, async |_, conn| {
        let mut results = Vec::new();
        for _ in 0..per_worker {
            results.push(C::done(Product::update_sold_locked(conn, id, |v| Ok(v + 1))).await);
        }
        results
    });
    let (mut values, errors) = errors_of(results.into_iter().flatten().collect());
    assert_no_errors(client, "concurrent update_locked", &errors);
    let total = (C::WORKERS * per_worker) as i64;
    values.sort_unstable();
    assert_eq!(
        values,
        ((initial + 1)..=(initial + total)).collect::<Vec<_>>()
    );
    assert_eq!(db.product(id), (0, initial + total));
}

/// (e) Opposite transfers A→B and B→A from every worker: no deadlock or other error surfaces,
/// the sum never changes, neither row leaves its bounds, and both end where they began (each
/// worker moves every amount there and back).
pub async fn opposite_transfers_keep_the_sum<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>,
{
    // Runs for a few seconds (the duration bounds the loop; nothing about time is asserted).
    const RUN_FOR: std::time::Duration = std::time::Duration::from_secs(3);
    let db = client.db();
    let a = db.new_product(500, 0);
    let b = db.new_product(500, 0);
    let until = std::time::Instant::now() + RUN_FOR;
    let results = on_workers(client, async |worker, conn| {
        let (from, to) = if worker % 2 == 0 { (a, b) } else { (b, a) };
        let mut out = Vec::new();
        let mut i = 0;
        while std::time::Instant::now() < until {
            let amount = i % 5 + 1;
            out.push(C::done(Product::transfer_stock(conn, from, to, amount)).await);
            out.push(C::done(Product::transfer_stock(conn, to, from, amount)).await);
            i += 1;
        }
        out
    });
    let transfers = results.iter().map(Vec::len).sum::<usize>();
    let (pairs, errors) = errors_of(results.into_iter().flatten().collect());
    assert_no_errors(client, "opposite transfers", &errors);
    assert_eq!(pairs.len(), transfers);
    assert!(
        transfers >= C::WORKERS * 2,
        "every worker transferred at least once"
    );
    eprintln!(
        "{}: {transfers} opposite transfers from {} workers, no error",
        client.name(),
        C::WORKERS
    );
    for (from, to) in pairs {
        assert!(
            (0..=1000).contains(&from) && (0..=1000).contains(&to),
            "a transfer returned values out of bounds: ({from}, {to})"
        );
    }
    assert_eq!((db.product(a).0, db.product(b).0), (500, 500));
}

/// (f) Increments, locked read-modify-writes, takes and two-column sales from every worker
/// on one row, 10 rounds each: the exact sum of what each returned.
pub async fn every_single_row_operation_adds_up<C: Client>(client: &C)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<C::Db>>
        + AtomicFieldOn<ct_products::sold, DbOf<C::Db>>,
    Sale: Changes<Product, DbOf<C::Db>, Key = i64, Values = (i32, i64)>,
{
    let db = client.db();
    let id = db.new_product(1000, 0);
    let results = on_workers(client, async |worker, conn| {
        let (mut taken, mut sales) = (0_i64, 0_i64);
        for i in 0..10 {
            C::done(Product::increment_sold(conn, id, 1)).await.unwrap();
            C::done(Product::update_sold_locked(conn, id, |v| Ok(v + 2)))
                .await
                .unwrap();
            taken += i64::from(
                C::done(Product::take_stock_up_to(conn, id, 3))
                    .await
                    .unwrap(),
            );
            if (worker + i) % 2 == 0 {
                let sale = (
                    ct_products::stock.decrement_if_at_least(2),
                    ct_products::sold.increment(5),
                );
                match C::done(Product::update_atomic(conn, id, sale)).await {
                    Ok(_) => sales += 1,
                    Err(other) => panic!("{}: {other:?}", client.name()),
                }
            }
        }
        (taken, sales)
    });
    let (taken, sales) = results
        .into_iter()
        .fold((0, 0), |(t, s), (t1, s1)| (t + t1, s + s1));
    let workers = C::WORKERS as i64;
    // 10 takes of 3 and 5 sales of 2 per worker fit in 1000 (16 workers: 480 + 160): nothing
    // ran short.
    assert_eq!((taken, sales), (workers * 30, workers * 5));
    let sold = workers * 10 * 3 + 5 * sales;
    assert_eq!(db.product(id), ((1000 - taken - 2 * sales) as i32, sold));
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Product::current_sold(&mut conn, id)).await.unwrap(),
        sold
    );
}

/// (g) Transfers among four accounts from every worker, amounts up to 240 against balances
/// of 100 and a floor of -500: the total never changes, every refusal is `Insufficient`, and
/// no balance passes the floor. Under PostgreSQL SERIALIZABLE a transfer may also end in
/// `Conflict` once its retries are spent (16 workers on 4 rows, each reading and writing two:
/// seen in CI), which writes nothing: counted, and the total still exact.
pub async fn transfers_among_four_keep_the_total<C: Client>(client: &C)
where
    Account: AtomicFieldOn<ct_accounts::balance_cents, DbOf<C::Db>>,
{
    let db = client.db();
    let ids: Vec<i64> = (0..4).map(|_| db.new_account(100)).collect();
    let serializable = serializable_postgres(client);
    let results = on_workers(client, async |worker, conn| {
        let (mut moved, mut refused, mut conflicts) = (0, 0, 0);
        for i in 0..15 {
            let from = ids[(worker + i) % 4];
            let to = ids[(worker * 3 + i + 1) % 4];
            if from == to {
                continue;
            }
            let amount = ((worker + i) % 7 * 40) as i64;
            match C::done(Account::transfer_balance(conn, from, to, amount)).await {
                Ok((f, t)) => {
                    assert!(f >= -500 && t >= -500, "({f}, {t})");
                    moved += 1;
                }
                Err(AtomicError::Insufficient { .. }) => refused += 1,
                Err(AtomicError::Conflict { .. }) if serializable => conflicts += 1,
                Err(other) => panic!("{}: {other:?}", client.name()),
            }
        }
        (moved, refused, conflicts)
    });
    let (moved, refused, conflicts) = results
        .into_iter()
        .fold((0, 0, 0), |(m, r, c), (m1, r1, c1)| {
            (m + m1, r + r1, c + c1)
        });
    eprintln!(
        "{}: {moved} transfers, {refused} refused, {conflicts} conflicts",
        client.name()
    );
    assert!(moved > 0);
    let balances: Vec<i64> = ids.iter().map(|&id| db.account(id)).collect();
    assert_eq!(balances.iter().sum::<i64>(), 400, "{balances:?}");
    assert!(balances.iter().all(|&b| b >= -500), "{balances:?}");
}

/// Expands to one `#[test]` per scenario for the [`Client`] that `$client` makes (a fresh
/// one per test): `backend_tests!(BlockingClient(Postgres::open()))`,
/// `backend_tests!(AsyncPostgres::on(Postgres::open()))`.
#[macro_export]
macro_rules! backend_tests {
    ($client:expr) => {
        $crate::backend_tests!(@tests $client;
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
            a_deadlock_inside_the_callers_transaction_is_a_conflict,
            concurrent_increments_lose_nothing,
            oversell_storm,
            concurrent_take_up_to_takes_exactly_the_stock,
            concurrent_update_locked_loses_nothing,
            opposite_transfers_keep_the_sum,
            every_single_row_operation_adds_up,
            transfers_among_four_keep_the_total,
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
            increment_or_insert_under_a_case_insensitive_key,
            slotted_increments_lose_nothing,
            slotted_compact_while_incrementing,
            slotted_decrement_where_declared,
            buffer_counts_every_add,
            failed_flush_keeps_its_counts,
            two_buffers_flush_overlapping_keys,
            panicking_new_row_keeps_the_counts,
            redis_counts_every_add_exactly,
            redis_flush_crashed_after_each_step,
            redis_refuses_bad_input_and_keeps_what_it_cannot_write,
            redis_keeps_thousands_of_keys_without_rows,
            redis_counts_every_spelling_of_a_case_insensitive_key,
        );
    };
    (@tests $client:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let client = $client;
                $crate::client::Client::block_on(&client, $crate::scenarios::$name(&client));
            }
        )*
    };
}

/// The scenarios of the blocking API only, for backend `$backend` (a [`TestDb`]).
#[macro_export]
macro_rules! blocking_tests {
    ($backend:ty) => {
        $crate::blocking_tests!(@tests $backend;
            dropped_buffer_flushes,
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
