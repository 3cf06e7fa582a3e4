//! Writers of one SQLite file in one process take turns, none of them starved.
//!
//! SQLite has one write lock per database file, and a writer that finds it taken gets
//! `SQLITE_BUSY` at once: waiting is polling (SQLite's own busy handler sleeps and tries again,
//! and so did this library's retry loop). Polling is not a queue. Sixteen writers polling for
//! one lock are served in whatever order their sleeps happen to end, and on a busy machine a
//! writer can keep missing the instants the lock is free until its `busy_timeout` runs out,
//! while the others proceed (seen in this crate's own suite: `Conflict { attempts: 4,250,
//! "database is locked" }` under load, a starved writer among ones that went through).
//!
//! So the library's writers of one file, in one process, take a [`Turn`] here before they
//! try (once the process has met a busy SQLite database at all: until then a writer pays
//! nothing for the line): one turn at a time per file. A writer that finds the turn taken waits in line, asleep
//! (a parked thread, a pending task), and the line is first come, first served. The one whose
//! turn it is still polls SQLite, but only for a lock held *outside* the line: another
//! process, or a connection of this process that writes without the library. Readers never
//! queue.
//!
//! **Eventually fair**, as `parking_lot`'s mutexes: a strict queue hands every turn to a
//! sleeping thread, which costs two context switches per write (measured: 16 writers on
//! one file ran at 0.43x the throughput of unqueued writes). So a free turn goes to whoever
//! asks first, a writer arriving at that moment included, and the head of the line is woken
//! to ask too; but at least every [`FAIR_EVERY`] a turn that ends is handed straight to the
//! head of the line. Under steady contention the head therefore waits at most about
//! `FAIR_EVERY` plus one turn, and the last of sixteen waiters sixteen times that: far from
//! any `busy_timeout`, whatever the machine's load.
//!
//! A waiter gives up after `busy_timeout` with no progress: no turn ended for that long (the
//! writer holding it is stuck, for instance in a long `transaction` closure). Progress resets
//! the wait, so a long line that moves never times out, and a writer that waits behind a stuck
//! one fails as it failed before, after `busy_timeout`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener};

/// Has this process found a SQLite database busy? Until then writers take no turns: asking
/// SQLite for the file's name costs a statement per write (20% of an uncontended increment,
/// measured), which a process with one writer should not pay.
static CONTENDED: AtomicBool = AtomicBool::new(false);

/// Have writers of this process met a busy SQLite database (so they take turns from now on)?
pub(crate) fn writers_contended() -> bool {
    CONTENDED.load(Ordering::Relaxed)
}

/// A writer found a SQLite database busy: from now on writers take turns.
pub(crate) fn mark_writers_contended() {
    CONTENDED.store(true, Ordering::Relaxed);
}

/// At least this often an ending turn goes to the head of the line rather than to whoever
/// asks first.
pub(crate) const FAIR_EVERY: Duration = Duration::from_millis(1);

/// The turn and the line of one database file's writers.
pub(crate) struct WriterQueue {
    line: Mutex<Line>,
    /// [`FAIR_EVERY`] (longer in a test that must not race it).
    fair_every: Duration,
}

#[derive(Default)]
struct Line {
    /// A writer has the turn.
    held: bool,
    /// The waiter a turn was handed to, until it notices.
    handed_to: Option<u64>,
    /// Who waits, in order.
    waiting: VecDeque<Waiter>,
    next_id: u64,
    /// Turns ended in progress so far: a waiter that sees it change knows the line moved.
    served: u64,
    /// When the next ending turn must go to the head of the line.
    next_fair: Option<Instant>,
}

struct Waiter {
    id: u64,
    /// Notified when the turn ends while this waiter is at the head, or is handed to it.
    wake: Arc<Event>,
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
            fair_every: FAIR_EVERY,
        });
        queues.insert(file.to_owned(), Arc::downgrade(&queue));
        queue
    }

    /// The turn if it is free at this moment (for a writer that must not wait).
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Turn> {
        let mut line = lock(&self.line);
        if line.held {
            return None;
        }
        line.held = true;
        Some(Turn::holding(self.clone()))
    }
}

impl WriterQueue {
    /// The turn if it is free, else a place at the end of the line.
    fn join(self: Arc<Self>) -> Turn {
        let mut line = lock(&self.line);
        if !line.held {
            line.held = true;
            drop(line);
            return Turn::holding(self);
        }
        let id = line.next_id;
        line.next_id += 1;
        let wake = Arc::new(Event::new());
        line.waiting.push_back(Waiter {
            id,
            wake: wake.clone(),
        });
        drop(line);
        Turn {
            queue: self,
            waiting: Some((id, wake)),
            progress: true,
        }
    }
}

/// This writer's turn, or its place in the line while it waits for one. Dropped, it leaves
/// the line, and ends the turn if it held it (handing it on).
pub(crate) struct Turn {
    queue: Arc<WriterQueue>,
    /// `None` once it holds the turn; its waiter id while it waits.
    waiting: Option<(u64, Arc<Event>)>,
    /// Whether ending this turn is progress: not when its writer gave up on a lock held
    /// outside the line, which the writers behind it would meet next.
    progress: bool,
}

impl Turn {
    fn holding(queue: Arc<WriterQueue>) -> Turn {
        Turn {
            queue,
            waiting: None,
            progress: true,
        }
    }

    /// Its writer gave up waiting for a lock held outside the line (its `busy_timeout` ran
    /// out): ending the turn is not progress, so the writers behind it do not start their
    /// patience afresh, and each fails about when it would have without the line, not one
    /// `busy_timeout` after the other.
    pub(crate) fn gave_up(&mut self) {
        self.progress = false;
    }

    /// Does it hold the turn now? Otherwise: how many turns have ended so far, and a
    /// listener notified when this waiter should look again (taken under the line's lock, so
    /// no notification is missed between the look and the wait).
    fn look(&mut self) -> Result<(), (u64, EventListener)> {
        let Some((id, wake)) = &self.waiting else {
            return Ok(());
        };
        let mut line = lock(&self.queue.line);
        let id = *id;
        let at_head = line.waiting.front().is_some_and(|w| w.id == id);
        if line.handed_to == Some(id) || (!line.held && at_head) {
            if line.handed_to == Some(id) {
                line.handed_to = None;
            } else {
                line.held = true;
                line.waiting.pop_front();
            }
            drop(line);
            self.waiting = None;
            return Ok(());
        }
        Err((line.served, wake.listen()))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut line = lock(&self.queue.line);
        match &self.waiting {
            Some((id, _)) if line.handed_to != Some(*id) => {
                // Gave up waiting: leave the line. The head may have changed, so wake it.
                let at = line.waiting.iter().position(|w| w.id == *id);
                if let Some(at) = at {
                    line.waiting.remove(at);
                    if at == 0 && !line.held {
                        if let Some(next) = line.waiting.front() {
                            next.wake.notify(1);
                        }
                    }
                }
            }
            // Holding, or handed the turn while giving up: end it.
            waiting => {
                if waiting.is_some() {
                    line.handed_to = None;
                }
                end_turn(&mut line, self.queue.fair_every, self.progress);
            }
        }
    }
}

/// Ends the turn: hands it to the head of the line when fairness is due, else frees it and
/// wakes the head to ask for it alongside anyone arriving.
fn end_turn(line: &mut Line, fair_every: Duration, progress: bool) {
    if progress {
        line.served += 1;
    }
    let now = Instant::now();
    let Some(head) = line.waiting.front() else {
        line.held = false;
        return;
    };
    let wake = head.wake.clone();
    let fair = line.next_fair.is_none_or(|at| now >= at);
    if fair {
        let head = line.waiting.pop_front().expect("a head");
        line.handed_to = Some(head.id);
        line.next_fair = Some(now + fair_every);
    } else {
        line.held = false;
        if line.next_fair.is_none() {
            line.next_fair = Some(now + fair_every);
        }
    }
    wake.notify(1);
}

/// What a wait for a turn ended with.
pub(crate) enum Waited {
    /// This writer's turn, and when the line last moved as this writer saw it (when it
    /// joined, or when a turn ahead of it last ended in progress): a writer handed the turn
    /// by one that gave up has been waiting for the same outside lock since then.
    Turn(Turn, Instant),
    /// The line did not move for `patience`: the writer holding the turn held it that long.
    Stuck,
}

/// Takes the turn of `queue`'s file: at once when it is free, else after waiting in line
/// until it is this writer's, or until no turn has ended for `patience`. `sleep(listener,
/// left)` waits for the listener's notification or for `left` to pass: the thread parks on a
/// blocking connection, the task waits on an async one.
pub(crate) async fn take_turn<S, F>(
    queue: &Arc<WriterQueue>,
    patience: Duration,
    sleep: S,
) -> Waited
where
    S: Fn(EventListener, Duration) -> F,
    F: Future<Output = ()>,
{
    let mut turn = queue.clone().join();
    let mut last_served = None;
    let mut since = Instant::now();
    loop {
        let (served, listener) = match turn.look() {
            Ok(()) => return Waited::Turn(turn, since),
            Err(waiting) => waiting,
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn park(listener: EventListener, left: Duration) -> std::future::Ready<()> {
        let _ = listener.wait_timeout(left);
        std::future::ready(())
    }

    fn take(queue: &Arc<WriterQueue>, patience: Duration) -> Waited {
        let mut waiting = std::pin::pin!(take_turn(queue, patience, park));
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
    fn a_held_turn_is_not_free_and_a_dropped_one_is() {
        let queue = WriterQueue::of("/tmp/writer-queue-free.sqlite3");
        let held = queue.try_take().expect("free at first");
        assert!(queue.try_take().is_none());
        drop(held);
        assert!(queue.try_take().is_some());
    }

    #[test]
    fn a_stuck_turn_times_the_waiter_out_and_leaves_no_hole() {
        let queue = WriterQueue::of("/tmp/writer-queue-stuck.sqlite3");
        let holder = queue.try_take().unwrap();
        let started = Instant::now();
        assert!(matches!(
            take(&queue, Duration::from_millis(50)),
            Waited::Stuck
        ));
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(holder);
        assert!(matches!(take(&queue, Duration::ZERO), Waited::Turn(..)));
    }

    /// 8 threads x 50 turns, each held a moment: never two turns at once, every turn taken,
    /// and no waiter waits long, though the patience is far below the whole line's wait.
    #[test]
    fn turns_are_exclusive_and_every_waiter_gets_one() {
        let queue = WriterQueue::of("/tmp/writer-queue-storm.sqlite3");
        let inside = Arc::new(AtomicUsize::new(0));
        let taken = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (queue, inside, taken) = (queue.clone(), inside.clone(), taken.clone());
                s.spawn(move || {
                    for _ in 0..50 {
                        let Waited::Turn(turn, _) = take(&queue, Duration::from_secs(5)) else {
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

    /// A free turn goes to whoever asks first, a writer arriving ahead of the woken head of
    /// the line included (that keeps a hot writer on its core); but when `FAIR_EVERY` has
    /// passed since the last hand-over, the turn that ends goes to the head, and an arriving
    /// writer finds it taken.
    #[test]
    fn a_turn_goes_to_the_head_of_the_line_at_least_every_fair_period() {
        // A period far longer than the steps between two hand-overs take, however busy.
        let fair_every = Duration::from_millis(300);
        let queue = Arc::new(WriterQueue {
            line: Mutex::new(Line::default()),
            fair_every,
        });
        let first = queue.try_take().unwrap();
        let mut second = queue.clone().join();
        assert!(second.look().is_err(), "waits while the turn is held");
        // The first turn to end with a waiter is handed over.
        drop(first);
        assert!(queue.try_take().is_none(), "handed to the waiter, not free");
        assert!(second.look().is_ok(), "the waiter has it");
        let mut third = queue.clone().join();
        // Within FAIR_EVERY of that hand-over: freed, and a writer arriving now takes it.
        drop(second);
        let barger = queue.try_take().expect("free for whoever asks first");
        assert!(third.look().is_err(), "the head lost the race this time");
        // FAIR_EVERY later: handed to the head, whoever arrives.
        std::thread::sleep(fair_every);
        drop(barger);
        assert!(queue.try_take().is_none(), "handed to the head");
        assert!(third.look().is_ok());
        drop(third);
        assert!(queue.try_take().is_some(), "nobody waits: free");
    }
}
