//! Slotted counters: increments spread over slot rows, read as their sum, folded by compaction.

use std::sync::atomic::{AtomicBool, Ordering};

use counter_core::{AtomicError, SlottedOn};

use super::{assert_no_errors, errors_of, negative, on_n_threads};
use crate::db::{next_id, DbOf, TestDb};
use crate::models::Article;
use crate::schema::ct_articles;

/// 16 threads × 2000 increments of one article's views: the sum is exactly 32,000, over at
/// most 16 slot rows.
pub fn slotted_increments_lose_nothing<B: TestDb>()
where
    Article: SlottedOn<ct_articles::views, DbOf<B>>,
{
    let db = B::open();
    let id = next_id();
    let per_thread = 2000;
    let results = on_n_threads(&db, 16, |_, c| {
        (0..per_thread)
            .map(|_| Article::increment_views(c, id, 1))
            .collect::<Vec<_>>()
    });
    let (_, errors) = errors_of(results.into_iter().flatten().collect());
    assert_no_errors::<B>("slotted increments", &errors);
    assert_eq!(
        Article::current_views(&mut db.conn(), id).unwrap(),
        16 * per_thread
    );
    let slots = db.view_slots(id);
    assert!(
        (1..=16).contains(&slots.len()),
        "{} slot rows: {slots:?}",
        slots.len()
    );
    assert!(slots.iter().all(|&(slot, _)| (0..16).contains(&slot)));
    assert_eq!(slots.iter().map(|&(_, n)| n).sum::<i64>(), 16 * per_thread);
}

/// One thread compacts over and over while 8 threads increment: nothing is lost, and after a
/// last compaction the counter is one row, slot 0.
pub fn slotted_compact_while_incrementing<B: TestDb>()
where
    Article: SlottedOn<ct_articles::views, DbOf<B>>,
{
    let db = B::open();
    let id = next_id();
    let per_thread = 300;
    let incrementing = AtomicBool::new(true);
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let results = on_n_threads(&db, 9, |thread, c| {
        if thread == 0 {
            let mut errors = Vec::new();
            let mut compactions = 0;
            while incrementing.load(Ordering::Acquire) || compactions == 0 {
                match Article::compact_views(c, id) {
                    Ok(_) => compactions += 1,
                    Err(e) => errors.push(e),
                }
            }
            return errors;
        }
        let errors: Vec<AtomicError> = (0..per_thread)
            .filter_map(|_| Article::increment_views(c, id, 2).err())
            .collect();
        if finished.fetch_add(1, Ordering::AcqRel) + 1 == 8 {
            incrementing.store(false, Ordering::Release);
        }
        errors
    });
    let errors: Vec<AtomicError> = results.into_iter().flatten().collect();
    assert_no_errors::<B>("compaction beside increments", &errors);
    let c = &mut db.conn();
    let expected = 8 * per_thread * 2;
    assert_eq!(Article::current_views(c, id).unwrap(), expected);
    assert_eq!(Article::compact_views(c, id).unwrap(), expected);
    assert_eq!(db.view_slots(id), vec![(0, expected)]);
    assert_eq!(Article::current_views(c, id).unwrap(), expected);
}

/// `likes` says `allow_decrement`: it goes down and below zero. An unknown key is 0; a
/// negative amount is refused; compacting a key without slots is 0 and writes nothing.
pub fn slotted_decrement_where_declared<B: TestDb>()
where
    Article: SlottedOn<ct_articles::likes, DbOf<B>> + SlottedOn<ct_articles::views, DbOf<B>>,
{
    let db = B::open();
    let id = next_id();
    let c = &mut db.conn();
    assert_eq!(Article::current_likes(c, id).unwrap(), 0);
    Article::increment_likes(c, id, 3).unwrap();
    Article::decrement_likes(c, id, 5).unwrap();
    assert_eq!(Article::current_likes(c, id).unwrap(), -2);
    assert_eq!(Article::compact_likes(c, id).unwrap(), -2);
    assert_eq!(Article::current_likes(c, id).unwrap(), -2);
    assert_eq!(negative(Article::increment_likes(c, id, -1)), -1);
    assert_eq!(negative(Article::decrement_likes(c, id, -1)), -1);
    assert_eq!(Article::compact_views(c, id).unwrap(), 0);
    assert_eq!(db.view_slots(id), vec![]);
}
