//! The workloads: what one client of the main benchmark does in a loop, their names on the
//! command line, in the JSON and in the tables, and how the chart draws them.

use clap::ValueEnum;
use counter_bench::chart::Series;
use serde::Serialize;

/// What one client does in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Load, add in Rust, save.
    Naive,
    /// The same single statement as `increment`, written with Diesel's query builder.
    Handwritten,
    /// `increment_value(conn, id, 1)`.
    Increment,
    /// `Idempotent::key(k).run(conn, |c| increment_value(c, id, 1))` with a new key per call:
    /// the increment applied exactly once per key (a transaction that claims the key in the
    /// `counter_idempotency` ledger, increments, records the value).
    #[value(name = "increment_once", alias = "increment-once")]
    IncrementOnce,
    /// `decrement_stock_if_at_least(conn, id, 1)`.
    #[value(name = "decrement_if_at_least", alias = "decrement-if-at-least")]
    DecrementIfAtLeast,
    /// `take_stock_up_to(conn, id, 1)`.
    #[value(name = "take_up_to", alias = "take-up-to")]
    TakeUpTo,
    /// `update_value_locked(conn, id, |v| Ok(v + 1))`.
    Locked,
    /// The optimistic form of `locked`: `current_value`, then `compare_and_set_value(v, v +
    /// 1)`, again from the reported value on `Mismatch`; no lock held between the read and
    /// the write.
    #[value(name = "compare_and_set", alias = "compare-and-set")]
    CompareAndSet,
    /// `update_atomic(conn, id, (stock.decrement_if_at_least(1), value.increment(1)))`: the
    /// sale of two columns in one statement.
    Sale,
    /// The same sale as a user writes it today: a transaction of two `UPDATE`s (the guarded
    /// one first) with a hand-written retry loop.
    #[value(name = "sale_two_updates", alias = "sale-two-updates")]
    SaleTwoUpdates,
    /// `increment_value_or_insert(conn, &row, 1)` on rows that exist.
    Upsert,
    /// The same upsert hand-written: Diesel's `on_conflict().do_update()` returning the value
    /// (PostgreSQL, SQLite); on MariaDB the textbook raw SQL `ON DUPLICATE KEY UPDATE value =
    /// LAST_INSERT_ID(value + 1)` then `SELECT LAST_INSERT_ID()` (which reports a stale value
    /// when it inserts).
    #[value(name = "upsert_handwritten", alias = "upsert-handwritten")]
    UpsertHandwritten,
    /// `buffer.add(id, 1)` on a `counter_core::Buffer` shared by the clients, flushed in the
    /// background (every second or at 10,000 pending adds) and once more after the slice;
    /// `lost` is measured after that last flush.
    Buffered,
    /// `increment_hits(conn, id, 1)`: a slotted counter over 16 rows of a slot table.
    Slotted,
    /// `increment_value(conn, id, 1)` on a random one of 16 rows: the limit a 16-slot
    /// counter approaches (the same statement, no hot row).
    Spread,
    /// `RedisCounter::add(redis, id, 1)` (one `HINCRBY`), each client on its own Redis
    /// connection; one flush after the slice moves the counts into the table (its rate is
    /// `flush_per_sec`), and `lost` is measured after it.
    Redis,
    /// The reference for `redis`: `redis-benchmark -c <clients> INCRBY` on the same Redis,
    /// in the same run. Not the library; its numbers are redis-benchmark's own.
    #[value(name = "redis_benchmark", alias = "redis-benchmark")]
    RedisBenchmark,
    /// `decrement_stock_if_at_least_many(conn, cart)`: a random 5-line cart over 20 products
    /// taken in one call, every line or none.
    Checkout,
    /// The same cart as five `decrement_stock_if_at_least` calls inside
    /// `counter_core::transaction`.
    #[value(name = "checkout_five_calls", alias = "checkout-five-calls")]
    CheckoutFiveCalls,
    /// `NewView { counter_id: id, client }.insert_counted(conn)`: a child row of
    /// `bench_views` inserted and counted on its row's `value`, both or neither
    /// (`#[derive(CounterCache)]`).
    #[value(name = "insert_counted", alias = "insert-counted")]
    InsertCounted,
    /// The same counted insert as a user writes it with plain Diesel: a transaction (`BEGIN
    /// IMMEDIATE` on SQLite) of the `UPDATE … SET value = value + 1` and the `INSERT`, with a
    /// hand-written retry loop.
    #[value(
        name = "insert_counted_handwritten",
        alias = "insert-counted-handwritten"
    )]
    InsertCountedHandwritten,
    /// `NewSlottedView { counter_id: id, client }.insert_counted(conn)`: the same child row
    /// counted into a random slot of its row's slotted `hits` (`#[counter_cache(..,
    /// slotted)]`): one transaction, the parent row only key-share locked.
    #[value(name = "insert_counted_slotted", alias = "insert-counted-slotted")]
    InsertCountedSlotted,
    /// `Buffer::flush()` of a batch of distinct keys, half of them without a row; one run per
    /// `--keys` size, not a client loop.
    Flush,
    /// The same batch as multi-row `INSERT … VALUES … ON CONFLICT / ON DUPLICATE KEY UPDATE`
    /// statements written with Diesel, chunked by the parameter limit, in one transaction.
    #[value(name = "flush_handwritten", alias = "flush-handwritten")]
    FlushHandwritten,
    /// PostgreSQL only: the same batch as one `INSERT … SELECT * FROM unnest($1::bigint[],
    /// $2::bigint[]) ON CONFLICT …`.
    #[value(name = "flush_handwritten_unnest", alias = "flush-handwritten-unnest")]
    FlushHandwrittenUnnest,
}

impl Workload {
    pub const ALL: [Workload; 25] = [
        Workload::Naive,
        Workload::Handwritten,
        Workload::Increment,
        Workload::IncrementOnce,
        Workload::DecrementIfAtLeast,
        Workload::TakeUpTo,
        Workload::Locked,
        Workload::CompareAndSet,
        Workload::Sale,
        Workload::SaleTwoUpdates,
        Workload::Upsert,
        Workload::UpsertHandwritten,
        Workload::Buffered,
        Workload::Slotted,
        Workload::Spread,
        Workload::Redis,
        Workload::RedisBenchmark,
        Workload::Checkout,
        Workload::CheckoutFiveCalls,
        Workload::InsertCounted,
        Workload::InsertCountedHandwritten,
        Workload::InsertCountedSlotted,
        Workload::Flush,
        Workload::FlushHandwritten,
        Workload::FlushHandwrittenUnnest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Naive => "naive",
            Workload::Handwritten => "handwritten",
            Workload::Increment => "increment",
            Workload::IncrementOnce => "increment_once",
            Workload::DecrementIfAtLeast => "decrement_if_at_least",
            Workload::TakeUpTo => "take_up_to",
            Workload::Locked => "locked",
            Workload::CompareAndSet => "compare_and_set",
            Workload::Sale => "sale",
            Workload::SaleTwoUpdates => "sale_two_updates",
            Workload::Upsert => "upsert",
            Workload::UpsertHandwritten => "upsert_handwritten",
            Workload::Buffered => "buffered",
            Workload::Slotted => "slotted",
            Workload::Spread => "spread",
            Workload::Redis => "redis",
            Workload::RedisBenchmark => "redis_benchmark",
            Workload::Checkout => "checkout",
            Workload::CheckoutFiveCalls => "checkout_five_calls",
            Workload::InsertCounted => "insert_counted",
            Workload::InsertCountedHandwritten => "insert_counted_handwritten",
            Workload::InsertCountedSlotted => "insert_counted_slotted",
            Workload::Flush => "flush",
            Workload::FlushHandwritten => "flush_handwritten",
            Workload::FlushHandwrittenUnnest => "flush_handwritten_unnest",
        }
    }

    /// Does it move `stock` down (else `value` up)?
    pub fn on_stock(self) -> bool {
        matches!(
            self,
            Workload::DecrementIfAtLeast
                | Workload::TakeUpTo
                | Workload::Checkout
                | Workload::CheckoutFiveCalls
        )
    }

    /// Does a client take a cart per operation (else a row id)?
    pub fn is_checkout(self) -> bool {
        matches!(self, Workload::Checkout | Workload::CheckoutFiveCalls)
    }

    /// Does a client insert `bench_views` rows counted on `value` (and the slice check every
    /// row's `value` against its views)?
    pub fn is_counter_cache(self) -> bool {
        matches!(
            self,
            Workload::InsertCounted
                | Workload::InsertCountedHandwritten
                | Workload::InsertCountedSlotted
        )
    }

    /// Is it a run per batch size (`flush_load`) rather than clients in a loop?
    pub fn is_flush(self) -> bool {
        matches!(
            self,
            Workload::Flush | Workload::FlushHandwritten | Workload::FlushHandwrittenUnnest
        )
    }
}

impl Series for Workload {
    fn name(self) -> &'static str {
        Workload::name(self)
    }

    fn color(self) -> &'static str {
        match self {
            Workload::Naive => "#d62728",
            Workload::Handwritten => "#7f7f7f",
            Workload::Increment => "#1f77b4",
            Workload::IncrementOnce => "#aec7e8",
            Workload::DecrementIfAtLeast => "#2ca02c",
            Workload::TakeUpTo => "#ff7f0e",
            Workload::Locked => "#9467bd",
            Workload::CompareAndSet => "#c5b0d5",
            Workload::Sale | Workload::SaleTwoUpdates => "#8c564b",
            Workload::Upsert | Workload::UpsertHandwritten => "#17becf",
            Workload::Buffered => "#bcbd22",
            Workload::Slotted => "#e377c2",
            Workload::Spread => "#393b79",
            Workload::Redis | Workload::RedisBenchmark => "#a50026",
            Workload::Checkout | Workload::CheckoutFiveCalls => "#2ca02c",
            Workload::InsertCounted | Workload::InsertCountedHandwritten => "#ff7f0e",
            Workload::InsertCountedSlotted => "#f7b6d2",
            Workload::Flush | Workload::FlushHandwritten | Workload::FlushHandwrittenUnnest => {
                "#bcbd22"
            }
        }
    }

    /// The hand-written references, and `spread`, the limit `slotted` approaches.
    fn dashed(self) -> bool {
        matches!(
            self,
            Workload::Handwritten
                | Workload::SaleTwoUpdates
                | Workload::UpsertHandwritten
                | Workload::Spread
                | Workload::RedisBenchmark
                | Workload::CheckoutFiveCalls
                | Workload::InsertCountedHandwritten
                | Workload::FlushHandwritten
                | Workload::FlushHandwrittenUnnest
        )
    }
}
