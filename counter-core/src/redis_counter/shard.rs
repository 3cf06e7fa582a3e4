//! Where a [`RedisCounter`](crate::RedisCounter)'s keys live: one or more *shards*, each a
//! pending hash with its own batches, under its own hash tag.
//!
//! A take, an apply and a finish name several keys at once (a script, a `MULTI`), which Redis
//! Cluster runs only when they are in one hash slot. One tag per counter keeps them there, but
//! puts the whole counter on one master however large the cluster. With `n` shards each shard
//! has its own tag, so the shards spread over the masters, and every step stays inside one
//! shard: the protocol is the one-shard protocol run once per shard.
//!
//! The names are part of the format (another process, another version, must find the same
//! keys): shard 0 is `{prefix}` (the keys of an unsharded counter, so sharding a counter keeps
//! its pending counts where they are), shard `i > 0` is `{prefix#i}`; a key's shard is the
//! 64-bit FNV-1a hash of its field modulo `n`; a batch of shard `i > 0` has the id
//! `<32 hex digits>.<i>`, so applying or settling an id finds its shard.

use crate::error::AtomicError;

/// The most shards a counter may have.
pub const MAX_SHARDS: u16 = 1024;

/// The Redis keys of one shard: all under one hash tag.
pub(super) struct Shard {
    /// This shard's number, which its batch ids end with (none for shard 0).
    index: u16,
    /// The hash of pending counts `add` increments.
    pub(super) pending: String,
    /// The set of batch ids taken and not yet finished.
    pub(super) batches: String,
    /// The hash of counts that could not go back to pending (see `scripts::FINISH`).
    pub(super) invalid: String,
    batch_prefix: String,
    add_prefix: String,
}

impl Shard {
    fn new(prefix: &str, index: u16) -> Self {
        let tag = if index == 0 {
            format!("{{{prefix}}}")
        } else {
            format!("{{{prefix}#{index}}}")
        };
        Shard {
            index,
            pending: format!("{tag}:pending"),
            batches: format!("{tag}:batches"),
            invalid: format!("{tag}:invalid"),
            batch_prefix: format!("{tag}:batch:"),
            add_prefix: format!("{tag}:add:"),
        }
    }

    /// The hash of batch `id`.
    pub(super) fn batch_key(&self, id: &str) -> String {
        format!("{}{id}", self.batch_prefix)
    }

    /// The key remembering `add_once` id `id`.
    pub(super) fn add_key(&self, id: &str) -> String {
        format!("{}{id}", self.add_prefix)
    }

    /// A new batch id of this shard: random 128 bits, and the shard's number.
    pub(super) fn new_batch_id(&self) -> String {
        let random = rand::random::<u128>();
        match self.index {
            0 => format!("{random:032x}"),
            i => format!("{random:032x}.{i}"),
        }
    }
}

/// A counter's shards and which one holds a key.
pub(super) struct Shards {
    prefix: String,
    shards: Vec<Shard>,
}

impl Shards {
    /// `n` shards (1 to [`MAX_SHARDS`]) of the counter with `prefix`.
    pub(super) fn new(prefix: &str, n: u16) -> Self {
        assert!(
            (1..=MAX_SHARDS).contains(&n),
            "RedisCounter shards: {n}, must be 1 to {MAX_SHARDS}"
        );
        Shards {
            prefix: prefix.to_owned(),
            shards: (0..n).map(|i| Shard::new(prefix, i)).collect(),
        }
    }

    /// The same prefix with `n` shards.
    pub(super) fn resized(&self, n: u16) -> Self {
        Shards::new(&self.prefix, n)
    }

    /// Every shard, in order.
    pub(super) fn all(&self) -> &[Shard] {
        &self.shards
    }

    /// The shard of hash field `field`.
    pub(super) fn of(&self, field: &str) -> &Shard {
        let n = self.shards.len() as u64;
        &self.shards[(fnv1a(field.as_bytes()) % n) as usize]
    }

    /// The shard batch `id` belongs to; an error for an id of a shard this counter does not
    /// have (taken by a counter with more shards: flush it with that many).
    pub(super) fn of_batch(&self, id: &str) -> Result<&Shard, AtomicError> {
        let index = match id.rsplit_once('.') {
            None => Some(0),
            Some((_, i)) => i.parse::<usize>().ok().filter(|&i| i > 0),
        };
        index.and_then(|i| self.shards.get(i)).ok_or_else(|| {
            AtomicError::custom(format!(
                "batch {id:?} is not of one of this counter's {} shards",
                self.shards.len()
            ))
        })
    }
}

/// 64-bit FNV-1a: small, stable across processes and versions, and spread well enough over a
/// few shards.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_zero_keeps_the_unsharded_names() {
        let shards = Shards::new("likes", 4);
        let zero = &shards.all()[0];
        assert_eq!(zero.pending, "{likes}:pending");
        assert_eq!(zero.batch_key("ab"), "{likes}:batch:ab");
        assert_eq!(shards.all()[3].pending, "{likes#3}:pending");
        assert_eq!(shards.all()[3].add_key("r1"), "{likes#3}:add:r1");
    }

    #[test]
    fn keys_spread_and_stay() {
        let shards = Shards::new("likes", 16);
        let mut used = [0u32; 16];
        for key in 0..1600 {
            let shard = shards.of(&key.to_string());
            used[usize::from(shard.index)] += 1;
            assert_eq!(shards.of(&key.to_string()).index, shard.index, "stable");
        }
        assert!(used.iter().all(|&n| (50..=150).contains(&n)), "{used:?}");
        // The format: FNV-1a of "7" modulo 16.
        assert_eq!(fnv1a(b"7") % 16, u64::from(shards.of("7").index));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_batch_id_names_its_shard() {
        let shards = Shards::new("likes", 3);
        for shard in shards.all() {
            let id = shard.new_batch_id();
            assert_eq!(shards.of_batch(&id).unwrap().index, shard.index);
        }
        let fewer = shards.resized(2);
        assert!(fewer.of_batch(&shards.all()[2].new_batch_id()).is_err());
        assert!(fewer.of_batch("abc.0").is_err());
        assert!(fewer.of_batch("abc.x").is_err());
    }
}
