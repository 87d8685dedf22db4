"""Base classes for backends: a subclass writes the methods marked *required* and inherits the
rest, derived from those (see huey_core.protocols for each method's contract, and docs/backends.md
for the table). Importable from huey_core.protocols too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from huey_core.protocols import (
    ALL,
    POLL_INTERVAL,
    SUBSCRIPTION_CLOSE_WITHIN,
    DataStore,
    Delivery,
    EventEmitter,
    LeaseInfo,
    Queue,
    Schedule,
    Subscription,
)

__all__ = [
    "BaseBackend",
    "BaseDataStore",
    "BaseEventEmitter",
    "BaseQueue",
    "BaseSchedule",
    "BaseSubscription",
    "PollingSubscription",
]


class BaseQueue:
    """Derives `size`, `ack_and_dequeue`, the batch methods (`enqueue_many`, `dequeue_many`,
    `ack_many`, `ack_and_dequeue_many`) and `ack_soon`/`settle_acks` (a plain ack); a subclass
    writes the other nine methods."""

    blocking = False  # dequeue(wait=...) returns at once, so the consumer polls with backoff
    priority = False  # override with True when enqueue honours priority

    def enqueue(self, data: bytes, priority: int = 0) -> None:  # required
        raise NotImplementedError

    def dequeue(self, owner: str, lease_timeout: float, wait: float = 0.0) -> Delivery | None:
        raise NotImplementedError  # required

    def ack(self, lease: str) -> None:  # required
        raise NotImplementedError

    def release(self, lease: str) -> None:  # required
        raise NotImplementedError

    def extend(self, lease: str, lease_timeout: float) -> bool:  # required
        raise NotImplementedError

    def recover(self) -> int:  # required
        raise NotImplementedError

    def peek(self, n: int = 100) -> list[bytes]:  # required
        raise NotImplementedError

    def leases(self) -> list[LeaseInfo]:  # required
        raise NotImplementedError

    def flush(self) -> None:  # required
        raise NotImplementedError

    def ack_and_dequeue(
        self, lease: str, owner: str, lease_timeout: float, wait: float = 0.0
    ) -> Delivery | None:
        self.ack(lease)
        return self.dequeue(owner, lease_timeout, wait)

    def enqueue_many(self, items: list[tuple[bytes, int]]) -> None:
        for data, priority in items:
            self.enqueue(data, priority)

    def dequeue_many(
        self, owner: str, lease_timeout: float, n: int, wait: float = 0.0
    ) -> list[Delivery]:
        claimed: list[Delivery] = []
        while len(claimed) < n:
            # Only the first claim waits: once something is claimed, an empty queue ends it.
            delivery = self.dequeue(owner, lease_timeout, 0.0 if claimed else wait)
            if delivery is None:
                break
            claimed.append(delivery)
            if delivery.deliveries > 1:
                break
        return claimed

    def ack_many(self, leases: list[str]) -> None:
        for lease in leases:
            self.ack(lease)

    def ack_soon(self, lease: str) -> None:
        self.ack(lease)

    def settle_acks(self) -> None:
        return None

    def ack_and_dequeue_many(
        self, leases: list[str], owner: str, lease_timeout: float, n: int, wait: float = 0.0
    ) -> list[Delivery]:
        self.ack_many(leases)
        return self.dequeue_many(owner, lease_timeout, n, wait)

    def size(self) -> int:
        return len(self.peek(ALL))


class BaseSchedule:
    """Derives `size`; a subclass writes add, move_due, pop_due, peek and flush."""

    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:  # required
        raise NotImplementedError

    def move_due(self, now: float, limit: int = 1000) -> int:  # required
        raise NotImplementedError

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:  # required
        raise NotImplementedError

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:  # required
        raise NotImplementedError

    def flush(self) -> None:  # required
        raise NotImplementedError

    def size(self) -> int:
        return len(self.peek(ALL))


class BaseDataStore:
    """Derives peek_many, delete, exists, a polling wait, size and flush.

    A subclass writes put, peek, pop, put_if_empty, incr and items.
    """

    poll_interval = POLL_INTERVAL  # seconds between checks of the derived wait()

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:  # required
        raise NotImplementedError

    def peek(self, key: str) -> bytes | None:  # required
        raise NotImplementedError

    def pop(self, key: str) -> bytes | None:  # required
        raise NotImplementedError

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        raise NotImplementedError  # required

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:  # required
        raise NotImplementedError

    def items(self, prefix: str = "") -> dict[str, bytes]:  # required
        raise NotImplementedError

    def peek_many(self, keys: list[str]) -> list[bytes | None]:
        return [self.peek(key) for key in keys]

    def delete(self, key: str) -> bool:
        return self.pop(key) is not None

    def exists(self, key: str) -> bool:
        return self.peek(key) is not None

    def wait(self, key: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.exists(key):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self.poll_interval, remaining))

    def size(self) -> int:
        return len(self.items())

    def flush(self, prefix: str = "") -> None:
        for key in self.items(prefix):
            self.delete(key)


class BaseSubscription:
    """Makes a Subscription out of a generator: a subclass writes events() and close()."""

    _generator: Iterator[bytes] | None = None

    def events(self) -> Iterator[bytes]:  # required: a generator that ends once closed
        raise NotImplementedError

    def close(self) -> None:  # required
        raise NotImplementedError

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._generator is None:
            self._generator = self.events()
        return next(self._generator)


class PollingSubscription:
    """A Subscription that reads stored events with `read_after(cursor)` until closed.

    It starts at the cursor `read_after(None)` returns (the newest stored event), so it delivers
    exactly the events stored after listen(). Between empty reads it waits `poll_interval`
    seconds, or until close().
    """

    def __init__(self, emitter: BaseEventEmitter, poll_interval: float = POLL_INTERVAL) -> None:
        self._emitter = emitter
        self._poll = min(poll_interval, SUBSCRIPTION_CLOSE_WITHIN)
        self._closed = threading.Event()
        self._cursor, _ = emitter.read_after(None)
        self._buffer: list[bytes] = []

    def __iter__(self) -> PollingSubscription:
        return self

    def __next__(self) -> bytes:
        while not self._buffer:
            if self._closed.is_set():
                raise StopIteration
            self._cursor, events = self._emitter.read_after(self._cursor)
            if events:
                self._buffer = list(reversed(events))
            else:
                self._closed.wait(self._poll)  # returns early when close() is called
        if self._closed.is_set():
            raise StopIteration
        return self._buffer.pop()

    def close(self) -> None:
        self._closed.set()


class BaseEventEmitter:
    """Derives emit_many, and listen() for backends that store events.

    A backend that stores events (a table, a file, a stream) writes emit() and read_after(), and
    gets a polling listen(). A backend with native pub/sub writes emit() and listen() instead.
    """

    inline = False  # emit() does I/O: the core calls it from its publisher thread
    poll_interval = POLL_INTERVAL  # seconds between reads of the derived listen()

    def emit(self, event: bytes) -> None:  # required
        raise NotImplementedError

    def read_after(self, cursor: object | None) -> tuple[object, list[bytes]]:
        """Events stored after `cursor`, oldest first, and the cursor of the last one returned.

        `cursor` is opaque to the core (an id, an offset). With None it returns no events and
        the cursor of the newest stored event, where a new subscription starts. Required only
        when listen() is not overridden.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement listen() or read_after()")

    def emit_many(self, events: list[bytes]) -> None:
        for event in events:
            self.emit(event)

    def listen(self) -> Subscription:
        return PollingSubscription(self, self.poll_interval)


class BaseBackend:
    """Derives after_fork, close and describe; a subclass sets the four stores in __init__."""

    name: str
    queue: Queue
    schedule: Schedule
    store: DataStore
    events: EventEmitter
    url: str | None = None
    process_safe = True  # the data lives outside this process: forked workers share it

    def after_fork(self) -> None:
        """Most clients are fork-safe on their own; backends with pools override this."""

    def close(self) -> None:
        """Nothing to release by default."""

    def describe(self) -> str:
        from huey_core.plugins import mask_url

        return f"{type(self).__name__}({mask_url(self.url) if self.url else self.name})"
