//! The flush protocol: take a batch, apply it in one transaction recorded in the ledger,
//! finish it in Redis; and the settling of batches earlier flushes left (see
//! [`RedisCounter`]'s documentation for why each step is atomic).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::Column;

use super::shard::Shard;
use super::{FlushReport, Kept, RedisConnection, RedisCounter, RedisKey, UnknownKeyPolicy};
use crate::backend::{guarded, Dialect, RawConnection};
use crate::error::{AtomicError, Limit};
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::retry::retrying;
use crate::sql::LedgerDialect;
use crate::trace;
use crate::unknown_keys::UnknownKeys;
use crate::value::AtomicValue;

impl<M, Col, U> RedisCounter<M, Col, U>
where
    Col: Column + 'static,
    M: AtomicField<Col>,
    M::Key: RedisKey + Ord + Clone,
{
    /// [`take`](Self::take) of one shard.
    pub(super) async fn take_on<R>(
        &self,
        shard: &Shard,
        redis: &mut R,
    ) -> Result<Option<String>, AtomicError>
    where
        R: RedisConnection + ?Sized,
    {
        let id = shard.new_batch_id();
        let mut take = self.take.prepare_invoke();
        take.key(&shard.pending)
            .key(&shard.batches)
            .key(shard.batch_key(&id))
            .arg(&id);
        let made: i64 = redis.invoke(&take, self.timeout).await?;
        Ok((made == 1).then_some(id))
    }

    /// The ledger's kept keys of a batch that was just committed; an error, never a guess,
    /// when its row is missing (a prune with a far too short `prune_after`): finishing the
    /// batch then could lose counts.
    async fn recorded<Raw: RawConnection>(
        &self,
        raw: &mut Raw,
        id: &str,
    ) -> Result<String, AtomicError> {
        self.look_up(raw, id).await?.ok_or_else(|| {
            AtomicError::custom(format!(
                "batch {id} was committed but has no row in the ledger {}; it stays in Redis",
                self.ledger
            ))
        })
    }

    async fn look_up<Raw: RawConnection>(
        &self,
        raw: &mut Raw,
        id: &str,
    ) -> Result<Option<String>, AtomicError> {
        retrying!(Read, raw, self.field.policy(), LockMode::Wait, |c| {
            Ok(LedgerDialect::ledger_look_up(c, self.ledger, id).await?)
        })
    }

    /// Deletes ledger rows older than `prune_after`, at most once a minute per counter.
    async fn prune<Raw: RawConnection>(&self, raw: &mut Raw) -> Result<(), AtomicError> {
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < Duration::from_secs(60)) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let before = unix_now() - i64::try_from(self.prune_after.as_secs()).unwrap_or(i64::MAX / 2);
        retrying!(Write, raw, self.field.policy(), LockMode::Wait, |c| {
            Ok(LedgerDialect::ledger_prune(c, self.ledger, before).await?)
        })
        .map(drop)
    }
}

/// One flush's counter and its two connections: the protocol's steps that use both, their
/// bounds said once.
pub(super) struct Flush<'f, M, Col, U, Raw, R: ?Sized> {
    counter: &'f RedisCounter<M, Col, U>,
    raw: &'f mut Raw,
    redis: &'f mut R,
}

impl<'f, M, Col, U, Raw, R> Flush<'f, M, Col, U, Raw, R>
where
    Col: Column + 'static,
    Raw: RawConnection,
    R: RedisConnection + ?Sized,
    M: AtomicFieldOn<Col, Raw::Db>,
    M::Key: RedisKey + Ord + Clone,
    U: UnknownKeyPolicy<M, Col, Raw::Db>,
{
    /// `counter`'s protocol on the connection underneath `raw`, and `redis`.
    pub(super) fn new(
        counter: &'f RedisCounter<M, Col, U>,
        raw: &'f mut Raw,
        redis: &'f mut R,
    ) -> Self {
        Flush {
            counter,
            raw,
            redis,
        }
    }

    /// [`flush`](RedisCounter::flush): recover, take, settle the new batch, prune.
    pub(super) async fn run(&mut self) -> Result<FlushReport<M::Key>, AtomicError> {
        let started = Instant::now();
        let result = self.run_steps().await;
        let took = started.elapsed();
        match &result {
            Ok(report) => {
                let (keys, kept) = (report.written.len(), report.kept.len());
                if keys + kept > 0 {
                    trace::flush("redis", keys, report.total_written(), took, kept, None);
                }
            }
            Err(error) => trace::flush("redis", 0, 0, took, 0, Some(error)),
        }
        result
    }

    /// The steps of [`run`](Self::run).
    async fn run_steps(&mut self) -> Result<FlushReport<M::Key>, AtomicError> {
        // `recover` refuses a caller's transaction before anything is taken.
        let mut report = self.recover().await?;
        // Shard by shard, each as an unsharded counter: its batches are in its slot only.
        for shard in self.counter.shards.all() {
            if let Some(batch) = self.counter.take_on(shard, self.redis).await? {
                report.absorb(self.settle(&batch).await?);
            }
        }
        self.counter.prune(self.raw).await?;
        Ok(report)
    }

    /// [`recover`](RedisCounter::recover).
    pub(super) async fn recover(&mut self) -> Result<FlushReport<M::Key>, AtomicError> {
        refuse_inside_a_transaction(self.raw)?;
        let mut report = FlushReport::default();
        for shard in self.counter.shards.all() {
            let mut members = redis::cmd("SMEMBERS");
            members.arg(&shard.batches);
            let mut ids: Vec<String> = self.redis.query(&members, self.counter.timeout).await?;
            ids.sort();
            for id in ids {
                let settled = self.settle(&id).await?;
                report.recovered += 1;
                report.absorb(settled);
            }
        }
        Ok(report)
    }

    /// [`apply`](RedisCounter::apply): what applying batch `id` found.
    ///
    /// One transaction records the batch in the ledger, adds each key's count to its row
    /// (`add_each_in`: keys in order, so flushers lock rows in one order; a row that refuses
    /// its count, past its bound or with a database error of its own such as a `CHECK` or a
    /// trigger, is reported without failing the others) and lists in the ledger row the
    /// fields whose counts go back to Redis. Even when every key is refused the batch is
    /// committed (all of it kept) and finished: a batch that failed instead would stay in
    /// Redis, and every later flush would stop on it in `recover`, before taking anything new.
    ///
    /// The transaction opens with [`Dialect::BEGIN_COMPACT`]: `READ COMMITTED` on PostgreSQL
    /// whatever the session's default. That is exact here. Applying a batch twice is ruled
    /// out by the ledger's primary key, which a second insert of the id waits on and fails at
    /// under any isolation; and every row is changed by a statement that locks it and checks
    /// its guard against the row's latest committed version, never against a snapshot. Under
    /// `SERIALIZABLE` a flusher whose keys other transactions keep writing would instead fail
    /// "could not serialize access" try after try, and its batch would wait in Redis.
    pub(super) async fn apply(&mut self, id: &str) -> Result<Applied<M::Key>, AtomicError> {
        let counter = self.counter;
        refuse_inside_a_transaction(self.raw)?;
        let shard = counter.shards.of_batch(id)?;
        let mut getall = redis::cmd("HGETALL");
        getall.arg(shard.batch_key(id));
        let fields: Vec<(String, String)> = self.redis.query(&getall, counter.timeout).await?;
        if fields.is_empty() {
            return Ok(Applied::Gone);
        }
        let (batch, unusable) = parse_batch::<M, Col>(fields);
        let counts: Vec<(M::Key, M::Value)> = batch
            .iter()
            .map(|(key, (_, n))| (key.clone(), *n))
            .collect();
        let keep_unknown = counter.unknown.unknown() == UnknownKeys::Keep;
        let now = unix_now();
        let begin = <Raw::Db as Dialect>::BEGIN_COMPACT;
        let outcome = retrying!(
            Write,
            &mut *self.raw,
            counter.field.policy(),
            LockMode::Wait,
            |c| {
                guarded!(c, begin, |c| {
                    // Only this statement's unique violation means "another flusher committed
                    // the batch": one from a trigger or a constraint of the counted table must
                    // not pass for it (the batch would be deleted as if it were applied).
                    match LedgerDialect::ledger_record(c, counter.ledger, id, now).await {
                        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                            return Err(AtomicError::custom(AlreadyApplied));
                        }
                        other => other?,
                    }
                    let each = counter
                        .unknown
                        .add_each_in(&counter.field, c, &counts)
                        .await?;
                    let unknown = each.missing.iter().filter(|_| keep_unknown);
                    let mut kept_keys: Vec<&M::Key> =
                        each.refused.iter().map(|(k, ..)| k).collect();
                    kept_keys.extend(unknown.map(|(k, _)| k));
                    let kept_fields = kept_keys
                        .into_iter()
                        .map(|key| &batch[key].0)
                        .chain(unusable.iter().map(|k| &k.field));
                    let kept_fields = encode_fields(kept_fields);
                    if !kept_fields.is_empty() {
                        LedgerDialect::ledger_keep(c, counter.ledger, id, &kept_fields).await?;
                    }
                    Ok(each)
                })
            }
        );
        let each = match outcome {
            Ok(each) => each,
            Err(AtomicError::Custom(e)) if e.is::<AlreadyApplied>() => return Ok(Applied::Already),
            Err(other) => return Err(other),
        };
        let count = |n: M::Value| i64::try_from(n.to_i128()).expect("a batch's counts are i64");
        let mut kept: Vec<Kept<M::Key>> = each
            .refused
            .into_iter()
            .map(|(key, n, error)| {
                let field = &batch[&key].0;
                Kept::of(&key, field, n, error)
            })
            .collect();
        kept.extend(unusable);
        Ok(Applied::Now(FlushReport {
            applied: 1,
            recovered: 0,
            written: each
                .written
                .into_iter()
                .map(|(key, n, _)| (key, count(n)))
                .collect(),
            unknown: each
                .missing
                .into_iter()
                .map(|(key, n)| (key, count(n)))
                .collect(),
            kept,
        }))
    }

    /// [`settle`](RedisCounter::settle).
    pub(super) async fn settle(&mut self, id: &str) -> Result<FlushReport<M::Key>, AtomicError> {
        let counter = self.counter;
        let shard = counter.shards.of_batch(id)?;
        let (report, kept) = match counter.look_up(self.raw, id).await? {
            Some(kept) => (FlushReport::default(), kept),
            None => match self.apply(id).await? {
                // Nothing in Redis to finish: only the id leaves the set.
                Applied::Gone => (FlushReport::default(), String::new()),
                // Committed, by this call or another flusher: the ledger says what was kept.
                Applied::Now(report) => (report, counter.recorded(self.raw, id).await?),
                Applied::Already => (
                    FlushReport::default(),
                    counter.recorded(self.raw, id).await?,
                ),
            },
        };
        let mut finish = counter.finish.prepare_invoke();
        finish
            .key(&shard.pending)
            .key(&shard.batches)
            .key(shard.batch_key(id))
            .key(&shard.invalid)
            .arg(id);
        for field in decode_fields(&kept)? {
            finish.arg(field);
        }
        self.redis.invoke::<i64>(&finish, counter.timeout).await?;
        Ok(report)
    }
}

/// What applying a batch found.
pub(super) enum Applied<K> {
    /// This call committed it.
    Now(FlushReport<K>),
    /// Another flusher had committed it (the ledger's primary key said so).
    Already,
    /// The batch is not in Redis (finished by another flusher).
    Gone,
}

/// The ledger already has the batch: returned from inside the transaction to roll it back.
#[derive(Debug, thiserror::Error)]
#[error("the batch is already in the ledger")]
struct AlreadyApplied;

/// A flush must commit its transaction before it deletes the batch from Redis; inside the
/// caller's transaction that commit is the caller's, and a rollback after the delete would
/// lose the counts. Refused before anything is taken.
fn refuse_inside_a_transaction<R: RawConnection>(raw: &mut R) -> Result<(), AtomicError> {
    match raw.transaction_status().transaction_depth() {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(AtomicError::Unsupported {
            feature: "a Redis counter flush inside a transaction",
            backend: R::Db::NAME,
        }),
        // A connection whose last rollback failed: Diesel's error says so.
        Err(broken) => Err(AtomicError::Database(broken)),
    }
}

/// A batch's fields as keys in order with their counts, and the fields that are not usable
/// (no key of this model, a value that is not an integer, or a count the column's type cannot
/// hold), which are kept.
#[allow(clippy::type_complexity)]
fn parse_batch<M, Col>(
    fields: Vec<(String, String)>,
) -> (BTreeMap<M::Key, (String, M::Value)>, Vec<Kept<M::Key>>)
where
    Col: Column,
    M: AtomicField<Col>,
    M::Key: RedisKey + Ord,
{
    let mut batch = BTreeMap::new();
    let mut unusable = Vec::new();
    for (field, value) in fields {
        // Only the one spelling `write_field` gives: two fields naming one key would
        // otherwise overwrite each other in the batch.
        let key = M::Key::read_field(&field).filter(|key| key.field() == field);
        let count = value.parse::<i64>().ok();
        let error = match (&key, count) {
            (None, _) => {
                AtomicError::custom(format!("field {field:?} names no key of this counter"))
            }
            (_, None) => AtomicError::custom(format!("value {value:?} is not a count")),
            (Some(_), Some(n)) => match M::Value::from_i128(i128::from(n)) {
                Some(v) if n >= 0 => {
                    if n > 0 {
                        batch.insert(key.expect("matched Some"), (field, v));
                    }
                    continue;
                }
                _ => AtomicError::OutOfRange {
                    current: 0,
                    attempted: i128::from(n),
                    limit: if n < 0 {
                        Limit::Min(M::Value::MIN.to_i128())
                    } else {
                        Limit::Max(M::Value::MAX.to_i128())
                    },
                },
            },
        };
        unusable.push(Kept {
            field,
            key,
            count,
            error,
        });
    }
    unusable.sort_by(|a, b| a.field.cmp(&b.field));
    (batch, unusable)
}

/// Fields as `<len>:<field>` concatenated, for the ledger's `kept` column.
fn encode_fields<'a>(fields: impl Iterator<Item = &'a String>) -> String {
    let mut out = String::new();
    for field in fields {
        crate::cache_key::push_part(&mut out, field);
    }
    out
}

fn decode_fields(mut text: &str) -> Result<Vec<&str>, AtomicError> {
    let mut fields = Vec::new();
    while !text.is_empty() {
        let field = crate::cache_key::next_part(&mut text).ok_or_else(|| {
            // A truncated column (MySQL `TEXT` in non-strict mode): finishing the batch with a
            // partial list would delete counts the database never took.
            AtomicError::custom("the ledger's kept keys are malformed (truncated?)")
        })?;
        fields.push(field);
    }
    Ok(fields)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_fields_round_trip() {
        let fields = ["7".to_owned(), "1:73:a:b".to_owned(), String::new()];
        let text = encode_fields(fields.iter());
        assert_eq!(text, "1:78:1:73:a:b0:");
        assert_eq!(decode_fields(&text).unwrap(), ["7", "1:73:a:b", ""]);
        assert!(decode_fields("1:78:1:7").is_err(), "truncated");
    }
}
