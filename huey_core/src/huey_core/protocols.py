"""The four storage protocols every backend implements, and the backend that bundles them.

Bytes in, bytes out: serialization lives in the core, so a backend only stores and moves opaque
payloads. Each method's docstring is its contract: what is atomic, what happens when the queue is
empty or the key is missing, and whether the call may block. `huey_core.testing` checks every one
of these statements against a real server.

Times are unix timestamps (float seconds, `time.time()`); durations are float seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "Backend",
    "BaseBackend",
    "DataStore",
    "Delivery",
    "EventEmitter",
    "LeaseInfo",
    "Queue",
    "Schedule",
    "Subscription",
]


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
    deadline: float  # unix time after which recover() may hand the message to someone else
    deliveries: int
    data: bytes


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
        When `blocking` is True and `wait` > 0 it waits up to `wait` seconds for a message;
        otherwise it returns at once and the consumer polls with backoff.
        """

    def ack(self, lease: str) -> None:
        """Delete the leased message for good. Idempotent: an unknown lease is a no-op.

        Unknown means acked, released or recovered. A lease past its deadline that nobody has
        recovered yet still belongs to its owner: ack() deletes the message (the task did finish).
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

        Atomic per message: a message is either still leased or back in the queue, never lost and
        never doubled. Safe to call from any number of consumers at once.
        """

    def size(self) -> int:
        """Number of ready (unleased) messages. 0 when empty."""

    def peek(self, n: int = 100) -> list[bytes]:
        """Up to `n` ready messages in the order dequeue would return them, without claiming."""

    def leases(self) -> list[LeaseInfo]:
        """Every message currently leased, with owner and deadline. Empty list when none."""

    def flush(self) -> None:
        """Remove every message, ready or leased."""

    # Optional (the consumer uses it when present, through getattr; not part of isinstance):
    #
    # def ack_and_dequeue(self, lease: str, owner: str, lease_timeout: float,
    #                     wait: float = 0.0) -> Delivery | None:
    #     """ack(lease) then dequeue(owner, lease_timeout, wait), in one round trip where the
    #     backend can. The ack has happened when it returns; when it raises the caller acks
    #     again. Fallback: ack() then dequeue()."""


@runtime_checkable
class Schedule(Protocol):
    """Messages waiting for a time; moved to the queue of the same backend when due."""

    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:
        """Store a message to become ready at `timestamp`. Atomic."""

    def move_due(self, now: float, limit: int = 1000) -> int:
        """Move up to `limit` messages with timestamp <= `now` into the queue; return how many.

        Atomic per message: at every instant a message is in the schedule or in the queue, so a
        crash at any point loses nothing and no message is moved twice by concurrent callers.
        """

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        """Remove and return up to `limit` messages due at `now`, oldest first.

        For callers that enqueue them themselves (huey's `read_schedule`); the consumer uses
        move_due(), which cannot lose a message between the two steps.
        """

    def size(self) -> int:
        """Number of messages in the schedule. 0 when empty."""

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:
        """Up to `n` (timestamp, message) pairs, earliest first, without removing them."""

    def flush(self) -> None:
        """Remove every scheduled message."""


@runtime_checkable
class DataStore(Protocol):
    """Results and key/value data (locks, revocations, counters, dedup keys, dead letters).

    `ttl` is in seconds; None means the key never expires. An expired key behaves in every method
    exactly like a missing one.
    """

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` under `key`, replacing any value (and its ttl). Atomic."""

    def peek(self, key: str) -> bytes | None:
        """The value under `key`, or None when missing. Never blocks."""

    def pop(self, key: str) -> bytes | None:
        """Remove and return the value under `key` atomically (one caller wins); None if missing."""

    def delete(self, key: str) -> bool:
        """Remove `key`; True when it existed."""

    def exists(self, key: str) -> bool:
        """True when `key` holds a live value."""

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store `value` only when `key` is missing; True when this call stored it.

        Atomic across threads, processes and machines: of concurrent callers exactly one wins.
        Locks and once-per-minute periodic dedup are built on it.
        """

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add `amount` to the integer under `key` (missing counts as 0); return the new value.

        Atomic. `ttl` is applied when the call creates the key.
        """

    def wait(self, key: str, timeout: float) -> bool:
        """Block until `key` holds a value or `timeout` seconds pass; True when it does.

        Backends that can be told about writes wait natively; others poll. Returns at once when the
        key already exists.
        """

    def size(self) -> int:
        """Number of live keys."""

    def items(self, prefix: str = "") -> dict[str, bytes]:
        """Every live key starting with `prefix` and its value."""

    def flush(self, prefix: str = "") -> None:
        """Remove every key starting with `prefix` (all keys when empty)."""

    # Optional (the core uses it when present, through getattr; not part of isinstance checks):
    #
    # def peek_many(self, keys: list[str]) -> list[bytes | None]:
    #     """The values of `keys` in the same order, None where missing or expired, duplicates
    #     kept; one round trip. Fallback: one peek() per key (revocation checks use it)."""


@runtime_checkable
class Subscription(Protocol):
    """What EventEmitter.listen() returns: iterate for events, close() from any thread to stop."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None:
        """Stop the iteration; a blocked iterator returns within about a second."""


@runtime_checkable
class EventEmitter(Protocol):
    """The live event stream: one JSON object (as bytes) per event."""

    def emit(self, event: bytes) -> None:
        """Publish an event to current listeners. Never raises because nobody listens."""

    def listen(self) -> Subscription:
        """Subscribe: events emitted after this call, in emit order per producer."""

    # Optional (the core looks for them with getattr; not part of isinstance checks):
    #
    # def emit_many(self, events: list[bytes]) -> None:
    #     """Publish `events` in list order as if emit() were called for each, in one round
    #     trip. Fallback: one emit() per event. The core's event publisher thread uses it."""
    #
    # inline: bool = True
    #     """emit() is a cheap in-process hand-off: the core calls it on the emitting thread
    #     instead of queueing the event for its publisher thread."""


@runtime_checkable
class Backend(Protocol):
    """What a backend factory returns: the four stores of one huey instance.

    A factory is any callable `factory(name: str, url: str | None, **options) -> Backend`, where
    `name` is the huey instance name that namespaces everything it stores.
    """

    name: str
    queue: Queue
    schedule: Schedule
    store: DataStore
    events: EventEmitter

    def after_fork(self) -> None:
        """Drop connections inherited from a parent process (called in forked worker processes)."""

    def close(self) -> None:
        """Release connections and threads. The backend is unusable afterwards."""

    def describe(self) -> str:
        """A one-line description for logs and banners; never contains a password."""


class BaseBackend:
    """Optional base class with the derived defaults; a backend may implement Backend directly."""

    name: str
    queue: Queue
    schedule: Schedule
    store: DataStore
    events: EventEmitter
    url: str | None = None

    def after_fork(self) -> None:
        """Most clients are fork-safe on their own; backends with pools override this."""

    def close(self) -> None:
        """Nothing to release by default."""

    def describe(self) -> str:
        from huey_core.plugins import mask_url

        return f"{type(self).__name__}({mask_url(self.url) if self.url else self.name})"
