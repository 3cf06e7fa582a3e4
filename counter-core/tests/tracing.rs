//! The `tracing` feature: a span per operation, events for retries, conflicts and flushes,
//! seen by a subscriber that records them (on SQLite files, so that a second connection can
//! hold the write lock).
#![cfg(all(feature = "tracing", feature = "sqlite", feature = "r2d2"))]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use counter_core::{AtomicError, AtomicField, Buffer, Field, FlushPolicy, RetryPolicy};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use tracing::field::{Field as TraceField, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

diesel::table! { items (id) { id -> BigInt, hits -> BigInt, } }

#[derive(Insertable)]
#[diesel(table_name = items)]
struct NewItem {
    id: i64,
    hits: i64,
}

struct Item;
impl AtomicField<items::hits> for Item {
    type Key = i64;
    type KeyColumns = (items::id,);
    type Value = i64;
    const MIN: Option<i64> = Some(0);
    const MAX: Option<i64> = None;
    const NAME: &'static str = "hits";
}

/// Every span opened and event sent, as `name{field=value …}` lines.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line(String);
impl Visit for Line {
    fn record_debug(&mut self, field: &TraceField, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_str(&mut self, field: &TraceField, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = Line(format!("span {}", span.metadata().name()));
        span.record(&mut line);
        let mut lines = self.0.lock().unwrap();
        lines.push(line.0);
        Id::from_u64(lines.len() as u64)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!("event {}", event.metadata().level()));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Recorder {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }
}

fn database() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.db").to_str().unwrap().to_owned();
    let mut c = SqliteConnection::establish(&path).unwrap();
    c.batch_execute("CREATE TABLE items (id BIGINT PRIMARY KEY, hits BIGINT NOT NULL); INSERT INTO items VALUES (1, 0); CREATE TABLE counter_flushes (flush_id VARCHAR(64) PRIMARY KEY, kept TEXT NOT NULL, flushed_at BIGINT NOT NULL);")
        .unwrap();
    (dir, path)
}

#[test]
fn an_operation_opens_a_span_naming_model_field_and_backend() {
    let (_dir, path) = database();
    let conn = &mut SqliteConnection::establish(&path).unwrap();
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let hits = Field::<Item, items::hits>::new();
        assert_eq!(hits.increment(conn, 1, 2).unwrap(), 2);
        assert_eq!(hits.current(conn, 1).unwrap(), 2);
    });
    assert_eq!(
        recorder.lines(),
        [
            "span counter_core::op op=increment model=Item field=hits backend=SQLite",
            "span counter_core::op op=current model=Item field=hits backend=SQLite",
        ]
    );
}

#[test]
fn a_busy_database_is_retried_and_a_spent_policy_reports_the_conflict() {
    let (_dir, path) = database();
    let holder = &mut SqliteConnection::establish(&path).unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    let conn = &mut SqliteConnection::establish(&path).unwrap();
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        // No waiting at all: the first "database is locked" is the answer.
        let impatient = Field::<Item, items::hits>::new()
            .retry(RetryPolicy::NEVER.with_busy_timeout(Duration::ZERO));
        let error = impatient.increment(conn, 1, 1).unwrap_err();
        assert!(
            matches!(error, AtomicError::Conflict { attempts: 1, .. }),
            "{error:?}"
        );
    });
    assert_eq!(
        recorder.count("conflict returned"),
        1,
        "{:#?}",
        recorder.lines()
    );
    assert_eq!(recorder.count("retrying"), 0, "{:#?}", recorder.lines());

    // The holder commits after 200 ms; the default policy polls until then.
    let recorder = Recorder::default();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            holder.batch_execute("COMMIT").unwrap();
        });
        tracing::subscriber::with_default(recorder.clone(), || {
            let hits = Field::<Item, items::hits>::new();
            assert_eq!(hits.increment(conn, 1, 1).unwrap(), 1);
        });
    });
    let lines = recorder.lines();
    let retries = recorder.count("event DEBUG message=retrying class=Busy attempt=");
    assert!(retries >= 1, "{lines:#?}");
    assert_eq!(recorder.count("retrying"), retries, "{lines:#?}");
    assert_eq!(recorder.count("conflict returned"), 0, "{lines:#?}");
}

#[test]
fn a_flush_reports_its_keys_and_counts() {
    let (_dir, path) = database();
    let pool = Pool::builder()
        .max_size(1)
        .build(ConnectionManager::<SqliteConnection>::new(&path))
        .unwrap();
    let buffer = Buffer::new(
        pool,
        Field::<Item, items::hits>::new(),
        |&id: &i64, hits: i64| NewItem { id, hits },
        FlushPolicy::MANUAL,
    );
    for (key, n) in [(1, 3), (2, 4), (1, 5)] {
        buffer.add(key, n).unwrap();
    }
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        assert_eq!(buffer.flush().unwrap().written, 2);
        assert_eq!(buffer.flush().unwrap().written, 0);
    });
    let flushed: Vec<String> = recorder
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("event"))
        .collect();
    assert_eq!(flushed.len(), 1, "{flushed:#?}");
    assert!(
        flushed[0]
            .starts_with("event INFO message=flushed what=buffer keys=2 counts=12 duration_us="),
        "{flushed:#?}"
    );
    assert!(flushed[0].ends_with(" kept=0"), "{flushed:#?}");
}
