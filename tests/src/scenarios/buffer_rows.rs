//! What a buffer's flush does key by key: a row that refuses (a `CHECK` the library does not
//! know, a row at its type's maximum, a declared bound) keeps its count and is reported while
//! every other row is written; an update-only buffer reports keys without a row once and drops
//! or keeps them; a flush of 200,000 keys is exact.

use std::collections::BTreeMap;

use counter_core::{
    AtomicError, AtomicFieldOn, BufferReport, ErrorKind, FlushPolicy, Limit, NewRow, UnknownKeys,
};

use crate::client::{Client, TestBuffer};
use crate::db::{next_id, DbOf, TestDb};
use crate::models::{Capped, CartLine, DailyView, NewCartLine};
use crate::schema::{ct_capped, ct_cart_lines, ct_daily_views};

/// This file's scenarios as `#[test]`s for [`backend_tests!`](crate::backend_tests).
#[macro_export]
macro_rules! buffer_row_tests {
    ($client:expr) => {
        $crate::scenario_tests!($client;
            refused_row_keeps_its_count,
            refused_rows_do_not_hold_back_the_batch,
            updating_buffer_drops_unknown_keys_after_one_report,
            updating_buffer_keeps_unknown_keys_until_their_row_exists,
            flush_of_200_000_keys_is_exact,
        );
    };
}

/// The row of a page's day seen first by a buffer.
fn daily_row(&(page_id, day): &(i64, i32), views: i64) -> DailyView {
    DailyView {
        page_id,
        day,
        views,
    }
}

/// The keys and counts of a report's refusals.
fn refused<K: Clone>(report: &BufferReport<K>) -> Vec<(K, i128)> {
    report
        .refused
        .iter()
        .map(|(key, count, _)| (key.clone(), *count))
        .collect()
}

/// A cart line at 35 of its declared `max = 40` gets 10 more: that row is refused
/// (`OutOfRange`, reported with its count), the other line of the batch is created, and the
/// flush succeeds. The count stays pending; once another writer makes room, the next flush
/// writes it, exactly once.
pub async fn refused_row_keeps_its_count<C: Client>(client: &C)
where
    CartLine: AtomicFieldOn<ct_cart_lines::quantity, DbOf<C::Db>>,
    NewCartLine: NewRow<CartLine, ct_cart_lines::quantity, DbOf<C::Db>>,
{
    let db = client.db();
    let (cart, full, other) = (next_id(), next_id(), next_id());
    db.new_cart_line(cart, full, 35);
    let buffer = client.buffer(
        CartLine::atomic_quantity(),
        |&(cart_id, product_id): &(i64, i64), quantity| NewCartLine {
            cart_id,
            product_id,
            quantity,
        },
        FlushPolicy::MANUAL,
    );
    buffer.add((cart, full), 4).unwrap();
    buffer.add((cart, full), 6).unwrap();
    buffer.add((cart, other), 3).unwrap();
    let report = buffer
        .flush()
        .await
        .expect("a flush with a refused row succeeds");
    assert_eq!(
        (report.written, report.counted),
        (1, 3),
        "{}",
        client.name()
    );
    assert_eq!(refused(&report), vec![((cart, full), 10)]);
    match &report.refused[0].2 {
        AtomicError::OutOfRange {
            current: 35,
            attempted: 45,
            limit: Limit::Max(40),
        } => {}
        other => panic!("{}: {other:?}", client.name()),
    }
    assert!(report.unknown.is_empty());
    assert_eq!(buffer.pending(), 10);
    assert_eq!(buffer.last_error(), None, "the flush itself succeeded");
    let lines: Vec<(i64, i32)> = db
        .cart_lines(&[cart])
        .iter()
        .map(|l| (l.product_id, l.quantity))
        .collect();
    let mut expected = vec![(full, 35), (other, 3)];
    expected.sort_unstable();
    assert_eq!(lines, expected);

    // Reported again by every flush while it cannot be written.
    let again = buffer.flush().await.unwrap();
    assert_eq!(
        (again.written, refused(&again)),
        (0, vec![((cart, full), 10)])
    );
    // Room is made by another writer; the kept count goes in with the next flush.
    CartLine::decrement_quantity(&mut db.conn(), (cart, full), 20).unwrap();
    buffer.add((cart, other), 1).unwrap();
    let report = buffer.flush().await.unwrap();
    assert_eq!((report.written, report.counted), (2, 11));
    assert!(report.is_clean(), "{report:?}");
    let lines: Vec<(i64, i32)> = db
        .cart_lines(&[cart])
        .iter()
        .map(|l| (l.product_id, l.quantity))
        .collect();
    let mut expected = vec![(full, 25), (other, 4)];
    expected.sort_unstable();
    assert_eq!(lines, expected);
    assert_eq!(buffer.flush().await.unwrap().written, 0);
    assert_eq!(buffer.pending(), 0);
}

/// One batch in which the database refuses a row (`CHECK (hits <= cap)`, which the library
/// does not know) and another in which a row sits at its type's maximum (`i64::MAX`): every
/// other row of each batch is written (existing rows updated, a new row inserted), the refused
/// keys are reported with their counts and errors, and their counts stay pending until the row
/// can take them.
pub async fn refused_rows_do_not_hold_back_the_batch<C: Client>(client: &C)
where
    Capped:
        AtomicFieldOn<ct_capped::hits, DbOf<C::Db>> + NewRow<Capped, ct_capped::hits, DbOf<C::Db>>,
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>
        + NewRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    // A CHECK of the database's own.
    let a = db.new_capped(0, 100);
    let b = db.new_capped(95, 100);
    let c = db.new_capped(0, 100);
    let d = next_id(); // no row yet
    let capped = client.buffer(
        Capped::atomic_hits(),
        |&id: &i64, hits| Capped {
            id,
            hits,
            cap: 1_000,
        },
        FlushPolicy::MANUAL,
    );
    for (key, n) in [(a, 10), (b, 10), (c, 1), (d, 7)] {
        capped.add(key, n).unwrap();
    }
    let report = capped
        .flush()
        .await
        .expect("a flush with a refused row succeeds");
    assert_eq!(
        (report.written, report.counted),
        (3, 18),
        "{}",
        client.name()
    );
    assert_eq!(refused(&report), vec![(b, 10)], "{}", client.name());
    let error = &report.refused[0].2;
    assert!(
        matches!(error, AtomicError::Database(_)) && error.kind() == ErrorKind::Internal,
        "{}: {error:?}",
        client.name()
    );
    assert!(
        error.to_string().to_lowercase().contains("ct_capped"),
        "{}: the constraint is named: {error}",
        client.name()
    );
    let mut ids = vec![a, b, c, d];
    ids.sort_unstable();
    let expected: BTreeMap<i64, i64> = BTreeMap::from([(a, 10), (b, 95), (c, 1), (d, 7)]);
    assert_eq!(db.capped(&ids), expected.into_iter().collect::<Vec<_>>());
    assert_eq!(capped.pending(), 10);
    db.set_cap(b, 200);
    let report = capped.flush().await.unwrap();
    assert_eq!((report.written, report.counted), (1, 10));
    assert!(report.is_clean(), "{report:?}");
    let expected: BTreeMap<i64, i64> = BTreeMap::from([(a, 10), (b, 105), (c, 1), (d, 7)]);
    assert_eq!(db.capped(&ids), expected.into_iter().collect::<Vec<_>>());

    // A row at the type's maximum.
    let page = next_id();
    db.new_daily_view(page, 0, i64::MAX);
    db.new_daily_view(page, 1, 5);
    let views = client.buffer(DailyView::atomic_views(), daily_row, FlushPolicy::MANUAL);
    for (day, n) in [(0, 1), (1, 2), (2, 3)] {
        views.add((page, day), n).unwrap();
    }
    let report = views.flush().await.unwrap();
    assert_eq!(
        (report.written, report.counted),
        (2, 5),
        "{}",
        client.name()
    );
    assert_eq!(refused(&report), vec![((page, 0), 1)]);
    match &report.refused[0].2 {
        AtomicError::OutOfRange {
            current,
            attempted,
            limit: Limit::Max(max),
        } if *current == i64::MAX as i128
            && *attempted == i64::MAX as i128 + 1
            && *max == i64::MAX as i128 => {}
        other => panic!("{}: {other:?}", client.name()),
    }
    assert_eq!(
        db.daily_views(&[page]),
        vec![(page, 0, i64::MAX), (page, 1, 7), (page, 2, 3)]
    );
    assert_eq!(views.pending(), 1, "kept, never dropped");
    capped.shutdown().await.unwrap();
    views.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
}

/// An update-only buffer under [`UnknownKeys::Drop`]: a key without a row is reported once
/// with its count by the flush that found it, then dropped; no row is created, the other keys
/// are written, and the next flush has nothing to say about it.
pub async fn updating_buffer_drops_unknown_keys_after_one_report<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let page = next_id();
    db.new_daily_view(page, 0, 0);
    let buffer = client.updating_buffer(
        DailyView::atomic_views(),
        UnknownKeys::Drop,
        FlushPolicy::MANUAL,
    );
    buffer.add((page, 0), 2).unwrap();
    buffer.add((page, 1), 3).unwrap();
    buffer.add((page, 1), 1).unwrap();
    let report = buffer.flush().await.unwrap();
    assert_eq!(
        (report.written, report.counted),
        (1, 2),
        "{}",
        client.name()
    );
    assert_eq!(report.unknown, vec![((page, 1), 4)]);
    assert!(report.refused.is_empty());
    assert_eq!(buffer.pending(), 0, "dropped after the report");
    assert_eq!(
        db.daily_views(&[page]),
        vec![(page, 0, 2)],
        "no row created"
    );
    let report = buffer.flush().await.unwrap();
    assert_eq!(
        (report.written, report.unknown.len()),
        (0, 0),
        "reported once"
    );
    assert_eq!(db.daily_views(&[page]), vec![(page, 0, 2)]);
    buffer.shutdown().await.unwrap();
}

/// An update-only buffer under [`UnknownKeys::Keep`]: a key without a row is reported by
/// every flush, with its count kept pending and no row created; once another transaction
/// creates the row, the next flush writes the count, exactly once.
pub async fn updating_buffer_keeps_unknown_keys_until_their_row_exists<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>,
{
    let db = client.db();
    let page = next_id();
    db.new_daily_view(page, 0, 0);
    let buffer = client.updating_buffer(
        DailyView::atomic_views(),
        UnknownKeys::Keep,
        FlushPolicy::MANUAL,
    );
    buffer.add((page, 0), 1).unwrap();
    buffer.add((page, 1), 4).unwrap();
    for flush in 0..2 {
        let report = buffer.flush().await.unwrap();
        assert_eq!(report.unknown, vec![((page, 1), 4)], "flush {flush}");
        assert_eq!(report.written, 1 - flush, "flush {flush}");
        assert_eq!(buffer.pending(), 4, "flush {flush}: kept");
        assert_eq!(db.daily_views(&[page]), vec![(page, 0, 1)], "flush {flush}");
    }
    db.new_daily_view(page, 1, 0);
    let report = buffer.flush().await.unwrap();
    assert_eq!((report.written, report.counted), (1, 4));
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(buffer.pending(), 0);
    assert_eq!(db.daily_views(&[page]), vec![(page, 0, 1), (page, 1, 4)]);
    assert_eq!(buffer.flush().await.unwrap().written, 0);
    buffer.shutdown().await.unwrap();
}

/// 200,000 distinct keys in one flush, half of them rows a first flush created: every row
/// holds exactly what was added.
pub async fn flush_of_200_000_keys_is_exact<C: Client>(client: &C)
where
    DailyView: AtomicFieldOn<ct_daily_views::views, DbOf<C::Db>>
        + NewRow<DailyView, ct_daily_views::views, DbOf<C::Db>>,
{
    const PAGES: usize = 2_000;
    const DAYS: i32 = 100;
    let db = client.db();
    let pages: Vec<i64> = (0..PAGES).map(|_| next_id()).collect();
    let keys: Vec<(i64, i32)> = pages
        .iter()
        .flat_map(|&page| (0..DAYS).map(move |day| (page, day)))
        .collect();
    assert_eq!(keys.len(), 200_000);
    let buffer = client.buffer(DailyView::atomic_views(), daily_row, FlushPolicy::MANUAL);
    let mut expected: BTreeMap<(i64, i32), i64> = BTreeMap::new();
    for &key in keys.iter().step_by(2) {
        buffer.add(key, 1).unwrap();
        expected.insert(key, 1);
    }
    let first = buffer.flush().await.unwrap();
    assert_eq!((first.written, first.counted), (100_000, 100_000));
    for (i, &key) in keys.iter().enumerate() {
        let n = 1 + (i % 7) as i64;
        buffer.add(key, n).unwrap();
        *expected.entry(key).or_default() += n;
    }
    let added: i128 = expected.values().map(|&v| v as i128).sum::<i128>() - 100_000;
    assert_eq!(buffer.pending(), added);
    let report = buffer.flush().await.unwrap();
    assert_eq!(
        (report.written, report.counted),
        (200_000, added),
        "{}",
        client.name()
    );
    assert!(report.is_clean(), "{}", client.name());
    assert_eq!(buffer.pending(), 0);
    let rows: BTreeMap<(i64, i32), i64> = pages
        .chunks(500)
        .flat_map(|chunk| db.daily_views(chunk))
        .map(|(page, day, views)| ((page, day), views))
        .collect();
    assert_eq!(rows.len(), 200_000);
    assert!(rows == expected, "{}: the rows differ", client.name());
    buffer.shutdown().await.unwrap();
}
