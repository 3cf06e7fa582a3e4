//! The scenarios on PostgreSQL (`COUNTER_PG_URL`, else a testcontainers container), plus a
//! foreign writer (the real `pgbench`) on the same row and the isolation-level check for the
//! SERIALIZABLE run of `.ci/run`.

use counter_tests::db::{pg_serializable, pg_url};
use counter_tests::pgbench;
use counter_tests::scenarios::THREADS;
use counter_tests::{BlockingClient, Client, Postgres, TestDb};
use diesel::prelude::*;

counter_tests::backend_tests!(counter_tests::BlockingClient(
    counter_tests::Postgres::open()
));
counter_tests::blocking_tests!(counter_tests::Postgres);
counter_tests::buffer_server_fault_tests!(counter_tests::BlockingClient(
    counter_tests::Postgres::open()
));
counter_tests::touch_server_tests!(counter_tests::BlockingClient(
    counter_tests::Postgres::open()
));
counter_tests::decimal_server_tests!(counter_tests::BlockingClient(
    counter_tests::Postgres::open()
));

#[derive(QueryableByName)]
struct Isolation {
    #[diesel(sql_type = diesel::sql_types::Text)]
    setting: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    source: String,
}

/// The `options` of the URL reach the server, and only they: under `.ci/run`'s second
/// PostgreSQL run every pooled connection reports `serializable`, set by the client; in the
/// first run the level comes from the server's own configuration, not from the client.
#[test]
fn isolation_level_of_the_url_reaches_the_server() {
    let db = Postgres::open();
    let mut conns: Vec<_> = (0..THREADS).map(|_| db.conn()).collect();
    let levels: Vec<(String, String)> = conns
        .iter_mut()
        .map(|conn| {
            let row = diesel::sql_query(
                "SELECT setting, source FROM pg_settings WHERE name = 'default_transaction_isolation'",
            )
            .get_result::<Isolation>(&mut **conn)
            .expect("read default_transaction_isolation");
            (row.setting, row.source)
        })
        .collect();
    println!("PostgreSQL default_transaction_isolation = {:?}", levels[0]);
    let expected = if pg_serializable() {
        ("serializable".to_owned(), "client".to_owned())
    } else {
        assert_ne!(levels[0].1, "client", "the URL sets no isolation level");
        levels[0].clone()
    };
    assert_eq!(levels, vec![expected; THREADS]);
}

/// The real `pgbench` on the same row as 8 blocking library threads (the scenario runs on
/// the async connections too, in `tests/async.rs`).
#[test]
fn foreign_writer_pgbench_on_the_same_row() {
    let client = BlockingClient(Postgres::open());
    client.block_on(pgbench::foreign_writer_pgbench_on_the_same_row(&client));
}

/// The flusher's connection is terminated by the server between two flushes
/// (`pg_terminate_backend`): that flush fails and keeps its counts, the next one gets a fresh
/// connection from the pool and writes them, and every key is exact.
#[test]
fn buffer_survives_a_terminated_flusher_connection() {
    use counter_core::FlushPolicy;
    use counter_tests::scenarios::daily_views_buffer;
    use diesel::r2d2::{ConnectionManager, Pool};

    let db = Postgres::open(); // the tables
    let app = format!("counter_buffer_victim_{}", counter_tests::db::next_id());
    let separator = if pg_url().contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}application_name={app}", pg_url());
    // Not tested on check-out, so the flush itself meets the terminated connection.
    let pool = Pool::builder()
        .max_size(1)
        .test_on_check_out(false)
        .build(ConnectionManager::<PgConnection>::new(url))
        .expect("the flusher's pool");
    let page = counter_tests::db::next_id();
    let buffer = daily_views_buffer(pool, FlushPolicy::MANUAL);
    buffer.add((page, 1), 5).unwrap();
    assert_eq!(buffer.flush().unwrap().written, 1);

    let killed: Vec<bool> = diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE application_name = '{app}'"
    ))
    .load::<Terminated>(&mut *db.conn())
    .unwrap()
    .into_iter()
    .map(|r| r.t)
    .collect();
    assert_eq!(killed, vec![true], "exactly the flusher's connection");

    buffer.add((page, 1), 2).unwrap();
    buffer.add((page, 2), 3).unwrap();
    let error = buffer.flush().unwrap_err();
    assert_eq!(buffer.pending(), 5, "kept after {error}");
    assert_eq!(buffer.flush().unwrap().written, 2);
    assert_eq!(db.daily_views(&[page]), vec![(page, 1, 7), (page, 2, 3)]);
}

#[derive(QueryableByName)]
struct Terminated {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    t: bool,
}

/// A Redis counter's flush whose connection is terminated while its transaction waits for a
/// row lock: nothing of the batch is written, and the next flush writes it exactly once.
#[test]
fn redis_flush_terminated_mid_transaction() {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let mut flusher = PgConnection::establish(pg_url()).unwrap();
    let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut flusher)
        .unwrap()
        .pid;
    counter_tests::scenarios::redis_flush_killed_mid_transaction::<Postgres>(
        flusher,
        |page, day| {
            format!("SELECT views FROM ct_daily_views WHERE page_id = {page} AND day = {day} FOR UPDATE")
        },
        move |db: &Postgres| {
            let mut watcher = db.conn();
            // Wait until the flusher waits for the held row, then end its session.
            loop {
                let waiting: Vec<Pid> = diesel::sql_query(format!(
                    "SELECT pid FROM pg_stat_activity WHERE pid = {pid} AND wait_event_type = 'Lock'"
                ))
                .load(&mut *watcher)
                .unwrap();
                if !waiting.is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
                .execute(&mut *watcher)
                .unwrap();
        },
    );
}

/// See `scenarios::redis_flush_keeps_a_key_its_row_refuses`; the refusal is a trigger that
/// raises, which also aborts PostgreSQL's transaction (the flush engine's savepoint keeps the
/// other rows).
#[test]
fn redis_flush_keeps_a_key_its_row_refuses_and_writes_the_others() {
    counter_tests::scenarios::redis_flush_keeps_a_key_its_row_refuses::<Postgres>(|page| {
        (
            format!(
                "CREATE FUNCTION ct_refuse_{page}() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'day 2 is closed'; END $$;
                 CREATE TRIGGER ct_refuse_{page} BEFORE UPDATE ON ct_daily_views FOR EACH ROW
                 WHEN (NEW.page_id = {page} AND NEW.day = 2) EXECUTE FUNCTION ct_refuse_{page}();"
            ),
            format!(
                "DROP TRIGGER ct_refuse_{page} ON ct_daily_views; DROP FUNCTION ct_refuse_{page}();"
            ),
        )
    });
}

/// See `scenarios::redis_flush_keeps_a_key_its_row_refuses`; the refusal is a `CHECK`
/// constraint (added `NOT VALID` for this test's page only, then dropped).
#[test]
fn redis_flush_keeps_a_key_a_check_refuses_and_writes_the_others() {
    counter_tests::scenarios::redis_flush_keeps_a_key_its_row_refuses::<Postgres>(|page| {
        (
            format!(
                "ALTER TABLE ct_daily_views ADD CONSTRAINT ct_closed_{page}
                 CHECK (page_id <> {page} OR day <> 2 OR views = 0) NOT VALID"
            ),
            format!("ALTER TABLE ct_daily_views DROP CONSTRAINT ct_closed_{page}"),
        )
    });
}

/// A compaction that has to wait for a slot row another transaction holds, and finds it
/// changed when it gets it, still folds on its first try (`RetryPolicy::NEVER`), counting the
/// holder's add. Under `.ci/run`'s SERIALIZABLE run this is the case that made compactions
/// beside steady increments fail every try ("could not serialize access due to concurrent
/// update"): the compaction opens READ COMMITTED whatever the session default.
#[test]
fn compaction_waits_for_a_changed_slot_on_its_first_try() {
    use counter_core::RetryPolicy;
    use counter_tests::models::Article;
    use diesel::connection::SimpleConnection;

    let db = Postgres::open();
    let id = counter_tests::db::next_id();
    let c = &mut db.conn();
    for _ in 0..40 {
        Article::increment_views(c, id, 1).unwrap();
    }
    let slots = db.view_slots(id);
    let held = slots.last().expect("a slot row").0;

    let mut holder = db.conn();
    holder
        .batch_execute(&format!(
            "BEGIN; UPDATE ct_article_view_slots SET count = count + 5 \
             WHERE id = {id} AND slot = {held}"
        ))
        .unwrap();
    let folded = std::thread::scope(|scope| {
        let compaction = scope.spawn(|| {
            let mut c = db.conn();
            Article::atomic_views()
                .retry(RetryPolicy::NEVER)
                .compact(&mut c, id)
        });
        // Until the compaction waits for the held row (its snapshot is older than the commit).
        // Watched from a connection of its own: inside the holder's transaction
        // `pg_stat_activity` is a snapshot taken at its first read.
        let mut watcher = db.conn();
        let start = std::time::Instant::now();
        let mut waited = compaction_waits(&mut watcher);
        while !waited && start.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            waited = compaction_waits(&mut watcher);
        }
        holder.batch_execute("COMMIT").unwrap();
        let folded = compaction.join().expect("the compaction");
        assert!(waited, "the compaction never waited for the held slot");
        folded
    });
    assert_eq!(folded.expect("folded on the first try"), 45);
    assert_eq!(db.view_slots(id), vec![(0, 45)]);
}

/// Does another backend wait for a lock on a slot row (the compaction's locking read)?
fn compaction_waits(conn: &mut PgConnection) -> bool {
    diesel::sql_query(
        "SELECT count(*) > 0 AS t FROM pg_stat_activity \
         WHERE wait_event_type = 'Lock' AND query LIKE '%ct_article_view_slots%FOR NO KEY UPDATE%'",
    )
    .get_result::<Terminated>(conn)
    .unwrap()
    .t
}

#[derive(QueryableByName)]
struct Jit {
    #[diesel(sql_type = diesel::sql_types::Text)]
    jit: String,
}

fn jit(conn: &mut PgConnection) -> String {
    diesel::sql_query("SELECT current_setting('jit') AS jit")
        .get_result::<Jit>(conn)
        .unwrap()
        .jit
}

/// A set operation plans its statement without JIT and puts the caller's setting back: inside
/// the caller's transaction `jit` is what the caller set before and after the call, also after
/// a set that refused.
#[test]
fn set_operations_leave_the_callers_jit_setting() {
    use counter_tests::models::Product;
    let db = Postgres::open();
    let (a, b) = (db.new_product(10, 0), db.new_product(1, 0));
    let mut conn = db.conn();
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        let set_jit = |conn: &mut PgConnection, setting: &str| {
            diesel::sql_query(format!("SET LOCAL jit = {setting}"))
                .execute(conn)
                .unwrap();
        };
        set_jit(conn, "on");
        let taken = Product::decrement_stock_if_at_least_many(conn, [(a, 1), (b, 1)]);
        assert_eq!(taken.unwrap(), [(a, 9), (b, 0)]);
        assert_eq!(jit(conn), "on");
        set_jit(conn, "off");
        let refused = Product::decrement_stock_if_at_least_many(conn, [(a, 1), (b, 1)]);
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(jit(conn), "off");
        let added = Product::increment_stock_many(conn, [(a, 1)]);
        assert_eq!(added.unwrap(), [(a, 10)]);
        assert_eq!(jit(conn), "off");
        Ok(())
    })
    .unwrap();
}
