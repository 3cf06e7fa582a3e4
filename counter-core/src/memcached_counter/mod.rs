//! Counters kept in Memcached and moved into the database exactly once (feature
//! `memcached`). (Everything a user needs is on the public type: this module is private.)

mod flush;
mod link;
mod report;

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use diesel::Column;

use crate::backend::{AtomicConnection, BackendOf, CallMode, Out, RawConnection};
use crate::cache_key::{push_part, RedisKey};
use crate::error::{AtomicError, Limit};
use crate::field::{AtomicField, AtomicFieldOn};
use crate::lock::LockMode;
use crate::ops::Field;
use crate::plan::non_negative;
use crate::retry::{retrying, RetryPolicy};
use crate::sql::MemcachedLedger;
use crate::unknown_keys::UnknownKeys;
use crate::value::AtomicValue;

pub use crate::sql::MEMCACHED_LEDGER;
pub use link::{MemcachedConnection, MemcachedOut};
pub use report::{MemcachedFlushReport, MemcachedKept};

/// How long an async call waits for Memcached by default: see
/// [`MemcachedCounter::timeout`].
pub const DEFAULT_MEMCACHED_TIMEOUT: Duration = Duration::from_secs(2);

/// How many times `add` tries to create an item another client keeps creating and removing
/// under it before it gives up (nothing counted).
const CREATE_TRIES: usize = 16;

/// The longest counter name, in bytes: the ledger's `counter` column is `VARCHAR(200)`.
const MAX_NAME: usize = 200;

/// A counter of field `Col` of model `M` whose increments go to Memcached and reach the
/// database through [`flush`](Self::flush), each exactly once.
///
/// Memcached has no scripts, no rename, cannot list its keys, evicts items when it needs
/// room, and its `decr` stops at 0, so nothing here moves counts out of Memcached. Instead,
/// **Memcached items only grow, and the database remembers how much of each it has
/// applied**:
///
/// - `add(key, n)` is `incr <name>:c:<field> n` (see [`RedisKey`] for the field of a key).
///   When the item does not exist, the call appends the field to an index item
///   `<name>:keys` (so a flush can find the key: Memcached cannot list its items), then
///   creates the count item with `add`, its client flags a random non-zero 32-bit *nonce*:
///   the item's identity, which `incr` keeps. If another adder created it first (`add`
///   answers NOT_STORED), it `incr`s again.
/// - The *ledger* table holds one row per key of each counter: the nonce of the item last
///   applied, and how much of that item (`applied`) the database has taken.
/// - [`flush`](Self::flush) is **one database transaction**: the keys are the index's fields
///   and the ledger's; it inserts a ledger row (nonce 0, applied 0) for each key without one,
///   locks the counter's ledger rows (in field order), and **only then** reads every count
///   item with its flags (pipelined multi-gets). For each key the count to apply is the
///   item's value less `applied` when the item's nonce is the ledger's (in wrapping 64-bit
///   arithmetic, so a wrap of `incr` at 2^64 is still right), or the item's whole value when
///   the nonce differs (the item is new since the last flush: created after an eviction or a
///   restart of Memcached); no item, nothing. It adds the counts to the rows (keys in order;
///   a row that refuses does not hold back the others), records `(nonce, applied = value)`
///   for each key whose count was taken, and commits. Reading after the lock is what makes
///   two flushers exact: the second waits for the first's commit, then reads a value at
///   least as large, and takes only the difference.
/// - After the commit a flush tidies the index (a `cas` keeping only the fields the ledger
///   does not have yet); if another adder changed the index meanwhile, the tidying is
///   skipped. It changes nothing a later flush depends on.
///
/// A flush may run inside the caller's transaction: it then commits or rolls back with it
/// (Memcached is not changed, so the counts of a rolled-back flush are taken by the next),
/// and it leaves the index as it is, since the ledger rows it wrote are not committed yet.
///
/// **What follows.** A flush writes nothing to Memcached that matters, so a flusher killed at
/// any point loses nothing and counts nothing twice: its transaction committed or it did
/// not. Any number of flushers may run at once. An app crash after an `add` returned `Ok`
/// loses nothing. **A Memcached restart or an eviction of a count item loses that key's
/// counts not yet flushed** (never doubles them: the new item has a new nonce, and only its
/// own value is applied). An eviction of the index item hides from `flush` the keys never
/// flushed before whose items exist: an `add` to an existing item does not index it again,
/// so such a key waits (its count growing, and lost if its own item is evicted meanwhile)
/// until its item is created again or [`flush_keys`](Self::flush_keys) names it. A key
/// flushed once is always found, through its ledger row. (Every flush reads the index and
/// every item it knows, which keeps them at the head of Memcached's LRU: under memory
/// pressure they are evicted last, as long as flushes run.)
/// An `add` that failed with a timeout or a lost reply has an unknown outcome, as with any
/// write to a server (see [`AtomicError::Memcached`]). (The nonce is 32 bits: an item
/// re-created with its predecessor's nonce, a chance of 1 in 4 billion per re-creation,
/// would be applied as the continuation of the old one.)
///
/// **Cost.** A flush reads every key the counter ever counted (the ledger keeps them): for a
/// counter with very many keys, flush the keys you know changed with
/// [`flush_keys`](Self::flush_keys), which runs the same transaction over those keys only.
///
/// **A key without a row** is the counter's choice, as for [`RedisCounter`](crate::RedisCounter):
/// by default ([`UnknownKeys::Drop`]) its count is reported once in
/// [`MemcachedFlushReport::unknown`] and recorded as taken; with
/// [`unknown_keys(UnknownKeys::Keep)`](Self::unknown_keys) it is reported and left in
/// Memcached, applied by the first flush after the row exists;
/// [`inserting(new_row)`](Self::inserting) inserts the row. A row that refuses its count
/// (past the column's bound, a failing `CHECK` or trigger) keeps it in Memcached and is
/// reported in [`MemcachedFlushReport::kept`] by every flush until it takes it.
///
/// **The client.** [`MemcachedConnection`] is implemented for `memcache::exp::MetaClient`
/// (blocking) and, with feature `async`, `memcache::exp::AsyncMetaClient` (tokio), both of
/// the `memcache` crate 0.21 (pinned: its meta-protocol client is marked experimental
/// upstream). It was chosen because it gives, for blocking and async alike, with one
/// operation type: the client flags of an item on read and write, NOT_FOUND and NOT_STORED
/// as distinct statuses (`memcache`'s older text-protocol `Client::add` reports NOT_STORED as
/// success, which would lose counts here), pipelined multi-gets, `cas`, and per-exchange
/// timeouts with a reconnect after a restart. `async-memcached` 0.9 is async only, and its
/// text-protocol client has neither `append` nor `cas` (its meta-protocol calls take them only
/// as raw flags).
///
/// **The ledger**, one table for every Memcached counter (`counter` is the counter's name):
///
/// ```sql
/// -- PostgreSQL, SQLite
/// CREATE TABLE counter_memcached (counter VARCHAR(200) NOT NULL, field VARCHAR(255) NOT NULL,
///     nonce BIGINT NOT NULL, applied BIGINT NOT NULL, PRIMARY KEY (counter, field));
/// -- MySQL / MariaDB (a binary collation: two fields are one row only when equal)
/// CREATE TABLE counter_memcached (counter VARCHAR(200) NOT NULL, field VARCHAR(255) NOT NULL,
///     nonce BIGINT NOT NULL, applied BIGINT NOT NULL, PRIMARY KEY (counter, field))
///     ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
/// ```
///
/// (`applied` holds a `u64` as its `i64` bit pattern.)
///
/// ```no_run
/// use counter_core::{AtomicField, MemcachedCounter};
/// use diesel::prelude::*;
///
/// diesel::table! { articles (id) { id -> BigInt, view_count -> BigInt, } }
///
/// #[derive(Queryable, Selectable, Identifiable, AtomicField)]
/// #[diesel(table_name = articles)]
/// struct Article {
///     id: i64,
///     #[atomic]
///     view_count: i64,
/// }
///
/// let views = MemcachedCounter::<Article, articles::view_count>::new("article-views");
/// let mc = memcache::exp::MetaClient::connect("127.0.0.1:11211")?;
/// let mut db = SqliteConnection::establish("app.db")?;
///
/// views.add(&mc, &7, 1)?; // one `incr`; the request is done
/// let shown = views.current(&mut db, &mc, &7)?; // the row's value + what is not flushed
///
/// // Elsewhere, every second or so, on any number of app servers:
/// let report = views.flush(&mut db, &mc)?;
/// for kept in &report.kept {
///     eprintln!("{}: {} kept in Memcached: {}", kept.field, kept.count, kept.error);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemcachedCounter<M, Col, U = UnknownKeys> {
    name: String,
    count_prefix: String,
    index: String,
    ledger: &'static str,
    timeout: Duration,
    field: Field<M, Col>,
    unknown: U,
    marker: PhantomData<fn() -> (M, Col)>,
}

impl<M, Col> MemcachedCounter<M, Col>
where
    Col: Column + 'static,
    M: AtomicField<Col>,
    M::Key: RedisKey + Ord + Clone,
{
    /// A counter named `name`: its Memcached items are `<name>:c:<field>` and `<name>:keys`,
    /// its ledger rows have `counter = name`. One name per counted field.
    ///
    /// # Panics
    ///
    /// When `name` is empty, longer than 200 bytes, or contains a space or a control
    /// character (Memcached item names cannot).
    pub fn new(name: &str) -> Self {
        assert!(
            !name.is_empty()
                && name.len() <= MAX_NAME
                && !name.chars().any(|c| c.is_whitespace() || c.is_control()),
            "MemcachedCounter name {name:?}: must be 1 to {MAX_NAME} bytes, without spaces"
        );
        MemcachedCounter {
            name: name.to_owned(),
            count_prefix: format!("{name}:c:"),
            index: format!("{name}:keys"),
            ledger: MEMCACHED_LEDGER,
            timeout: DEFAULT_MEMCACHED_TIMEOUT,
            field: Field::new(),
            unknown: UnknownKeys::Drop,
            marker: PhantomData,
        }
    }

    /// The same counter with `choice` for the count of a key that has no row: reported once
    /// in [`MemcachedFlushReport::unknown`] and recorded as taken ([`UnknownKeys::Drop`], the
    /// default), or reported by each flush and left in Memcached until a row exists
    /// ([`UnknownKeys::Keep`]).
    pub fn unknown_keys(self, choice: UnknownKeys) -> Self {
        MemcachedCounter {
            unknown: choice,
            ..self
        }
    }

    /// The same counter, inserting a row for a key that has none: `new_row(&key, count)`
    /// builds it (any type that derives `Insertable` for the table, its column starting at
    /// `count`). Such a key is then written like any other; a key whose insert fails is kept
    /// in Memcached, as a row that refuses its count is.
    pub fn inserting<F, Row>(self, new_row: F) -> MemcachedCounter<M, Col, F>
    where
        F: Fn(&M::Key, M::Value) -> Row,
    {
        MemcachedCounter {
            name: self.name,
            count_prefix: self.count_prefix,
            index: self.index,
            ledger: self.ledger,
            timeout: self.timeout,
            field: self.field,
            unknown: new_row,
            marker: PhantomData,
        }
    }
}

impl<M, Col, U> MemcachedCounter<M, Col, U>
where
    Col: Column + 'static,
    M: AtomicField<Col>,
    M::Key: RedisKey + Ord + Clone,
{
    /// The same counter with another ledger table.
    pub fn ledger_table(self, table: &'static str) -> Self {
        MemcachedCounter {
            ledger: table,
            ..self
        }
    }

    /// The same counter bounding each call on an async client by `timeout` (2 s by default,
    /// [`DEFAULT_MEMCACHED_TIMEOUT`]; at least 1 ms), on top of the client's own per-exchange
    /// timeouts, which are what bound a blocking client's calls (see
    /// [`MemcachedConnection`]). A call that timed out fails with `AtomicError::Memcached`;
    /// an `add` that did may still have been counted.
    pub fn timeout(self, timeout: Duration) -> Self {
        MemcachedCounter {
            timeout: timeout.max(Duration::from_millis(1)),
            ..self
        }
    }

    /// The same counter with another retry policy for its database transactions.
    pub fn retry(self, policy: RetryPolicy) -> Self {
        MemcachedCounter {
            field: self.field.retry(policy),
            ..self
        }
    }

    /// Adds `n` to `key`'s count in Memcached: one `incr`, or when the key's item does not
    /// exist, an `append` of the key to the index item (an `add` when the index is missing)
    /// and an `add` of the item with a new nonce (see the type's documentation). Returns the
    /// item's value after the add (not the row's: see [`current`](Self::current)).
    ///
    /// Errors: `NegativeAmount`, `OutOfRange` for an amount past `i64` (both before anything
    /// is sent), `Memcached`.
    pub fn add<'m, R>(
        &self,
        mc: &'m R,
        key: &M::Key,
        n: M::Value,
    ) -> MemcachedOut<R, impl Future<Output = Result<u64, AtomicError>> + use<'m, M, Col, U, R>>
    where
        R: MemcachedConnection + ?Sized,
    {
        let amount = memcached_amount(n);
        let field = key.field();
        let item = self.item(&field);
        let index = self.index.clone();
        let timeout = self.timeout;
        R::Mode::drive(async move {
            let n = amount?;
            if let Some(value) = link::incr(mc, &item, n, timeout).await? {
                return Ok(value);
            }
            // A new item: the key goes into the index first, so that an item never exists
            // unindexed (a failed append fails the add before anything is counted); a field
            // indexed twice, or without an item, costs a flush nothing.
            let mut part = String::new();
            push_part(&mut part, &field);
            index_field(mc, &index, part.as_bytes(), timeout).await?;
            for _ in 0..CREATE_TRIES {
                let nonce = new_nonce();
                if link::add(mc, &item, n.to_string().as_bytes(), nonce, timeout).await? {
                    return Ok(n);
                }
                // Another adder created it since the `incr`: count on its item.
                if let Some(value) = link::incr(mc, &item, n, timeout).await? {
                    return Ok(value);
                }
                // ...which was evicted or deleted meanwhile: create it again.
            }
            // Nothing was counted: every `add` found the item, every `incr` did not.
            Err(AtomicError::Memcached(
                format!("item {item:?} neither created nor incremented in {CREATE_TRIES} tries")
                    .into(),
            ))
        })
    }

    /// The row's value plus the count in Memcached the database has not taken yet: what
    /// the counter will read once flushed (as of the two reads, which are not one snapshot).
    ///
    /// Errors: `NotFound` (no row), `Memcached`, the database's errors.
    pub fn current<'c, 'm, C, R>(
        &self,
        conn: &'c mut C,
        mc: &'m R,
        key: &M::Key,
    ) -> Out<C, impl Future<Output = Result<i128, AtomicError>> + use<'c, 'm, M, Col, U, C, R>>
    where
        C: AtomicConnection,
        R: MemcachedConnection<Mode = C::Mode> + ?Sized,
        M: AtomicFieldOn<Col, BackendOf<C>>,
    {
        let (field, key) = (self.field, key.clone());
        let probe = self.probe(&key);
        C::Mode::drive(async move {
            let pending = probe.pending(conn.raw(), mc).await?;
            let stored = C::Mode::into_future(field.current(conn, key)).await?;
            Ok(stored.to_i128() + i128::from(pending))
        })
    }

    /// The count in Memcached the database has not taken yet for `key` (0 when none): the
    /// item's value less what its ledger row says was applied of it.
    ///
    /// Errors: `Memcached`, the database's errors.
    pub fn pending<'c, 'm, C, R>(
        &self,
        conn: &'c mut C,
        mc: &'m R,
        key: &M::Key,
    ) -> Out<C, impl Future<Output = Result<u64, AtomicError>> + use<'c, 'm, M, Col, U, C, R>>
    where
        C: AtomicConnection,
        R: MemcachedConnection<Mode = C::Mode> + ?Sized,
    {
        let probe = self.probe(key);
        C::Mode::drive(async move { probe.pending(conn.raw(), mc).await })
    }

    /// What reading `key`'s pending count needs, owned.
    fn probe(&self, key: &M::Key) -> Probe {
        let field = key.field();
        Probe {
            item: self.item(&field),
            field,
            name: self.name.clone(),
            ledger: self.ledger,
            policy: self.field.policy(),
            timeout: self.timeout,
        }
    }

    /// The count item of the key whose field is `field`.
    fn item(&self, field: &str) -> String {
        format!("{}{field}", self.count_prefix)
    }
}

/// One key's names and the counter's settings, for reading its pending count.
struct Probe {
    field: String,
    item: String,
    name: String,
    ledger: &'static str,
    policy: RetryPolicy,
    timeout: Duration,
}

impl Probe {
    /// The key's item value less what its ledger row says was applied of it; 0 without an
    /// item.
    async fn pending<Raw, R>(self, raw: &mut Raw, mc: &R) -> Result<u64, AtomicError>
    where
        Raw: RawConnection,
        R: MemcachedConnection + ?Sized,
    {
        let Probe {
            field,
            item,
            name,
            ledger,
            policy,
            timeout,
        } = self;
        let row = retrying!(Read, raw, policy, LockMode::Wait, |c| {
            Ok(<Raw::Db as MemcachedLedger>::mc_read(c, ledger, &name, &field).await?)
        })?;
        let items = link::get_many(mc, std::slice::from_ref(&item), false, timeout).await?;
        let Some(found) = items.get(&item) else {
            return Ok(0);
        };
        let value = count_of(&found.value).ok_or_else(|| not_a_count(&item))?;
        let (nonce, applied) = row.unwrap_or((0, 0));
        Ok(unapplied(value, found.flags, nonce, applied))
    }
}

/// Appends `part` to the index item, creating it when missing.
async fn index_field<R: MemcachedConnection + ?Sized>(
    mc: &R,
    index: &str,
    part: &[u8],
    timeout: Duration,
) -> Result<(), AtomicError> {
    loop {
        if link::append(mc, index, part, timeout).await? {
            return Ok(());
        }
        if link::add(mc, index, part, 0, timeout).await? {
            return Ok(());
        }
        // Created by another adder between the two: append to it.
    }
}

/// A random non-zero 32-bit nonce: 0 is the ledger's "no item applied yet".
fn new_nonce() -> u32 {
    loop {
        let nonce = rand::random::<u32>();
        if nonce != 0 {
            return nonce;
        }
    }
}

/// What of an item (value `value`, nonce `flags`) the database has not taken, its ledger row
/// saying `applied` of the item with `nonce` was: the rest of the same item (wrapping, so a
/// wrap of `incr` past 2^64 still counts right), or all of another item.
fn unapplied(value: u64, flags: u32, nonce: i64, applied: i64) -> u64 {
    if i64::from(flags) == nonce {
        value.wrapping_sub(applied as u64)
    } else {
        value
    }
}

/// An item's value as a count: Memcached's `incr` keeps it as decimal digits.
fn count_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The error of an item whose value is not a count (written by something else).
fn not_a_count(item: &str) -> AtomicError {
    AtomicError::custom(format!("Memcached item {item:?} does not hold a count"))
}

/// An amount for `incr`: not negative, within `i64` (a flush adds it to a row in one
/// statement, as an `i64`).
fn memcached_amount<V: AtomicValue>(n: V) -> Result<u64, AtomicError> {
    let n = non_negative(n)?;
    let n = i64::try_from(n).map_err(|_| AtomicError::OutOfRange {
        current: 0,
        attempted: n,
        limit: Limit::Max(i128::from(i64::MAX)),
    })?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unapplied_is_the_rest_of_the_same_item_or_all_of_another() {
        assert_eq!(unapplied(10, 7, 7, 4), 6);
        assert_eq!(unapplied(10, 8, 7, 4), 10, "a new item: all of it");
        assert_eq!(unapplied(10, 0, 0, 0), 10, "no row yet");
        // `incr` wrapped past 2^64: 3 more than u64::MAX - 1 is 1.
        assert_eq!(unapplied(1, 7, 7, (u64::MAX - 1) as i64), 3);
    }

    #[test]
    fn amounts_are_checked_before_sending() {
        assert_eq!(memcached_amount(5_i64).unwrap(), 5);
        assert!(matches!(
            memcached_amount(-1_i64),
            Err(AtomicError::NegativeAmount { amount: -1 })
        ));
        // Past i64: only MySQL's unsigned columns have such values.
        #[cfg(feature = "mysql")]
        assert!(matches!(
            memcached_amount(u64::MAX),
            Err(AtomicError::OutOfRange { .. })
        ));
        assert_eq!(count_of(b"42"), Some(42));
        assert_eq!(count_of(b"x"), None);
    }
}
