//! SQLite's writers take turns (issue 21): sixteen writers on one file (in the default rollback
//! journal, and in WAL), beside CPU-bound threads, every call goes through with the default policy, and an
//! `update_*_locked` closure runs once per call.
//!
//! Before the writers' line, polls for the one write lock were the only wait, and under load
//! one writer could miss every free instant for its whole `busy_timeout` while the others
//! went through: `Conflict { attempts: 4,250, "database is locked" }` in `.ci/run`.

use std::time::Duration;

use counter_core::{AtomicError, RetryPolicy};

use super::harness::beside_busy_threads;
use crate::client::{on_n_workers, Client};
use crate::db::{Sqlite, TestDb};

use crate::models::Product;

/// Writers in each run.
const WRITERS: usize = 16;
/// Calls per writer per run.
const CALLS: usize = 24;
/// Runs in a row: a starved writer shows up as a `Conflict` in one of them.
pub const RUNS: usize = 20;
/// CPU-bound threads beside the writers, on a 2-core machine.
const BUSY_THREADS: usize = 2;

/// What one writer's calls did.
#[derive(Debug, Default)]
struct Calls {
    increments: i64,
    locked: i64,
    closure_runs: i64,
    reads: usize,
    errors: Vec<AtomicError>,
}

/// [`RUNS`] runs of [`WRITERS`] writers on one product of the client's file (in the rollback
/// journal every reader of the file can refuse a writer's `COMMIT`): each writer mixes
/// increments of `sold`, locked updates of it, and reads. Every call succeeds, `sold` is
/// exactly the calls' sum, and each locked update ran its closure exactly once.
pub async fn sixteen_writers_beside_busy_cores_all_go_through<C>(client: &C)
where
    C: Client<Db = Sqlite>,
{
    let db = client.db();
    for run in 0..RUNS {
        let id = db.new_product(0, 0);
        let calls: Vec<Calls> = beside_busy_threads(BUSY_THREADS, || {
            on_n_workers(client, WRITERS, async |worker, conn| {
                let mut mine = Calls::default();
                for call in 0..CALLS {
                    let outcome = match (worker + call) % 4 {
                        0 | 1 => C::done(Product::increment_sold(conn, id, 1))
                            .await
                            .map(|_| mine.increments += 1),
                        2 => {
                            let runs = &mut mine.closure_runs;
                            C::done(Product::update_sold_locked(conn, id, |v| {
                                *runs += 1;
                                Ok(v + 2)
                            }))
                            .await
                            .map(|_| mine.locked += 1)
                        }
                        _ => C::done(Product::current_sold(conn, id))
                            .await
                            .map(|_| mine.reads += 1),
                    };
                    if let Err(error) = outcome {
                        mine.errors.push(error);
                    }
                }
                mine
            })
        });
        let errors: Vec<&AtomicError> = calls.iter().flat_map(|c| &c.errors).collect();
        assert!(
            errors.is_empty(),
            "run {run} on {}: {} calls failed, first {:?}",
            client.name(),
            errors.len(),
            errors[0]
        );
        let increments: i64 = calls.iter().map(|c| c.increments).sum();
        let locked: i64 = calls.iter().map(|c| c.locked).sum();
        let closure_runs: i64 = calls.iter().map(|c| c.closure_runs).sum();
        let reads: usize = calls.iter().map(|c| c.reads).sum();
        assert_eq!(
            (increments, locked, reads),
            (192, 96, 96),
            "run {run}: the calls made"
        );
        assert_eq!(
            closure_runs, locked,
            "run {run}: one closure run per locked update"
        );
        assert_eq!(db.product(id), (0, increments + 2 * locked), "run {run}");
    }
}

/// Writers that hold the lock a while (10 ms each, in an `update_*_locked` closure) with a
/// short patience (`busy_timeout` 500 ms): sixteen of them wait up to 150 ms in line, which is
/// moving all that time, so every call goes through. Polling could not promise it: each free
/// instant goes to one of sixteen pollers, and a writer that loses the fifty or so in 500 ms
/// (about 4% of calls, by (15/16)^50) failed with `Conflict` (this test failed that way with
/// the line taken out).
pub async fn a_short_busy_timeout_is_enough_while_the_line_moves<C>(client: &C)
where
    C: Client<Db = Sqlite>,
{
    const HOLD: Duration = Duration::from_millis(10);
    const PER_WRITER: usize = 8;
    let db = client.db();
    let id = db.new_product(0, 0);
    let patient = Product::atomic_sold()
        .retry(RetryPolicy::DEFAULT.with_busy_timeout(Duration::from_millis(500)));
    let outcomes: Vec<Vec<Result<i64, AtomicError>>> = beside_busy_threads(BUSY_THREADS, || {
        on_n_workers(client, WRITERS, async |_, conn| {
            let mut mine = Vec::new();
            for _ in 0..PER_WRITER {
                mine.push(
                    C::done(patient.update_locked(conn, id, |v| {
                        std::thread::sleep(HOLD);
                        Ok(v + 1)
                    }))
                    .await,
                );
            }
            mine
        })
    });
    let failed: Vec<&AtomicError> = outcomes
        .iter()
        .flatten()
        .filter_map(|o| o.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed, first {:?}",
        failed.len(),
        WRITERS * PER_WRITER,
        failed[0]
    );
    // Every call handed out a distinct value: no two ran on the same read.
    let mut values: Vec<i64> = outcomes.into_iter().flatten().map(Result::unwrap).collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (1..=(WRITERS * PER_WRITER) as i64).collect::<Vec<_>>()
    );
    assert_eq!(db.product(id), (0, (WRITERS * PER_WRITER) as i64));
}

/// The scenarios for `$client`, a [`Client`] on a SQLite file (rollback journal or WAL).
#[macro_export]
macro_rules! sqlite_writer_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            sixteen_writers_beside_busy_cores_all_go_through,
            a_short_busy_timeout_is_enough_while_the_line_moves,
        );
    };
}
