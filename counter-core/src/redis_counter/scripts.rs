//! The two Lua scripts of a flush. Redis runs a script atomically, so each is one step that a
//! crash cannot split.

/// Moves everything pending into a new batch: `KEYS` = pending hash, batch set, batch hash;
/// `ARGV[1]` = the batch id. Returns 1 when a batch was made, 0 when nothing was pending.
/// `RENAMENX`, not `RENAME`: a batch is never overwritten (ids are random 128-bit, so this
/// only refuses a bug).
pub(crate) const TAKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('RENAMENX', KEYS[1], KEYS[3]) == 0 then
  return redis.error_reply('counter: batch ' .. ARGV[1] .. ' exists')
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
";

/// Ends a batch the database has (or that is gone): `KEYS` = pending hash, batch set, batch
/// hash, invalid hash; `ARGV[1]` = the batch id, `ARGV[2..]` = the fields the database did not
/// take, whose counts go back to pending. Then the batch is deleted and its id removed from
/// the set. Running it again is a no-op.
///
/// Redis does not undo what a script did before a command of it failed, so nothing here may
/// fail half-way: a count that cannot go back to pending (not an integer, which only a foreign
/// writer makes, or a sum past 64 bits) goes to the invalid hash instead (`pcall`), where it
/// stays visible and blocks nothing.
pub(crate) const FINISH: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then
  for i = 2, #ARGV do
    local n = redis.call('HGET', KEYS[3], ARGV[i])
    if n then
      local moved = false
      if string.match(n, '^%-?%d+$') then
        local r = redis.pcall('HINCRBY', KEYS[1], ARGV[i], n)
        moved = type(r) == 'number'
      end
      if not moved then
        redis.call('HSET', KEYS[4], ARGV[i], n)
      end
    end
  end
  redis.call('DEL', KEYS[3])
end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
";

/// An add counted once per id: `KEYS` = pending hash, the id's key; `ARGV` = the field, the
/// amount, how many seconds to remember the id. A known id returns the count its first run
/// returned, adding nothing; a new one adds, remembers the count it returns, and returns it.
pub(crate) const ADD_ONCE: &str = r"
local seen = redis.call('GET', KEYS[2])
if seen then
  return tonumber(seen)
end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], n, 'EX', ARGV[3])
return n
";

/// [`ADD_ONCE`], hashed once: a static, so that an `add_once` future borrows no counter.
pub(crate) fn add_once() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(ADD_ONCE))
}

/// Adds to many fields of one pending hash: `KEYS[1]` = the hash; `ARGV` = field, amount,
/// field, amount… One script rather than a `MULTI`, which Redis Cluster's blocking
/// connection does not send.
pub(crate) const ADD_ALL: &str = r"
for i = 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
";

/// Drops one field of a pending hash and returns its count: `KEYS[1]` = the hash, `ARGV[1]`
/// = the field.
pub(crate) const DISCARD: &str = r"
local n = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return n
";

/// [`ADD_ALL`], hashed once.
pub(crate) fn add_all() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(ADD_ALL))
}

/// [`DISCARD`], hashed once.
pub(crate) fn discard() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(DISCARD))
}
