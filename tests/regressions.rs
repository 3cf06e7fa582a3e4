//! Regression tests for reported defects, one test per defect and backend, each asserting the
//! correct behaviour with exact values; plus two tests that pin what the documentation claims.
//!
//! 1. SQLite in its default rollback journal (`journal_mode = DELETE`): a guarded decrement or
//!    an increment returned `Ok` for a write that was rolled back when its commit found the
//!    database busy (oversold stock, lost increments, duplicate returned values).
//! 2. SQLite, same journal: `current_*` and the zero-amount paths, which only read, failed
//!    with "database is locked" beside concurrent writers.
//! 3. A panic in an `update_*_locked` / `update_first_unlocked` closure left the connection
//!    inside the library's transaction (and, on SQLite, holding the write lock).
//! 4. `transfer_*` between two spellings of one row (a key the database compares
//!    case-insensitively, or ignoring trailing spaces) wrote both "rows" and created value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use counter_core::{AtomicError, AtomicFieldOn, RetryPolicy};
use counter_tests::db::DbOf;
use counter_tests::models::{Account, Named, Product};
use counter_tests::scenarios::{insufficient, on_threads, THREADS};
use counter_tests::schema::{ct_named, ct_products};
use counter_tests::{next_id, Mysql, Postgres, Sqlite, TestDb};
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = diesel::sql_types::Text)]
    journal_mode: String,
}

/// A DELETE-journal SQLite database (see [`Sqlite::open_rollback_journal`]), checked to be one.
fn rollback_journal_db() -> Sqlite {
    let db = Sqlite::open_rollback_journal();
    let mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result::<JournalMode>(&mut *db.conn())
        .unwrap()
        .journal_mode;
    assert_eq!(mode, "delete");
    db
}

/// Errors counted by their `Debug` text, for failure messages.
fn summary<'a>(errors: impl IntoIterator<Item = &'a AtomicError>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in errors {
        *counts.entry(format!("{e:?}")).or_insert(0) += 1;
    }
    counts
}

/// How many different values `values` holds.
fn distinct<T: Ord>(values: &[T]) -> usize {
    values.iter().collect::<BTreeSet<_>>().len()
}

/// The Ok values, the `Conflict` errors (allowed: a busy database that outlasted the retry
/// policy, with nothing written) and every other error, of a list of results.
fn split<T>(
    results: impl IntoIterator<Item = Result<T, AtomicError>>,
    expected: impl Fn(&AtomicError) -> bool,
) -> (Vec<T>, usize, Vec<AtomicError>) {
    let (mut oks, mut conflicts, mut others) = (Vec::new(), 0, Vec::new());
    for result in results {
        match result {
            Ok(v) => oks.push(v),
            Err(AtomicError::Conflict { .. }) => conflicts += 1,
            Err(e) if expected(&e) => {}
            Err(e) => others.push(e),
        }
    }
    (oks, conflicts, others)
}

// ---------------------------------------------------------------------------------------------
// 1. SQLite, rollback journal: an Ok for a write that never happened
// ---------------------------------------------------------------------------------------------

/// Guards against `Ok` for a write SQLite rolled back (its commit found a reader's shared
/// lock): with 1000 in stock, 1600 guarded decrements on 8 connections must sell exactly 1000,
/// each returned value `0..=999` exactly once, and 8 x 250 increments must add exactly 2000 with
/// distinct returned values. Odd threads read between their writes, keeping shared locks around.
#[test]
fn sqlite_rollback_journal_ok_means_written() {
    const DECREMENTS: usize = 200;
    const INCREMENTS: usize = 250;
    let db = rollback_journal_db();
    let id = db.new_product(1000, 0);

    let sales = on_threads(&db, |thread, conn| {
        (0..DECREMENTS)
            .map(|_| {
                let result = Product::decrement_stock_if_at_least(conn, id, 1);
                if thread % 2 == 1 {
                    // Only here to hold a shared lock; its own errors are defect 2's.
                    let _ = Product::current_stock(conn, id);
                }
                result
            })
            .collect::<Vec<_>>()
    });
    let (mut sold, sale_conflicts, sale_errors) = split(sales.into_iter().flatten(), |e| {
        matches!(
            e,
            AtomicError::Insufficient {
                available: 0,
                requested: 1
            }
        )
    });
    sold.sort_unstable();
    let stock_left = db.product(id).0;

    let increments = on_threads(&db, |thread, conn| {
        (0..INCREMENTS)
            .map(|_| {
                let result = Product::increment_sold(conn, id, 1);
                if thread % 2 == 1 {
                    let _ = Product::current_sold(conn, id);
                }
                result
            })
            .collect::<Vec<_>>()
    });
    let (mut counted, increment_conflicts, increment_errors) =
        split(increments.into_iter().flatten(), |_| false);
    counted.sort_unstable();
    let sold_row = db.product(id).1;

    eprintln!(
        "SQLite DELETE journal, 1600 decrements of 1000: {} Ok ({} distinct values), stock \
         left {stock_left}, {sale_conflicts} Conflict, other errors {:?}",
        sold.len(),
        distinct(&sold),
        summary(&sale_errors)
    );
    eprintln!(
        "SQLite DELETE journal, 2000 increments: {} Ok ({} distinct values), row {sold_row}, \
         {increment_conflicts} Conflict, other errors {:?}",
        counted.len(),
        distinct(&counted),
        summary(&increment_errors)
    );

    assert!(sale_errors.is_empty(), "{:?}", summary(&sale_errors));
    assert_eq!(
        1000 - stock_left as usize,
        sold.len(),
        "rows changed by the decrements != Ok decrements"
    );
    assert_eq!(sold.len(), 1000, "Ok decrements");
    assert_eq!(stock_left, 0);
    assert_eq!(sold, (0..1000).collect::<Vec<i32>>());

    assert!(
        increment_errors.is_empty(),
        "{:?}",
        summary(&increment_errors)
    );
    assert_eq!(
        sold_row as usize,
        counted.len(),
        "rows changed by the increments != Ok increments"
    );
    assert_eq!(counted.len(), THREADS * INCREMENTS, "Ok increments");
    assert_eq!(counted, (1..=2000).collect::<Vec<i64>>());
}

// ---------------------------------------------------------------------------------------------
// 2. SQLite, rollback journal: reads fail beside writers
// ---------------------------------------------------------------------------------------------

/// Guards against "database is locked" from the calls that only read (`current_*`,
/// `increment_*(0)`, `take_*_up_to(0)`) while other connections write, with no busy timeout
/// set: 4 writers add 4 x 200 to `sold` while 4 readers loop over those calls until the
/// writers are done. Every call of both kinds must succeed, and the readers see `sold` only
/// grow, within `0..=800`.
#[test]
fn sqlite_rollback_journal_reads_beside_writers_never_fail() {
    const WRITERS: usize = 4;
    const WRITES: usize = 200;
    let db = rollback_journal_db();
    let id = db.new_product(500, 0);
    let writers_done = AtomicUsize::new(0);

    /// What one thread saw: errors by operation, the values read (`sold` in order), the
    /// amounts `take_stock_up_to(0)` took, the Ok writes.
    #[derive(Default)]
    struct Seen {
        errors: Vec<(&'static str, AtomicError)>,
        sold: Vec<i64>,
        stock: Vec<i32>,
        taken: Vec<i32>,
        writes: usize,
    }

    let seen = on_threads(&db, |thread, conn| {
        let mut seen = Seen::default();
        if thread < WRITERS {
            for _ in 0..WRITES {
                match Product::increment_sold(conn, id, 1) {
                    Ok(_) => seen.writes += 1,
                    Err(e) => seen.errors.push(("increment_sold(1)", e)),
                }
            }
            writers_done.fetch_add(1, Ordering::SeqCst);
            return seen;
        }
        let record = |op, result: Result<i64, AtomicError>, seen: &mut Seen| match result {
            Ok(v) => seen.sold.push(v),
            Err(e) => seen.errors.push((op, e)),
        };
        loop {
            let done = writers_done.load(Ordering::SeqCst) == WRITERS;
            match Product::current_stock(conn, id) {
                Ok(v) => seen.stock.push(v),
                Err(e) => seen.errors.push(("current_stock", e)),
            }
            match Product::take_stock_up_to(conn, id, 0) {
                Ok(v) => seen.taken.push(v),
                Err(e) => seen.errors.push(("take_stock_up_to(0)", e)),
            }
            record("current_sold", Product::current_sold(conn, id), &mut seen);
            record(
                "increment_sold(0)",
                Product::increment_sold(conn, id, 0),
                &mut seen,
            );
            // One more round after the last writer finished: every reader reads at least once.
            if done {
                return seen;
            }
        }
    });

    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let (mut reads, mut writes) = (0, 0);
    for s in &seen {
        reads += s.sold.len() + s.stock.len() + s.taken.len();
        writes += s.writes;
        for (op, e) in &s.errors {
            *errors.entry(format!("{op}: {e:?}")).or_insert(0) += 1;
        }
    }
    let row = db.product(id);
    eprintln!(
        "SQLite DELETE journal: {reads} Ok reads, {writes} Ok writes, row {row:?}, errors \
         {errors:#?}"
    );
    assert!(errors.is_empty(), "calls failed: {errors:#?}");
    assert_eq!(writes, WRITERS * WRITES);
    assert_eq!(
        row,
        (500, (WRITERS * WRITES) as i64),
        "Ok increments that were never written"
    );
    for s in &seen {
        assert!(s.stock.iter().all(|&v| v == 500), "{:?}", s.stock);
        assert!(s.taken.iter().all(|&v| v == 0), "{:?}", s.taken);
        assert!(
            s.sold.windows(2).all(|w| w[0] <= w[1]),
            "sold went down: {:?}",
            s.sold
        );
        assert!(s.sold.iter().all(|&v| (0..=800).contains(&v)));
    }
}

// ---------------------------------------------------------------------------------------------
// 3. A panic in the closure of a row-locking operation
// ---------------------------------------------------------------------------------------------

/// Runs `call` (which panics inside the library's transaction) on `conn`, then asserts that
/// the panic reached the caller, that `conn` is in no transaction, and that an increment on
/// `conn` (of product `id`, stock 100) is committed: another connection sees 101.
fn panic_leaves_no_transaction<B, R>(
    db: &B,
    conn: &mut B::Pooled,
    id: i64,
    call: impl FnOnce(&mut B::Pooled) -> R,
) where
    B: TestDb,
    R: Debug,
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| call(conn)));
    assert!(
        outcome.is_err(),
        "{}: the closure's panic did not reach the caller: {outcome:?}",
        B::NAME
    );
    let depth =
        <B::Conn as Connection>::TransactionManager::transaction_manager_status_mut(&mut **conn)
            .transaction_depth();
    eprintln!("{}: transaction depth after the panic: {depth:?}", B::NAME);
    assert!(
        matches!(depth, Ok(None)),
        "{}: the connection is still in a transaction after the panic: {depth:?}",
        B::NAME
    );
    assert_eq!(Product::increment_stock(conn, id, 1).unwrap(), 101);
    assert_eq!(db.product(id), (101, 0), "seen from another connection");
}

/// `update_stock_locked` whose closure panics, on product `id`.
fn update_locked_panics<C: counter_core::BlockingConnection>(conn: &mut C, id: i64)
where
    Product: AtomicFieldOn<ct_products::stock, counter_core::BackendOf<C>>,
{
    let result = Product::update_stock_locked(conn, id, |_| panic!("boom"));
    unreachable!("the closure panicked, yet the call returned {result:?}");
}

/// `update_first_unlocked` on `[id]` whose closure panics.
fn update_first_unlocked_panics<C: counter_core::BlockingConnection>(conn: &mut C, id: i64)
where
    Product: AtomicFieldOn<ct_products::stock, counter_core::BackendOf<C>>,
{
    let result = Product::atomic_stock().update_first_unlocked(conn, &[id], |_| panic!("boom"));
    unreachable!("the closure panicked, yet the call returned {result:?}");
}

/// Guards against a panic in `update_*_locked`'s closure leaving the connection inside
/// `BEGIN IMMEDIATE`: no transaction afterwards, its next write is committed, and another
/// connection (no busy timeout) can write at once.
#[test]
fn sqlite_panic_in_update_locked_ends_the_transaction() {
    let db = Sqlite::open();
    let id = db.new_product(100, 0);
    let mut conn = db.conn();
    panic_leaves_no_transaction(&db, &mut conn, id, |c| update_locked_panics(c, id));
    // `conn` is still checked out: the write lock must not be with it.
    db.conn()
        .batch_execute(&format!(
            "UPDATE ct_products SET sold = sold + 1 WHERE id = {id}"
        ))
        .expect("another connection writes while the panicked one is still open");
    assert_eq!(db.product(id), (101, 1));
}

/// Guards against a panic in `update_*_locked`'s closure leaving the connection in the
/// library's transaction (row lock held, later writes never committed).
#[test]
fn pg_panic_in_update_locked_ends_the_transaction() {
    let db = Postgres::open();
    let id = db.new_product(100, 0);
    panic_leaves_no_transaction(&db, &mut db.conn(), id, |c| update_locked_panics(c, id));
}

/// As `pg_panic_in_update_locked_ends_the_transaction`, on MySQL/MariaDB.
#[test]
fn mysql_panic_in_update_locked_ends_the_transaction() {
    let db = Mysql::open();
    let id = db.new_product(100, 0);
    panic_leaves_no_transaction(&db, &mut db.conn(), id, |c| update_locked_panics(c, id));
}

/// Guards against a panic in `update_first_unlocked`'s closure leaving the connection in the
/// library's transaction.
#[test]
fn pg_panic_in_update_first_unlocked_ends_the_transaction() {
    let db = Postgres::open();
    let id = db.new_product(100, 0);
    panic_leaves_no_transaction(&db, &mut db.conn(), id, |c| {
        update_first_unlocked_panics(c, id)
    });
}

/// As `pg_panic_in_update_first_unlocked_ends_the_transaction`, on MySQL/MariaDB.
#[test]
fn mysql_panic_in_update_first_unlocked_ends_the_transaction() {
    let db = Mysql::open();
    let id = db.new_product(100, 0);
    panic_leaves_no_transaction(&db, &mut db.conn(), id, |c| {
        update_first_unlocked_panics(c, id)
    });
}

// ---------------------------------------------------------------------------------------------
// 4. A transfer between two spellings of one row
// ---------------------------------------------------------------------------------------------

/// Row `name` (balance 100) of `ct_named`, whose key the database compares case-insensitively.
/// An increment through the key `name.to_uppercase()` changes row `name` (the database, not
/// Rust, decides which row a key names); then a transfer of 10 from `name` to each of
/// `spellings`, and back, must be `SameRow` and leave the row at 101.
fn transfer_between_spellings_of_one_row<B: TestDb>(name: &str, spellings: &[String])
where
    Named: AtomicFieldOn<ct_named::balance, DbOf<B>>,
{
    let db = B::open();
    let mut conn = db.conn();
    db.new_named(name, 100);
    assert_eq!(
        Named::increment_balance(&mut conn, name.to_uppercase(), 1).unwrap(),
        101
    );
    assert_eq!(db.named(name), 101);
    for spelling in spellings {
        for (from, to) in [(name, spelling.as_str()), (spelling, name)] {
            let result = Named::transfer_balance(&mut conn, from.into(), to.into(), 10);
            eprintln!("{}: transfer {from:?} -> {to:?}: {result:?}", B::NAME);
            assert!(
                matches!(result, Err(AtomicError::SameRow)),
                "{}: transfer {from:?} -> {to:?} returned {result:?}, row now {}",
                B::NAME,
                db.named(name)
            );
            assert_eq!(db.named(name), 101);
        }
    }
}

/// Guards against a transfer between `abc…` and `ABC…` (`COLLATE NOCASE`) creating 10.
#[test]
fn sqlite_transfer_between_spellings_of_one_row_is_same_row() {
    let name = format!("abc{}", next_id());
    transfer_between_spellings_of_one_row::<Sqlite>(&name, &[name.to_uppercase()]);
}

/// Guards against a transfer between `abc…` and `ABC…` (nondeterministic ICU collation)
/// creating 10.
#[test]
fn pg_transfer_between_spellings_of_one_row_is_same_row() {
    let name = format!("abc{}", next_id());
    transfer_between_spellings_of_one_row::<Postgres>(&name, &[name.to_uppercase()]);
}

/// Guards against a transfer between `abc…` and `ABC…`, or `abc… ` with a trailing space
/// (`utf8mb4_general_ci`, PAD SPACE), creating 10.
#[test]
fn mysql_transfer_between_spellings_of_one_row_is_same_row() {
    let name = format!("abc{}", next_id());
    transfer_between_spellings_of_one_row::<Mysql>(
        &name,
        &[name.to_uppercase(), format!("{name} ")],
    );
}

// ---------------------------------------------------------------------------------------------
// Documentation claims
// ---------------------------------------------------------------------------------------------

/// Pins what `Insufficient.available` of a transfer says today: how much the source could
/// give down to its declared floor (100 with `min = -500` gives 600), not its value.
#[test]
fn transfer_insufficient_reports_what_the_row_could_give() {
    let db = Sqlite::open();
    let (from, to) = (db.new_account(100), db.new_account(0));
    let mut conn = db.conn();
    assert_eq!(
        insufficient(Account::transfer_balance(&mut conn, from, to, 1000)),
        (600, 1000)
    );
    assert_eq!((db.account(from), db.account(to)), (100, 0));
}

/// With `busy_timeout` zero and no retries, an increment on a database whose write lock
/// another connection holds (`BEGIN IMMEDIATE`) is `Conflict { attempts: 1 }`: one run, no
/// busy poll (each poll would count an attempt); nothing is written. The time is logged.
#[test]
fn sqlite_zero_busy_timeout_gives_conflict_at_once() {
    let db = Sqlite::open();
    let id = db.new_product(10, 0);
    let mut holder = db.conn();
    let mut conn = db.conn();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let result = Product::atomic_stock()
        .retry(RetryPolicy::NEVER.with_busy_timeout(Duration::ZERO))
        .increment(&mut conn, id, 1);
    let took = started.elapsed();
    holder.batch_execute("COMMIT").unwrap();
    eprintln!("SQLite zero busy timeout: {result:?} after {took:?}");
    assert!(
        matches!(result, Err(AtomicError::Conflict { attempts: 1, .. })),
        "{result:?}"
    );
    assert_eq!(db.product(id), (10, 0));
}
