//! The flush: one database transaction that locks the counter's ledger rows, then reads the
//! count items and applies what the ledger has not taken (see [`MemcachedCounter`]'s
//! documentation for why reading after the lock makes concurrent flushers exact); and the
//! tidying of the index after it.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Instant;

use diesel::Column;

use super::link::{self, Item};
use super::{
    count_of, not_a_count, unapplied, MemcachedConnection, MemcachedCounter, MemcachedFlushReport,
    MemcachedKept,
};
use crate::backend::{
    guarded, in_transaction, AtomicConnection, BackendOf, CallMode, Dialect, Out, RawConnection,
};
use crate::cache_key::{next_part, RedisKey};
use crate::error::{AtomicError, Limit};
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::retry::retrying;
use crate::sql::MemcachedLedger;
use crate::trace;
use crate::unknown_keys::{UnknownKeyPolicy, UnknownKeys};
use crate::value::AtomicValue;

impl<M, Col, U> MemcachedCounter<M, Col, U>
where
    Col: Column + 'static,
    M: AtomicField<Col>,
    M::Key: RedisKey + Ord + Clone,
{
    /// Moves into the rows every count Memcached holds that the database has not taken: the
    /// keys of the index and of the ledger, in one transaction (see the type's
    /// documentation). Safe to run from any number of processes at once, and to kill at any
    /// point. Reads one item per key the counter ever counted: see
    /// [`flush_keys`](Self::flush_keys) for counters with very many keys.
    ///
    /// Keys the database cannot take (past the row's bound, or its update fails with an error
    /// of its own) do not block the others: they are reported in
    /// [`MemcachedFlushReport::kept`] and stay in Memcached. Look at `kept`, not only at the
    /// `Result`.
    ///
    /// Errors: `Memcached` (nothing written: the transaction rolls back), the database's
    /// errors (after the retry policy).
    pub fn flush<'s, 'c, 'm, C, R>(
        &'s self,
        conn: &'c mut C,
        mc: &'m R,
    ) -> Out<
        C,
        impl Future<Output = Result<MemcachedFlushReport<M::Key>, AtomicError>>
            + use<'s, 'c, 'm, M, Col, U, C, R>,
    >
    where
        C: AtomicConnection,
        R: MemcachedConnection<Mode = C::Mode> + ?Sized,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        U: UnknownKeyPolicy<M, Col, BackendOf<C>>,
    {
        C::Mode::drive(async move { self.flush_on(conn.raw(), mc, None).await })
    }

    /// [`flush`](Self::flush) of `keys` only: the same transaction over their ledger rows
    /// and items, for a counter with too many keys to read them all on every flush (the
    /// caller knows which keys it added to). Keys not named stay in Memcached for a later
    /// flush.
    pub fn flush_keys<'s, 'c, 'm, C, R>(
        &'s self,
        conn: &'c mut C,
        mc: &'m R,
        keys: &[M::Key],
    ) -> Out<
        C,
        impl Future<Output = Result<MemcachedFlushReport<M::Key>, AtomicError>>
            + use<'s, 'c, 'm, M, Col, U, C, R>,
    >
    where
        C: AtomicConnection,
        R: MemcachedConnection<Mode = C::Mode> + ?Sized,
        M: AtomicFieldOn<Col, BackendOf<C>>,
        U: UnknownKeyPolicy<M, Col, BackendOf<C>>,
    {
        let mut fields: Vec<String> = keys.iter().map(RedisKey::field).collect();
        fields.sort();
        fields.dedup();
        C::Mode::drive(async move { self.flush_on(conn.raw(), mc, Some(fields)).await })
    }

    /// [`flush`](Self::flush) (`only` is `None`) or [`flush_keys`](Self::flush_keys), traced.
    async fn flush_on<Raw, R>(
        &self,
        raw: &mut Raw,
        mc: &R,
        only: Option<Vec<String>>,
    ) -> Result<MemcachedFlushReport<M::Key>, AtomicError>
    where
        Raw: RawConnection,
        R: MemcachedConnection + ?Sized,
        M: AtomicFieldOn<Col, Raw::Db>,
        U: UnknownKeyPolicy<M, Col, Raw::Db>,
    {
        let started = Instant::now();
        let result = self.flush_steps(raw, mc, only).await;
        let took = started.elapsed();
        match &result {
            Ok(report) => {
                let (keys, kept) = (report.written.len(), report.kept.len());
                if keys + kept > 0 {
                    trace::flush("memcached", keys, report.total_written(), took, kept, None);
                }
            }
            Err(error) => trace::flush("memcached", 0, 0, took, 0, Some(error)),
        }
        result
    }

    /// The steps of a flush: the keys, the transaction, the tidying of the index.
    async fn flush_steps<Raw, R>(
        &self,
        raw: &mut Raw,
        mc: &R,
        only: Option<Vec<String>>,
    ) -> Result<MemcachedFlushReport<M::Key>, AtomicError>
    where
        Raw: RawConnection,
        R: MemcachedConnection + ?Sized,
        M: AtomicFieldOn<Col, Raw::Db>,
        U: UnknownKeyPolicy<M, Col, Raw::Db>,
    {
        // (1) The keys: the index's fields (a full flush; the ledger adds its own below, as
        // the lock reads every row of the counter) or the caller's.
        let scoped = only.is_some();
        // Inside the caller's transaction the commit is the caller's, and a rollback would
        // take the ledger rows back: the index must then keep every field (a field dropped
        // from it for a ledger row rolled back would never be flushed).
        let callers = in_transaction(raw)?;
        let (fields, index) = match only {
            Some(fields) => (fields, None),
            None => {
                let index = std::slice::from_ref(&self.index);
                let mut items = link::get_many(mc, index, true, self.timeout).await?;
                let index = items.remove(&self.index);
                let fields = index
                    .as_ref()
                    .map(|item| index_fields::<M::Key>(&item.value))
                    .unwrap_or_default();
                (fields, index.map(|item| (item, self.index.clone())))
            }
        };
        let begin = <Raw::Db as Dialect>::BEGIN_COMPACT;
        let (report, ledger_fields) =
            retrying!(Write, &mut *raw, self.field.policy(), LockMode::Wait, |c| {
                guarded!(c, begin, |c| {
                    let scope = scoped.then_some(&fields[..]);
                    self.apply_in(c, mc, &fields, scope).await
                })
            })?;
        // (6) Tidy the index: a field with a ledger row is found through it from now on.
        if let Some((item, name)) = index.filter(|_| !callers) {
            self.tidy_index(mc, &name, &item, &ledger_fields).await;
        }
        Ok(report)
    }

    /// Steps (2) to (5), inside the flush's transaction: rows for the new keys, the lock,
    /// the read of the items, the counts applied and recorded. Also returns the fields the
    /// ledger now has (for the index's tidying).
    ///
    /// The transaction opens with [`Dialect::BEGIN_COMPACT`] (`READ COMMITTED` on
    /// PostgreSQL): every row it reads it has locked, so it needs no snapshot, and under
    /// `SERIALIZABLE` a flusher of rows other transactions keep writing would fail try after
    /// try.
    async fn apply_in<Raw, R>(
        &self,
        c: &mut Raw,
        mc: &R,
        fields: &[String],
        scope: Option<&[String]>,
    ) -> Result<(MemcachedFlushReport<M::Key>, Vec<String>), AtomicError>
    where
        Raw: RawConnection,
        R: MemcachedConnection + ?Sized,
        M: AtomicFieldOn<Col, Raw::Db>,
        U: UnknownKeyPolicy<M, Col, Raw::Db>,
    {
        let (ledger, name) = (self.ledger, self.name.as_str());
        // (2) A row for each key without one, then every row of the counter (or of the
        // keys) locked, in field order.
        <Raw::Db as MemcachedLedger>::mc_ensure(c, ledger, name, fields).await?;
        let rows = <Raw::Db as MemcachedLedger>::mc_lock(c, ledger, name, scope).await?;
        // (3) Only now, with the rows locked, the items: a flusher that waited for another's
        // commit reads values at least as large as those it committed, and takes the rest.
        let names: Vec<String> = rows.iter().map(|(field, ..)| self.item(field)).collect();
        let items = link::get_many(mc, &names, false, self.timeout).await?;
        // (4) What each key's item holds that the ledger has not taken.
        let mut report = MemcachedFlushReport::default();
        let mut takes: BTreeMap<M::Key, Take<M::Value>> = BTreeMap::new();
        for ((field, nonce, applied), item_name) in rows.iter().zip(&names) {
            let Some(item) = items.get(item_name) else {
                continue; // no item (never created, evicted, Memcached restarted): nothing
            };
            match self.take(field, *nonce, *applied, item_name, item) {
                Found::Nothing => {}
                Found::Renonce(key, take) => {
                    if *nonce != 0 {
                        report.recreated.push(key);
                    }
                    settle::<Raw, _>(c, ledger, name, &take).await?;
                }
                Found::Take(key, take, recreated) => {
                    if recreated {
                        report.recreated.push(key.clone());
                    }
                    takes.insert(key, take);
                }
                Found::Kept(kept) => report.kept.push(kept),
            }
        }
        // (5) The counts applied, keys in order; each taken count recorded in the ledger.
        let counts: Vec<(M::Key, M::Value)> = takes
            .iter()
            .map(|(key, take)| (key.clone(), take.amount))
            .collect();
        let each = self.unknown.add_each_in(&self.field, c, &counts).await?;
        let keep_unknown = self.unknown.unknown() == UnknownKeys::Keep;
        let count = |n: M::Value| i64::try_from(n.to_i128()).expect("amounts are within i64");
        for (key, n, _) in each.written {
            settle::<Raw, _>(c, ledger, name, &takes[&key]).await?;
            report.written.push((key, count(n)));
        }
        for (key, n) in each.missing {
            if !keep_unknown {
                settle::<Raw, _>(c, ledger, name, &takes[&key]).await?;
            }
            report.unknown.push((key, count(n)));
        }
        for (key, n, error) in each.refused {
            report.kept.push(MemcachedKept {
                field: takes[&key].field.clone(),
                key: Some(key),
                count: u64::try_from(n.to_i128()).unwrap_or(0),
                error,
            });
        }
        let ledger_fields = rows.into_iter().map(|(field, ..)| field).collect();
        Ok((report, ledger_fields))
    }

    /// What a key's ledger row (`field`, `nonce`, `applied`) and its item `item` (named
    /// `name`) call for.
    fn take(
        &self,
        field: &str,
        nonce: i64,
        applied: i64,
        name: &str,
        item: &Item,
    ) -> Found<M::Key, M::Value> {
        let key = M::Key::read_field(field).filter(|key| key.field() == field);
        let kept = |count: u64, error: AtomicError| {
            Found::Kept(MemcachedKept {
                field: field.to_owned(),
                key: key.clone(),
                count,
                error,
            })
        };
        let Some(value) = count_of(&item.value) else {
            return kept(0, not_a_count(name));
        };
        let delta = unapplied(value, item.flags, nonce, applied);
        let Some(key) = key.clone() else {
            return kept(
                delta,
                AtomicError::custom(format!("field {field:?} names no key of this counter")),
            );
        };
        let renonced = i64::from(item.flags) != nonce;
        let recreated = renonced && nonce != 0;
        let amount = i64::try_from(delta)
            .ok()
            .and_then(|d| M::Value::from_i128(i128::from(d)));
        let take = |amount| Take {
            field: field.to_owned(),
            nonce: i64::from(item.flags),
            value,
            amount,
        };
        match amount {
            _ if delta == 0 && !renonced => Found::Nothing,
            // A new item holding 0 (an add of 0): only the ledger learns its nonce.
            _ if delta == 0 => Found::Renonce(key, take(M::Value::from_i128(0).expect("0"))),
            Some(amount) => Found::Take(key, take(amount), recreated),
            None => kept(
                delta,
                AtomicError::OutOfRange {
                    current: 0,
                    attempted: i128::from(delta),
                    limit: Limit::Max(M::Value::MAX.to_i128().min(i128::from(i64::MAX))),
                },
            ),
        }
    }

    /// Rewrites the index with only the fields the ledger does not have, if nobody changed
    /// it since the flush read it (`cas`); deletes it when none is left. Best effort: the
    /// flush has committed, and a stale index only costs the next flush a few reads.
    async fn tidy_index<R>(&self, mc: &R, name: &str, item: &Item, ledger: &[String])
    where
        R: MemcachedConnection + ?Sized,
    {
        let Some(cas) = item.cas else { return };
        let ledger: HashSet<&str> = ledger.iter().map(String::as_str).collect();
        let mut rest = String::new();
        let text = String::from_utf8_lossy(&item.value);
        let mut tail = text.as_ref();
        let mut dropped = false;
        while let Some(field) = next_part(&mut tail) {
            if ledger.contains(field) {
                dropped = true;
            } else {
                crate::cache_key::push_part(&mut rest, field);
            }
        }
        if !dropped && tail.is_empty() {
            return;
        }
        let _ = if rest.is_empty() {
            link::delete_if(mc, name, cas, self.timeout).await
        } else {
            link::cas(mc, name, rest.as_bytes(), item.flags, cas, self.timeout).await
        };
    }
}

/// A count to take from an item.
struct Take<V> {
    field: String,
    /// The item's nonce, as the ledger stores it.
    nonce: i64,
    /// The item's value: what the ledger records as applied once the count is taken.
    value: u64,
    /// The count.
    amount: V,
}

/// What a key's row and item call for.
enum Found<K, V> {
    /// Nothing new.
    Nothing,
    /// A new item holding 0: record its nonce.
    Renonce(K, Take<V>),
    /// A count to apply; `true` when the item is not the one the ledger last applied.
    Take(K, Take<V>, bool),
    /// A count the flush cannot apply.
    Kept(MemcachedKept<K>),
}

/// Records in the ledger that `take` is in the database.
async fn settle<Raw: RawConnection, V>(
    c: &mut Raw,
    ledger: &'static str,
    counter: &str,
    take: &Take<V>,
) -> Result<(), AtomicError> {
    // The u64 as its i64 bit pattern: the column is a signed BIGINT.
    let applied = take.value as i64;
    <Raw::Db as MemcachedLedger>::mc_settle(c, ledger, counter, &take.field, take.nonce, applied)
        .await?;
    Ok(())
}

/// The fields of an index item that name keys of type `K` (in their one spelling), sorted,
/// each once. A malformed tail (something else wrote the item) ends the list.
fn index_fields<K: RedisKey>(value: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(value);
    let mut rest = text.as_ref();
    let mut fields = Vec::new();
    while let Some(field) = next_part(&mut rest) {
        if K::read_field(field).is_some_and(|key| key.field() == field) {
            fields.push(field.to_owned());
        }
    }
    fields.sort();
    fields.dedup();
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_fields_are_the_keys_once_in_order() {
        assert_eq!(index_fields::<i64>(b"1:72:101:7"), ["10", "7"]);
        assert_eq!(
            index_fields::<i64>(b"1:x1:3"),
            ["3"],
            "foreign fields are skipped"
        );
        assert_eq!(
            index_fields::<i64>(b"1:39:"),
            ["3"],
            "a malformed tail ends the list"
        );
        assert!(index_fields::<i64>(b"").is_empty());
    }
}
