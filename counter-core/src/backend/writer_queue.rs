//! Writers of one SQLite file in one process take turns, first come first served.
//!
//! SQLite has one write lock per database file, and a writer that finds it taken gets
//! `SQLITE_BUSY` at once: waiting is polling (SQLite's own busy handler sleeps and tries again,
//! and so did this library's retry loop). Polling is not a queue. Sixteen writers polling for
//! one lock are served in whatever order their sleeps happen to end, and on a busy machine a
//! writer can keep missing the instants the lock is free until its `busy_timeout` runs out,
//! while the others proceed (seen in this crate's own suite: `Conflict { attempts: 4,250,
//! "database is locked" }` under load, a starved writer among ones that went through).
//!
//! So the library's writers of one file, in one process, line up here before they try: one
//! [`Turn`] at a time per file, in the order they asked, each waiting asleep (a parked thread,
//! a pending task) until the writer ahead of it is done. The one whose turn it is still polls
//! SQLite, but only for a lock held *outside* the line: another process, or a connection of
//! this process that writes without the library. Readers never queue.
//!
//! A waiter gives up after `busy_timeout` with no progress: the line did not move for that
//! long (the writer ahead held its turn, for instance in a long `transaction` closure).
//! Progress resets the wait, so a long line that moves never times out, and a writer that
//! waits behind a stuck one fails as it failed before, after `busy_timeout`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener};

/// The line of one database file's writers.
pub(crate) struct WriterQueue {
    line: Mutex<Line>,
}

/// Who waits, in order: the first entry holds the turn.
#[derive(Default)]
struct Line {
    waiting: VecDeque<Waiter>,
    next_id: u64,
    /// Turns ended so far: a waiter that sees it change knows the line moved.
    served: u64,
}

struct Waiter {
    id: u64,
    /// Notified when this waiter reaches the front.
    front: Arc<Event>,
}

impl WriterQueue {
    /// The line of the database file `file` (an absolute path, as SQLite reports it): one per
    /// file per process, shared by every connection to it.
    pub(crate) fn of(file: &str) -> Arc<WriterQueue> {
        static QUEUES: OnceLock<Mutex<HashMap<String, Weak<WriterQueue>>>> = OnceLock::new();
        let mut queues = lock(QUEUES.get_or_init(Default::default));
        if let Some(queue) = queues.get(file).and_then(Weak::upgrade) {
            return queue;
        }
        // Files come and go (a test's temporary database): forget the lines nobody holds when
        // the map has doubled, so it stays as large as the files in use.
        if queues.len() >= 64 && queues.len().is_power_of_two() {
            queues.retain(|_, queue| queue.strong_count() > 0);
        }
        let queue = Arc::new(WriterQueue {
            line: Mutex::new(Line::default()),
        });
        queues.insert(file.to_owned(), Arc::downgrade(&queue));
        queue
    }

    /// Joins the end of the line. The place is given up when the [`Turn`] is dropped, whether
    /// it reached the front or not (a waiter that timed out, a future dropped mid-wait).
    pub(crate) fn join(self: Arc<Self>) -> Turn {
        let front = Arc::new(Event::new());
        let id = {
            let mut line = lock(&self.line);
            let id = line.next_id;
            line.next_id += 1;
            line.waiting.push_back(Waiter {
                id,
                front: front.clone(),
            });
            id
        };
        Turn {
            queue: self,
            id,
            front,
        }
    }
}

/// A place in a file's line; the turn itself once [`Turn::is_front`]. Dropped, it leaves the
/// line and, if it held the turn, hands it to the next writer.
pub(crate) struct Turn {
    queue: Arc<WriterQueue>,
    id: u64,
    front: Arc<Event>,
}

/// Where a waiting [`Turn`] stands.
pub(crate) enum Place {
    /// At the front: this writer's turn.
    Front,
    /// Still waiting; `served` turns have ended so far.
    Behind { served: u64 },
}

impl Turn {
    /// Where this turn stands now, and a listener notified when it reaches the front (taken
    /// under the same lock, so no hand-over is missed between the look and the wait).
    pub(crate) fn place(&self) -> (Place, Option<EventListener>) {
        let line = lock(&self.queue.line);
        if line.waiting.front().is_some_and(|w| w.id == self.id) {
            return (Place::Front, None);
        }
        let listener = self.front.listen();
        (
            Place::Behind {
                served: line.served,
            },
            Some(listener),
        )
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut line = lock(&self.queue.line);
        let Some(at) = line.waiting.iter().position(|w| w.id == self.id) else {
            return;
        };
        line.waiting.remove(at);
        if at == 0 {
            line.served += 1;
            if let Some(next) = line.waiting.front() {
                next.front.notify(1);
            }
        }
    }
}

/// What a wait in line ended with.
pub(crate) enum Waited {
    /// This writer's turn.
    Turn(Turn),
    /// The line did not move for `patience`: the writer ahead held its turn that long.
    Stuck,
}

/// Waits in `turn`'s line until it is this writer's turn, or until the line has not moved
/// for `patience`. `sleep(listener, left)` waits for the listener's notification or for
/// `left` to pass: the thread parks on a blocking connection, the task on an async one.
pub(crate) async fn wait_in_line<S, F>(turn: Turn, patience: Duration, sleep: S) -> Waited
where
    S: Fn(EventListener, Duration) -> F,
    F: std::future::Future<Output = ()>,
{
    let mut last_served = None;
    let mut since = Instant::now();
    loop {
        let (place, listener) = turn.place();
        let (Place::Behind { served }, Some(listener)) = (place, listener) else {
            return Waited::Turn(turn);
        };
        if last_served != Some(served) {
            last_served = Some(served);
            since = Instant::now();
        }
        let left = patience.saturating_sub(since.elapsed());
        if left.is_zero() {
            return Waited::Stuck;
        }
        sleep(listener, left).await;
    }
}

/// Locks `mutex`, also after a panic elsewhere: the line's state is updated in single steps
/// that a panic cannot leave half-done.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_listener::Listener;
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn park(listener: EventListener, left: Duration) -> std::future::Ready<()> {
        let _ = listener.wait_timeout(left);
        std::future::ready(())
    }

    fn wait(turn: Turn, patience: Duration) -> Waited {
        let mut waiting = std::pin::pin!(wait_in_line(turn, patience, park));
        let waker = std::task::Waker::noop();
        match waiting
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            std::task::Poll::Ready(waited) => waited,
            std::task::Poll::Pending => unreachable!("parking is ready at once"),
        }
    }

    #[test]
    fn one_file_one_line_other_files_their_own() {
        let a = WriterQueue::of("/tmp/writer-queue-a.sqlite3");
        assert!(Arc::ptr_eq(
            &a,
            &WriterQueue::of("/tmp/writer-queue-a.sqlite3")
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &WriterQueue::of("/tmp/writer-queue-b.sqlite3")
        ));
    }

    #[test]
    fn turns_come_in_the_order_asked_and_pass_on_drop() {
        let queue = WriterQueue::of("/tmp/writer-queue-order.sqlite3");
        let first = queue.clone().join();
        let second = queue.clone().join();
        let third = queue.clone().join();
        assert!(matches!(first.place().0, Place::Front));
        assert!(matches!(second.place().0, Place::Behind { served: 0 }));
        // A waiter that gives up leaves no hole in the line.
        drop(second);
        drop(first);
        assert!(matches!(third.place().0, Place::Front));
        assert!(matches!(wait(third, Duration::ZERO), Waited::Turn(_)));
    }

    #[test]
    fn a_stuck_line_times_out_and_a_moving_one_does_not() {
        let queue = WriterQueue::of("/tmp/writer-queue-stuck.sqlite3");
        let holder = queue.clone().join();
        let started = Instant::now();
        assert!(matches!(
            wait(queue.clone().join(), Duration::from_millis(50)),
            Waited::Stuck
        ));
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(holder);

        // 8 threads x 50 turns, each held a moment, with a patience far below the whole
        // line's wait: every turn is taken, none alone in its critical section is interrupted.
        let inside = Arc::new(AtomicUsize::new(0));
        let taken = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (queue, inside, taken) = (queue.clone(), inside.clone(), taken.clone());
                s.spawn(move || {
                    for _ in 0..50 {
                        let Waited::Turn(turn) = wait(queue.clone().join(), Duration::from_secs(5))
                        else {
                            panic!("a moving line timed out");
                        };
                        assert_eq!(
                            inside.fetch_add(1, Ordering::SeqCst),
                            0,
                            "two turns at once"
                        );
                        std::thread::sleep(Duration::from_micros(200));
                        inside.fetch_sub(1, Ordering::SeqCst);
                        taken.fetch_add(1, Ordering::SeqCst);
                        drop(turn);
                    }
                });
            }
        });
        assert_eq!(taken.load(Ordering::SeqCst), 400);
    }
}
