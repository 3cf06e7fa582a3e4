//! The table, the model, the workloads, and what differs between the three backends.

use counter_core::{AtomicError, AtomicField, ChangeColumn, CounterCache, Idempotent, RetryPolicy};
use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, PooledConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;

use counter_bench::db::{insert_sql, select_text};

use crate::flush_sql::FlushSql;
use crate::redis_load::RedisLoad;
use crate::workload::Workload;

diesel::table! {
    counters (id) {
        id -> BigInt,
        value -> BigInt,
        stock -> BigInt,
        hits -> BigInt,
    }
}

diesel::table! {
    /// The slots of `counters.hits` (the `slotted` workload).
    counter_hit_slots (id, slot) {
        id -> BigInt,
        slot -> Integer,
        count -> BigInt,
    }
}

diesel::table! {
    /// The child rows of the counter cache workloads: a view of a `counters` row, counted on
    /// its `value` (`id` generated: `SERIAL`, `AUTO_INCREMENT`, SQLite's `AUTOINCREMENT`).
    bench_views (id) {
        id -> Integer,
        counter_id -> BigInt,
        client -> Integer,
    }
}

/// How many slots `hits` has, and how many rows the `spread` baseline spreads over.
pub const SLOTS: i64 = 64;

/// The model under test: `value` is an unbounded counter, `stock` a level that cannot go below 0.
#[derive(Debug, Queryable, Selectable, Identifiable, Insertable, AtomicField)]
#[diesel(table_name = counters)]
pub struct Counter {
    pub id: i64,
    #[atomic]
    pub value: i64,
    #[atomic(min = 0)]
    pub stock: i64,
    /// A slotted counter over `SLOTS` rows of `counter_hit_slots`.
    #[atomic(slots = 64, table = counter_hit_slots)]
    pub hits: i64,
}

/// A view of a `counters` row by a client: while the row exists, the counter's `value` counts
/// it (`insert_counted`). `Insertable` as well, for the hand-written baseline
/// (`insert_counted_handwritten`), which inserts it with plain Diesel.
#[derive(Debug, Insertable, CounterCache)]
#[diesel(table_name = bench_views)]
#[counter_cache(parent = Counter, column = counters::value, foreign_key = counter_id,
                key_type = i32)]
pub struct NewView {
    pub counter_id: i64,
    pub client: i32,
}

/// The same view counted into a random slot of the row's slotted `hits`
/// (`insert_counted_slotted`).
#[derive(Debug, CounterCache)]
#[diesel(table_name = bench_views)]
#[counter_cache(parent = Counter, column = counters::hits, foreign_key = counter_id,
                key_type = i32, slotted)]
pub struct NewSlottedView {
    pub counter_id: i64,
    pub client: i32,
}

/// What every row's stock is reset to before each run: far more than any run can take.
pub const STOCK: i64 = 1_000_000_000_000;

/// A pooled connection of backend `B`.
pub type Pooled<B> = PooledConnection<ConnectionManager<B>>;

/// One backend: its connection type, the schema, the hand-written statement (and the flush
/// workloads' table and statements, [`FlushSql`]).
pub trait Backend: R2D2Connection + FlushSql + Send + Sized + 'static {
    /// The name used on the command line and in the JSON.
    const NAME: &'static str;
    /// The name used in the chart and the table.
    const TITLE: &'static str;

    /// Drops and recreates `counters` with `rows` rows (ids 1..=rows, value 0, stock [`STOCK`]).
    fn create_schema(conn: &mut Self, rows: i64) -> QueryResult<()>;

    /// The server's version string.
    fn version(conn: &mut Self) -> QueryResult<String>;

    /// The same guarded increment the library runs, written directly with Diesel's query
    /// builder. `None` when no row matched.
    fn handwritten(conn: &mut Self, id: i64) -> QueryResult<Option<i64>>;

    /// Add 1 to `value` of row `row.id`, or insert `row`, as a user writes it by hand; the
    /// new value.
    fn upsert_handwritten(conn: &mut Self, row: &Counter) -> QueryResult<i64>;

    /// Runs one operation of `workload` on row `id`; the amount it moved its column by
    /// (`value` up, or `stock` down).
    fn op(conn: &mut Pooled<Self>, workload: Workload, id: i64) -> Result<i64, String>;

    /// Takes `cart` (`(product id, units)`, products distinct) out of `stock` as `workload`
    /// does; the units taken.
    fn checkout(
        conn: &mut Pooled<Self>,
        workload: Workload,
        cart: &[(i64, i64)],
    ) -> Result<i64, String>;

    /// Inserts a view of row `id` by client `client` and counts it on the row's `value`, as
    /// `workload` does (`insert_counted` or `insert_counted_handwritten`); 1, the amount
    /// `value` moved by.
    fn view(
        conn: &mut Pooled<Self>,
        workload: Workload,
        id: i64,
        client: i32,
    ) -> Result<i64, String>;

    /// One attempt of the hand-written counted insert, plain Diesel: a transaction of
    /// `UPDATE counters SET value = value + 1 WHERE id = ?` and `INSERT INTO bench_views`.
    fn view_transaction(conn: &mut Self, view: &NewView) -> QueryResult<()>;

    /// Empties `bench_views` and sets every row's `value` to 0: before each slice of the
    /// counter cache workloads, so that after it every row's `value` must equal its views.
    fn reset_views(conn: &mut Self) -> QueryResult<()>;

    /// The rows whose `value` is not the number of their `bench_views` rows, as `(id, value,
    /// views)`; views of no row count against a `value` of 0.
    fn view_mismatches(conn: &mut Self) -> QueryResult<Vec<(i64, i64, i64)>>;

    /// Flushes the `redis` workload's counter into `counters`; the counts moved, how long.
    fn redis_flush(
        conn: &mut Pooled<Self>,
        load: &RedisLoad,
    ) -> Result<(i128, std::time::Duration), String>;

    /// A write-behind buffer of `value` on `pool` (the `buffered` workload).
    fn buffer(pool: diesel::r2d2::Pool<ConnectionManager<Self>>) -> counter_core::Buffer<i64, i64>;

    /// `(Σ value, Σ stock, Σ hit slots)` over every row.
    fn totals(conn: &mut Self) -> QueryResult<(i128, i128, i128)>;

    /// Sets every row's stock back to [`STOCK`].
    fn refill(conn: &mut Self) -> QueryResult<usize>;
}

fn db_err(e: diesel::result::Error) -> String {
    e.to_string()
}

fn atomic_err(e: AtomicError) -> String {
    e.to_string()
}

/// The row an upsert inserts when `id` has none (never, in the benchmark: every row exists).
fn new_row(id: i64) -> Counter {
    Counter {
        id,
        value: 1,
        stock: STOCK,
        hits: 0,
    }
}

/// What a user's retry loop re-runs a transaction on: a serialization failure, a deadlock
/// (MariaDB reports it as a plain database error), a busy SQLite file.
fn transient(e: &diesel::result::Error) -> bool {
    match e {
        diesel::result::Error::DatabaseError(kind, info) => {
            matches!(
                kind,
                diesel::result::DatabaseErrorKind::SerializationFailure
            ) || info.message().contains("Deadlock")
                || info.message().contains("database is locked")
        }
        _ => false,
    }
}

/// The sale as a user writes it without the library: `stock -= 1` only if enough, then
/// `value += 1`, in a transaction, re-run on a serialization failure, a deadlock or a busy
/// SQLite file. Gives 1 (`value` moved up by one). A macro: the statements are typed per
/// connection, as in an application.
macro_rules! sale_two_updates {
    ($conn:expr, $id:expr) => {{
        let (conn, id) = ($conn, $id);
        loop {
            let result = conn.transaction(|c| {
                let taken =
                    diesel::update(counters::table.find(id).filter(counters::stock.ge(1i64)))
                        .set(counters::stock.eq(counters::stock - 1i64))
                        .execute(c)?;
                if taken == 0 {
                    return Err(diesel::result::Error::NotFound);
                }
                diesel::update(counters::table.find(id))
                    .set(counters::value.eq(counters::value + 1i64))
                    .execute(c)?;
                Ok(1)
            });
            match result {
                Err(diesel::result::Error::DatabaseError(kind, info))
                    if matches!(
                        kind,
                        diesel::result::DatabaseErrorKind::SerializationFailure
                    ) || info.message().contains("Deadlock")
                        || info.message().contains("database is locked") =>
                {
                    continue
                }
                other => break other.map_err(db_err),
            }
        }
    }};
}

/// The rows: `rows` of them, and at least the `SLOTS` the `spread` workload uses.
fn insert_rows_sql(rows: i64) -> String {
    insert_sql(
        "counters",
        "id, value, stock, hits",
        (1..=rows.max(SLOTS)).map(|id| format!("{id}, 0, {STOCK}, 0")),
    )
}

/// A new idempotency key: the run's random prefix and a sequence number.
fn once_key() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static RUN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let run = RUN.get_or_init(rand::random::<u64>);
    format!("bench-{run:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Drops and recreates the tables, in one dialect's spelling: the type of `counters.id`, of
/// `counter_hit_slots.slot` and of `counter_flushes.kept`, the generated key of
/// `bench_views.id`, and the clause after each table. `bench_views` references `counters`, so
/// it is dropped first and created last.
fn schema_sql(id: &str, slot: &str, kept: &str, view_id: &str, engine: &str) -> String {
    // The ledger's documented key column on MySQL: a binary collation ("A1" and "a1" are two
    // keys), as the test suite's tables in the same database expect.
    let binary = if engine.is_empty() {
        ""
    } else {
        " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    };
    format!(
        "DROP TABLE IF EXISTS bench_views; \
         DROP TABLE IF EXISTS counters; DROP TABLE IF EXISTS counter_hit_slots; \
         DROP TABLE IF EXISTS counter_flushes; DROP TABLE IF EXISTS counter_idempotency; \
         CREATE TABLE counter_idempotency (op_key VARCHAR(200){binary} PRIMARY KEY, \
         request TEXT NOT NULL, outcome {kept} NOT NULL, done_at BIGINT NOT NULL){engine}; \
         CREATE TABLE counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept {kept} NOT NULL, \
         flushed_at BIGINT NOT NULL){engine}; \
         CREATE TABLE counters (id {id} PRIMARY KEY, value BIGINT NOT NULL, \
         stock BIGINT NOT NULL, hits BIGINT NOT NULL){engine}; \
         CREATE TABLE counter_hit_slots (id BIGINT NOT NULL, slot {slot} NOT NULL, \
         count BIGINT NOT NULL, PRIMARY KEY (id, slot)){engine}; \
         CREATE TABLE bench_views (id {view_id}, \
         counter_id BIGINT NOT NULL REFERENCES counters (id), \
         client INTEGER NOT NULL){engine};"
    )
}

/// The hand-written counted insert's two statements, inside the caller's transaction: the
/// parent's `UPDATE counters SET value = value + 1 WHERE id = ?` first (its row lock orders the
/// writers, as the library's does), then `INSERT INTO bench_views (counter_id, client)`.
/// Plain Diesel, no counter-core.
macro_rules! view_statements {
    ($conn:expr, $view:expr) => {{
        let (c, view) = ($conn, $view);
        diesel::update(counters::table.find(view.counter_id))
            .set(counters::value.eq(counters::value + 1))
            .execute(c)?;
        diesel::insert_into(bench_views::table)
            .values(view)
            .execute(c)?;
        Ok(())
    }};
}

/// The parts that are written the same way for every connection type. A macro rather than
/// generic code because the generated methods are called on the concrete pooled types, as an
/// application would.
macro_rules! common {
    () => {
        fn op(conn: &mut Pooled<Self>, workload: Workload, id: i64) -> Result<i64, String> {
            match workload {
                // Load the model, add in Rust, save: the race the library exists to avoid.
                Workload::Naive => {
                    let raw: &mut Self = conn;
                    let row: Counter = counters::table
                        .find(id)
                        .select(Counter::as_select())
                        .first(raw)
                        .map_err(db_err)?;
                    diesel::update(&row)
                        .set(counters::value.eq(row.value + 1))
                        .execute(raw)
                        .map_err(db_err)?;
                    Ok(1)
                }
                Workload::Handwritten => match Self::handwritten(conn, id).map_err(db_err)? {
                    Some(_) => Ok(1),
                    None => Err(format!("row {id} not matched")),
                },
                Workload::Increment => Counter::increment_value(conn, id, 1)
                    .map(|_| 1)
                    .map_err(atomic_err),
                Workload::IncrementOnce => {
                    let key = once_key();
                    Idempotent::key(&key)
                        .run(conn, |c| Counter::increment_value(c, id, 1))
                        .map(|_| 1)
                        .map_err(atomic_err)
                }
                Workload::DecrementIfAtLeast => Counter::decrement_stock_if_at_least(conn, id, 1)
                    .map(|_| 1)
                    .map_err(atomic_err),
                Workload::TakeUpTo => Counter::take_stock_up_to(conn, id, 1).map_err(atomic_err),
                Workload::Locked => Counter::update_value_locked(conn, id, |v| Ok(v + 1))
                    .map(|_| 1)
                    .map_err(atomic_err),
                Workload::CompareAndSet => {
                    let mut seen = Counter::current_value(conn, id).map_err(atomic_err)?;
                    loop {
                        match Counter::compare_and_set_value(conn, id, seen, seen + 1) {
                            Ok(_) => break Ok(1),
                            Err(AtomicError::Mismatch { current, .. }) => {
                                seen = i64::try_from(current).map_err(|e| e.to_string())?;
                            }
                            Err(other) => break Err(atomic_err(other)),
                        }
                    }
                }
                Workload::Sale => Counter::update_atomic(
                    conn,
                    id,
                    (
                        counters::stock.decrement_if_at_least(1),
                        counters::value.increment(1),
                    ),
                )
                .map(|_| 1)
                .map_err(atomic_err),
                Workload::SaleTwoUpdates => {
                    let raw: &mut Self = conn;
                    sale_two_updates!(raw, id)
                }
                Workload::Upsert => Counter::increment_value_or_insert(conn, &new_row(id), 1)
                    .map(|_| 1)
                    .map_err(atomic_err),
                Workload::UpsertHandwritten => Self::upsert_handwritten(conn, &new_row(id))
                    .map(|_| 1)
                    .map_err(db_err),
                Workload::Slotted => Counter::increment_hits(conn, id, 1)
                    .map(|()| 1)
                    .map_err(atomic_err),
                // The client loop spreads the ids over `SLOTS` rows.
                Workload::Spread => Counter::increment_value(conn, id, 1)
                    .map(|_| 1)
                    .map_err(atomic_err),
                // Run by the client loop on the shared buffer or Redis, or with a cart, or by
                // `flush_load`: never here.
                Workload::Buffered
                | Workload::Redis
                | Workload::RedisBenchmark
                | Workload::Checkout
                | Workload::CheckoutFiveCalls
                | Workload::InsertCounted
                | Workload::InsertCountedHandwritten
                | Workload::InsertCountedSlotted
                | Workload::Flush
                | Workload::FlushHandwritten
                | Workload::FlushHandwrittenUnnest => {
                    Err(format!("{workload:?} does not run on a row id"))
                }
            }
        }

        fn checkout(
            conn: &mut Pooled<Self>,
            workload: Workload,
            cart: &[(i64, i64)],
        ) -> Result<i64, String> {
            let units: i64 = cart.iter().map(|&(_, q)| q).sum();
            match workload {
                Workload::Checkout => {
                    Counter::decrement_stock_if_at_least_many(conn, cart.iter().copied())
                        .map(|_| units)
                        .map_err(atomic_err)
                }
                Workload::CheckoutFiveCalls => {
                    counter_core::transaction(conn, RetryPolicy::DEFAULT, |c| {
                        for &(id, q) in cart {
                            Counter::decrement_stock_if_at_least(c, id, q)?;
                        }
                        Ok(units)
                    })
                    .map_err(atomic_err)
                }
                _ => Err(format!("{workload:?} does not take a cart")),
            }
        }

        fn view(
            conn: &mut Pooled<Self>,
            workload: Workload,
            id: i64,
            client: i32,
        ) -> Result<i64, String> {
            match workload {
                // One call: the view row and its count, both or neither (retried inside).
                Workload::InsertCounted => NewView {
                    counter_id: id,
                    client,
                }
                .insert_counted(conn)
                .map(|_| 1)
                .map_err(atomic_err),
                // The same by hand: a transaction of the UPDATE and the INSERT, re-run
                // whole on a transient error, as a user writes it.
                Workload::InsertCountedHandwritten => {
                    let raw: &mut Self = conn;
                    let view = NewView {
                        counter_id: id,
                        client,
                    };
                    loop {
                        match Self::view_transaction(raw, &view) {
                            Err(e) if transient(&e) => continue,
                            other => break other.map(|()| 1).map_err(db_err),
                        }
                    }
                }
                // Into a random slot: one transaction, the row only key-share locked.
                Workload::InsertCountedSlotted => NewSlottedView {
                    counter_id: id,
                    client,
                }
                .insert_counted(conn)
                .map(|_| 1)
                .map_err(atomic_err),
                _ => Err(format!("{workload:?} does not insert a view")),
            }
        }

        fn view_mismatches(conn: &mut Self) -> QueryResult<Vec<(i64, i64, i64)>> {
            let views: std::collections::BTreeMap<i64, i64> = bench_views::table
                .group_by(bench_views::counter_id)
                .select((bench_views::counter_id, diesel::dsl::count_star()))
                .load::<(i64, i64)>(conn)?
                .into_iter()
                .collect();
            let mut values: std::collections::BTreeMap<i64, i64> = counters::table
                .select((counters::id, counters::value))
                .load::<(i64, i64)>(conn)?
                .into_iter()
                .collect();
            // A slotted view counts in the row's hit slots (emptied before the slice).
            let slots: Vec<(i64, i64)> = counter_hit_slots::table
                .select((counter_hit_slots::id, counter_hit_slots::count))
                .load(conn)?;
            for (id, count) in slots {
                *values.entry(id).or_insert(0) += count;
            }
            for &id in views.keys() {
                values.entry(id).or_insert(0);
            }
            Ok(values
                .into_iter()
                .map(|(id, value)| (id, value, views.get(&id).copied().unwrap_or(0)))
                .filter(|&(_, value, views)| value != views)
                .collect())
        }

        fn redis_flush(
            conn: &mut Pooled<Self>,
            load: &RedisLoad,
        ) -> Result<(i128, std::time::Duration), String> {
            load.flush(conn)
        }

        fn buffer(
            pool: diesel::r2d2::Pool<ConnectionManager<Self>>,
        ) -> counter_core::Buffer<i64, i64> {
            counter_core::Buffer::new(
                pool,
                Counter::atomic_value(),
                |&id: &i64, value| Counter {
                    id,
                    value,
                    stock: STOCK,
                    hits: 0,
                },
                counter_core::FlushPolicy::DEFAULT,
            )
        }

        fn totals(conn: &mut Self) -> QueryResult<(i128, i128, i128)> {
            let rows: Vec<(i64, i64)> = counters::table
                .select((counters::value, counters::stock))
                .load(conn)?;
            let slots: Vec<i64> = counter_hit_slots::table
                .select(counter_hit_slots::count)
                .load(conn)?;
            let (value, stock) = rows.iter().fold((0, 0), |(v, s), &(value, stock)| {
                (v + i128::from(value), s + i128::from(stock))
            });
            Ok((value, stock, slots.iter().map(|&n| i128::from(n)).sum()))
        }

        fn refill(conn: &mut Self) -> QueryResult<usize> {
            diesel::update(counters::table)
                .set(counters::stock.eq(STOCK))
                .execute(conn)
        }
    };
}

/// `UPDATE … SET value = value + 1 WHERE id = ? AND value <= i64::MAX - 1 RETURNING value`,
/// the statement the library runs on PostgreSQL and SQLite.
macro_rules! returning_update {
    ($id:expr) => {
        diesel::update(counters::table.find($id))
            .set(counters::value.eq(counters::value + 1))
            .filter(counters::value.le(i64::MAX - 1))
            .returning(counters::value)
    };
}

/// `INSERT … ON CONFLICT (id) DO UPDATE SET value = counters.value + 1 RETURNING value`, as a
/// user writes it with Diesel's query builder (PostgreSQL, SQLite).
macro_rules! diesel_upsert {
    ($row:expr) => {
        diesel::insert_into(counters::table)
            .values($row)
            .on_conflict(counters::id)
            .do_update()
            .set(counters::value.eq(counters::value + 1))
            .returning(counters::value)
    };
}

/// The hand-written statements of the backends that speak `RETURNING` (PostgreSQL, SQLite).
macro_rules! returning_statements {
    () => {
        fn handwritten(conn: &mut Self, id: i64) -> QueryResult<Option<i64>> {
            returning_update!(id).get_result(conn).optional()
        }

        fn upsert_handwritten(conn: &mut Self, row: &Counter) -> QueryResult<i64> {
            diesel_upsert!(row).get_result(conn)
        }
    };
}

/// `UPDATE … SET value = value + 1 + CAST(LAST_INSERT_ID((value + 1) ^ 2^63) & 0 AS SIGNED)
/// WHERE id = ? AND value <= i64::MAX - 1`, the statement the library runs on MySQL
/// (counter-core/src/sql/delta.rs, `DELTA_CAPTURE`): one assignment that adds a signed zero and
/// captures the new value as a side effect.
macro_rules! mysql_capture_update {
    ($id:expr) => {{
        use crate::mysql_dsl::{capture, BitAnd, SignBit, Xor, Zero};
        diesel::update(counters::table.find($id))
            .set(
                counters::value.eq(counters::value
                    + 1
                    + BitAnd::new(capture(Xor::new(counters::value + 1, SignBit)), Zero)
                        .cast::<diesel::sql_types::BigInt>()),
            )
            .filter(counters::value.le(i64::MAX - 1))
    }};
}

impl Backend for PgConnection {
    const NAME: &'static str = "postgres";
    const TITLE: &'static str = "PostgreSQL";

    fn create_schema(conn: &mut Self, rows: i64) -> QueryResult<()> {
        conn.batch_execute(&schema_sql(
            "BIGINT",
            "INTEGER",
            "TEXT",
            "SERIAL PRIMARY KEY",
            "",
        ))?;
        conn.batch_execute(&insert_rows_sql(rows))
    }

    fn version(conn: &mut Self) -> QueryResult<String> {
        select_text(conn, "version()")
    }

    fn view_transaction(conn: &mut Self, view: &NewView) -> QueryResult<()> {
        conn.transaction(|c| view_statements!(c, view))
    }

    fn reset_views(conn: &mut Self) -> QueryResult<()> {
        conn.batch_execute(
            "TRUNCATE bench_views RESTART IDENTITY; UPDATE counters SET value = 0 WHERE value <> 0; \
             DELETE FROM counter_hit_slots;",
        )
    }

    returning_statements!();
    common!();
}

impl Backend for SqliteConnection {
    const NAME: &'static str = "sqlite";
    const TITLE: &'static str = "SQLite";

    fn create_schema(conn: &mut Self, rows: i64) -> QueryResult<()> {
        conn.batch_execute("PRAGMA journal_mode = WAL;")?;
        conn.batch_execute(&schema_sql(
            "INTEGER",
            "INTEGER",
            "TEXT",
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "",
        ))?;
        conn.batch_execute(&insert_rows_sql(rows))
    }

    fn version(conn: &mut Self) -> QueryResult<String> {
        select_text(conn, "sqlite_version()")
    }

    /// `BEGIN IMMEDIATE`, as a user must here: a deferred `BEGIN` starts as a reader, and its
    /// `UPDATE` must then upgrade to the write lock; when another connection committed since
    /// the read began, SQLite refuses the upgrade at once with "database is locked" (the busy
    /// timeout does not wait for it: the snapshot is stale), so 16 writers would mostly spin in
    /// the retry loop. `IMMEDIATE` takes the write lock at `BEGIN`, waiting up to the busy
    /// timeout for it.
    fn view_transaction(conn: &mut Self, view: &NewView) -> QueryResult<()> {
        conn.immediate_transaction(|c| view_statements!(c, view))
    }

    fn reset_views(conn: &mut Self) -> QueryResult<()> {
        conn.batch_execute(
            "DELETE FROM bench_views; UPDATE counters SET value = 0 WHERE value <> 0; \
             DELETE FROM counter_hit_slots;",
        )
    }

    returning_statements!();
    common!();
}

impl Backend for MysqlConnection {
    const NAME: &'static str = "mysql";
    const TITLE: &'static str = "MariaDB";

    fn create_schema(conn: &mut Self, rows: i64) -> QueryResult<()> {
        conn.batch_execute(&schema_sql(
            "BIGINT",
            "INT",
            "LONGTEXT",
            "INT AUTO_INCREMENT PRIMARY KEY",
            " ENGINE = InnoDB",
        ))?;
        conn.batch_execute(&insert_rows_sql(rows))
    }

    fn version(conn: &mut Self) -> QueryResult<String> {
        select_text(conn, "version()")
    }

    fn view_transaction(conn: &mut Self, view: &NewView) -> QueryResult<()> {
        conn.transaction(|c| view_statements!(c, view))
    }

    fn reset_views(conn: &mut Self) -> QueryResult<()> {
        conn.batch_execute(
            "TRUNCATE TABLE bench_views; UPDATE counters SET value = 0 WHERE value <> 0; \
             DELETE FROM counter_hit_slots;",
        )
    }

    /// `UPDATE counters SET value = value + ? + CAST(LAST_INSERT_ID((value + ?) ^ 2^63) & 0 AS
    /// SIGNED) WHERE id = ? AND value <= ?`, then `SELECT LAST_INSERT_ID()`: what the library
    /// runs on MySQL (counter-core/src/backend/mysql.rs).
    fn handwritten(conn: &mut Self, id: i64) -> QueryResult<Option<i64>> {
        let matched = mysql_capture_update!(id).execute(conn)?;
        if matched == 0 {
            return Ok(None);
        }
        let captured: u64 = diesel::select(crate::mysql_dsl::last_insert_id()).get_result(conn)?;
        Ok(Some((captured ^ (1 << 63)) as i64))
    }

    /// The textbook MySQL upsert that returns the new value: raw SQL, two round trips.
    fn upsert_handwritten(conn: &mut Self, row: &Counter) -> QueryResult<i64> {
        use diesel::sql_types::BigInt;
        diesel::sql_query(
            "INSERT INTO counters (id, value, stock, hits) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE value = LAST_INSERT_ID(value + 1)",
        )
        .bind::<BigInt, _>(row.id)
        .bind::<BigInt, _>(row.value)
        .bind::<BigInt, _>(row.stock)
        .bind::<BigInt, _>(row.hits)
        .execute(conn)?;
        let captured: u64 = diesel::select(crate::mysql_dsl::last_insert_id()).get_result(conn)?;
        Ok(captured as i64)
    }

    common!();
}

/// Per-connection SQLite settings: wait up to 5 s for the write lock (so the hand-written and
/// naive workloads, which have no retry loop, do not fail with SQLITE_BUSY) and the usual WAL
/// durability level.
#[derive(Debug, Clone, Copy)]
pub struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;")
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_views_match_their_rows_on_sqlite() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = dir.path().join("views.db").to_string_lossy().into_owned();
        let pool = diesel::r2d2::Pool::builder()
            .max_size(1)
            .connection_customizer(Box::new(SqlitePragmas))
            .build(ConnectionManager::<SqliteConnection>::new(url))
            .expect("a pool");
        let mut conn = pool.get().expect("a connection");
        SqliteConnection::create_schema(&mut conn, 2).expect("the schema");
        SqliteConnection::reset_views(&mut conn).expect("reset");
        for (client, workload) in [
            Workload::InsertCounted,
            Workload::InsertCountedHandwritten,
            Workload::InsertCounted,
        ]
        .into_iter()
        .enumerate()
        {
            let moved = SqliteConnection::view(&mut conn, workload, 1, client as i32);
            assert_eq!(moved, Ok(1), "{workload:?}");
        }
        SqliteConnection::view(&mut conn, Workload::InsertCountedHandwritten, 2, 7)
            .expect("a view of row 2");
        assert_eq!(SqliteConnection::view_mismatches(&mut conn), Ok(vec![]));
        // A count that moved without its row, and a row without its count, are both found.
        diesel::update(counters::table.find(1))
            .set(counters::value.eq(counters::value + 1))
            .execute(&mut *conn)
            .expect("an uncounted change");
        diesel::insert_into(bench_views::table)
            .values(&NewView {
                counter_id: 2,
                client: 9,
            })
            .execute(&mut *conn)
            .expect("an uncounted view");
        assert_eq!(
            SqliteConnection::view_mismatches(&mut conn),
            Ok(vec![(1, 4, 3), (2, 1, 2)])
        );
        SqliteConnection::reset_views(&mut conn).expect("reset");
        assert_eq!(SqliteConnection::view_mismatches(&mut conn), Ok(vec![]));
    }

    #[test]
    fn handwritten_statements_are_the_librarys() {
        let id = 1i64;
        let pg = diesel::debug_query::<diesel::pg::Pg, _>(&returning_update!(id)).to_string();
        assert!(
            pg.starts_with(
                "UPDATE \"counters\" SET \"value\" = (\"counters\".\"value\" + $1) \
                 WHERE ((\"counters\".\"id\" = $2) AND (\"counters\".\"value\" <= $3)) \
                 RETURNING \"counters\".\"value\""
            ),
            "{pg}"
        );
        assert!(pg.ends_with("binds: [1, 1, 9223372036854775806]"), "{pg}");
        let my =
            diesel::debug_query::<diesel::mysql::Mysql, _>(&mysql_capture_update!(id)).to_string();
        assert!(
            my.starts_with(
                "UPDATE `counters` SET `value` = ((`counters`.`value` + ?) + \
                 CAST(LAST_INSERT_ID((`counters`.`value` + ?) ^ 9223372036854775808) & 0 AS signed)) \
                 WHERE ((`counters`.`id` = ?) AND (`counters`.`value` <= ?))"
            ),
            "{my}"
        );
    }
}
