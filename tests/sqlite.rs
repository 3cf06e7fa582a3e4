//! The scenarios on SQLite: a fresh WAL database file per test, no busy timeout anywhere (so
//! the concurrency scenarios, which assert zero errors, prove that no call surfaces
//! "database is locked"). Plus checks of that setup and of integer storage at the extremes.

use counter_core::{ChangeColumn, Limit};
use counter_tests::models::Edge;
use counter_tests::scenarios::{on_threads, out_of_range};
use counter_tests::{Sqlite, TestDb};
use diesel::prelude::*;

counter_tests::backend_tests!(counter_tests::BlockingClient(counter_tests::Sqlite::open()));
counter_tests::blocking_tests!(counter_tests::Sqlite);

/// Writers take turns, in SQLite's default rollback journal (where readers refuse commits).
mod rollback_journal {
    counter_tests::sqlite_writer_tests!(counter_tests::BlockingClient(
        counter_tests::Sqlite::open_rollback_journal()
    ));
}

/// And in WAL, where readers never block a writer.
mod wal_writers {
    counter_tests::sqlite_writer_tests!(counter_tests::BlockingClient(
        counter_tests::Sqlite::open_with("WAL", None)
    ));
}

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

#[derive(QueryableByName)]
struct Int {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    value: i64,
}

/// Every pooled connection (8 held at once) is in WAL mode with busy timeout 0: the library
/// alone copes with a busy database.
#[test]
fn pool_connections_are_wal_without_busy_timeout() {
    let db = Sqlite::open();
    assert!(db.path().exists());
    let settings = on_threads(&db, |_, conn| {
        let mode = diesel::sql_query("SELECT journal_mode AS value FROM pragma_journal_mode")
            .get_result::<Text>(&mut **conn)
            .unwrap()
            .value;
        let timeout = diesel::sql_query("SELECT timeout AS value FROM pragma_busy_timeout")
            .get_result::<Int>(&mut **conn)
            .unwrap()
            .value;
        (mode, timeout)
    });
    for (mode, timeout) in settings {
        assert_eq!((mode.as_str(), timeout), ("wal", 0));
    }
}

/// Overflow attempts at `i64::MAX`/`MIN` are refused before SQLite could turn the sum into a
/// REAL: the stored value stays an exact INTEGER.
#[test]
fn overflow_attempts_leave_an_exact_integer() {
    let db = Sqlite::open();
    let id = db.new_edge(0, 0, i64::MAX - 1, 5);
    let mut conn = db.conn();
    let max_w = i128::from(i64::MAX);
    assert_eq!(
        out_of_range(Edge::increment_big(&mut conn, id, 2)),
        (max_w - 1, max_w + 1, Limit::Max(max_w))
    );
    assert_eq!(Edge::increment_big(&mut conn, id, 1).unwrap(), i64::MAX);
    assert_eq!(
        out_of_range(Edge::increment_big(&mut conn, id, i64::MAX)),
        (max_w, 2 * max_w, Limit::Max(max_w))
    );
    let stored = |conn: &mut SqliteConnection| {
        diesel::sql_query(format!(
            "SELECT typeof(big) || ':' || CAST(big AS TEXT) AS value FROM ct_edges WHERE id = {id}"
        ))
        .get_result::<Text>(conn)
        .unwrap()
        .value
    };
    assert_eq!(stored(&mut conn), format!("integer:{}", i64::MAX));
    assert_eq!(Edge::decrement_big(&mut conn, id, i64::MAX).unwrap(), 0);
    assert_eq!(
        Edge::decrement_big(&mut conn, id, i64::MAX).unwrap(),
        -i64::MAX
    );
    assert_eq!(Edge::decrement_big(&mut conn, id, 1).unwrap(), i64::MIN);
    assert_eq!(
        out_of_range(Edge::decrement_big(&mut conn, id, i64::MAX)),
        (
            i128::from(i64::MIN),
            i128::from(i64::MIN) - max_w,
            Limit::Min(i128::from(i64::MIN))
        )
    );
    assert_eq!(stored(&mut conn), format!("integer:{}", i64::MIN));
}

/// A unique violation raised while the batch is applied (here by a trigger of the counted
/// table, on one of two keys) is that key's own refusal: it is kept and the other key written.
/// Only the ledger's own primary key means "another flusher applied it"; taking this one for
/// that would delete the batch, both keys' counts with it.
#[test]
fn redis_flush_a_unique_violation_of_a_row_is_not_the_ledgers() {
    use counter_core::AtomicError;
    use counter_tests::db::redis_connection;
    use counter_tests::next_id;
    use counter_tests::scenarios::{daily_rows, fresh_views, open_batches, rows};
    use diesel::connection::SimpleConnection;
    use diesel::result::{DatabaseErrorKind, Error};
    use std::collections::BTreeMap;

    let db = counter_tests::Sqlite::open(); // a file of its own: the trigger touches no other test
    let page = next_id();
    daily_rows(&db, page, [1, 2], 0);
    db.conn()
        .batch_execute(&format!(
            "CREATE TABLE ct_guard (id INTEGER PRIMARY KEY); INSERT INTO ct_guard VALUES (1);
             CREATE TRIGGER ct_guard_views AFTER UPDATE ON ct_daily_views
             WHEN NEW.page_id = {page} AND NEW.day = 1
             BEGIN INSERT INTO ct_guard VALUES (1); END;"
        ))
        .unwrap();
    let (views, prefix) = fresh_views();
    let mut redis = redis_connection();
    views.add(&mut redis, &(page, 1), 5).unwrap();
    views.add(&mut redis, &(page, 2), 7).unwrap();
    let report = views.flush(&mut db.conn(), &mut redis).unwrap();
    assert_eq!(report.written, vec![((page, 2), 7)]);
    assert_eq!(report.kept.len(), 1);
    assert_eq!(report.kept[0].key, Some((page, 1)));
    assert!(
        matches!(
            report.kept[0].error,
            AtomicError::Database(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
        ),
        "{}",
        report.kept[0].error
    );
    assert_eq!(rows(&db, page), BTreeMap::from([(1, 0), (2, 7)]));
    assert_eq!(views.pending(&mut redis, &(page, 1)).unwrap(), 5);
    assert_eq!(open_batches(&mut redis, &prefix), Vec::<String>::new());

    db.conn()
        .batch_execute("DROP TRIGGER ct_guard_views")
        .unwrap();
    let report = views.flush(&mut db.conn(), &mut redis).unwrap();
    assert_eq!(report.written, vec![((page, 1), 5)]);
    assert_eq!(rows(&db, page), BTreeMap::from([(1, 5), (2, 7)]));
}

/// See `scenarios::redis_flush_keeps_a_key_its_row_refuses`; the refusal is a trigger.
#[test]
fn redis_flush_keeps_a_key_its_row_refuses_and_writes_the_others() {
    counter_tests::scenarios::redis_flush_keeps_a_key_its_row_refuses::<Sqlite>(|page| {
        (
            format!(
                "CREATE TRIGGER ct_refuse_{page} BEFORE UPDATE ON ct_daily_views
                 WHEN NEW.page_id = {page} AND NEW.day = 2
                 BEGIN SELECT RAISE(ABORT, 'day 2 is closed'); END;"
            ),
            format!("DROP TRIGGER ct_refuse_{page}"),
        )
    });
}

/// A writer in another process, outside this process's line of writers, is still waited for:
/// the writer whose turn it is polls for the file while the others wait in line behind it.
mod another_process {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use counter_core::{AtomicError, RetryPolicy};
    use counter_tests::models::Product;
    use counter_tests::{Sqlite, TestDb};
    use diesel::{Connection, SqliteConnection};

    /// Starts `sqlite_hold` on `db`'s file, and returns once it holds the write lock (having
    /// added 1,000 to product `id`'s `sold`, not yet committed).
    fn hold(db: &Sqlite, id: i64, ms: u64) -> Child {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sqlite_hold"))
            .args([
                db.path().to_str().unwrap(),
                &id.to_string(),
                &ms.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sqlite_hold");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .expect("sqlite_hold's answer");
        assert_eq!(line.trim(), "held", "sqlite_hold did not take the lock");
        child
    }

    /// `n` connections to `db`'s file, opened before another process takes it (a pool would
    /// open them on demand, and its set-up statements would wait for that process).
    fn connections(db: &Sqlite, n: usize) -> Vec<SqliteConnection> {
        (0..n)
            .map(|_| SqliteConnection::establish(db.path().to_str().unwrap()).unwrap())
            .collect()
    }

    /// Runs `work` on each of `conns`, one thread each; the results in order.
    fn on_each<T: Send>(
        conns: Vec<SqliteConnection>,
        work: impl Fn(&mut SqliteConnection) -> T + Sync,
    ) -> Vec<T> {
        std::thread::scope(|s| {
            let work = &work;
            let threads: Vec<_> = conns
                .into_iter()
                .map(|mut conn| s.spawn(move || work(&mut conn)))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
    }

    /// The journal modes each test runs in: SQLite's default rollback journal, and WAL.
    const JOURNALS: [&str; 2] = ["DELETE", "WAL"];

    /// Eight writers of this process arrive while another process holds the file for 1 s:
    /// every call waits for it and goes through after its commit (each sees its 1,000).
    #[test]
    fn writers_in_line_wait_for_a_writer_in_another_process() {
        JOURNALS
            .into_iter()
            .for_each(writers_wait_for_another_process);
    }

    fn writers_wait_for_another_process(journal: &str) {
        let db = Sqlite::open_with(journal, None);
        let id = db.new_product(0, 0);
        let conns = connections(&db, 8);
        let mut holder = hold(&db, id, 1_000);
        let seen: Vec<Vec<i64>> = on_each(conns, |conn| {
            (0..5)
                .map(|_| Product::increment_sold(conn, id, 1).unwrap())
                .collect()
        });
        assert!(holder.wait().unwrap().success());
        let mut seen: Vec<i64> = seen.into_iter().flatten().collect();
        seen.sort_unstable();
        assert_eq!(seen, (1_001..=1_040).collect::<Vec<_>>());
        assert_eq!(db.product(id), (0, 1_040));
    }

    /// Eight writers lined up behind another process's long hold fail about together, each
    /// after about its `busy_timeout` (400 ms), not one `busy_timeout` after another (which
    /// would take the last one 3.2 s: a writer that gives up on an outside lock does not count
    /// as the line moving).
    #[test]
    fn writers_behind_an_outside_lock_fail_together_not_in_turn() {
        JOURNALS
            .into_iter()
            .for_each(writers_behind_an_outside_lock_fail_together);
    }

    fn writers_behind_an_outside_lock_fail_together(journal: &str) {
        let db = Sqlite::open_with(journal, None);
        let id = db.new_product(0, 0);
        let mut conns = connections(&db, 9);
        let mut holder = hold(&db, id, 4_000);
        let impatient = Product::atomic_sold()
            .retry(RetryPolicy::DEFAULT.with_busy_timeout(Duration::from_millis(400)));
        // One call meets the busy file first, so that writers take turns from the start (a
        // process turns its line on at its first busy database), and the eight below wait in
        // line without having met the lock themselves.
        let first = impatient.increment(&mut conns.pop().unwrap(), id, 1);
        assert!(
            matches!(first, Err(AtomicError::Conflict { .. })),
            "{first:?}"
        );
        let started = std::time::Instant::now();
        let outcomes = on_each(conns, |conn| {
            let outcome = impatient.increment(conn, id, 1);
            (outcome, started.elapsed())
        });
        for (outcome, took) in &outcomes {
            assert!(
                matches!(outcome, Err(AtomicError::Conflict { .. })),
                "{outcome:?}"
            );
            assert!(
                *took < Duration::from_millis(1_600),
                "failed after {took:?}"
            );
        }
        assert!(holder.wait().unwrap().success());
        assert_eq!(db.product(id), (0, 1_000));
    }

    /// A writer whose `busy_timeout` is shorter than the other process's hold gets `Conflict`
    /// and writes nothing; the other process's write is untouched.
    #[test]
    fn a_short_busy_timeout_gives_up_on_another_process() {
        JOURNALS.into_iter().for_each(a_short_busy_timeout_gives_up);
    }

    fn a_short_busy_timeout_gives_up(journal: &str) {
        let db = Sqlite::open_with(journal, None);
        let id = db.new_product(0, 0);
        let mut conn = connections(&db, 1).pop().unwrap();
        let mut holder = hold(&db, id, 2_000);
        let impatient = Product::atomic_sold()
            .retry(RetryPolicy::DEFAULT.with_busy_timeout(Duration::from_millis(200)));
        let outcome = impatient.increment(&mut conn, id, 1);
        assert!(
            matches!(outcome, Err(AtomicError::Conflict { attempts, .. }) if attempts > 1),
            "{outcome:?}"
        );
        assert!(holder.wait().unwrap().success());
        assert_eq!(db.product(id), (0, 1_000));
    }

    /// A closure that panics while its writer has the turn gives the turn back as the panic
    /// unwinds: the next writer goes through, where a kept turn would hold it in line until
    /// its `busy_timeout`, then `Conflict`. The timeout is long (30 s) because the panic hook
    /// runs while the turn is still held, and under `RUST_BACKTRACE` it symbolizes a backtrace
    /// of this large binary first: CI saw that take more than the 2 s this test once allowed.
    #[test]
    fn a_panicking_closure_gives_its_turn_back() {
        JOURNALS.into_iter().for_each(a_panic_gives_the_turn_back);
    }

    fn a_panic_gives_the_turn_back(journal: &str) {
        let db = Sqlite::open_with(journal, None);
        let id = db.new_product(0, 0);
        let mut conns = connections(&db, 2);
        // Writers take turns once the process has met a busy file: meet one (held far longer
        // than the 100 ms this writer waits, however late this thread runs after the answer).
        let mut holder = hold(&db, id, 1_500);
        let quick = Product::atomic_sold()
            .retry(RetryPolicy::DEFAULT.with_busy_timeout(Duration::from_millis(100)));
        let met = quick.increment(&mut conns[0], id, 1);
        assert!(matches!(met, Err(AtomicError::Conflict { .. })), "{met:?}");
        assert!(holder.wait().unwrap().success());

        // The closure panics while a second writer waits in line behind it.
        let (first, second) = conns.split_at_mut(1);
        let (started, is_started) = std::sync::mpsc::channel();
        let next = std::thread::scope(|s| {
            let second = &mut second[0];
            let waiter = s.spawn(move || {
                is_started.recv().unwrap();
                Product::atomic_sold()
                    .retry(RetryPolicy::DEFAULT.with_busy_timeout(Duration::from_secs(30)))
                    .increment(second, id, 1)
            });
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Product::update_sold_locked(&mut first[0], id, |_| {
                    started.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                    panic!("the closure panics")
                })
            }));
            assert!(panicked.is_err());
            waiter.join().unwrap()
        });
        assert_eq!(next.unwrap(), 1_001, "{journal}");
        assert_eq!(db.product(id), (0, 1_001));
    }
}

/// A decimal column holds doubles on SQLite. Each statement that computes a new value rounds
/// it back to the scale (`ROUND(balance + ?, 2)`), so the row holds the double nearest the
/// exact decimal, equal to the literal: 0.70 + 0.10 is stored as 0.8, not the
/// 0.7999999999999999 a bare `balance + 0.1` leaves (which the guard `balance >= 0.8` then
/// refused, and only the library's fallback read made right), and ten more tenths, thirty
/// cents at a time, leave no drift either.
#[test]
fn decimal_rows_hold_the_nearest_double_of_the_decimal() {
    use counter_tests::models::Ledger;
    use counter_tests::scenarios::m;
    let db = Sqlite::open();
    let id = db.new_ledger(m("0.70"));
    let mut conn = db.conn();
    let exact = |conn: &mut SqliteConnection, literal: &str| -> i64 {
        diesel::sql_query(format!(
            "SELECT balance = {literal} AND typeof(balance) IN ('real', 'integer') AS value \
             FROM ct_ledger WHERE id = {id}"
        ))
        .get_result::<Int>(conn)
        .unwrap()
        .value
    };
    Ledger::increment_balance(&mut conn, id, m("0.10")).unwrap();
    assert_eq!(exact(&mut conn, "0.8"), 1);
    for _ in 0..10 {
        Ledger::increment_balance(&mut conn, id, m("0.10")).unwrap();
    }
    assert_eq!(exact(&mut conn, "1.8"), 1);
    for _ in 0..3 {
        Ledger::decrement_balance_if_at_least(&mut conn, id, m("0.30")).unwrap();
    }
    assert_eq!(exact(&mut conn, "0.9"), 1);
    let both = (
        counter_tests::schema::ct_ledger::balance.increment(m("0.07")),
        counter_tests::schema::ct_ledger::best.increment(m("0.10")),
    );
    Ledger::update_atomic(&mut conn, id, both).unwrap();
    assert_eq!(exact(&mut conn, "0.97"), 1);
    Ledger::take_balance_up_to(&mut conn, id, m("0.17")).unwrap();
    assert_eq!(exact(&mut conn, "0.8"), 1);
    assert_eq!(db.ledger(id).0, m("0.80"));
}
