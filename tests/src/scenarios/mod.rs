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
//!
//! One file per topic, each listing its own scenarios in a `*_tests!` macro, so a new scenario
//! touches one file:
//!
//! - [`single_row`]: one guarded `UPDATE` (`increment_*`, `decrement_*`, `*_if_at_least`,
//!   `take_*_up_to`), its results and its bounds.
//! - [`refusals`]: `NotFound`, `NegativeAmount` and the zero amount, for every operation.
//! - [`locked`]: `update_*_locked`, `transfer_*`, `LockMode::NoWait`.
//! - [`integer_types`]: each integer column type at its extremes, signed values without `min`.
//! - [`model_options`]: renamed columns, inferred tables, the `atomic_*()` handle's options.
//! - [`callers_transaction`]: operations inside the caller's own transaction.
//! - [`storms`]: many workers on the same rows, every outcome counted.
//! - [`transaction`]: the library's retrying `transaction`; [`idempotent`]: calls applied once
//!   per key (`Idempotent`), replayed, refused, raced and stormed.
//! - [`composite`]: composite keys and several columns in one statement.
//! - [`upsert`]: increment-or-insert and the add-to-cart.
//! - [`sets`]: the set operations on one connection, every row or none; [`checkout`]: the
//!   checkout (`decrement_*_if_at_least_many`) under contention.
//! - [`counter_cache`]: a child row and its parent's counter (inserts, deletes, recounts),
//!   under storms; [`counter_cache_update`]: counted updates (moves, re-ratings, flips of a
//!   conditional count); [`slotted_cache`]: a counter cache into a slotted parent column.
//! - [`slotted`], [`buffer`], [`redis`]: slotted counters, the write-behind `Buffer`,
//!   `RedisCounter`; [`redis_kept`]: what a Redis flush cannot write, kept or reported;
//!   [`redis_flusher`]: its background flusher.
//! - [`buffer_rows`]: a buffer's flush (refused rows, unknown keys, 200,000 keys);
//!   [`buffer_faults`]: a buffer while the database is down or its connection is cut
//!   (`buffer_server_fault_tests!`, servers only, blocking and async).
//!
//! [`assert`](mod@assert) holds the assertions on results, [`harness`] the threads, panic catching and
//! shared types.
//!
//! [`Client`]: crate::client::Client

pub mod assert;
pub mod buffer;
pub mod buffer_faults;
pub mod buffer_rows;
pub mod callers_transaction;
pub mod checkout;
pub mod composite;
pub mod counter_cache;
pub mod counter_cache_update;
pub mod decimal;
pub mod harness;
pub mod idempotent;
pub mod integer_types;
pub mod locked;
pub mod model_options;
pub mod redis;
pub mod redis_flusher;
pub mod redis_kept;
pub mod refusals;
pub mod sets;
pub mod single_row;
pub mod slotted;
pub mod slotted_cache;
pub mod sqlite_writers;
pub mod storms;
pub mod touch;
pub mod transaction;
pub mod upsert;
pub mod values;

pub use assert::*;
pub use buffer::*;
pub use buffer_faults::*;
pub use buffer_rows::*;
pub use callers_transaction::*;
pub use checkout::*;
pub use composite::*;
pub use counter_cache::*;
pub use counter_cache_update::*;
pub use decimal::*;
pub use harness::*;
pub use idempotent::*;
pub use integer_types::*;
pub use locked::*;
pub use model_options::*;
pub use redis::*;
pub use redis_flusher::*;
pub use redis_kept::*;
pub use refusals::*;
pub use sets::*;
pub use single_row::*;
pub use slotted::*;
pub use slotted_cache::*;
pub use sqlite_writers::*;
pub use storms::*;
pub use touch::*;
pub use transaction::*;
pub use upsert::*;
pub use values::*;

/// Expands to one `#[test]` per scenario for the [`Client`](crate::client::Client) that
/// `$client` makes (a fresh one per test): `backend_tests!(BlockingClient(Postgres::open()))`,
/// `backend_tests!(AsyncPostgres::on(Postgres::open()))`. Each topic lists its own scenarios.
#[macro_export]
macro_rules! backend_tests {
    ($client:expr) => {
        $crate::single_row_tests!($client);
        $crate::refusal_tests!($client);
        $crate::locked_tests!($client);
        $crate::integer_type_tests!($client);
        $crate::model_option_tests!($client);
        $crate::callers_transaction_tests!($client);
        $crate::storm_tests!($client);
        $crate::value_tests!($client);
        $crate::touch_tests!($client);
        $crate::decimal_tests!($client);
        $crate::transaction_tests!($client);
        $crate::idempotent_tests!($client);
        $crate::composite_tests!($client);
        $crate::upsert_tests!($client);
        $crate::set_tests!($client);
        $crate::checkout_tests!($client);
        $crate::counter_cache_tests!($client);
        $crate::counter_cache_update_tests!($client);
        $crate::slotted_tests!($client);
        $crate::slotted_cache_tests!($client);
        $crate::buffer_tests!($client);
        $crate::buffer_row_tests!($client);
        $crate::buffer_fault_tests!($client);
        $crate::redis_tests!($client);
        $crate::redis_kept_tests!($client);
    };
}

/// The scenarios of the blocking API only, for backend `$backend` (a
/// [`TestDb`](crate::db::TestDb)).
#[macro_export]
macro_rules! blocking_tests {
    ($backend:ty) => {
        $crate::buffer_blocking_tests!($backend);
    };
}

/// One `#[test]` per named scenario of [`scenarios`](crate::scenarios), each on a fresh client
/// from `$client`: what every topic's `*_tests!` macro expands to.
#[doc(hidden)]
#[macro_export]
macro_rules! scenario_tests {
    ($client:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let client = $client;
                $crate::client::Client::block_on(&client, $crate::scenarios::$name(&client));
            }
        )*
    };
}

/// One `#[test]` per named blocking-only scenario, each run on backend `$backend`.
#[doc(hidden)]
#[macro_export]
macro_rules! blocking_scenario_tests {
    ($backend:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::scenarios::$name::<$backend>();
            }
        )*
    };
}
