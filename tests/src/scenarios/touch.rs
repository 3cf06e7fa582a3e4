//! Touched timestamps (`#[atomic(touch = updated_at)]`): every statement that changes a field
//! stamps its column with the database's time, in the same statement; a call that changes
//! nothing (a refusal, a mismatch, a full line, a lower bid, a zero amount) leaves it alone; a
//! field without `touch` never moves it; and a change that waited for another transaction's
//! row lock is stamped after that transaction, not when it began waiting.

use std::time::{Duration, Instant};

use counter_core::{
    AtomicError, AtomicFieldOn, Change, ChangeColumn, Changes, CounterCacheOn, FlushPolicy, NewRow,
    UpsertRow,
};
use diesel::connection::{Connection, SimpleConnection, TransactionManager};

use super::assert::{insufficient, out_of_range};
use crate::client::{Client, TestBuffer};
use crate::db::{DbOf, TestDb};
use crate::models::{NewStampEvent, Stamped};
use crate::schema::ct_stamps;

/// This file's scenarios on every backend, for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! touch_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            touch_moves_with_each_change_and_not_without_one,
        );
    };
}

/// This file's scenarios on a server (row locks to wait for), for `tests/postgres.rs`,
/// `tests/mysql.rs` and their async clients in `tests/async.rs`.
#[macro_export]
macro_rules! touch_server_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            a_change_that_waited_for_the_row_is_touched_after_it,
        );
    };
}

/// `update_atomic` of both touching fields of a [`Stamped`] row.
pub type HitsAndScore = (Change<ct_stamps::hits, i64>, Change<ct_stamps::score, i64>);

/// `update_atomic` of a touching field and one that does not touch.
pub type HitsAndPlain = (Change<ct_stamps::hits, i64>, Change<ct_stamps::plain, i64>);

/// The stamps a scenario has seen, per row: each step says whether its row's stamp moved.
struct Stamps<'d, D: TestDb> {
    db: &'d D,
    seen: Vec<(i64, Option<i64>)>,
}

impl<'d, D: TestDb> Stamps<'d, D> {
    fn of(db: &'d D, rows: &[i64]) -> Self {
        let seen = rows.iter().map(|&id| (id, db.touched_at(id))).collect();
        Stamps { db, seen }
    }

    /// Waits out the clock's resolution (SQLite's stamps carry milliseconds), so a stamp
    /// written after this is strictly later than every stamp seen so far.
    fn tick(&self) {
        std::thread::sleep(Duration::from_millis(3));
    }

    /// Row `id`'s stamp after `step`: later than before when `moved`, else the same.
    fn after(&mut self, step: &str, id: i64, moved: bool) {
        let (_, before) = self.seen.iter_mut().find(|(row, _)| *row == id).unwrap();
        let now = self.db.touched_at(id);
        if moved {
            assert!(
                now.is_some() && now > *before,
                "{}: {step} changed row {id} but its stamp went from {before:?} to {now:?}",
                D::NAME
            );
        } else {
            assert_eq!(
                now,
                *before,
                "{}: {step} changed nothing, yet row {id}'s stamp moved",
                D::NAME
            );
        }
        *before = now;
    }
}

/// Each operation on a `Stamped` row, one after the other: the stamp moves exactly with the
/// changes of `hits` and `score` (both touch `updated_at`), and with none of `plain`'s.
pub async fn touch_moves_with_each_change_and_not_without_one<C: Client>(client: &C)
where
    Stamped: AtomicFieldOn<ct_stamps::hits, DbOf<C::Db>>
        + AtomicFieldOn<ct_stamps::score, DbOf<C::Db>>
        + AtomicFieldOn<ct_stamps::plain, DbOf<C::Db>>,
    HitsAndScore: Changes<Stamped, DbOf<C::Db>, Key = i64, Values = (i64, i64)>,
    HitsAndPlain: Changes<Stamped, DbOf<C::Db>, Key = i64, Values = (i64, i64)>,
    for<'r> &'r Stamped: UpsertRow<Stamped, ct_stamps::hits, DbOf<C::Db>>,
    Stamped: NewRow<Stamped, ct_stamps::hits, DbOf<C::Db>>,
    NewStampEvent: CounterCacheOn<ct_stamps::hits, DbOf<C::Db>>,
{
    let db = client.db();
    let (a, b) = (db.new_stamped(), db.new_stamped());
    let c = &mut client.conn().await;
    let mut stamps = Stamps::of(db, &[a, b]);
    assert_eq!(stamps.seen, vec![(a, None), (b, None)]);

    // A field without `touch`, and calls that change nothing.
    assert_eq!(C::done(Stamped::increment_plain(c, a, 3)).await.unwrap(), 3);
    stamps.after("increment_plain", a, false);
    assert_eq!(C::done(Stamped::increment_hits(c, a, 0)).await.unwrap(), 0);
    stamps.after("increment_hits by 0", a, false);

    stamps.tick();
    assert_eq!(C::done(Stamped::increment_hits(c, a, 5)).await.unwrap(), 5);
    stamps.after("increment_hits", a, true);
    assert_eq!(
        insufficient(C::done(Stamped::decrement_hits_if_at_least(c, a, 6)).await),
        (5, 6)
    );
    stamps.after("a refused decrement_hits_if_at_least", a, false);
    out_of_range(C::done(Stamped::increment_hits(c, a, 96)).await);
    stamps.after("an increment past max", a, false);

    stamps.tick();
    assert_eq!(C::done(Stamped::decrement_hits(c, a, 1)).await.unwrap(), 4);
    stamps.after("decrement_hits", a, true);
    stamps.tick();
    assert_eq!(
        C::done(Stamped::take_hits_up_to(c, a, 10)).await.unwrap(),
        4
    );
    stamps.after("take_hits_up_to", a, true);
    assert_eq!(
        C::done(Stamped::take_hits_up_to(c, a, 10)).await.unwrap(),
        0
    );
    stamps.after("take_hits_up_to on an empty row", a, false);
    stamps.tick();
    assert_eq!(
        C::done(Stamped::increment_hits_up_to(c, a, 150))
            .await
            .unwrap(),
        100
    );
    stamps.after("increment_hits_up_to", a, true);
    assert_eq!(
        C::done(Stamped::increment_hits_up_to(c, a, 1))
            .await
            .unwrap(),
        0
    );
    stamps.after("increment_hits_up_to on a full row", a, false);

    assert_eq!(C::done(Stamped::set_hits_max(c, a, 50)).await.unwrap(), 100);
    stamps.after("set_hits_max below the mark", a, false);
    stamps.tick();
    assert_eq!(C::done(Stamped::set_hits_min(c, a, 30)).await.unwrap(), 30);
    stamps.after("set_hits_min", a, true);
    stamps.tick();
    assert_eq!(C::done(Stamped::set_hits_max(c, a, 40)).await.unwrap(), 40);
    stamps.after("set_hits_max", a, true);

    assert!(matches!(
        C::done(Stamped::compare_and_set_hits(c, a, 39, 41)).await,
        Err(AtomicError::Mismatch {
            expected: 39,
            current: 40
        })
    ));
    stamps.after("a compare_and_set_hits mismatch", a, false);
    stamps.tick();
    assert_eq!(
        C::done(Stamped::compare_and_set_hits(c, a, 40, 41))
            .await
            .unwrap(),
        41
    );
    stamps.after("compare_and_set_hits", a, true);
    stamps.tick();
    assert_eq!(
        C::done(Stamped::update_hits_locked(c, a, |v| Ok(v + 1)))
            .await
            .unwrap(),
        42
    );
    stamps.after("update_hits_locked", a, true);

    // The other touching field, both in one statement (one assignment of the column), and
    // increment-or-insert on a row that exists.
    stamps.tick();
    assert_eq!(C::done(Stamped::increment_score(c, a, 7)).await.unwrap(), 7);
    stamps.after("increment_score", a, true);
    stamps.tick();
    let both = (ct_stamps::hits.increment(1), ct_stamps::score.increment(1));
    assert_eq!(
        C::done(Stamped::update_atomic(c, a, both)).await.unwrap(),
        (43, 8)
    );
    stamps.after("update_atomic of hits and score", a, true);
    let zero = (ct_stamps::hits.increment(0), ct_stamps::score.increment(0));
    assert_eq!(
        C::done(Stamped::update_atomic(c, a, zero)).await.unwrap(),
        (43, 8)
    );
    stamps.after("update_atomic by 0", a, false);
    let plain = (ct_stamps::hits.increment(0), ct_stamps::plain.increment(1));
    assert_eq!(
        C::done(Stamped::update_atomic(c, a, plain)).await.unwrap(),
        (43, 4)
    );
    stamps.after("update_atomic of hits by 0 and plain", a, false);
    stamps.tick();
    let row = Stamped {
        id: a,
        hits: 0,
        score: 0,
        plain: 0,
    };
    assert_eq!(
        C::done(Stamped::increment_hits_or_insert(c, &row, 2))
            .await
            .unwrap(),
        45
    );
    stamps.after("increment_hits_or_insert on an existing row", a, true);

    // Two rows: a transfer and a set stamp both; a refused set stamps neither.
    stamps.tick();
    assert_eq!(
        C::done(Stamped::transfer_hits(c, a, b, 5)).await.unwrap(),
        (40, 5)
    );
    stamps.after("transfer_hits, from", a, true);
    stamps.after("transfer_hits, to", b, true);
    stamps.tick();
    C::done(Stamped::increment_hits_many(c, [(a, 1), (b, 1)]))
        .await
        .unwrap();
    stamps.after("increment_hits_many", a, true);
    stamps.after("increment_hits_many", b, true);
    stamps.tick();
    C::done(Stamped::increment_hits_many(c, [(a, 0), (b, 1)]))
        .await
        .unwrap();
    stamps.after("increment_hits_many by 0", a, false);
    stamps.after("increment_hits_many by 1", b, true);
    assert!(C::done(Stamped::decrement_hits_if_at_least_many(
        c,
        [(a, 1), (b, 50)]
    ))
    .await
    .is_err());
    stamps.after("a refused decrement_hits_if_at_least_many", a, false);
    stamps.after("a refused decrement_hits_if_at_least_many", b, false);
    assert_eq!(C::done(Stamped::increment_plain(c, b, 1)).await.unwrap(), 1);
    stamps.after("increment_plain", b, false);

    // A buffer's flush writes through the set statements: it stamps the rows it changes.
    let buffer = client.buffer(
        Stamped::atomic_hits(),
        |&id: &i64, hits| Stamped {
            id,
            hits,
            score: 0,
            plain: 0,
        },
        FlushPolicy::MANUAL,
    );
    stamps.tick();
    buffer.add(a, 2).unwrap();
    assert_eq!(buffer.flush().await.unwrap().written, 1);
    stamps.after("a buffer's flush", a, true);
    stamps.after("a buffer's flush", b, false);
    buffer.shutdown().await.unwrap();

    // A counter cache's parent: a counted insert and delete stamp it (on PostgreSQL the insert
    // and the parent's change are one statement); a delete of no row does not.
    stamps.tick();
    let event = C::done(NewStampEvent { stamp_id: a }.insert_counted(c))
        .await
        .unwrap();
    stamps.after("a counted insert", a, true);
    stamps.tick();
    C::done(NewStampEvent::delete_counted(c, event.key))
        .await
        .unwrap();
    stamps.after("a counted delete", a, true);
    assert!(matches!(
        C::done(NewStampEvent::delete_counted(c, event.key)).await,
        Err(AtomicError::NotFound)
    ));
    stamps.after("a delete of no row", a, false);

    assert_eq!(db.stamped(a), (43, 8, 4));
    assert_eq!(db.stamped(b), (7, 0, 1));
}

/// Another transaction holds row `id` while an increment waits for it; that transaction reads
/// the database's clock, then commits. The increment's stamp is not earlier than that reading:
/// it is the time the row was written, not the time the statement (or its transaction)
/// began, which a cache comparing stamps would read as older than the holder's change.
pub async fn a_change_that_waited_for_the_row_is_touched_after_it<C: Client>(client: &C)
where
    Stamped: AtomicFieldOn<ct_stamps::hits, DbOf<C::Db>>,
{
    type Manager<B> = <<B as TestDb>::Conn as Connection>::TransactionManager;
    let db = client.db();
    let id = db.new_stamped();
    let mut holder = db.conn();
    Manager::<C::Db>::begin_transaction(&mut *holder).unwrap();
    holder
        .batch_execute(&format!(
            "UPDATE ct_stamps SET plain = plain + 1 WHERE id = {id}"
        ))
        .unwrap();
    let (held_until, waited) = std::thread::scope(|scope| {
        let increment = scope.spawn(|| {
            client.block_on(async {
                let c = &mut client.conn().await;
                C::done(Stamped::increment_hits(c, id, 1)).await
            })
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while <C::Db as TestDb>::lock_waiters(&mut holder) == 0 {
            let failure = if increment.is_finished() {
                "the increment ended without waiting for the row"
            } else if Instant::now() > deadline {
                "the increment was never seen waiting for the row"
            } else {
                // No sleep: `lock_waiters` paces its reads (MariaDB's cache of them).
                continue;
            };
            // Let the increment go before failing: the scope waits for its thread.
            Manager::<C::Db>::rollback_transaction(&mut *holder).unwrap();
            panic!("{}: {failure}", client.name());
        }
        let held_until = <C::Db as TestDb>::now_on(&mut holder);
        Manager::<C::Db>::commit_transaction(&mut *holder).unwrap();
        (
            held_until,
            increment.join().expect("the increment's thread"),
        )
    });
    assert_eq!(waited.unwrap(), 1);
    let stamped = db.touched_at(id).expect("stamped");
    assert!(
        stamped >= held_until,
        "{}: the increment was stamped {} µs before the holder's change committed",
        client.name(),
        held_until - stamped
    );
    assert_eq!(db.stamped(id), (1, 0, 1));
}
