//! One flush's batch written exactly once: its id recorded in the flush ledger in the
//! transaction that writes it.
//!
//! A flush whose answer was lost (the connection cut after `COMMIT`, a future dropped while
//! the `COMMIT` was on its way) cannot tell whether its batch is in the database. The buffer
//! keeps such a batch as it was, id and counts, and the next flush writes it again under the
//! same id: its transaction's first statement inserts the id into the ledger, which fails on
//! the primary key when the batch was committed (after waiting for a transaction still
//! committing it), so it is written once either way. What the first write did key by key
//! (refused rows, keys without a row) is recorded in the ledger row, so the second flush
//! reports and keeps the same keys.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Column;

use crate::backend::{guarded, Dialect, RawConnection};
use crate::error::AtomicError;
use crate::field::AtomicFieldOn;
use crate::idempotent::{now, read_outcome, refusal_text, Outcome};
use crate::lock::LockMode;
use crate::many::each::Each;
use crate::ops::Field;
use crate::retry::retrying;
use crate::sql::LedgerDialect;
use crate::unknown_keys::UnknownKeyPolicy;

/// How long a flush ledger row is kept: a batch whose answer was lost is written again by the
/// next flush, so a day covers any outage a buffer survives (its memory bound is reached long
/// before).
const KEEP_LEDGER_ROWS: i64 = 24 * 3600;

/// Where a batch is recorded: the ledger table and the batch's id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded<'a> {
    pub table: &'static str,
    pub id: &'a str,
    /// Also delete the ledger's rows older than a day, after the write.
    pub prune: bool,
}

/// Writes `batch` as [`Field::add_each`] does; with `ledger`, exactly once per batch id.
pub(crate) async fn write_batch<R, M, Col, U>(
    field: &Field<M, Col>,
    raw: &mut R,
    batch: &[(M::Key, M::Value)],
    rows: &U,
    ledger: Option<Recorded<'_>>,
) -> Result<Each<M::Key, M::Value>, AtomicError>
where
    R: RawConnection,
    Col: Column + 'static,
    M: AtomicFieldOn<Col, R::Db>,
    M::Key: Ord + Clone,
    U: UnknownKeyPolicy<M, Col, R::Db>,
{
    let Some(ledger) = ledger else {
        return field.add_each(raw, batch, rows).await;
    };
    let (table, id, at) = (ledger.table, ledger.id, now());
    let begin = <R::Db as Dialect>::BEGIN_COMPACT;
    let written = retrying!(Write, &mut *raw, field.policy(), LockMode::Wait, |c| {
        guarded!(c, begin, |c| {
            // Only this statement's unique violation means "the batch is in": one from a
            // trigger or a constraint of the counted table must not pass for it.
            match LedgerDialect::ledger_record(c, table, id, at).await {
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    return Err(AtomicError::custom(AlreadyWritten));
                }
                other => other?,
            }
            let each = rows.add_each_in(field, c, batch).await?;
            let left = left_text(batch, &each);
            if !left.is_empty() {
                LedgerDialect::ledger_keep(c, table, id, &left).await?;
            }
            Ok(each)
        })
    });
    let each = match written {
        Err(AtomicError::Custom(e)) if e.is::<AlreadyWritten>() => {
            let left = retrying!(Read, &mut *raw, field.policy(), LockMode::Wait, |c| {
                Ok(LedgerDialect::ledger_look_up(c, table, id).await?)
            })?;
            let left = left.ok_or_else(|| AtomicError::custom("the flush ledger lost a batch"))?;
            each_from(batch, &left)?
        }
        other => other?,
    };
    if ledger.prune {
        // Housekeeping: a failure here is not the flush's, and the next prune retries.
        let before = at - KEEP_LEDGER_ROWS;
        let _ = retrying!(Write, &mut *raw, field.policy(), LockMode::Wait, |c| {
            Ok(LedgerDialect::ledger_prune(c, table, before).await?)
        });
    }
    Ok(each)
}

/// The ledger already has the batch: returned from inside the transaction to roll it back.
#[derive(Debug, thiserror::Error)]
#[error("the batch is already in the flush ledger")]
struct AlreadyWritten;

/// What a batch's write left unwritten, by position in the batch: `m` for a key without a
/// row that was not inserted, a refusal's text, or `d` and a database error's message. Empty
/// when every key was written.
fn left_text<K: Ord, V>(batch: &[(K, V)], each: &Each<K, V>) -> String {
    let position = |key: &K| {
        batch
            .binary_search_by(|(k, _)| k.cmp(key))
            .expect("a key of the batch")
    };
    let mut left: Vec<(usize, String)> = each
        .missing
        .iter()
        .map(|(key, _)| (position(key), "m".to_owned()))
        .collect();
    left.extend(each.refused.iter().map(|(key, _, error)| {
        let text = refusal_text(error).unwrap_or_else(|| format!("d{error}"));
        (position(key), text)
    }));
    if left.is_empty() {
        return String::new();
    }
    left.sort();
    let mut out = String::new();
    left.write(&mut out);
    out
}

/// The [`Each`] of a batch written by an earlier flush, from its [`left_text`]: every key not
/// named there was written, with its amount (the row's new value is not known: the amount
/// stands in for it, and nothing reads it).
fn each_from<K: Clone, V: Copy>(batch: &[(K, V)], left: &str) -> Result<Each<K, V>, AtomicError> {
    let malformed = || AtomicError::custom(format!("a malformed flush ledger row: {left:?}"));
    let left: Vec<(usize, String)> = if left.is_empty() {
        Vec::new()
    } else {
        Outcome::read(left).ok_or_else(malformed)?
    };
    let mut left = left.into_iter().peekable();
    let mut each = Each::default();
    for (i, (key, amount)) in batch.iter().enumerate() {
        let (key, amount) = (key.clone(), *amount);
        match left.next_if(|(at, _)| *at == i) {
            None => each.written.push((key, amount, amount)),
            Some((_, text)) if text == "m" => each.missing.push((key, amount)),
            Some((_, text)) => {
                let error = match text.strip_prefix('d') {
                    Some(message) => AtomicError::custom(message.to_owned()),
                    None => match read_outcome::<()>(&text) {
                        Some(Err(refusal)) => refusal,
                        _ => return Err(malformed()),
                    },
                };
                each.refused.push((key, amount, error));
            }
        }
    }
    if left.next().is_some() {
        return Err(malformed());
    }
    Ok(each)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Limit;

    #[test]
    fn what_a_batch_left_reads_back() {
        let batch = [(1i64, 5i64), (2, 7), (3, 1), (4, 9)];
        let mut each = Each::default();
        each.written.push((1, 5, 105));
        each.missing.push((2, 7));
        each.refused.push((
            3,
            1,
            AtomicError::OutOfRange {
                current: 10,
                attempted: 11,
                limit: Limit::Max(10),
            },
        ));
        each.refused
            .push((4, 9, AtomicError::custom("CHECK failed")));
        let text = left_text(&batch, &each);
        let back = each_from(&batch, &text).unwrap();
        assert_eq!(back.written, vec![(1, 5, 5)]);
        assert_eq!(back.missing, vec![(2, 7)]);
        let refused: Vec<_> = back
            .refused
            .iter()
            .map(|(k, a, e)| (*k, *a, e.to_string()))
            .collect();
        assert_eq!(
            refused,
            vec![
                (
                    3,
                    1,
                    "out of range: 10 would become 11, beyond the maximum 10".into()
                ),
                (4, 9, "CHECK failed".into()),
            ]
        );
        let clean = Each {
            written: vec![(1, 5, 6)],
            ..Each::default()
        };
        assert_eq!(left_text(&batch[..1], &clean), "");
        assert_eq!(each_from(&batch[..1], "").unwrap().written, vec![(1, 5, 5)]);
        assert!(each_from(&batch, "junk").is_err());
    }
}
