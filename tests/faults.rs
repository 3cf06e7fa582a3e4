//! Fault tests: the database pushes back (serialization failures, lock wait timeouts, a busy
//! SQLite file, a connection killed while it holds a row lock, every connection killed during
//! a run) and each call still ends in a typed result with the row exactly where the successful
//! calls put it.
//!
//! Every test prints what the library returned (`cargo test --test faults -- --nocapture`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use counter_core::{AtomicError, AtomicField, AtomicFieldOn, LockMode, RetryPolicy};
use counter_tests::db::DbOf;
use counter_tests::db::{mysql_url, pg_url};
use counter_tests::models::Product;
use counter_tests::schema::ct_products;
use counter_tests::{Mysql, Postgres, Sqlite, TestDb};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Error as R2d2Error, Pool};
use diesel::sql_types::{BigInt, Bool, Integer, Unsigned};

/// The same table as `Product`, with the model-level retry setting at its minimum: proves that
/// `#[atomic(retries = ..)]` reaches the runtime.
#[derive(AtomicField)]
#[diesel(table_name = ct_products)]
#[atomic(retries = 1)]
#[allow(dead_code)]
struct ImpatientProduct {
    id: i64,
    #[atomic]
    sold: i64,
}

/// The server-side ids of every connection a pool opened, so a test can kill exactly its own
/// connections and never those of tests running beside it.
#[derive(Debug, Clone, Default)]
struct ConnectionIds(Arc<Mutex<Vec<u64>>>);

impl ConnectionIds {
    fn all(&self) -> Vec<u64> {
        self.0.lock().unwrap().clone()
    }
}

impl CustomizeConnection<PgConnection, R2d2Error> for ConnectionIds {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), R2d2Error> {
        let pid = pg_backend_pid(conn);
        self.0.lock().unwrap().push(pid as u64);
        Ok(())
    }
}

impl CustomizeConnection<MysqlConnection, R2d2Error> for ConnectionIds {
    fn on_acquire(&self, conn: &mut MysqlConnection) -> Result<(), R2d2Error> {
        let id = diesel::select(diesel::dsl::sql::<Unsigned<BigInt>>("CONNECTION_ID()"))
            .get_result(conn)
            .map_err(R2d2Error::QueryError)?;
        self.0.lock().unwrap().push(id);
        Ok(())
    }
}

/// A pool of 4 on `url` whose connections are recorded in `ids`.
fn recorded_pool<C>(url: &str, ids: &ConnectionIds) -> Pool<ConnectionManager<C>>
where
    C: diesel::r2d2::R2D2Connection + Send + 'static,
    ConnectionIds: CustomizeConnection<C, R2d2Error>,
{
    Pool::builder()
        .max_size(4)
        .connection_customizer(Box::new(ids.clone()))
        .build(ConnectionManager::new(url))
        .unwrap()
}

/// Polls `condition` every 10 ms for up to 10 s; panics with `what` when it never holds.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pg_backend_pid(conn: &mut PgConnection) -> i32 {
    diesel::select(diesel::dsl::sql::<Integer>("pg_backend_pid()"))
        .get_result(conn)
        .unwrap()
}

/// Is PostgreSQL backend `pid` waiting for a lock?
fn pg_waits_for_lock(admin: &mut PgConnection, pid: i32) -> bool {
    diesel::select(diesel::dsl::sql::<Bool>(&format!(
        "EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {pid} AND wait_event_type = 'Lock')"
    )))
    .get_result(admin)
    .unwrap()
}

fn pg_backend_alive(admin: &mut PgConnection, pid: i32) -> bool {
    diesel::select(diesel::dsl::sql::<Bool>(&format!(
        "EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {pid})"
    )))
    .get_result(admin)
    .unwrap()
}

/// Runs `victim` (an increment of `sold` by 1 on a REPEATABLE READ session) while another
/// transaction holds the row, then commits `sold = sold + 100` under it: the victim's UPDATE
/// waits, wakes on a row version newer than its snapshot, and gets SQLSTATE 40001.
fn pg_serialization_failure<T: Send>(
    id: i64,
    victim: impl FnOnce(&mut PgConnection) -> T + Send,
) -> T {
    let mut holder = PgConnection::establish(pg_url()).unwrap();
    let mut admin = PgConnection::establish(pg_url()).unwrap();
    let mut session = PgConnection::establish(pg_url()).unwrap();
    session
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    let pid = pg_backend_pid(&mut session);
    std::thread::scope(|s| {
        holder.batch_execute("BEGIN").unwrap();
        diesel::sql_query(Postgres::lock_product_sql(id))
            .execute(&mut holder)
            .unwrap();
        let waiting = s.spawn(move || victim(&mut session));
        wait_until("the victim waits for the row lock", || {
            pg_waits_for_lock(&mut admin, pid)
        });
        diesel::update(ct_products::table.find(id))
            .set(ct_products::sold.eq(ct_products::sold + 100))
            .execute(&mut holder)
            .unwrap();
        holder.batch_execute("COMMIT").unwrap();
        waiting.join().unwrap()
    })
}

#[test]
fn pg_serialization_failure_is_retried_by_default() {
    let db = Postgres::open();
    let id = db.new_product(10, 0);
    let result = pg_serialization_failure(id, |c| Product::increment_sold(c, id, 1));
    eprintln!("PostgreSQL 40001, default policy: {result:?}");
    assert_eq!(result.unwrap(), 101);
    assert_eq!(db.product(id), (10, 101));
}

#[test]
fn pg_serialization_failure_without_retries_is_conflict() {
    let db = Postgres::open();
    let id = db.new_product(10, 0);
    let result = pg_serialization_failure(id, |c| {
        Product::atomic_sold()
            .retry(RetryPolicy::NEVER)
            .increment(c, id, 1)
    });
    eprintln!("PostgreSQL 40001, RetryPolicy::NEVER: {result:?}");
    match result {
        Err(AtomicError::Conflict {
            attempts: 1,
            source,
        }) => assert!(matches!(
            source,
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::SerializationFailure,
                _
            )
        )),
        other => panic!("expected Conflict {{ attempts: 1 }}, got {other:?}"),
    }
    assert_eq!(
        db.product(id),
        (10, 100),
        "the failed increment wrote nothing"
    );
}

#[test]
fn model_level_retries_attribute_is_honoured() {
    let db = Postgres::open();
    let id = db.new_product(10, 0);
    let result = pg_serialization_failure(id, |c| ImpatientProduct::increment_sold(c, id, 1));
    eprintln!("PostgreSQL 40001, #[atomic(retries = 1)]: {result:?}");
    assert!(
        matches!(result, Err(AtomicError::Conflict { attempts: 1, .. })),
        "{result:?}"
    );
    assert_eq!(db.product(id), (10, 100));
}

/// Inside the caller's REPEATABLE READ transaction the library cannot re-run the caller's
/// work: it returns `Conflict` at once, for the caller's own retry loop.
#[test]
fn pg_conflict_inside_the_callers_transaction_is_not_retried() {
    let db = Postgres::open();
    let id = db.new_product(10, 0);
    let mut caller = db.conn();
    let mut other = db.conn();
    let result: Result<i64, AtomicError> = caller.build_transaction().repeatable_read().run(|c| {
        assert_eq!(
            ct_products::table
                .find(id)
                .select(ct_products::sold)
                .first::<i64>(c)?,
            0
        );
        diesel::update(ct_products::table.find(id))
            .set(ct_products::sold.eq(ct_products::sold + 100))
            .execute(&mut other)?;
        Product::increment_sold(c, id, 1)
    });
    eprintln!("PostgreSQL 40001 inside the caller's transaction: {result:?}");
    assert!(
        matches!(result, Err(AtomicError::Conflict { attempts: 1, .. })),
        "{result:?}"
    );
    assert_eq!(db.product(id), (10, 100));
}

/// While `update_stock_locked` holds the row lock, another session kills the connection
/// (`server_id` names it to the server, `kill` kills it): the call returns a database error
/// after running its closure once, the row keeps its old value, and the pool hands out a
/// working connection next.
fn killed_while_holding_the_row_lock<B: TestDb>(
    server_id: impl FnOnce(&mut B::Conn) -> u64,
    mut kill: impl FnMut(u64),
) where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(10, 0);
    let mut victim = db.conn();
    let victim_id = server_id(&mut victim);
    let mut runs = 0;
    let result = Product::update_stock_locked(&mut victim, id, |stock| {
        runs += 1;
        kill(victim_id);
        Ok(stock + 5)
    });
    eprintln!(
        "{}: connection killed inside update_locked: {result:?}",
        B::NAME
    );
    assert!(
        matches!(result, Err(AtomicError::Database(_))),
        "{result:?}"
    );
    assert_eq!(runs, 1, "a lost connection is not retried");
    drop(victim);
    assert_eq!(db.product(id), (10, 0));
    let mut fresh = db.conn();
    assert_eq!(Product::increment_stock(&mut fresh, id, 1).unwrap(), 11);
}

#[test]
fn pg_connection_killed_while_holding_the_row_lock() {
    let mut admin = PgConnection::establish(pg_url()).unwrap();
    killed_while_holding_the_row_lock::<Postgres>(
        |conn| pg_backend_pid(conn) as u64,
        |pid| {
            diesel::select(diesel::dsl::sql::<Bool>(&format!(
                "pg_terminate_backend({pid})"
            )))
            .get_result::<bool>(&mut admin)
            .unwrap();
            wait_until("the backend is gone", || {
                !pg_backend_alive(&mut admin, pid as i32)
            });
        },
    );
}

#[test]
fn mysql_connection_killed_while_holding_the_row_lock() {
    let mut admin = MysqlConnection::establish(mysql_url()).unwrap();
    killed_while_holding_the_row_lock::<Mysql>(
        |conn| {
            diesel::select(diesel::dsl::sql::<Unsigned<BigInt>>("CONNECTION_ID()"))
                .get_result(conn)
                .unwrap()
        },
        |id| admin.batch_execute(&format!("KILL {id}")).unwrap(),
    );
}

/// MySQL 1205 (lock wait timeout) is transient: with a 1 s `innodb_lock_wait_timeout` and the
/// row held for 2.5 s, the default policy waits again and succeeds; `NEVER` gives `Conflict`.
#[test]
fn mysql_lock_wait_timeout_is_retried() {
    let db = Mysql::open();
    let id = db.new_product(10, 0);
    for (policy, expect_ok) in [(RetryPolicy::DEFAULT, true), (RetryPolicy::NEVER, false)] {
        let mut holder = MysqlConnection::establish(mysql_url()).unwrap();
        let mut victim = MysqlConnection::establish(mysql_url()).unwrap();
        victim
            .batch_execute("SET SESSION innodb_lock_wait_timeout = 1")
            .unwrap();
        let locked = AtomicBool::new(false);
        let before = db.product(id).0;
        let result = std::thread::scope(|s| {
            s.spawn(|| {
                holder
                    .transaction::<_, diesel::result::Error, _>(|h| {
                        diesel::sql_query(Mysql::lock_product_sql(id)).execute(h)?;
                        locked.store(true, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2500));
                        Ok(())
                    })
                    .unwrap()
            });
            wait_until("the holder has the row", || locked.load(Ordering::SeqCst));
            Product::atomic_stock()
                .retry(policy)
                .update_locked(&mut victim, id, |v| Ok(v + 1))
        });
        eprintln!("MySQL 1205 with {policy:?}: {result:?}");
        if expect_ok {
            assert_eq!(result.unwrap(), before + 1);
        } else {
            match result {
                Err(AtomicError::Conflict {
                    attempts: 1,
                    source,
                }) => {
                    assert!(source.to_string().contains("Lock wait timeout"), "{source}")
                }
                other => panic!("expected Conflict {{ attempts: 1 }}, got {other:?}"),
            }
        }
    }
    assert_eq!(db.product(id).0, 11);
}

/// A row held until the call returns, a victim whose lock waits time out after 1 s (the
/// server's setting) and a policy whose `busy_timeout` is 2 s: the call runs again while less
/// than 2 s have passed since its first timeout, then returns `Conflict`, the row unchanged.
/// (A lock timeout used to count as a conflict like any other: up to 64 attempts, so this call
/// waited out the holder; at MariaDB's default 50 s timeout, for 53 minutes.)
fn lock_timeouts_stop_at_the_busy_timeout<B: TestDb>(mut victim: B::Conn, message: &str)
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let id = db.new_product(10, 0);
    let (locked, done) = (AtomicBool::new(false), AtomicBool::new(false));
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            let mut holder = db.conn();
            holder
                .transaction::<_, diesel::result::Error, _>(|h| {
                    h.batch_execute(&B::lock_product_sql(id))?;
                    locked.store(true, Ordering::SeqCst);
                    // Until the victim gave up (or 30 s: then it retried far too long).
                    let since = Instant::now();
                    while !done.load(Ordering::SeqCst) && since.elapsed() < Duration::from_secs(30)
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Ok(())
                })
                .unwrap()
        });
        wait_until("the holder has the row", || locked.load(Ordering::SeqCst));
        let result = Product::atomic_stock()
            .retry(RetryPolicy::DEFAULT.with_busy_timeout(Duration::from_secs(2)))
            .update_locked(&mut victim, id, |v| Ok(v + 1));
        done.store(true, Ordering::SeqCst);
        result
    });
    eprintln!(
        "{}: lock timeouts with a 2 s busy_timeout: {result:?}",
        B::NAME
    );
    match result {
        Err(AtomicError::Conflict { attempts, source }) => {
            assert!((2..=4).contains(&attempts), "{attempts} attempts");
            assert!(source.to_string().contains(message), "{source}");
        }
        other => panic!("expected Conflict after 2 to 4 lock timeouts, got {other:?}"),
    }
    assert_eq!(db.product(id).0, 10);
}

#[test]
fn mysql_lock_wait_timeouts_stop_at_the_busy_timeout() {
    let mut victim = MysqlConnection::establish(mysql_url()).unwrap();
    victim
        .batch_execute("SET SESSION innodb_lock_wait_timeout = 1")
        .unwrap();
    lock_timeouts_stop_at_the_busy_timeout::<Mysql>(victim, "Lock wait timeout");
}

#[test]
fn pg_lock_timeouts_stop_at_the_busy_timeout() {
    let mut victim = PgConnection::establish(pg_url()).unwrap();
    victim.batch_execute("SET lock_timeout = '1s'").unwrap();
    lock_timeouts_stop_at_the_busy_timeout::<Postgres>(victim, "lock timeout");
}

/// A pooled connection of `C`, as the library takes it.
type PooledOf<C> = diesel::r2d2::PooledConnection<ConnectionManager<C>>;

/// 4 threads increment `sold` of row `id` through `pool` while `kill_all` kills every
/// connection of the pool, 25 times, 40 ms apart: what a server restart does to a pool. Then
/// each thread makes 10 more calls, which must all succeed: the pool recovers. Returns
/// `(Ok calls, Database errors)`; any other error fails the test.
fn increments_while_connections_die<C>(
    pool: &Pool<ConnectionManager<C>>,
    id: i64,
    mut kill_all: impl FnMut(),
) -> (u64, u64)
where
    C: diesel::r2d2::R2D2Connection + Send + 'static,
    PooledOf<C>: counter_core::BlockingConnection,
    Product: AtomicFieldOn<ct_products::sold, counter_core::BackendOf<PooledOf<C>>>,
{
    let ok = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(mut conn) = pool.get() else {
                        continue;
                    };
                    match Product::increment_sold(&mut conn, id, 1) {
                        Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                        Err(AtomicError::Database(_)) => failed.fetch_add(1, Ordering::SeqCst),
                        Err(other) => panic!("unexpected error: {other:?}"),
                    };
                }
            });
        }
        for _ in 0..25 {
            std::thread::sleep(Duration::from_millis(40));
            kill_all();
        }
        stop.store(true, Ordering::SeqCst);
    });
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut conn = pool.get().unwrap();
                for _ in 0..10 {
                    Product::increment_sold(&mut conn, id, 1).unwrap();
                    ok.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (ok.into_inner(), failed.into_inner())
}

/// PostgreSQL: every call returns Ok or an error, and the row ends at exactly the number of Ok
/// calls (a terminated backend never commits a statement whose answer it did not send).
#[test]
fn pg_all_backends_terminated_during_an_increment_run() {
    let db = Postgres::open();
    let id = db.new_product(0, 0);
    let mut admin = PgConnection::establish(pg_url()).unwrap();
    let ids = ConnectionIds::default();
    let pool = recorded_pool::<PgConnection>(pg_url(), &ids);
    let (ok, failed) = increments_while_connections_die(&pool, id, || {
        for pid in ids.all() {
            diesel::select(diesel::dsl::sql::<Bool>(&format!(
                "pg_terminate_backend({pid})"
            )))
            .get_result::<bool>(&mut admin)
            .unwrap();
        }
    });
    eprintln!("PostgreSQL backends terminated 25 times: {ok} Ok, {failed} Database errors");
    assert!(failed > 0, "the terminations hit no call");
    assert_eq!(db.product(id).1, ok as i64);
}

/// SQLite: a caller's transaction that cannot get the write lock gets `Conflict` at once
/// (only the caller can re-run its transaction); outside a transaction the same call waits
/// for the lock (no busy timeout set anywhere) and succeeds.
#[test]
fn sqlite_busy_inside_and_outside_the_callers_transaction() {
    let db = Sqlite::open();
    let id = db.new_product(10, 0);
    let mut holder = db.conn();
    let mut caller = db.conn();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    let inside: Result<i64, AtomicError> =
        caller.transaction(|c| Product::increment_sold(c, id, 1));
    eprintln!("SQLite busy inside the caller's transaction: {inside:?}");
    assert!(
        matches!(inside, Err(AtomicError::Conflict { attempts: 1, .. })),
        "{inside:?}"
    );
    let released = AtomicUsize::new(0);
    let outside = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            holder.batch_execute("COMMIT").unwrap();
            released.store(1, Ordering::SeqCst);
        });
        Product::increment_sold(&mut caller, id, 1)
    });
    eprintln!("SQLite busy outside a transaction: {outside:?}");
    assert_eq!(
        released.load(Ordering::SeqCst),
        1,
        "the call returned before the lock was free"
    );
    assert_eq!(outside.unwrap(), 1);
    assert_eq!(db.product(id), (10, 1));
}

/// MySQL under the same treatment (`KILL` of every connection of the pool, 25 times). MySQL reads the
/// new value back in a second round trip, so a connection killed between the `UPDATE` and the
/// `SELECT LAST_INSERT_ID()` loses the answer of a committed change: the outcome of a call that
/// failed with a lost connection is unknown (documented on `AtomicError::Database`). So the row
/// is at least the Ok count and at most the Ok count plus the lost-connection errors, and every
/// Ok is in it.
#[test]
fn mysql_all_connections_killed_during_an_increment_run() {
    let db = Mysql::open();
    let id = db.new_product(0, 0);
    let mut admin = MysqlConnection::establish(mysql_url()).unwrap();
    let ids = ConnectionIds::default();
    let pool = recorded_pool::<MysqlConnection>(mysql_url(), &ids);
    let (ok, failed) = increments_while_connections_die(&pool, id, || {
        for id in ids.all() {
            // Killed before: "Unknown thread id" is expected and harmless.
            let _ = admin.batch_execute(&format!("KILL {id}"));
        }
    });
    let row = db.product(id).1 as u64;
    eprintln!(
        "MySQL connections killed 25 times: {ok} Ok, {failed} Database errors, row {row} \
         ({} failed calls had committed)",
        row - ok
    );
    assert!(failed > 0, "the kills hit no call");
    assert!(
        row >= ok && row <= ok + failed,
        "row {row}, Ok {ok}, errors {failed}"
    );
}

/// `SKIP LOCKED`: with row `a` held by another transaction, `update_first_unlocked([a, b])`
/// changes `b`; a single-row `SkipLocked` call on `a` is `Locked` without a database error (the
/// caller's transaction goes on); every row held is `Locked`; no row at all is `NotFound`.
fn skip_locked_picks_the_first_free_row<B: TestDb>()
where
    Product: AtomicFieldOn<ct_products::stock, DbOf<B>>,
{
    let db = B::open();
    let (a, b) = (db.new_product(10, 0), db.new_product(20, 0));
    let missing = counter_tests::next_id();
    let mut holder = db.conn();
    let mut conn = db.conn();
    let stock = Product::atomic_stock();
    holder
        .transaction::<_, diesel::result::Error, _>(|h| {
            h.batch_execute(&B::lock_product_sql(a))?;
            let picked = stock.update_first_unlocked(&mut conn, &[a, b], |v| Ok(v - 1));
            eprintln!(
                "{}: update_first_unlocked with {a} held: {picked:?}",
                B::NAME
            );
            assert_eq!(picked.unwrap(), (b, 19));
            let inside: Result<i32, AtomicError> = conn.transaction(|c| {
                let skipped = stock
                    .lock(LockMode::SkipLocked)
                    .update_locked(c, a, |v| Ok(v - 1));
                eprintln!("{}: SkipLocked on the held row: {skipped:?}", B::NAME);
                assert!(matches!(skipped, Err(AtomicError::Locked)), "{skipped:?}");
                // The caller's transaction is still usable.
                Product::increment_stock(c, b, 1)
            });
            assert_eq!(inside.unwrap(), 20);
            let all_held = stock.update_first_unlocked(&mut conn, &[a, missing], |v| Ok(v - 1));
            assert!(matches!(all_held, Err(AtomicError::Locked)), "{all_held:?}");
            Ok(())
        })
        .unwrap();
    let none = stock.update_first_unlocked(&mut conn, &[missing], |v| Ok(v - 1));
    assert!(matches!(none, Err(AtomicError::NotFound)), "{none:?}");
    assert_eq!((db.product(a), db.product(b)), ((10, 0), (20, 0)));
}

#[test]
fn pg_skip_locked_picks_the_first_free_row() {
    skip_locked_picks_the_first_free_row::<Postgres>();
}

#[test]
fn mysql_skip_locked_picks_the_first_free_row() {
    skip_locked_picks_the_first_free_row::<Mysql>();
}

/// SQLite locks the whole database: `SkipLocked` is a typed `Unsupported`, not an SQL error.
#[test]
fn sqlite_skip_locked_is_unsupported() {
    let db = Sqlite::open();
    let id = db.new_product(10, 0);
    let mut conn = db.conn();
    let stock = Product::atomic_stock();
    let single = stock
        .lock(LockMode::SkipLocked)
        .update_locked(&mut conn, id, |v| Ok(v - 1));
    let first = stock.update_first_unlocked(&mut conn, &[id], |v| Ok(v - 1));
    eprintln!("SQLite SkipLocked: {single:?}; update_first_unlocked: {first:?}");
    assert!(
        matches!(
            single,
            Err(AtomicError::Unsupported {
                backend: "SQLite",
                ..
            })
        ),
        "{single:?}"
    );
    assert!(
        matches!(
            first,
            Err(AtomicError::Unsupported {
                backend: "SQLite",
                ..
            })
        ),
        "{first:?}"
    );
    assert_eq!(db.product(id), (10, 0));
}
