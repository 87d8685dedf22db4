"""The Redis queue (leases, priorities, blocking dequeue) and schedule.

Layout, every key under the instance hash tag `huey:{name}:` so a Cluster keeps them on one node:

    seq       string  counter that names messages: 16 hex digits, so byte order == arrival order
    ready     zset    message id, score -priority: ZPOPMIN takes the highest priority first, and
                      ties are ordered by member bytes, i.e. by arrival (FIFO within a priority)
    data      hash    message id -> payload (kept until ack, so a leased message is never lost)
    prio      hash    message id -> priority (absent means 0; needed to put a message back)
    dlv       hash    message id -> how many times it was handed out
    leased    zset    lease -> deadline (server clock, unix seconds); lease = "<id>:<nonce>"
    owner     hash    lease -> owner
    signal    list    wake-up tokens for blocked dequeues (BLPOP), at most SIGNAL_CAP long
    schedule  zset    "<id>|<priority>|<payload>" scored by timestamp
    sseq      string  counter naming schedule entries (identical payloads stay distinct members)
    bad       hash    entries set aside as malformed -> "<reason>\n<payload>", until move_due()
                      turns them into dead letters

Every state change is one Lua script, so a message is at each instant in exactly one of ready,
leased, schedule or bad. Entries something other than huey wrote (a schedule member that is not
"<id>|<priority>|<payload>", a priority or delivery count that is not an integer) are set aside
in `bad` instead of failing the script for every message behind them. Lease deadlines use the Redis server clock (TIME inside the scripts), so
consumers on machines whose clocks disagree still agree on when a lease has expired.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis import BlockingConnectionPool
from redis.exceptions import NoScriptError

from huey_core.deadletters import backend_dead_letter
from huey_core.protocols import BaseQueue, BaseSchedule, Delivery, LeaseInfo

if TYPE_CHECKING:
    from huey_redis.backend import RedisBackend

log = logging.getLogger("huey_redis")

# Enough tokens to wake every worker of a typical consumer fleet at once; more only cost memory.
# A token is a hint, never a claim: a woken dequeue re-runs the claim script and may find nothing.
SIGNAL_CAP = 64
ENQUEUE_CHUNK = 1000  # messages per enqueue_many script
ACK_CHUNK = 1000  # leases per ack script (Lua's unpack() has a limit of a few thousand)
# ack_soon() calls of one thread whose answers wait on its connection until settle_acks() reads
# them all in one read (a batch's acks: one per task, each sent before the next task starts).
ACKS_IN_FLIGHT = 32

# Helpers prepended to every script of this module (unused local functions cost nothing).
# signal() pushes one wake-up token after any change that makes a message ready.
_HELPERS = """
local function signal(key, cap)
  if redis.call('LPUSH', key, '1') > cap then redis.call('LTRIM', key, 0, cap - 1) end
end
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
-- an integer that fits the 32-bit range every backend stores, or nil (nan, inf, 1.5, 'x')
local function int32(v)
  local n = tonumber(v)
  if n == nil or n ~= n or n ~= math.floor(n) or math.abs(n) > 2147483647 then return nil end
  return n
end
-- splits a schedule member "<16 hex id>|<priority>|<payload>": priority (nil when malformed)
-- and payload (the whole member when it has no such shape)
local function unpack_member(m)
  local bar = nil
  if #m > 17 and string.sub(m, 17, 17) == '|' then bar = string.find(m, '|', 18, true) end
  if not bar then return nil, m end
  return int32(string.sub(m, 18, bar - 1)), string.sub(m, bar + 1)
end
local function set_aside(bad, field, reason, payload)
  redis.call('HSET', bad, field, reason .. '\\n' .. payload)
end
"""

# KEYS: seq ready data prio signal   ARGV: payload priority cap
ENQUEUE = """
local id = string.format('%016x', redis.call('INCR', KEYS[1]))
redis.call('HSET', KEYS[3], id, ARGV[1])
local prio = tonumber(ARGV[2])
if prio ~= 0 then redis.call('HSET', KEYS[4], id, ARGV[2]) end
redis.call('ZADD', KEYS[2], -prio, id)
signal(KEYS[5], tonumber(ARGV[3]))
return id
"""

# KEYS: seq ready data prio signal   ARGV: cap, then payload priority pairs
ENQUEUE_MANY = """
local last = redis.call('INCRBY', KEYS[1], (#ARGV - 1) / 2)
local first = last - (#ARGV - 1) / 2 + 1
for i = 2, #ARGV, 2 do
  local id = string.format('%016x', first + (i - 2) / 2)
  redis.call('HSET', KEYS[3], id, ARGV[i])
  local prio = tonumber(ARGV[i + 1])
  if prio ~= 0 then redis.call('HSET', KEYS[4], id, ARGV[i + 1]) end
  redis.call('ZADD', KEYS[2], -prio, id)
end
signal(KEYS[5], tonumber(ARGV[1]))
return 1
"""

# KEYS: ready data dlv leased owner signal bad   ARGV: lease_timeout owner nonce cap n
# Claims up to n messages, each under its own lease "<id>:<nonce>", with a handful of commands
# for the whole batch; returns a flat list {payload, lease, deliveries, ...}. Ids popped without
# a payload (flushed concurrently) or set aside as malformed are skipped: it pops again while it
# has claimed nothing and the queue is not empty. A batch ends before a message that was handed
# out before, and such a message is claimed alone: a message that kills its worker then never
# strands (and adds deliveries to) messages claimed with it more than once.
DEQUEUE = """
local out = {}
local want = tonumber(ARGV[5])
local deadline = string.format('%.6f', now() + tonumber(ARGV[1]))
while want > 0 and #out == 0 do
  local popped = redis.call('ZPOPMIN', KEYS[1], want)
  if #popped == 0 then break end
  local ids = {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  local payloads = redis.call('HMGET', KEYS[2], unpack(ids))
  local counts = redis.call('HMGET', KEYS[3], unpack(ids))
  local scored, owners, delivered = {}, {}, {}
  local alone = false  -- a redelivered message is claimed on its own (see the comment above)
  for i, id in ipairs(ids) do
    local payload = payloads[i]
    local n = tonumber(counts[i] or '0')
    if alone or (#out > 0 and n ~= 0) then
      local back = {}
      for j = i, #ids do
        back[#back + 1] = popped[2 * j]
        back[#back + 1] = ids[j]
      end
      redis.call('ZADD', KEYS[1], unpack(back))  -- same id and score: the same place in line
      break
    end
    if payload and n ~= nil and n == n and n > 0 then alone = true end
    if payload and (n == nil or n ~= n) then
      -- checked before anything changes: a script error does not undo the writes before it
      set_aside(KEYS[7], 'q' .. id .. ':' .. ARGV[3], 'queue entry has a delivery count that '
        .. 'is not a number', payload)
      redis.call('HDEL', KEYS[2], id)
      redis.call('HDEL', KEYS[3], id)
      payload = false
    end
    if payload then
      local lease = id .. ':' .. ARGV[3]
      if n < 2147483647 then n = n + 1 end  -- stops at the top of the range every backend stores
      scored[#scored + 1] = deadline
      scored[#scored + 1] = lease
      owners[#owners + 1] = lease
      owners[#owners + 1] = ARGV[2]
      delivered[#delivered + 1] = id
      delivered[#delivered + 1] = string.format('%d', n)
      out[#out + 1] = payload
      out[#out + 1] = lease
      out[#out + 1] = n
    end
  end
  if #scored > 0 then
    redis.call('ZADD', KEYS[4], unpack(scored))
    redis.call('HSET', KEYS[5], unpack(owners))
    redis.call('HSET', KEYS[3], unpack(delivered))
  end
end
-- pass the baton: another blocked worker may take the next message right away; when this
-- was the last one, tokens left over from busy times would only cause empty wake-ups
if redis.call('ZCARD', KEYS[1]) > 0 then
  signal(KEYS[6], tonumber(ARGV[4]))
else
  redis.call('DEL', KEYS[6])
end
return out
"""

# KEYS: ready data dlv leased owner signal bad prio
# ARGV: lease_timeout owner nonce cap n acked_lease...
# ack (as ACK, for each lease) then dequeue (as DEQUEUE): a worker's calls between tasks in
# one round trip. Only leases still in `leased` delete their message: a stale lease (its
# message recovered and leased again) touches nothing.
_ACK_FIRST = """
if #ARGV > 5 then
  local leases = {unpack(ARGV, 6)}
  local scores = redis.call('ZMSCORE', KEYS[4], unpack(leases))
  local live, ids = {}, {}
  for i, acked in ipairs(leases) do
    if scores[i] then
      live[#live + 1] = acked
      ids[#ids + 1] = string.match(acked, '^[^:]+')
    end
  end
  if #live > 0 then
    redis.call('ZREM', KEYS[4], unpack(live))
    redis.call('HDEL', KEYS[5], unpack(live))
    redis.call('HDEL', KEYS[2], unpack(ids))
    redis.call('HDEL', KEYS[8], unpack(ids))
    redis.call('HDEL', KEYS[3], unpack(ids))
  end
end
"""
ACK_DEQUEUE = _ACK_FIRST + DEQUEUE

# KEYS: leased owner data prio dlv   ARGV: lease
ACK = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local id = string.match(ARGV[1], '^[^:]+')
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
return 1
"""

# KEYS: leased owner prio ready signal   ARGV: lease cap
RELEASE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local id = string.match(ARGV[1], '^[^:]+')
local prio = int32(redis.call('HGET', KEYS[3], id) or '0') or 0
redis.call('ZADD', KEYS[4], -prio, id)  -- same id: it keeps its place in line
signal(KEYS[5], tonumber(ARGV[2]))
return 1
"""

# KEYS: leased   ARGV: lease lease_timeout
EXTEND = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', string.format('%.6f', now() + tonumber(ARGV[2])), ARGV[1])
return 1
"""

# KEYS: leased owner prio ready signal   ARGV: cap
RECOVER = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', now()))
for _, lease in ipairs(expired) do
  redis.call('ZREM', KEYS[1], lease)
  redis.call('HDEL', KEYS[2], lease)
  local id = string.match(lease, '^[^:]+')
  local prio = int32(redis.call('HGET', KEYS[3], id) or '0') or 0
  redis.call('ZADD', KEYS[4], -prio, id)
  signal(KEYS[5], tonumber(ARGV[1]))
end
return #expired
"""

# KEYS: ready data   ARGV: n
PEEK = """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local out = {}
for _, id in ipairs(ids) do
  local payload = redis.call('HGET', KEYS[2], id)
  if payload then out[#out + 1] = payload end
end
return out
"""

# KEYS: leased owner dlv data
LEASES = """
local rows = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do
  local lease = rows[i]
  local id = string.match(lease, '^[^:]+')
  out[#out + 1] = lease
  out[#out + 1] = redis.call('HGET', KEYS[2], lease) or ''
  out[#out + 1] = rows[i + 1]
  out[#out + 1] = tostring(tonumber(redis.call('HGET', KEYS[3], id) or '0') or 0)
  out[#out + 1] = redis.call('HGET', KEYS[4], id) or ''
end
return out
"""

# KEYS: sseq schedule   ARGV: timestamp priority payload
SCHEDULE_ADD = """
local id = string.format('%016x', redis.call('INCR', KEYS[1]))
redis.call('ZADD', KEYS[2], ARGV[1], id .. '|' .. ARGV[2] .. '|' .. ARGV[3])
return 1
"""

# KEYS: schedule seq ready data prio signal bad   ARGV: now limit cap
# Returns {moved (malformed ones included), entries waiting in bad}.
MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local prio, payload = unpack_member(m)
  redis.call('ZREM', KEYS[1], m)
  local id = string.format('%016x', redis.call('INCR', KEYS[2]))
  if prio == nil then
    set_aside(KEYS[7], 's' .. id, 'schedule entry is malformed (not <id>|<priority>|<payload> '
      .. 'with an integer priority)', payload)
  else
    redis.call('HSET', KEYS[4], id, payload)
    if prio ~= 0 then redis.call('HSET', KEYS[5], id, string.format('%d', prio)) end
    redis.call('ZADD', KEYS[3], -prio, id)
    signal(KEYS[6], tonumber(ARGV[3]))
  end
end
return {#due, redis.call('HLEN', KEYS[7])}
"""

# KEYS: schedule   ARGV: now limit
POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local _, payload = unpack_member(m)
  out[i] = payload
end
return out
"""


def _scripts(backend: RedisBackend) -> Callable[[str], Any]:
    return lambda source: backend.script(_HELPERS + source)


def _unpack_member(member: bytes) -> bytes:
    _, _, payload = member[17:].partition(b"|")
    return payload


def _nonce() -> str:
    """What tells two claims of one message apart (not a secret: no system call per claim)."""
    return f"{random.getrandbits(64):016x}"


def _deliveries(found: Any) -> list[Delivery]:
    """Deliveries from the claim scripts' flat reply [payload, lease, deliveries, ...]."""
    return [
        Delivery(bytes(found[i]), found[i + 1].decode(), int(found[i + 2]))
        for i in range(0, len(found), 3)
    ]


class RedisQueue(BaseQueue):
    """Ready messages in a sorted set, leased messages in another, payloads in a hash."""

    blocking = True  # dequeue(wait=...) blocks in BLPOP on a wake-up list fed by every enqueue
    priority = True  # the ready set is scored by -priority, ties broken by arrival

    def __init__(self, backend: RedisBackend) -> None:
        self._b = backend
        k = backend.key
        self._seq, self._ready, self._data = k("seq"), k("ready"), k("data")
        self._prio, self._dlv, self._leased = k("prio"), k("dlv"), k("leased")
        self._owner, self._signal, self._bad = k("owner"), k("signal"), k("bad")
        # the KEYS of DEQUEUE, and the first seven of ACK_DEQUEUE
        names = ("ready", "data", "dlv", "leased", "owner", "signal", "bad")
        self._claim_keys = [k(n) for n in names]
        s = _scripts(backend)
        self._enqueue, self._dequeue, self._ack = s(ENQUEUE), s(DEQUEUE), s(ACK)
        self._release, self._extend, self._recover = s(RELEASE), s(EXTEND), s(RECOVER)
        self._peek, self._leases = s(PEEK), s(LEASES)
        self._ack_dequeue = s(ACK_DEQUEUE)
        self._enqueue_many = s(ENQUEUE_MANY)
        self._in_flight = threading.local()  # per thread: (connection, leases) of ack_soon()

    def enqueue(self, data: bytes, priority: int = 0) -> None:
        """Append a message (one script: id, payload, ready entry, wake-up token). Atomic."""
        self._enqueue(
            keys=[self._seq, self._ready, self._data, self._prio, self._signal],
            args=[data, int(priority), SIGNAL_CAP],
        )

    def enqueue_many(self, items: list[tuple[bytes, int]]) -> None:
        """Append the messages in list order, ENQUEUE_CHUNK per script (each chunk atomic, with
        one wake-up token): a huge batch never blocks the server for long."""
        keys = [self._seq, self._ready, self._data, self._prio, self._signal]
        for start in range(0, len(items), ENQUEUE_CHUNK):
            args: list[Any] = [SIGNAL_CAP]
            for data, priority in items[start : start + ENQUEUE_CHUNK]:
                args += (data, int(priority))
            self._enqueue_many(keys=keys, args=args)

    def _claim(self, owner: str, lease_timeout: float, n: int) -> list[Delivery]:
        return _deliveries(
            self._dequeue(
                keys=self._claim_keys,
                args=[float(lease_timeout), owner, _nonce(), SIGNAL_CAP, n],
            )
        )

    def dequeue(self, owner: str, lease_timeout: float, wait: float = 0.0) -> Delivery | None:
        """Claim the highest-priority oldest message for `owner` (one script). Atomic.

        With `wait` > 0 and nothing ready, blocks in BLPOP on the wake-up list (no polling) and
        claims again after each token, until a message is claimed or `wait` runs out.
        """
        found = self.dequeue_many(owner, lease_timeout, 1, wait)
        return found[0] if found else None

    def dequeue_many(
        self, owner: str, lease_timeout: float, n: int, wait: float = 0.0
    ) -> list[Delivery]:
        """Claim up to `n` messages in one script, each under its own lease. Atomic per
        message; waits as dequeue() does while nothing is ready."""
        found = self._claim(owner, lease_timeout, n)
        if found or wait <= 0:
            return found
        return self._wait(owner, lease_timeout, n, wait)

    def _wait(self, owner: str, lease_timeout: float, n: int, wait: float) -> list[Delivery]:
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            # BLPOP timeout 0 means "forever", so never pass less than a millisecond; chunks stay
            # under socket_timeout so a long wait is not mistaken for a dead connection.
            timeout = max(min(remaining, self._b.block_chunk), 0.001)
            if self._b.cluster:
                self._b.client.blpop([self._signal], timeout=timeout)
                found = self._claim(owner, lease_timeout, n)
            else:
                found = self._wait_and_claim(owner, lease_timeout, n, timeout)
            if found:
                return found

    def _wait_and_claim(
        self, owner: str, lease_timeout: float, n: int, timeout: float
    ) -> list[Delivery]:
        """BLPOP, then the claim script, sent together: the server runs the claim the moment
        the BLPOP returns (token or timeout), saving the round trip between them. Same two
        commands in the same order as sending them one by one, so nothing about leases or
        wake-ups changes; a crash in between loses nothing (the claim either ran or not)."""
        pipe = self._b.client.pipeline(transaction=False)
        pipe.blpop([self._signal], timeout=timeout)
        keys = self._claim_keys
        args = [float(lease_timeout), owner, _nonce(), SIGNAL_CAP, n]
        pipe.evalsha(self._dequeue.sha, len(keys), *keys, *args)
        found = pipe.execute(raise_on_error=False)[1]
        if isinstance(found, NoScriptError):  # server restarted: EVAL caches the script again
            return self._claim(owner, lease_timeout, n)
        if isinstance(found, Exception):
            raise found
        return _deliveries(found)

    def ack_and_dequeue(
        self, lease: str, owner: str, lease_timeout: float, wait: float = 0.0
    ) -> Delivery | None:
        """ack(lease), then dequeue(owner, lease_timeout, wait): one script for both when a
        message is ready (the ack is atomic on its own either way)."""
        found = self.ack_and_dequeue_many([lease], owner, lease_timeout, 1, wait)
        return found[0] if found else None

    def ack_and_dequeue_many(
        self, leases: list[str], owner: str, lease_timeout: float, n: int, wait: float = 0.0
    ) -> list[Delivery]:
        """ack every lease, then claim up to `n` messages: one script for both when a message
        is ready (each ack is atomic on its own either way)."""
        while len(leases) > ACK_CHUNK:  # bounded script arguments; acks need no atomicity
            self.ack_many(leases[:ACK_CHUNK])
            leases = leases[ACK_CHUNK:]
        found = _deliveries(
            self._ack_dequeue(
                keys=[*self._claim_keys, self._prio],
                args=[float(lease_timeout), owner, _nonce(), SIGNAL_CAP, n, *leases],
            )
        )
        if found or wait <= 0:
            return found
        return self._wait(owner, lease_timeout, n, wait)

    def ack_many(self, leases: list[str]) -> None:
        """Delete every leased message, ACK_CHUNK per script (claiming nothing). Idempotent."""
        for start in range(0, len(leases), ACK_CHUNK):
            self._ack_dequeue(
                keys=[*self._claim_keys, self._prio],
                args=[1.0, "", "", SIGNAL_CAP, 0, *leases[start : start + ACK_CHUNK]],
            )

    def ack_soon(self, lease: str) -> None:
        """ack(lease), sent without waiting for the answer: written to its connection, the ack
        takes effect even if this process dies next. The answers of up to ACKS_IN_FLIGHT acks of
        this thread wait on that connection until settle_acks() reads them all at once (one
        read instead of one per ack). A plain ack on a Cluster and with max_connections."""
        # It keeps a connection out of the pool until the answers are read: not from a pool that
        # makes threads wait for a free connection (max_connections, sized for one per worker).
        pool = self._b.client.connection_pool if not self._b.cluster else None
        if pool is None or isinstance(pool, BlockingConnectionPool):
            self.ack(lease)
            return
        sent = getattr(self._in_flight, "sent", None)
        if sent is not None and len(sent[1]) >= ACKS_IN_FLIGHT:
            self.settle_acks()
            sent = None
        conn, leases = (pool.get_connection(), []) if sent is None else sent
        self._in_flight.sent = None
        try:
            keys = [self._leased, self._owner, self._data, self._prio, self._dlv]
            conn.send_command("EVALSHA", self._ack.sha, len(keys), *keys, lease)
        except BaseException:
            conn.disconnect()  # may have sent part of it: never hand this connection out again
            pool.release(conn)
            raise
        leases.append(lease)
        self._in_flight.sent = (conn, leases)

    def settle_acks(self) -> None:
        """Read the answers to this thread's ack_soon() calls; an ack the server did not run (a
        restarted server that lost the script) is sent again. Raises if an ack failed."""
        sent = getattr(self._in_flight, "sent", None)
        if sent is None:
            return
        self._in_flight.sent = None
        conn, leases = sent
        lost = []
        try:  # as RedisBackend.direct() reads an answer
            for lease in leases:
                try:
                    conn.read_response()
                except NoScriptError:  # an error answer: the next one follows as usual
                    lost.append(lease)
        except BaseException:
            conn.disconnect()  # answers may be left unread: never hand it out again
            raise
        finally:
            self._b.client.connection_pool.release(conn)
        for lease in lost:
            self.ack(lease)  # EVAL, which caches the script again

    def ack(self, lease: str) -> None:
        """Delete the leased message. Idempotent: unknown or recovered leases are a no-op."""
        self._ack(keys=[self._leased, self._owner, self._data, self._prio, self._dlv], args=[lease])

    def release(self, lease: str) -> None:
        """Put the message back in line (same id, same place), keeping its delivery count."""
        self._release(
            keys=[self._leased, self._owner, self._prio, self._ready, self._signal],
            args=[lease, SIGNAL_CAP],
        )

    def extend(self, lease: str, lease_timeout: float) -> bool:
        """Move the deadline to server-now + lease_timeout; False when the lease is gone."""
        return bool(self._extend(keys=[self._leased], args=[lease, float(lease_timeout)]))

    def recover(self) -> int:
        """Return every lease whose deadline passed to ready, in one script (atomic)."""
        return int(
            self._recover(
                keys=[self._leased, self._owner, self._prio, self._ready, self._signal],
                args=[SIGNAL_CAP],
            )
        )

    def size(self) -> int:
        """Number of ready (unleased) messages."""
        return int(self._b.client.zcard(self._ready))

    def peek(self, n: int = 100) -> list[bytes]:
        """Up to `n` ready messages in dequeue order, without claiming them."""
        if n <= 0:
            return []
        return [bytes(p) for p in self._peek(keys=[self._ready, self._data], args=[n])]

    def leases(self) -> list[LeaseInfo]:
        """Every leased message with owner, deadline (server clock) and delivery count."""
        flat = self._leases(keys=[self._leased, self._owner, self._dlv, self._data])
        return [
            LeaseInfo(
                lease=flat[i].decode(),
                owner=flat[i + 1].decode(),
                deadline=float(flat[i + 2]),
                deliveries=int(flat[i + 3]),
                data=bytes(flat[i + 4]),
            )
            for i in range(0, len(flat), 5)
        ]

    def flush(self) -> None:
        """Remove every ready and leased message, and the id counter: ids start again, which is
        safe because a lease also carries a random nonce, so a lease taken before the flush can
        never name a message enqueued after it."""
        self._b.client.delete(
            self._seq,
            self._ready,
            self._data,
            self._prio,
            self._dlv,
            self._leased,
            self._owner,
            self._signal,
            self._bad,
        )

    def dead_letter_set_aside(self) -> int:
        """Turn the entries set aside in `bad` into dead letters; return how many.

        Each one is stored (with an id derived from the entry, so two consumers doing this at
        once store it once) before it leaves `bad`, so a crash in between loses nothing.
        """
        client = self._b.client
        entries: dict[bytes, bytes] = client.hgetall(self._bad)
        for field, value in entries.items():
            reason, _, payload = bytes(value).partition(b"\n")
            text = reason.decode("utf-8", "replace")
            dl_id = hashlib.sha1(bytes(field) + bytes(value)).hexdigest()[:32]
            key, record, event = backend_dead_letter(self._b.name, payload, text, dl_id=dl_id)
            self._b.store.put(key, record)
            client.hdel(self._bad, field)
            log.error("instance %r: %s; moved it to the dead letters (%s)", self._b.name, text, key)
            try:
                self._b.events.emit(event)
            except Exception:  # noqa: BLE001 - the letter is stored; the event is a courtesy
                log.warning("could not emit the dead-lettered event for %s", key, exc_info=True)
        return len(entries)


class RedisSchedule(BaseSchedule):
    """Scheduled messages in one sorted set scored by timestamp; moved by one script."""

    def __init__(self, backend: RedisBackend, queue: RedisQueue) -> None:
        self._b = backend
        self._q = queue
        self._key, self._seq = backend.key("schedule"), backend.key("sseq")
        s = _scripts(backend)
        self._add, self._move_due, self._pop_due = s(SCHEDULE_ADD), s(MOVE_DUE), s(POP_DUE)

    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:
        """Store a message for `timestamp`; equal timestamps keep arrival order. Atomic."""
        self._add(keys=[self._seq, self._key], args=[repr(float(timestamp)), int(priority), data])

    def move_due(self, now: float, limit: int = 1000) -> int:
        """Move up to `limit` due messages into the queue with their priority, in one script:
        concurrent callers serialize on the server, so no message moves twice or gets lost."""
        if limit <= 0:
            return 0
        q = self._q
        moved, waiting = self._move_due(
            keys=[self._key, q._seq, q._ready, q._data, q._prio, q._signal, q._bad],
            args=[repr(float(now)), int(limit), SIGNAL_CAP],
        )
        if int(waiting):
            q.dead_letter_set_aside()
        return int(moved)

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        """Remove and return up to `limit` due messages, earliest first. Atomic."""
        if limit <= 0:
            return []
        found = self._pop_due(keys=[self._key], args=[repr(float(now)), int(limit)])
        return [bytes(p) for p in found]

    def size(self) -> int:
        """Number of scheduled messages."""
        return int(self._b.client.zcard(self._key))

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:
        """Up to `n` (timestamp, message) pairs, earliest first, without removing them."""
        if n <= 0:
            return []
        rows: list[Any] = self._b.client.zrange(self._key, 0, n - 1, withscores=True)
        return [(float(score), _unpack_member(member)) for member, score in rows]

    def flush(self) -> None:
        """Remove every scheduled message."""
        self._b.client.delete(self._key, self._seq)
