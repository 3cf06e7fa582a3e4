//! Slotted counters: increments spread over slot rows, read as their sum, folded by compaction.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use counter_core::{AtomicError, SlottedOn};

use super::assert::{assert_no_errors, negative};
use crate::client::{on_n_workers, Client};
use crate::db::{next_id, DbOf, TestDb};
use crate::models::Article;
use crate::schema::ct_articles;

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! slotted_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            slotted_increments_lose_nothing,
            slotted_compact_while_incrementing,
            slotted_decrement_where_declared,
        );
    };
}

/// 16 workers × 2000 increments of one article's views: the sum is exactly 32,000, over at
/// most 16 slot rows.
pub async fn slotted_increments_lose_nothing<C: Client>(client: &C)
where
    Article: SlottedOn<ct_articles::views, DbOf<C::Db>>,
{
    let db = client.db();
    let id = next_id();
    let per_worker = 2000;
    let results = on_n_workers(client, 16, async |_, c| {
        let mut errors = Vec::new();
        for _ in 0..per_worker {
            if let Err(e) = C::done(Article::increment_views(c, id, 1)).await {
                errors.push(e);
            }
        }
        errors
    });
    let errors: Vec<AtomicError> = results.into_iter().flatten().collect();
    assert_no_errors(client, "slotted increments", &errors);
    let mut conn = client.conn().await;
    assert_eq!(
        C::done(Article::current_views(&mut conn, id))
            .await
            .unwrap(),
        16 * per_worker
    );
    let slots = db.view_slots(id);
    assert!(
        (1..=16).contains(&slots.len()),
        "{} slot rows: {slots:?}",
        slots.len()
    );
    assert!(slots.iter().all(|&(slot, _)| (0..16).contains(&slot)));
    assert_eq!(slots.iter().map(|&(_, n)| n).sum::<i64>(), 16 * per_worker);
}

/// One worker compacts over and over while 8 workers increment: nothing is lost, and after a
/// last compaction the counter is one row, slot 0.
pub async fn slotted_compact_while_incrementing<C: Client>(client: &C)
where
    Article: SlottedOn<ct_articles::views, DbOf<C::Db>>,
{
    let db = client.db();
    let id = next_id();
    let per_worker = 300;
    let incrementing = AtomicBool::new(true);
    let finished = AtomicUsize::new(0);
    let results = on_n_workers(client, 9, async |worker, c| {
        let mut errors = Vec::new();
        if worker == 0 {
            let mut compactions = 0;
            while incrementing.load(Ordering::Acquire) || compactions == 0 {
                match C::done(Article::compact_views(c, id)).await {
                    Ok(_) => compactions += 1,
                    Err(e) => errors.push(e),
                }
            }
            return errors;
        }
        for _ in 0..per_worker {
            if let Err(e) = C::done(Article::increment_views(c, id, 2)).await {
                errors.push(e);
            }
        }
        if finished.fetch_add(1, Ordering::AcqRel) + 1 == 8 {
            incrementing.store(false, Ordering::Release);
        }
        errors
    });
    let errors: Vec<AtomicError> = results.into_iter().flatten().collect();
    assert_no_errors(client, "compaction beside increments", &errors);
    let c = &mut client.conn().await;
    let expected = 8 * per_worker * 2;
    assert_eq!(
        C::done(Article::current_views(c, id)).await.unwrap(),
        expected
    );
    assert_eq!(
        C::done(Article::compact_views(c, id)).await.unwrap(),
        expected
    );
    assert_eq!(db.view_slots(id), vec![(0, expected)]);
    assert_eq!(
        C::done(Article::current_views(c, id)).await.unwrap(),
        expected
    );
}

/// `likes` says `allow_decrement`: it goes down and below zero. An unknown key is 0; a
/// negative amount is refused; compacting a key without slots is 0 and writes nothing.
pub async fn slotted_decrement_where_declared<C: Client>(client: &C)
where
    Article:
        SlottedOn<ct_articles::likes, DbOf<C::Db>> + SlottedOn<ct_articles::views, DbOf<C::Db>>,
{
    let db = client.db();
    let id = next_id();
    let c = &mut client.conn().await;
    assert_eq!(C::done(Article::current_likes(c, id)).await.unwrap(), 0);
    C::done(Article::increment_likes(c, id, 3)).await.unwrap();
    C::done(Article::decrement_likes(c, id, 5)).await.unwrap();
    assert_eq!(C::done(Article::current_likes(c, id)).await.unwrap(), -2);
    assert_eq!(C::done(Article::compact_likes(c, id)).await.unwrap(), -2);
    assert_eq!(C::done(Article::current_likes(c, id)).await.unwrap(), -2);
    assert_eq!(
        negative(C::done(Article::increment_likes(c, id, -1)).await),
        -1
    );
    assert_eq!(
        negative(C::done(Article::decrement_likes(c, id, -1)).await),
        -1
    );
    assert_eq!(C::done(Article::compact_views(c, id)).await.unwrap(), 0);
    assert_eq!(db.view_slots(id), vec![]);
}
