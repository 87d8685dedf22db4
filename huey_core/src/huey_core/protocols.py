"""The four storage protocols every backend implements, and base classes that derive the rest.

Bytes in, bytes out: serialization lives in the core, so a backend only stores and moves opaque
payloads. Each method's docstring is its contract: what is atomic, what happens when the queue is
empty or the key is missing, and whether the call may block. `huey_core.testing` checks every one
of these statements against a real server.

Everything the core calls is declared here, optional fast paths and capability flags included.
A backend author subclasses the `Base*` classes and writes the methods marked *required*; the
others have defaults in the base class, derived from the required ones, that a backend overrides
only to be faster (one round trip instead of several) or to wait natively instead of polling.
docs/backends.md has the table.

Times are unix timestamps (float seconds, `time.time()`); durations are float seconds.

Malformed rows. Storage can be written by something other than huey (a producer in another
language, an operator, an old release). A row the backend cannot hand to the core as it should
(a payload that is not bytes, a priority or delivery count that is not an integer) must never
make dequeue() or move_due() fail for every message behind it. The backend removes such a row
and writes it to the dead-letter store itself, in the format of huey_core.deadletters, with
`huey_core.deadletters.backend_dead_letter()` (the record, its key and its `dead-lettered`
event), in the same transaction where it can: dequeue() then moves on to the next message, and
move_due() counts the row among those it moved. Where a backend cannot write both at once it
may first set the row aside and turn it into a dead letter by the time the next move_due()
returns (the Redis backend does). Rows that are only unusual are read leniently: a text payload
is its UTF-8 bytes; a delivery count stops at 2**31 - 1; a lease without a deadline is listed
with `deadline` None and recovered. The conformance suite checks this for the kinds of
malformed rows a backend can hold (huey_core.testing.MalformedRowsConformance).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "Backend",
    "BaseBackend",
    "BaseDataStore",
    "BaseEventEmitter",
    "BaseQueue",
    "BaseSchedule",
    "BaseSubscription",
    "DataStore",
    "Delivery",
    "EventEmitter",
    "LeaseInfo",
    "PollingSubscription",
    "Queue",
    "Schedule",
    "Subscription",
    "ALL",
    "EVENT_RETENTION",
    "POLL_INTERVAL",
    "SUBSCRIPTION_CLOSE_WITHIN",
]

ALL = 2**31 - 1  # "every item" for peek(n): what the derived sizes ask for
POLL_INTERVAL = 0.05  # seconds between checks of the derived polling wait() and listen()
SUBSCRIPTION_CLOSE_WITHIN = 1.0  # seconds: a blocked subscription ends this soon after close()
EVENT_RETENTION = 10.0  # seconds a stored event must stay readable, at least, for slow pollers


@dataclass(frozen=True)
class Delivery:
    """One message handed to one consumer, under a lease.

    `lease` is an opaque token naming this claim; ack/release/extend take it. `deliveries` counts
    how many times the message has been handed out, this time included (1 on the first dequeue),
    so the core can dead-letter a message that keeps killing its workers.
    """

    data: bytes
    lease: str
    deliveries: int = 1


@dataclass(frozen=True)
class LeaseInfo:
    """A message currently leased to a consumer (for `huey info` and operators)."""

    lease: str
    owner: str
    # Unix time after which recover() may hand the message to someone else. None when the
    # backend holds no usable deadline for it (a malformed row): recover() takes it at once.
    deadline: float | None
    deliveries: int
    data: bytes


# ----------------------------------------------------------------------------------- protocols


@runtime_checkable
class Queue(Protocol):
    """Ready messages, ordered by priority (higher first) then arrival (FIFO)."""

    blocking: bool  # True when dequeue(wait=...) waits natively; False: it returns at once
    priority: bool  # True when enqueue honours priority; False: plain FIFO

    def enqueue(self, data: bytes, priority: int = 0) -> None:
        """Append a message. Atomic; never blocks on other consumers."""

    def dequeue(self, owner: str, lease_timeout: float, wait: float = 0.0) -> Delivery | None:
        """Claim the next message for `owner` until now + `lease_timeout`.

        Atomic: no two callers ever receive the same message under live leases. The message is
        leased, not removed: it stays stored until ack(). Returns None when the queue is empty.
        A malformed row is set aside as a dead letter, never returned (module docstring).
        When `blocking` is True and `wait` > 0 it waits up to `wait` seconds for a message;
        otherwise it returns at once and the consumer polls with backoff.
        """

    def enqueue_many(self, items: list[tuple[bytes, int]]) -> None:
        """Append `(data, priority)` messages in list order: one round trip where it can.

        Each message is appended atomically and in order; a native version writes them all in
        one transaction or script. When it raises, some may have been stored (derived) or none
        (native). Derived: one enqueue() per item.
        """

    def dequeue_many(
        self, owner: str, lease_timeout: float, n: int, wait: float = 0.0
    ) -> list[Delivery]:
        """Claim up to `n` messages for `owner`, each under its own lease, in dequeue order.

        Atomic per message, like dequeue(); one round trip where the backend can. Returns []
        when the queue is empty; waits (as dequeue() does) only while nothing at all is ready.
        The caller bounds `n`: every message claimed here stays leased until acked, released or
        expired, so a crash strands up to `n` messages until their leases expire.
        A batch ends with the first message that was handed out before (released, or recovered
        after its worker died); a native version claims such a message alone. A message that
        kills its worker then strands the messages claimed behind it once, not every time it
        comes back, so they are not dead-lettered for the deliveries that would add.
        Derived: dequeue() until `n` are claimed, the queue is empty, or a message handed out
        before was claimed.
        """

    def ack_many(self, leases: list[str]) -> None:
        """ack() every lease in `leases`: one round trip where it can. Derived: ack() each."""

    def ack_and_dequeue_many(
        self, leases: list[str], owner: str, lease_timeout: float, n: int, wait: float = 0.0
    ) -> list[Delivery]:
        """ack_many(leases), then dequeue_many(owner, lease_timeout, n, wait).

        The acks happen first, also when nothing is then claimed. When it raises, the caller
        acks again (ack is idempotent). Derived: ack_many() then dequeue_many().
        """

    def ack_soon(self, lease: str) -> None:
        """ack(lease) without waiting for what the backend can skip: its answer (Redis), or its
        flush to disk (PostgreSQL).

        The ack takes effect even if this process dies right after this returns (on Redis it is
        written to the connection; on PostgreSQL committed). A crash of the server may undo it,
        and the task then runs again. Answers left to read are read by the next settle_acks()
        of the same thread (or sooner, by a later ack_soon(): the backend bounds how many wait;
        Redis reads up to 32 in one go). When either raises, every ack_soon() of the thread
        since its last settle_acks() may not have happened: the caller acks them again (ack is
        idempotent). Derived: ack().
        """

    def settle_acks(self) -> None:
        """Wait for the answers to this thread's ack_soon() calls still in flight; raise if an
        ack failed. Derived: nothing to wait for."""

    def ack(self, lease: str) -> None:
        """Delete the leased message for good. Idempotent: an unknown lease is a no-op.

        Unknown means acked, released or recovered. A lease past its deadline that nobody has
        recovered yet still belongs to its owner: ack() deletes the message (the task did finish).
        """

    def ack_and_dequeue(
        self, lease: str, owner: str, lease_timeout: float, wait: float = 0.0
    ) -> Delivery | None:
        """ack(lease), then dequeue(owner, lease_timeout, wait): one round trip where it can.

        The ack happens first, also when the dequeue then finds nothing or waits: it does not
        wait for the next message. When it raises, the caller acks again (ack is idempotent).
        Derived: ack() then dequeue().
        """

    def release(self, lease: str) -> None:
        """Give a leased message back to the queue, ready now, keeping its delivery count.

        A no-op when the lease is unknown (already acked or recovered).
        """

    def extend(self, lease: str, lease_timeout: float) -> bool:
        """Push the lease deadline to now + `lease_timeout`.

        Returns False when the lease is gone (acked, released or recovered by another consumer),
        which tells the worker it no longer owns the message.
        """

    def recover(self) -> int:
        """Make every message whose lease deadline has passed ready again; return how many.

        A lease whose deadline is still ahead is left alone, however close it is. Atomic per
        message: a message is either still leased or back in the queue, never lost and never
        doubled. Safe to call from any number of consumers at once.
        """

    def size(self) -> int:
        """Number of ready (unleased) messages. 0 when empty. Derived: len(peek(ALL))."""

    def peek(self, n: int = 100) -> list[bytes]:
        """Up to `n` ready messages in the order dequeue would return them, without claiming."""

    def leases(self) -> list[LeaseInfo]:
        """Every message currently leased, with owner and deadline. Empty list when none."""

    def flush(self) -> None:
        """Remove every message, ready or leased."""


@runtime_checkable
class Schedule(Protocol):
    """Messages waiting for a time; moved to the queue of the same backend when due."""

    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:
        """Store a message to become ready at `timestamp`. Atomic."""

    def move_due(self, now: float, limit: int = 1000) -> int:
        """Move up to `limit` messages with timestamp <= `now` into the queue; return how many.

        Atomic per message: at every instant a message is in the schedule or in the queue, so a
        crash at any point loses nothing and no message is moved twice by concurrent callers.
        A malformed entry goes to the dead letters instead, and counts as moved.
        """

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        """Remove and return up to `limit` messages due at `now`, oldest first.

        For callers that enqueue them themselves (huey's `read_schedule`); the consumer uses
        move_due(), which cannot lose a message between the two steps. Of concurrent callers,
        each message goes to one.
        """

    def size(self) -> int:
        """Number of messages in the schedule. 0 when empty. Derived: len(peek(ALL))."""

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:
        """Up to `n` (timestamp, message) pairs, earliest first, without removing them."""

    def flush(self) -> None:
        """Remove every scheduled message."""


@runtime_checkable
class DataStore(Protocol):
    """Results and key/value data (locks, revocations, counters, dedup keys, dead letters).

    `ttl` is in seconds; None means the key never expires. An expired key behaves in every method
    exactly like a missing one, including size() and items(), whether or not the backend has
    deleted it yet (a backend may leave expired entries in place and skip them on reads).
    """

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` under `key`, replacing any value (and its ttl). Atomic."""

    def peek(self, key: str) -> bytes | None:
        """The value under `key`, or None when missing. Never blocks."""

    def peek_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of `keys` in the same order, None where missing; duplicates kept.

        One round trip where the backend can (revocation checks use it before every task).
        Derived: one peek() per key.
        """

    def pop(self, key: str) -> bytes | None:
        """Remove and return the value under `key` atomically (one caller wins); None if missing."""

    def delete(self, key: str) -> bool:
        """Remove `key`; True when it held a live value. Derived: pop(key) is not None."""

    def exists(self, key: str) -> bool:
        """True when `key` holds a live value. Derived: peek(key) is not None."""

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store `value` only when `key` is missing; True when this call stored it.

        Atomic across threads, processes and machines: of concurrent callers exactly one wins.
        Locks and once-per-minute periodic dedup are built on it.
        """

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add `amount` to the integer under `key` (missing counts as 0); return the new value.

        Atomic. `ttl` is applied when the call creates the key. The value is stored as its
        decimal digits in ASCII, so peek() returns b"3" after three incr() calls.
        """

    def wait(self, key: str, timeout: float) -> bool:
        """Block until `key` holds a value or `timeout` seconds pass; True when it does.

        Returns at once when the key already exists. Backends that can be told about writes
        wait natively. Derived: exists() every POLL_INTERVAL seconds.
        """

    def size(self) -> int:
        """Number of live keys; expired ones never count. Derived: len(items())."""

    def items(self, prefix: str = "") -> dict[str, bytes]:
        """Every live key starting with `prefix` and its value.

        The prefix is literal and case-sensitive: `_`, `%`, `*`, `?`, `[` and `\\` match only
        themselves.
        """

    def flush(self, prefix: str = "") -> None:
        """Remove every key starting with `prefix` (all keys when empty).

        Derived: delete() each key items(prefix) returns.
        """


@runtime_checkable
class Subscription(Protocol):
    """What EventEmitter.listen() returns: iterate for events, close() from any thread to stop.

    It is an iterator (iter() returns itself), so a loop that breaks and loops again carries on
    where it stopped. After close() a blocked iteration ends within SUBSCRIPTION_CLOSE_WITHIN
    seconds; events not yet read are dropped. The subscriber closes it: Backend.close() need not
    end subscriptions still open.
    """

    def __iter__(self) -> Iterator[bytes]: ...

    def __next__(self) -> bytes: ...

    def close(self) -> None:
        """Stop the iteration. Idempotent; may be called from any thread."""


@runtime_checkable
class EventEmitter(Protocol):
    """The live event stream: one JSON object (as bytes) per event.

    Events are for live listeners, not a log: a backend that stores them keeps each one readable
    for at least EVENT_RETENTION seconds (so a polling listener misses none) and may trim them
    any time after that.
    """

    # True when emit() is a cheap in-process hand-off: the core then calls it on the emitting
    # thread instead of queueing the event for its publisher thread. False for anything that
    # does I/O.
    inline: bool

    def emit(self, event: bytes) -> None:
        """Publish an event to current listeners. Never raises because nobody listens."""

    def emit_many(self, events: list[bytes]) -> None:
        """Publish `events` in list order as if emit() were called for each.

        One round trip where the backend can (the core's publisher thread sends batches).
        Derived: one emit() per event.
        """

    def listen(self) -> Subscription:
        """Subscribe: events emitted after this call, in emit order per producer.

        Derived for backends that store events: a PollingSubscription over read_after().
        """


@runtime_checkable
class Backend(Protocol):
    """What a backend factory returns: the four stores of one huey instance.

    A factory is any callable `factory(name: str, url: str | None, **options) -> Backend`, where
    `name` is the huey instance name that namespaces everything it stores. It is handed None
    (use your default location), a URL whose scheme it registered, or, when the user named the
    backend explicitly, a URL whose scheme no installed backend registered: refuse a URL you
    cannot use with one line that says what URL you expect. Options it does not know are errors.

    Process workers are forked from the consumer that built the backend, and call after_fork()
    before touching storage: neither the factory nor the backend is ever pickled.
    """

    name: str
    queue: Queue
    schedule: Schedule
    store: DataStore
    events: EventEmitter
    # False when the data lives inside this process (the memory backend): forked worker
    # processes would each get a private copy, so the consumer refuses `-k process`.
    process_safe: bool

    def after_fork(self) -> None:
        """Drop connections inherited from a parent process (called in forked worker processes)."""

    def close(self) -> None:
        """Release connections and threads. The backend is unusable afterwards."""

    def describe(self) -> str:
        """A one-line description for logs and banners; never contains a password."""


# The base classes live in huey_core.bases; they are importable from here as well, where the
# protocols they implement are.
from huey_core.bases import (  # noqa: E402 - after the protocols the base classes build on
    BaseBackend,
    BaseDataStore,
    BaseEventEmitter,
    BaseQueue,
    BaseSchedule,
    BaseSubscription,
    PollingSubscription,
)
