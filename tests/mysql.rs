//! The scenarios on MySQL/MariaDB (`COUNTER_MYSQL_URL`, else a testcontainers container), plus
//! `INT UNSIGNED`/`BIGINT UNSIGNED` (`u32`/`u64`) fields, which exist only on MySQL.

use counter_core::{AtomicError, Limit};
use counter_tests::db::WideRows;
use counter_tests::models::UnsignedCounter;
use counter_tests::scenarios::{insufficient, on_threads, out_of_range, THREADS};
use counter_tests::schema::ct_unsigned;
use counter_tests::{next_id, Mysql, TestDb};
use diesel::prelude::*;

counter_tests::backend_tests!(counter_tests::BlockingClient(counter_tests::Mysql::open()));
counter_tests::blocking_tests!(counter_tests::Mysql);
counter_tests::touch_server_tests!(counter_tests::BlockingClient(counter_tests::Mysql::open()));
counter_tests::decimal_server_tests!(counter_tests::BlockingClient(counter_tests::Mysql::open()));
counter_tests::buffer_server_fault_tests!(counter_tests::BlockingClient(
    counter_tests::Mysql::open()
));

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

/// The `sql_mode`s the mode tests run in: the server's default (strict), with MariaDB's
/// `SIMULTANEOUS_ASSIGNMENT`, and non-strict.
const SQL_MODES: [&str; 3] = [
    "@@sql_mode",
    "CONCAT(@@sql_mode, ',SIMULTANEOUS_ASSIGNMENT')",
    "''",
];

/// A connection of its own in `sql_mode` `mode` (the pool's connections keep theirs).
fn conn_in_mode(mode: &str) -> MysqlConnection {
    let mut conn = MysqlConnection::establish(counter_tests::db::mysql_url()).unwrap();
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        &format!("SET SESSION sql_mode = {mode}"),
    )
    .unwrap();
    conn
}

/// The value capture does not depend on `sql_mode`: the same calls give the same results in
/// the default strict mode, with MariaDB's `SIMULTANEOUS_ASSIGNMENT` (where a second assignment
/// to the column would be refused), and in non-strict mode (where `SET c = LAST_INSERT_ID(c + n)`
/// would write 2147483647 for a negative result), negative values and type extremes included.
#[test]
fn results_do_not_depend_on_sql_mode() {
    use counter_tests::models::{Account, Edge};
    let db = Mysql::open();
    for mode in SQL_MODES {
        let mut conn = conn_in_mode(mode);
        let edge = db.new_edge(-5, -7, i64::MIN + 3, 20);
        assert_eq!(
            Edge::decrement_medium(&mut conn, edge, 10).unwrap(),
            -17,
            "{mode}"
        );
        assert_eq!(
            Edge::increment_small(&mut conn, edge, 2).unwrap(),
            -3,
            "{mode}"
        );
        assert_eq!(
            Edge::decrement_big(&mut conn, edge, 3).unwrap(),
            i64::MIN,
            "{mode}"
        );
        let (current, attempted, limit) = out_of_range(Edge::decrement_big(&mut conn, edge, 1));
        assert_eq!(
            (current, attempted, limit),
            (
                i64::MIN as i128,
                i64::MIN as i128 - 1,
                Limit::Min(i64::MIN as i128)
            )
        );
        assert_eq!(
            Edge::take_floored_up_to(&mut conn, edge, 100).unwrap(),
            15,
            "{mode}"
        );
        assert_eq!(db.edge(edge), (-3, -17, i64::MIN, 5), "{mode}");
        let account = db.new_account(-100);
        assert_eq!(
            Account::take_balance_up_to(&mut conn, account, 1000).unwrap(),
            400,
            "{mode}"
        );
        assert_eq!(
            Account::increment_balance(&mut conn, account, 1).unwrap(),
            -499,
            "{mode}"
        );
        assert_eq!(db.account(account), -499, "{mode}");
        let u = new_unsigned(&db, u32::MAX - 1, u64::MAX - 1);
        assert_eq!(
            UnsignedCounter::increment_u64v(&mut conn, u, 1).unwrap(),
            u64::MAX,
            "{mode}"
        );
        assert_eq!(
            UnsignedCounter::increment_u32v(&mut conn, u, 1).unwrap(),
            u32::MAX,
            "{mode}"
        );
        assert_eq!(unsigned(&db, u), (u32::MAX, u64::MAX), "{mode}");
    }
}

/// Decimal fields do not depend on `sql_mode` either. In non-strict mode MySQL would clip a
/// write past `DECIMAL(4, 2)` to 99.99 and round a third decimal with only a warning; here the
/// range is checked before the statement (`OutOfRange`, row unchanged), every amount has the
/// column's scale by type, and the capture of the new value (an integer count of cents) is
/// the same in every mode.
#[test]
fn decimal_results_do_not_depend_on_sql_mode() {
    use counter_tests::models::{Ledger, Wide};
    use counter_tests::scenarios::m;
    let db = Mysql::open();
    for mode in SQL_MODES {
        let mut conn = conn_in_mode(mode);
        let id = db.new_ledger(m("0.70"));
        assert_eq!(
            Ledger::increment_balance(&mut conn, id, m("0.10")).unwrap(),
            m("0.80"),
            "{mode}"
        );
        assert_eq!(
            Ledger::decrement_balance_if_at_least(&mut conn, id, m("0.80")).unwrap(),
            m("0.00"),
            "{mode}"
        );
        let small = "99.90".parse().unwrap();
        assert_eq!(
            Ledger::increment_small(&mut conn, id, small).unwrap(),
            small
        );
        let (current, attempted, limit) = out_of_range(Ledger::increment_small(
            &mut conn,
            id,
            "0.10".parse().unwrap(),
        ));
        assert_eq!(
            (current, attempted, limit),
            (9_990, 10_000, Limit::Max(9_999)),
            "{mode}"
        );
        assert_eq!(db.ledger(id).2, small, "{mode}");
        let wide = db.new_wide("-9999999999999999.99".parse().unwrap());
        assert_eq!(
            Wide::increment_amount(&mut conn, wide, "0.01".parse().unwrap())
                .unwrap()
                .to_string(),
            "-9999999999999999.98",
            "{mode}"
        );
        let full = db.new_wide("9999999999999999.99".parse().unwrap());
        assert_eq!(
            Wide::take_amount_up_to(&mut conn, full, "1.01".parse().unwrap())
                .unwrap()
                .to_string(),
            "1.01",
            "{mode}"
        );
        assert_eq!(db.wide(full).to_string(), "9999999999999998.98", "{mode}");
    }
}

/// The set operations do not depend on `sql_mode` either: in the default strict mode, with
/// `SIMULTANEOUS_ASSIGNMENT` and in non-strict mode (where a write past a column's type is
/// clamped instead of refused), the same sets give the same values, negative values and type
/// extremes included (signed and unsigned), and a set with a row past a bound changes no row.
#[test]
fn set_operations_do_not_depend_on_sql_mode() {
    use counter_tests::models::{Edge, Product};
    use counter_tests::scenarios::in_row;
    let limit = |error: &AtomicError| match error {
        AtomicError::OutOfRange { limit, .. } => Some(*limit),
        _ => None,
    };
    let db = Mysql::open();
    for mode in SQL_MODES {
        let mut conn = conn_in_mode(mode);
        let (e1, e2) = (
            db.new_edge(-5, -7, i64::MIN + 3, 20),
            db.new_edge(i16::MAX - 1, 0, i64::MAX - 1, 5),
        );
        let medium = Edge::decrement_medium_many(&mut conn, [(e2, 1), (e1, 10)]).unwrap();
        assert_eq!(medium, [(e1, -17), (e2, -1)], "{mode}");
        let big = Edge::decrement_big_many(&mut conn, [(e1, 3), (e2, i64::MAX)]).unwrap();
        assert_eq!(big, [(e1, i64::MIN), (e2, -1)], "{mode}");
        let (key, error) = in_row(Edge::increment_small_many(&mut conn, [(e1, 1), (e2, 2)]));
        assert_eq!(key, format!("{e2:?}"), "{mode}");
        assert_eq!(limit(&error), Some(Limit::Max(i16::MAX.into())), "{mode}");
        let (key, error) = in_row(Edge::decrement_big_many(&mut conn, [(e2, 1), (e1, 1)]));
        assert_eq!(key, format!("{e1:?}"), "{mode}");
        assert_eq!(limit(&error), Some(Limit::Min(i64::MIN.into())), "{mode}");
        assert_eq!(db.edge(e1), (-5, -17, i64::MIN, 20), "{mode}");
        assert_eq!(db.edge(e2), (i16::MAX - 1, -1, -1, 5), "{mode}");

        let (a, b) = (db.new_product(3, 0), db.new_product(10, 0));
        let (key, error) = in_row(Product::decrement_stock_many(&mut conn, [(b, 1), (a, 4)]));
        assert_eq!(key, format!("{a:?}"), "{mode}");
        assert!(
            matches!(
                error,
                AtomicError::OutOfRange {
                    current: 3,
                    attempted: -1,
                    limit: Limit::Min(0)
                }
            ),
            "{mode}: {error:?}"
        );
        let cart = [(b, 10), (a, 3)];
        let taken = Product::decrement_stock_if_at_least_many(&mut conn, cart).unwrap();
        assert_eq!(taken, [(a, 0), (b, 0)], "{mode}");
        assert_eq!((db.product(a), db.product(b)), ((0, 0), (0, 0)), "{mode}");

        let (u, v) = (
            new_unsigned(&db, u32::MAX - 1, u64::MAX - 1),
            new_unsigned(&db, 1, 1),
        );
        let up = UnsignedCounter::increment_u64v_many(&mut conn, [(v, 2), (u, 1)]).unwrap();
        assert_eq!(up, [(u, u64::MAX), (v, 3)], "{mode}");
        let (key, error) = in_row(UnsignedCounter::increment_u32v_many(
            &mut conn,
            [(u, 2), (v, 1)],
        ));
        assert_eq!(key, format!("{u:?}"), "{mode}");
        assert_eq!(limit(&error), Some(Limit::Max(u32::MAX.into())), "{mode}");
        let (key, error) = in_row(UnsignedCounter::decrement_u32v_many(
            &mut conn,
            [(u, 1), (v, 2)],
        ));
        assert_eq!(key, format!("{v:?}"), "{mode}");
        assert!(
            matches!(
                error,
                AtomicError::OutOfRange {
                    current: 1,
                    attempted: -1,
                    limit: Limit::Min(0)
                }
            ),
            "{mode}: {error:?}"
        );
        assert_eq!(
            (unsigned(&db, u), unsigned(&db, v)),
            ((u32::MAX - 1, u64::MAX), (1, 3)),
            "{mode}"
        );
    }
}

/// The flusher's connection is killed by the server in the middle of a flush (`KILL` while
/// the flush waits for a row lock another transaction holds): that flush fails and keeps its
/// counts, and the next one, on a connection the pool replaced (r2d2 tests connections on
/// check-out by default), writes them exactly once.
#[test]
fn buffer_survives_a_flusher_connection_killed_mid_flush() {
    use counter_core::FlushPolicy;
    use counter_tests::scenarios::daily_views_buffer;
    use diesel::connection::TransactionManager;
    use diesel::r2d2::{ConnectionManager, Pool};

    let db = Mysql::open(); // the tables
    let pool = Pool::builder()
        .max_size(1)
        .build(ConnectionManager::<MysqlConnection>::new(
            counter_tests::db::mysql_url(),
        ))
        .expect("the flusher's pool");
    let page = next_id();
    let buffer = daily_views_buffer(pool.clone(), FlushPolicy::MANUAL);
    buffer.add((page, 1), 5).unwrap();
    assert_eq!(buffer.flush().unwrap().written, 1);
    // The pool's one connection is the flusher's.
    let victim = connection_id(&mut pool.get().unwrap());

    // Hold the row, so the next flush waits inside its transaction.
    let mut blocker = db.conn();
    <MysqlConnection as Connection>::TransactionManager::begin_transaction(&mut *blocker).unwrap();
    diesel::sql_query(format!(
        "SELECT views FROM ct_daily_views WHERE page_id = {page} AND day = 1 FOR UPDATE"
    ))
    .execute(&mut *blocker)
    .unwrap();
    buffer.add((page, 1), 2).unwrap();
    buffer.add((page, 2), 3).unwrap();
    let failed = std::thread::scope(|scope| {
        let flush = scope.spawn(|| buffer.flush());
        if !kill_when_waiting_for_a_lock(&db, victim, || flush.is_finished()) {
            panic!(
                "the flush never waited for the held row: it returned {:?}",
                flush.join().unwrap()
            );
        }
        flush.join().unwrap()
    });
    <MysqlConnection as Connection>::TransactionManager::rollback_transaction(&mut *blocker)
        .unwrap();
    let error = failed.unwrap_err();
    assert_eq!(buffer.pending(), 5, "kept after {error}");
    assert_eq!(buffer.flush().unwrap().written, 2);
    assert_eq!(db.daily_views(&[page]), vec![(page, 1, 7), (page, 2, 3)]);
}

/// Runs `call` on a connection whose lock waits time out after 1 s while another transaction
/// holds the rows `hold` selects `FOR UPDATE`: it must fail as a `Conflict` after one attempt.
/// Then, the rows released, runs `call` again on the same connection, on a thread so that a
/// hang fails the test, and returns what it returned.
fn timed_out_then_again<T: Send + 'static>(
    db: &Mysql,
    hold: &str,
    call: impl Fn(&mut MysqlConnection) -> Result<T, AtomicError> + Send + 'static,
) -> Result<T, AtomicError> {
    use diesel::connection::TransactionManager;

    let mut victim = MysqlConnection::establish(counter_tests::db::mysql_url()).unwrap();
    diesel::sql_query("SET SESSION innodb_lock_wait_timeout = 1")
        .execute(&mut victim)
        .unwrap();
    let mut blocker = db.conn();
    <MysqlConnection as Connection>::TransactionManager::begin_transaction(&mut *blocker).unwrap();
    diesel::sql_query(format!("{hold} FOR UPDATE"))
        .execute(&mut *blocker)
        .unwrap();
    match call(&mut victim) {
        Err(AtomicError::Conflict { attempts: 1, .. }) => {}
        Err(other) => panic!("behind a locked row: {other}"),
        Ok(_) => panic!("behind a locked row: Ok"),
    }
    <MysqlConnection as Connection>::TransactionManager::rollback_transaction(&mut *blocker)
        .unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(call(&mut victim));
    });
    receiver
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the second call on the connection hung")
}

/// MariaDB Connector/C keeps a prepared statement whose error arrived after its result set
/// began (a locking read of several rows that times out on its second row) in a state where
/// executing it again waits forever for rows the server never sends. A compaction locks every
/// slot of a key in one such read, so after a compaction failed that way the next one on the
/// same connection must still run (this hang stopped CI for 90 minutes).
#[test]
fn a_compaction_that_timed_out_on_a_slot_leaves_the_connection_working() {
    use counter_core::{RetryPolicy, SlottedField};
    use counter_tests::models::Article;
    use counter_tests::schema::ct_articles;

    let db = Mysql::open();
    let id = next_id();
    diesel::sql_query(format!(
        "INSERT INTO ct_article_view_slots (id, slot, count) VALUES ({id}, 0, 1), ({id}, 1, 2)"
    ))
    .execute(&mut *db.conn())
    .unwrap();
    let compact = SlottedField::<Article, ct_articles::views>::new().retry(RetryPolicy::NEVER);
    let hold = format!("SELECT count FROM ct_article_view_slots WHERE id = {id} AND slot = 1");
    let again = timed_out_then_again(&db, &hold, move |c| compact.compact(c, id));
    assert_eq!(again.unwrap(), 3);
    assert_eq!(db.view_slots(id), vec![(0, 3)]);
}

/// The same for the one-row locking read of `update_locked`, `take_up_to` and transfers.
#[test]
fn an_update_locked_that_timed_out_leaves_the_connection_working() {
    use counter_core::RetryPolicy;
    use counter_tests::models::Product;

    let db = Mysql::open();
    let id = db.new_product(10, 0);
    let stock = Product::atomic_stock().retry(RetryPolicy::NEVER);
    let hold = format!("SELECT stock FROM ct_products WHERE id = {id}");
    let again = timed_out_then_again(&db, &hold, move |c| {
        stock.update_locked(c, id, |s| Ok(s - 4))
    });
    assert_eq!(again.unwrap(), 6);
    assert_eq!(db.product(id), (6, 0));
}

/// A Redis counter's flush whose connection is killed (`KILL`) while its transaction waits for
/// a row lock: nothing of the batch is written, and the next flush writes it exactly once.
#[test]
fn redis_flush_killed_mid_transaction() {
    let mut flusher = MysqlConnection::establish(counter_tests::db::mysql_url()).unwrap();
    let victim = connection_id(&mut flusher);
    counter_tests::scenarios::redis_flush_killed_mid_transaction::<Mysql>(
        flusher,
        |page, day| {
            format!("SELECT views FROM ct_daily_views WHERE page_id = {page} AND day = {day} FOR UPDATE")
        },
        move |db: &Mysql| assert!(kill_when_waiting_for_a_lock(db, victim, || false)),
    );
}

/// See `scenarios::redis_flush_keeps_a_key_its_row_refuses`; the refusal is a `CHECK`
/// constraint for this test's page only, dropped after.
#[test]
fn redis_flush_keeps_a_key_a_check_refuses_and_writes_the_others() {
    counter_tests::scenarios::redis_flush_keeps_a_key_its_row_refuses::<Mysql>(|page| {
        (
            format!(
                "ALTER TABLE ct_daily_views ADD CONSTRAINT ct_closed_{page}
                 CHECK (page_id <> {page} OR day <> 2 OR views = 0)"
            ),
            format!("ALTER TABLE ct_daily_views DROP CONSTRAINT ct_closed_{page}"),
        )
    });
}

/// See `scenarios::redis_flush_keeps_a_key_its_row_refuses`; the refusal is a trigger that
/// signals an error.
#[test]
fn redis_flush_keeps_a_key_its_row_refuses_and_writes_the_others() {
    counter_tests::scenarios::redis_flush_keeps_a_key_its_row_refuses::<Mysql>(|page| {
        (
            format!(
                "CREATE TRIGGER ct_refuse_{page} BEFORE UPDATE ON ct_daily_views FOR EACH ROW
                 BEGIN IF NEW.page_id = {page} AND NEW.day = 2 THEN
                 SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'day 2 is closed'; END IF; END"
            ),
            format!("DROP TRIGGER ct_refuse_{page}"),
        )
    });
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// The server's id of `conn`'s session, for `KILL`.
fn connection_id(conn: &mut MysqlConnection) -> i64 {
    diesel::sql_query("SELECT CAST(CONNECTION_ID() AS SIGNED) AS id")
        .get_result::<Id>(conn)
        .unwrap()
        .id
}

/// Waits until session `victim`'s transaction waits for a row lock (InnoDB's `LOCK WAIT`,
/// whatever statement waits: an `UPDATE`, a `SELECT … FOR UPDATE`, a multi-row upsert; the
/// flushes under test take row locks only after their transaction began, and the held row
/// makes one of them wait), then kills the session and returns `true`; `false` when `gone()`
/// (the caller's statement ended without waiting) before that.
fn kill_when_waiting_for_a_lock(db: &Mysql, victim: i64, gone: impl Fn() -> bool) -> bool {
    let mut watcher = db.conn();
    loop {
        if gone() {
            return false;
        }
        // Paced: InnoDB refreshes `innodb_trx` only when nobody read it for 100 ms.
        let waiting: Vec<Id> = counter_tests::db::information_schema_read(|| {
            diesel::sql_query(format!(
                "SELECT CAST(trx_mysql_thread_id AS SIGNED) AS id \
                 FROM information_schema.innodb_trx \
                 WHERE trx_mysql_thread_id = {victim} AND trx_state = 'LOCK WAIT'"
            ))
            .load(&mut *watcher)
            .unwrap()
        });
        if !waiting.is_empty() {
            break;
        }
    }
    diesel::sql_query(format!("KILL {victim}"))
        .execute(&mut *watcher)
        .unwrap();
    true
}

/// A ledger whose key column folds case and trailing spaces (`utf8mb4_general_ci`, not the
/// documented binary collation): a second key that the column takes for the first is refused
/// with an error naming both, and nothing of its call runs, instead of answering with the
/// first key's outcome.
#[test]
fn a_ledger_that_folds_keys_refuses_the_second_spelling() {
    use counter_core::Idempotent;
    let db = Mysql::open();
    diesel::sql_query(
        "CREATE TABLE IF NOT EXISTS counter_idempotency_ci (op_key VARCHAR(200) CHARACTER SET \
         utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY, request TEXT NOT NULL, outcome TEXT \
         NOT NULL, done_at BIGINT NOT NULL) ENGINE = InnoDB",
    )
    .execute(&mut *db.conn())
    .unwrap();
    let id = db.new_product(10, 0);
    let key = format!("Order-{}", next_id());
    let conn = &mut *db.conn();
    let sell = |c: &mut MysqlConnection| {
        counter_tests::models::Product::decrement_stock_if_at_least(c, id, 1)
    };
    fn once(key: &str) -> Idempotent<'_> {
        Idempotent::key(key).ledger_table("counter_idempotency_ci")
    }
    assert_eq!(once(&key).run(conn, sell).unwrap(), 9);
    for folded in [key.to_lowercase(), format!("{key} ")] {
        match once(&folded).run(conn, sell) {
            Err(AtomicError::Custom(error)) => {
                let message = error.to_string();
                assert!(message.contains(&format!("{key:?}")), "{message}");
            }
            other => panic!("{folded:?}: expected the ledger's refusal, got {other:?}"),
        }
    }
    assert_eq!(db.product(id), (9, 0));

    // A key column too short for the key: `INSERT IGNORE` stores it cut short with a warning.
    // The call is rolled back with the ledger's error, not committed with an outcome no retry
    // could find.
    diesel::sql_query(
        "CREATE TABLE IF NOT EXISTS counter_idempotency_short (op_key VARCHAR(24) CHARACTER SET \
         utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, request TEXT NOT NULL, outcome TEXT NOT NULL, \
         done_at BIGINT NOT NULL) ENGINE = InnoDB",
    )
    .execute(conn)
    .unwrap();
    let long = format!("a-key-longer-than-its-column-{}", next_id());
    let short = Idempotent::key(&long).ledger_table("counter_idempotency_short");
    for _ in 0..2 {
        match short.run(conn, sell) {
            Err(AtomicError::Custom(error)) => {
                assert!(error.to_string().contains("did not keep key"), "{error}")
            }
            other => panic!("expected the ledger's refusal, got {other:?}"),
        }
    }
    assert_eq!(db.product(id), (9, 0));
}
