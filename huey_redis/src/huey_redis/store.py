"""The Redis data store: one Redis string per key, indexed so size/items/flush never SCAN.

Layout under the instance hash tag `huey:{name}:`:

    kv:<key>           string  the value, with a Redis expiry (PX) when a ttl applies
    kv-idx             zset    every key name, all scored 0, so ZRANGEBYLEX answers prefix queries
    kv-exp             zset    key name -> expiry (server ms) for keys with a ttl; lets any write
                               prune index entries whose value Redis has already expired
    kv-waiters:<key>   string  present while some wait(key) is blocked (expires by itself)
    kv-wake:<key>      list    wake-up token pushed by writes while a waiter is present

SCAN is avoided on purpose: on a Cluster it would have to visit every node, and on a shared
server it walks every other tenant's keys too.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError, TimeoutError

from huey_core.protocols import BaseDataStore

if TYPE_CHECKING:
    from huey_redis.backend import RedisBackend

# How long a wake-up token outlives the write that pushed it: long enough for a waiter that is
# between its existence check and its BLPOP (one round trip) to still find it.
WAKE_TTL_MS = 5000
# Index entries pruned per write: keeps the index bounded without making one write slow.
PRUNE_PER_WRITE = 20

# Helpers prepended to every script of this module (unused local functions cost nothing).
_HELPERS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Drop index entries of keys Redis has expired. Entries due within the next second are checked
-- too (EXISTS is the truth), so the index never counts a key that is already gone.
local function prune(idx, exp, prefix, limit)
  local names
  if limit > 0 then
    names = redis.call('ZRANGEBYSCORE', exp, '-inf', now_ms() + 1000, 'LIMIT', 0, limit)
  else
    names = redis.call('ZRANGEBYSCORE', exp, '-inf', now_ms() + 1000)
  end
  for _, name in ipairs(names) do
    if redis.call('EXISTS', prefix .. name) == 0 then
      redis.call('ZREM', idx, name)
      redis.call('ZREM', exp, name)
    end
  end
end
local function written(idx, exp, name, ttl_ms, waiters, wake, wake_ttl)
  redis.call('ZADD', idx, 0, name)
  if ttl_ms then
    redis.call('ZADD', exp, now_ms() + ttl_ms, name)
  else
    redis.call('ZREM', exp, name)
  end
  if redis.call('EXISTS', waiters) == 1 then
    redis.call('LPUSH', wake, '1')
    redis.call('LTRIM', wake, 0, 0)
    redis.call('PEXPIRE', wake, wake_ttl)
  end
end
-- names in the index starting with `wanted` (all when empty)
local function names_with(idx, wanted)
  if wanted == '' then return redis.call('ZRANGE', idx, 0, -1) end
  return redis.call('ZRANGEBYLEX', idx, '[' .. wanted, '(' .. wanted .. '\\255')
end
"""

# KEYS: key idx exp waiters wake   ARGV: name value ttl_ms('' = none) nx('1'/'0') prefix prune wake_ttl
PUT = """
local ttl = tonumber(ARGV[3])
local ok
if ttl and ARGV[4] == '1' then ok = redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl, 'NX')
elseif ttl then ok = redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
elseif ARGV[4] == '1' then ok = redis.call('SET', KEYS[1], ARGV[2], 'NX')
else ok = redis.call('SET', KEYS[1], ARGV[2]) end
prune(KEYS[2], KEYS[3], ARGV[5], tonumber(ARGV[6]))
if not ok then return 0 end
written(KEYS[2], KEYS[3], ARGV[1], ttl, KEYS[4], KEYS[5], tonumber(ARGV[7]))
return 1
"""

# KEYS: key idx exp waiters wake   ARGV: name amount ttl_ms('' = none) prefix prune wake_ttl
INCR = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[2])
if created then
  local ttl = tonumber(ARGV[3])
  if ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  written(KEYS[2], KEYS[3], ARGV[1], ttl, KEYS[4], KEYS[5], tonumber(ARGV[6]))
end
prune(KEYS[2], KEYS[3], ARGV[4], tonumber(ARGV[5]))
return value
"""

# KEYS: key idx exp   ARGV: name   -> value or false
POP = """
local value = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return value
"""

# KEYS: key idx exp   ARGV: name
DELETE = """
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return n
"""

# KEYS: idx exp   ARGV: prefix
SIZE = """
prune(KEYS[1], KEYS[2], ARGV[1], 0)
return redis.call('ZCARD', KEYS[1])
"""


# KEYS: idx exp   ARGV: key-prefix wanted-prefix  -> name, value, name, value ...
ITEMS = """
prune(KEYS[1], KEYS[2], ARGV[1], 0)
local out = {}
for _, name in ipairs(names_with(KEYS[1], ARGV[2])) do
  local value = redis.call('GET', ARGV[1] .. name)
  if value then
    out[#out + 1] = name
    out[#out + 1] = value
  end
end
return out
"""

# KEYS: idx exp   ARGV: key-prefix wanted-prefix
FLUSH = """
local names = names_with(KEYS[1], ARGV[2])
for _, name in ipairs(names) do
  redis.call('DEL', ARGV[1] .. name)
  redis.call('ZREM', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
end
return #names
"""

# KEYS: key waiters   ARGV: ms   -> 1 when the key exists, else registers a waiter
WAIT_REGISTER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
end
return 0
"""

# KEYS: key wake   ARGV: wake_ttl  -> 1 when the key exists (and passes the token on)
WAIT_CHECK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], '1')
redis.call('LTRIM', KEYS[2], 0, 0)
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"""


def _ttl_ms(ttl: float | None) -> str:
    # Redis refuses PX 0; a ttl that rounds to nothing still means "expires at once"
    return "" if ttl is None else str(max(1, int(round(ttl * 1000))))


class RedisStore(BaseDataStore):
    """Key/value data: results, locks, counters, dedup keys, dead letters."""

    def __init__(
        self, backend: RedisBackend, default_ttl: float | None = None, keep_on_read: bool = False
    ) -> None:
        self._b = backend
        self.default_ttl = default_ttl
        self.keep_on_read = keep_on_read
        self._prefix = backend.key("kv:")
        self._idx, self._exp = backend.key("kv-idx"), backend.key("kv-exp")

        def s(source: str) -> Any:
            return backend.script(_HELPERS + source)

        self._put, self._incr, self._pop = s(PUT), s(INCR), s(POP)
        self._delete, self._size, self._items, self._flush = s(DELETE), s(SIZE), s(ITEMS), s(FLUSH)
        self._wait_register, self._wait_check = s(WAIT_REGISTER), s(WAIT_CHECK)

    def _k(self, key: str) -> str:
        return self._prefix + key

    def _write_keys(self, key: str) -> list[str]:
        return [
            self._k(key),
            self._idx,
            self._exp,
            self._b.key("kv-waiters:" + key),
            self._b.key("kv-wake:" + key),
        ]

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value`, replacing any value and ttl. Atomic. `ttl=None` takes the backend's
        `default_ttl` option (None by default: never expires)."""
        if ttl is None:
            ttl = self.default_ttl
        self._put(
            keys=self._write_keys(key),
            args=[key, value, _ttl_ms(ttl), "0", self._prefix, PRUNE_PER_WRITE, WAKE_TTL_MS],
        )

    def peek(self, key: str) -> bytes | None:
        """The value, or None when missing. Never blocks."""
        value = self._b.client.get(self._k(key))
        return None if value is None else bytes(value)

    def peek_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of `keys` in order (None where missing), in one MGET."""
        if not keys:
            return []
        names = [self._k(key) for key in keys]
        values = None
        if not self._b.cluster:  # the hot path: the revocation check before every task
            try:
                values = self._b.direct("MGET", *names)
            except (ConnectionError, TimeoutError):
                pass  # the client below reconnects and retries
        if values is None:
            values = self._b.client.mget(names)
        return [None if value is None else bytes(value) for value in values]

    def pop(self, key: str) -> bytes | None:
        """Remove and return the value in one script: of concurrent callers one gets it.
        With the backend's `keep_on_read` option a value that has a ttl is only read: it stays
        until it expires (huey's RedisExpireStorage results); one without a ttl (a dead letter, a
        revocation) is still removed, so whoever pops it is the only one to get it."""
        if self.keep_on_read and self._b.client.pttl(self._k(key)) > 0:
            return self.peek(key)
        value = self._pop(keys=[self._k(key), self._idx, self._exp], args=[key])
        return None if value is None else bytes(value)

    def delete(self, key: str) -> bool:
        """Remove `key`; True when it existed."""
        return bool(self._delete(keys=[self._k(key), self._idx, self._exp], args=[key]))

    def exists(self, key: str) -> bool:
        """True when `key` holds a live value."""
        return bool(self._b.client.exists(self._k(key)))

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """SET NX (PX ttl): exactly one of concurrent callers wins. `ttl=None` never expires:
        locks must not vanish under `default_ttl`."""
        return bool(
            self._put(
                keys=self._write_keys(key),
                args=[key, value, _ttl_ms(ttl), "1", self._prefix, PRUNE_PER_WRITE, WAKE_TTL_MS],
            )
        )

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """INCRBY; `ttl` applies only when this call creates the key. Atomic."""
        return int(
            self._incr(
                keys=self._write_keys(key),
                args=[key, int(amount), _ttl_ms(ttl), self._prefix, PRUNE_PER_WRITE, WAKE_TTL_MS],
            )
        )

    def wait(self, key: str, timeout: float) -> bool:
        """Block until `key` holds a value or `timeout` passes; True when it does.

        Native, not a poll: the waiter registers itself (a short-lived marker key) and blocks in
        BLPOP on a per-key wake-up list; every write to the key pushes a token there while a
        marker exists. A woken waiter that sees the key pushes the token back, so any number of
        waiters on the same key all wake. Registration and the write are both scripts, so a
        write cannot slip between "key missing" and "waiter registered".
        """
        keys = [self._k(key), self._b.key("kv-waiters:" + key)]
        wake = self._b.key("kv-wake:" + key)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.exists(key)
            marker_ms = int((remaining + 2 * self._b.block_chunk) * 1000)
            if self._wait_register(keys=keys, args=[marker_ms]):
                return True
            chunk = max(min(remaining, self._b.block_chunk), 0.001)
            if self._b.client.blpop([wake], timeout=chunk) is not None:
                if self._wait_check(keys=[keys[0], wake], args=[WAKE_TTL_MS]):
                    return True

    def size(self) -> int:
        """Number of live keys (index entries, after pruning the expired ones)."""
        return int(self._size(keys=[self._idx, self._exp], args=[self._prefix]))

    def items(self, prefix: str = "") -> dict[str, bytes]:
        """Every live key starting with `prefix` and its value, read in one script."""
        flat = self._items(keys=[self._idx, self._exp], args=[self._prefix, prefix])
        return {flat[i].decode(): bytes(flat[i + 1]) for i in range(0, len(flat), 2)}

    def flush(self, prefix: str = "") -> None:
        """Remove every key starting with `prefix` (all keys when empty)."""
        self._flush(keys=[self._idx, self._exp], args=[self._prefix, prefix])
