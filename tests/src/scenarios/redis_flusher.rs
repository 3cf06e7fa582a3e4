//! `RedisCounter`'s background flusher: flushes on its interval while adds keep coming, and
//! its shutdown runs a last flush, so every add is in the rows exactly once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use counter_core::AtomicFieldOn;
use rand::{Rng, SeedableRng};

use super::redis::{daily_rows, fresh_views, open_batches, rows};
use crate::client::{on_n_workers, FlusherClient, RunningFlusher};
use crate::db::{next_id, redis_connection, DbOf};
use crate::models::DailyView;
use crate::schema::ct_daily_views;

/// What the flusher's `on_flush` saw: flushes, counts written, errors.
#[derive(Default)]
struct Seen {
    flushes: usize,
    written: i128,
    errors: Vec<String>,
}

/// 8 workers × 2,000 adds (1 to 3) over 10 keys, beside 2 CPU-bound workers, with the
/// flusher running every 20 ms: the rows reach exactly what was added without any call to
/// `flush` (the interval flushes; waited for, not timed). Then one more add and the
/// shutdown: its last flush writes it. The reports `on_flush` saw add up to every add,
/// nothing is pending, no batch is open, no flush failed.
pub async fn redis_flusher_flushes_on_interval_and_at_shutdown<C: FlusherClient>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
{
    const ADDERS: usize = 8;
    const BUSY: usize = 2;
    const ADDS: usize = 2_000;
    const DAYS: i32 = 10;
    let db = client.db();
    let page = next_id();
    daily_rows(db, page, 0..DAYS, 0);
    let (views, prefix) = fresh_views();
    let views = Arc::new(views);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let flusher = {
        let seen = Arc::clone(&seen);
        client.redis_flusher(&views, Duration::from_millis(20), move |result| {
            let mut seen = seen.lock().unwrap();
            seen.flushes += 1;
            match result {
                Ok(report) => seen.written += report.total_written(),
                Err(e) => seen.errors.push(e.to_string()),
            }
        })
    };

    let adders_left = AtomicUsize::new(ADDERS);
    let results = on_n_workers(client, ADDERS + BUSY, async |worker, _| {
        let mut added: BTreeMap<i32, i64> = BTreeMap::new();
        if worker >= ADDERS {
            // CPU-bound beside the adders and the flusher, until the adds are done.
            let mut x = worker as u64;
            while adders_left.load(Ordering::Acquire) > 0 {
                for _ in 0..10_000 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
            }
            std::hint::black_box(x);
            return added;
        }
        // Counts this adder out however it ends: an adder that panics must not leave the
        // CPU-bound workers spinning forever (the test would hang instead of failing).
        struct Finished<'a>(&'a AtomicUsize);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _finished = Finished(&adders_left);
        let mut redis = client.redis().await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(worker as u64);
        for _ in 0..ADDS {
            let day = rng.random_range(0..DAYS);
            let n = rng.random_range(1..=3);
            C::done(views.add(&mut redis, &(page, day), n))
                .await
                .expect("an add");
            *added.entry(day).or_default() += n;
        }
        added
    });
    let mut added: BTreeMap<i32, i64> = BTreeMap::new();
    for by_worker in results {
        for (day, n) in by_worker {
            *added.entry(day).or_default() += n;
        }
    }

    // The interval flushes move everything without a call to `flush`.
    let started = Instant::now();
    while rows(db, page) != added {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the flusher did not move the adds: {:?} vs {added:?}",
            rows(db, page)
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // One more add, then the shutdown: its last flush writes it.
    let mut redis = client.redis().await;
    C::done(views.add(&mut redis, &(page, 0), 7)).await.unwrap();
    *added.entry(0).or_default() += 7;
    let last = flusher.shutdown().expect("the last flush");
    assert_eq!(rows(db, page), added);
    let total: i64 = added.values().sum();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.errors, Vec::<String>::new());
        assert_eq!(seen.written, i128::from(total), "each add written once");
        assert!(seen.flushes >= 2, "{} flushes", seen.flushes);
    }
    assert!(last.kept.is_empty() && last.unknown.is_empty(), "{last:?}");
    for day in 0..DAYS {
        let pending = C::done(views.pending(&mut redis, &(page, day))).await;
        assert_eq!(pending.unwrap(), 0);
    }
    assert_eq!(
        open_batches(&mut redis_connection(), &prefix),
        Vec::<String>::new()
    );
}
