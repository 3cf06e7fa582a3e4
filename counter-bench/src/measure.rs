//! What a client records while it runs operations back to back, and how the clients of a
//! slice, then the slices of a configuration, add up.

use std::time::{Duration, Instant};

use crate::stats::{percentile, rate};

/// What one client measured in one slice: its operations' outcomes and latencies, from its
/// first operation's start to its last one's end.
#[derive(Debug)]
pub struct ClientLog {
    pub ok: u64,
    pub errors: u64,
    /// The first error, kept to be shown; the others are only counted.
    pub first_error: Option<String>,
    pub latencies_us: Vec<u32>,
    pub start: Instant,
    /// When the last recorded operation ended: the next one starts here.
    pub end: Instant,
}

impl ClientLog {
    /// A client that starts now, with room for `capacity` latencies before it allocates.
    pub fn new(start: Instant, capacity: usize) -> Self {
        ClientLog {
            ok: 0,
            errors: 0,
            first_error: None,
            latencies_us: Vec::with_capacity(capacity),
            start,
            end: start,
        }
    }

    /// Records one operation that started at `self.end` and ended at `after`; the value of a
    /// success, for the caller to keep.
    pub fn record<T>(&mut self, result: Result<T, String>, after: Instant) -> Option<T> {
        self.latencies_us
            .push(u32::try_from((after - self.end).as_micros()).unwrap_or(u32::MAX));
        self.end = after;
        match result {
            Ok(value) => {
                self.ok += 1;
                Some(value)
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
                None
            }
        }
    }
}

/// Operations, errors, measured time and latencies: of the clients of a slice, or of every
/// slice of a configuration.
#[derive(Debug, Default)]
pub struct Totals {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latencies_us: Vec<u32>,
}

impl Totals {
    /// The clients of one slice, which ran side by side: the time measured runs from the
    /// earliest start to the latest end.
    pub fn of_clients(logs: impl IntoIterator<Item = ClientLog>) -> Self {
        let mut t = Totals::default();
        let mut span: Option<(Instant, Instant)> = None;
        for log in logs {
            t.ok += log.ok;
            t.errors += log.errors;
            if t.first_error.is_none() {
                t.first_error = log.first_error;
            }
            t.latencies_us.extend(log.latencies_us);
            span = Some(span.map_or((log.start, log.end), |(s, e)| {
                (s.min(log.start), e.max(log.end))
            }));
        }
        t.elapsed = span.map_or(Duration::ZERO, |(s, e)| e - s);
        t
    }

    /// Adds a slice that ran after the others: times add up.
    pub fn add(&mut self, slice: Totals) {
        self.ok += slice.ok;
        self.errors += slice.errors;
        if self.first_error.is_none() {
            self.first_error = slice.first_error;
        }
        self.elapsed += slice.elapsed;
        self.latencies_us.extend(slice.latencies_us);
    }

    /// Successful operations per second, to a tenth.
    pub fn ops_per_sec(&self) -> f64 {
        rate(self.ok, self.elapsed)
    }

    /// The p50 and p99 latencies, µs (sorts the latencies).
    pub fn p50_p99(&mut self) -> (u32, u32) {
        self.latencies_us.sort_unstable();
        (
            percentile(&self.latencies_us, 0.50),
            percentile(&self.latencies_us, 0.99),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_records_outcomes_and_latencies() {
        let t0 = Instant::now();
        let mut log = ClientLog::new(t0, 4);
        assert_eq!(log.record(Ok(5), t0 + Duration::from_micros(30)), Some(5));
        let none: Option<i64> = log.record(Err("first".into()), t0 + Duration::from_micros(50));
        assert_eq!(none, None);
        log.record::<()>(Err("second".into()), t0 + Duration::from_micros(60));
        assert_eq!((log.ok, log.errors), (1, 2));
        assert_eq!(log.first_error.as_deref(), Some("first"));
        assert_eq!(log.latencies_us, [30, 20, 10]);
        assert_eq!(log.end, t0 + Duration::from_micros(60));
    }

    #[test]
    fn clients_span_their_union_and_slices_add_up() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let log = |start, end, ok, error: Option<&str>| ClientLog {
            ok,
            errors: u64::from(error.is_some()),
            first_error: error.map(str::to_owned),
            latencies_us: vec![ok as u32],
            start: t0 + ms(start),
            end: t0 + ms(end),
        };
        let mut slice = Totals::of_clients([
            log(10, 500, 3, None),
            log(0, 400, 2, Some("a")),
            log(5, 1000, 5, Some("b")),
        ]);
        assert_eq!((slice.ok, slice.errors), (10, 2));
        assert_eq!(slice.first_error.as_deref(), Some("a"));
        assert_eq!(slice.elapsed, ms(1000));
        assert_eq!(slice.ops_per_sec(), 10.0);
        assert_eq!(slice.p50_p99(), (3, 5));

        let mut total = Totals::default();
        total.add(slice);
        total.add(Totals::of_clients([log(0, 1000, 30, Some("c"))]));
        assert_eq!((total.ok, total.errors, total.elapsed), (40, 3, ms(2000)));
        assert_eq!(total.first_error.as_deref(), Some("a"));
        assert_eq!(total.ops_per_sec(), 20.0);
        assert!(Totals::of_clients([]).elapsed.is_zero());
    }
}
