//! Assertions on an operation's result: the fields of the error it must be, and the errors of
//! a batch of calls, listed so a failure says what went wrong.

use std::collections::BTreeMap;
use std::fmt::Debug;

use counter_core::{AtomicError, Limit};

use crate::client::Client;

/// Asserts that `$result` is `Err` matching `$pattern`.
#[macro_export]
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(,)?) => {
        match $result {
            Err($pattern) => {}
            other => panic!("expected Err({}), got {:?}", stringify!($pattern), other),
        }
    };
}

/// The fields of an `OutOfRange` error; panics on anything else.
#[track_caller]
pub fn out_of_range<T: Debug>(result: Result<T, AtomicError>) -> (i128, i128, Limit) {
    match result {
        Err(AtomicError::OutOfRange {
            current,
            attempted,
            limit,
        }) => (current, attempted, limit),
        other => panic!("expected Err(OutOfRange {{ .. }}), got {other:?}"),
    }
}

/// The fields of an `Insufficient` error `(available, requested)`; panics on anything else.
#[track_caller]
pub fn insufficient<T: Debug>(result: Result<T, AtomicError>) -> (i128, i128) {
    match result {
        Err(AtomicError::Insufficient {
            available,
            requested,
        }) => (available, requested),
        other => panic!("expected Err(Insufficient {{ .. }}), got {other:?}"),
    }
}

/// The amount of a `NegativeAmount` error; panics on anything else.
#[track_caller]
pub fn negative<T: Debug>(result: Result<T, AtomicError>) -> i128 {
    match result {
        Err(AtomicError::NegativeAmount { amount }) => amount,
        other => panic!("expected Err(NegativeAmount {{ .. }}), got {other:?}"),
    }
}

/// The key and the row's refusal of an `InRow` error (a set operation's); panics on anything
/// else.
#[track_caller]
pub fn in_row<T: Debug>(result: Result<T, AtomicError>) -> (String, AtomicError) {
    match result {
        Err(AtomicError::InRow { key, error }) => (key, *error),
        other => panic!("expected Err(InRow {{ .. }}), got {other:?}"),
    }
}

/// Errors counted by their message, for a failure report that says what went wrong.
pub fn error_summary<'a>(
    errors: impl IntoIterator<Item = &'a AtomicError>,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in errors {
        *counts.entry(format!("{e:?}")).or_insert(0) += 1;
    }
    counts
}

/// Asserts that no call failed; lists every distinct error otherwise (a "database is locked"
/// on SQLite would show up here).
#[track_caller]
pub fn assert_no_errors<C: Client>(client: &C, what: &str, errors: &[AtomicError]) {
    assert!(
        errors.is_empty(),
        "{}: {what}: {} call(s) failed: {:#?}",
        client.name(),
        errors.len(),
        error_summary(errors)
    );
}

/// Keeps only the errors of a list of results.
pub fn errors_of<T>(results: Vec<Result<T, AtomicError>>) -> (Vec<T>, Vec<AtomicError>) {
    let mut oks = Vec::new();
    let mut errs = Vec::new();
    for r in results {
        match r {
            Ok(v) => oks.push(v),
            Err(e) => errs.push(e),
        }
    }
    (oks, errs)
}
