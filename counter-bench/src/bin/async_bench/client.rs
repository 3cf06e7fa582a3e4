//! The clients of a slice (tokio tasks on pooled async connections, or threads on blocking
//! ones), and the check of what they were told against what the table shows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use counter_bench::measure::{ClientLog, Totals};

use crate::cli::Workload;
use crate::server::Server;

/// What one client measured in one slice.
pub struct ClientResult {
    /// The row it incremented.
    pub id: i64,
    /// The new value of every successful increment, in order.
    pub values: Vec<i64>,
    pub log: ClientLog,
}

impl ClientResult {
    fn new(id: i64, start: Instant) -> Self {
        ClientResult {
            id,
            values: Vec::with_capacity(1 << 15),
            log: ClientLog::new(start, 1 << 15),
        }
    }

    /// Records one operation that ended at `after` and started where the last one ended.
    fn record(&mut self, result: Result<i64, String>, after: Instant) {
        if let Some(value) = self.log.record(result, after) {
            self.values.push(value);
        }
    }
}

/// One async client: its pooled connection, increments back to back until the deadline.
pub async fn async_client<S: Server>(
    mut conn: S::Pooled,
    workload: Workload,
    id: i64,
    start_at: tokio::time::Instant,
    duration: Duration,
) -> ClientResult {
    tokio::time::sleep_until(start_at).await;
    let conn: &mut S::Async = &mut conn;
    let start = Instant::now();
    let deadline = start + duration;
    let mut r = ClientResult::new(id, start);
    while r.log.end < deadline {
        let result = match workload {
            Workload::LibraryAsync => S::library(conn, id).await,
            Workload::HandAsync => S::hand(conn, id).await,
            Workload::HandAsyncPrepared => S::hand_prepared(conn, id).await,
            Workload::LibrarySync => Err("library-sync does not run on a task".into()),
        };
        r.record(result, Instant::now());
    }
    r
}

/// One blocking client: its own connection on its own thread.
pub fn sync_client<S: Server>(
    conn: &mut S::Blocking,
    id: i64,
    start_at: Instant,
    duration: Duration,
) -> ClientResult {
    std::thread::sleep(start_at.saturating_duration_since(Instant::now()));
    let start = Instant::now();
    let deadline = start + duration;
    let mut r = ClientResult::new(id, start);
    while r.log.end < deadline {
        let result = S::library_sync(conn, id);
        r.record(result, Instant::now());
    }
    r
}

/// What a slice, or the slices of one configuration, add up to.
#[derive(Debug, Default)]
pub struct Tally {
    pub totals: Totals,
    /// Successful increments minus what the rows moved by.
    pub lost: i64,
    /// Returned values that were duplicates or outside what their row went through.
    pub bad_values: u64,
    /// CPU time of this process (every thread) while the clients ran.
    pub cpu: Duration,
    /// ops/s of each round.
    pub per_round: Vec<f64>,
}

impl Tally {
    /// Adds the slice of one more round.
    pub fn add(&mut self, t: Tally) {
        self.per_round
            .push(t.totals.ok as f64 / t.totals.elapsed.as_secs_f64());
        self.totals.add(t.totals);
        self.lost += t.lost;
        self.bad_values += t.bad_values;
        self.cpu += t.cpu;
    }
}

/// CPU time this process has used so far, all threads, exited ones included.
pub fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; CLOCK_PROCESS_CPUTIME_ID is always supported
    // on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Adds up the clients of one slice and checks the table: every row moved by exactly the
/// increments its clients were told succeeded, and the values they got back are exactly the
/// values the row went through (no duplicate, none outside `(before, after]`).
pub fn tally(
    before: &BTreeMap<i64, i64>,
    after: &BTreeMap<i64, i64>,
    results: Vec<ClientResult>,
) -> Tally {
    let mut by_row: BTreeMap<i64, (u64, Vec<i64>)> = BTreeMap::new();
    let mut logs = Vec::with_capacity(results.len());
    for r in results {
        let entry = by_row.entry(r.id).or_default();
        entry.0 += r.log.ok;
        entry.1.extend(r.values);
        logs.push(r.log);
    }
    let mut t = Tally {
        totals: Totals::of_clients(logs),
        ..Tally::default()
    };
    for (id, (ok, mut values)) in by_row {
        let (b, a) = (
            before.get(&id).copied().unwrap_or(0),
            after.get(&id).copied().unwrap_or(0),
        );
        t.lost += ok as i64 - (a - b);
        let n = values.len();
        values.sort_unstable();
        values.dedup();
        let outside = values.iter().filter(|&&v| v <= b || v > a).count();
        t.bad_values += (n - values.len() + outside) as u64;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_lost_and_bad_values() {
        let t0 = Instant::now();
        let client = |id, values: Vec<i64>| ClientResult {
            id,
            log: ClientLog {
                ok: values.len() as u64,
                errors: 0,
                first_error: None,
                latencies_us: vec![1],
                start: t0,
                end: t0,
            },
            values,
        };
        let before = BTreeMap::from([(1, 10), (101, 0)]);
        let after = BTreeMap::from([(1, 13), (101, 2)]);
        let t = tally(
            &before,
            &after,
            vec![
                client(1, vec![11, 13]),
                client(1, vec![12]),
                client(101, vec![1, 2]),
            ],
        );
        assert_eq!((t.totals.ok, t.lost, t.bad_values), (5, 0, 0));
        let t = tally(&before, &after, vec![client(1, vec![11, 11, 14, 12])]);
        assert_eq!((t.lost, t.bad_values), (1, 2));
    }

    #[test]
    fn rounds_add_up_and_keep_their_rates() {
        let slice = |ok, ms| Tally {
            totals: Totals {
                ok,
                elapsed: Duration::from_millis(ms),
                ..Totals::default()
            },
            lost: 1,
            bad_values: 2,
            cpu: Duration::from_millis(3),
            per_round: Vec::new(),
        };
        let mut total = Tally::default();
        total.add(slice(100, 1000));
        total.add(slice(300, 1000));
        assert_eq!(total.per_round, [100.0, 300.0]);
        assert_eq!((total.totals.ok, total.lost, total.bad_values), (400, 2, 4));
        assert_eq!(total.cpu, Duration::from_millis(6));
        assert_eq!(total.totals.ops_per_sec(), 200.0);
    }
}
