//! A call that never returns is a defect the checker must report, not wait out: the first one
//! it met (a MariaDB Connector/C statement waiting for rows the server never sends, after a
//! compaction failed mid-result) held CI until its 90-minute limit with no message.
//!
//! Every checker thread says which call it starts and when it finished; a watchdog thread
//! looks every second, and when no call has finished for [`STALL`] it prints the cell, the
//! seed and the call each thread is in, and aborts the process (a stuck thread cannot be
//! unwound from outside, and the test harness would wait for it).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long no call may finish. Far above any lock wait a history should see (MariaDB's
/// default `innodb_lock_wait_timeout` is 50 s), far below CI's limit.
pub const STALL: Duration = Duration::from_secs(180);

struct State {
    finished: AtomicU64,
    /// Per thread: the call it is in, or `None` between calls.
    current: Mutex<Vec<Option<String>>>,
    done: Mutex<bool>,
    wake: Condvar,
}

/// Watches one run of `threads` threads; stops when dropped.
pub struct Watchdog {
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching; `what` names the run in the message (cell, subject, seed).
    pub fn start(what: String, threads: usize) -> Self {
        let state = Arc::new(State {
            finished: AtomicU64::new(0),
            current: Mutex::new(vec![None; threads]),
            done: Mutex::new(false),
            wake: Condvar::new(),
        });
        let watched = Arc::clone(&state);
        let thread = std::thread::spawn(move || watch(&watched, &what));
        Watchdog {
            state,
            thread: Some(thread),
        }
    }

    /// `thread` starts the call `call` describes.
    pub fn call<T>(&self, thread: usize, call: &dyn std::fmt::Debug, f: impl FnOnce() -> T) -> T {
        self.enter(thread, call);
        let result = f();
        self.leave(thread);
        result
    }

    /// [`call`](Self::call) for a call that is a future (sync or async alike, see
    /// `counter_core::CallMode::into_future`).
    pub async fn watch<T>(
        &self,
        thread: usize,
        call: &dyn std::fmt::Debug,
        f: impl std::future::Future<Output = T>,
    ) -> T {
        self.enter(thread, call);
        let result = f.await;
        self.leave(thread);
        result
    }

    fn enter(&self, thread: usize, call: &dyn std::fmt::Debug) {
        lock(&self.state.current)[thread] = Some(format!("{call:?}"));
    }

    fn leave(&self, thread: usize) {
        lock(&self.state.current)[thread] = None;
        self.state.finished.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *lock(&self.state.done) = true;
        self.state.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(state: &State, what: &str) {
    let mut seen = state.finished.load(Ordering::Relaxed);
    let mut since = Instant::now();
    let mut done = lock(&state.done);
    while !*done {
        done = state
            .wake
            .wait_timeout(done, Duration::from_secs(1))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        let now = state.finished.load(Ordering::Relaxed);
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if since.elapsed() >= STALL && !*done {
            let stuck: Vec<String> = lock(&state.current)
                .iter()
                .enumerate()
                .filter_map(|(t, call)| call.as_ref().map(|c| format!("thread {t}: {c}")))
                .collect();
            // Straight to the process's stderr: the test harness captures `eprintln!`, and
            // what it captured is lost with the abort.
            let _ = writeln!(
                std::io::stderr(),
                "checker, {what}: no call returned for {STALL:?}, a hang; aborting. In a call:\n  {}",
                stuck.join("\n  ")
            );
            std::process::abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
