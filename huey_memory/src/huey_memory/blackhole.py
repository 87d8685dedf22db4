"""BlackHoleBackend: huey's BlackHoleStorage. Everything written is discarded.

For code paths that must enqueue but whose tasks should never run (a staging web server, a
dry run, a benchmark of the producer side): enqueue and schedule do nothing, nothing is ever
dequeued, no result or key is stored. Like huey's, put_if_empty always succeeds (every lock is
free) and incr returns `amount` (every counter starts from nothing each time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from huey_core.protocols import (
    BaseBackend,
    BaseDataStore,
    BaseEventEmitter,
    BaseQueue,
    BaseSchedule,
    BaseSubscription,
    Delivery,
    LeaseInfo,
)


class BlackHoleQueue(BaseQueue):
    blocking = False  # dequeue() returns None at once: there is never anything to wait for
    priority = True  # accepted (and discarded) like any other message

    def enqueue(self, data: bytes, priority: int = 0) -> None:
        """Discard `data`."""

    def dequeue(self, owner: str, lease_timeout: float, wait: float = 0.0) -> Delivery | None:
        """Always None, at once."""
        return None

    def ack(self, lease: str) -> None:
        """No lease exists: nothing to do."""

    def release(self, lease: str) -> None:
        """No lease exists: nothing to do."""

    def extend(self, lease: str, lease_timeout: float) -> bool:
        """False: no lease exists."""
        return False

    def recover(self) -> int:
        return 0

    def peek(self, n: int = 100) -> list[bytes]:
        return []

    def leases(self) -> list[LeaseInfo]:
        return []

    def flush(self) -> None:
        """Nothing is stored."""


class BlackHoleSchedule(BaseSchedule):
    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:
        """Discard `data`."""

    def move_due(self, now: float, limit: int = 1000) -> int:
        return 0

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        return []

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:
        return []

    def flush(self) -> None:
        """Nothing is stored."""


class BlackHoleStore(BaseDataStore):
    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Discard `value`."""

    def peek(self, key: str) -> bytes | None:
        return None

    def pop(self, key: str) -> bytes | None:
        return None

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """True, as huey's BlackHoleStorage: the key is always empty."""
        return True

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """`amount`, as huey's BlackHoleStorage: the counter is never kept."""
        return amount

    def items(self, prefix: str = "") -> dict[str, bytes]:
        return {}

    def wait(self, key: str, timeout: float) -> bool:
        """False after `timeout`: no value ever arrives."""
        time.sleep(max(0.0, timeout))
        return False


class BlackHoleSubscription(BaseSubscription):
    def __init__(self) -> None:
        self._closed = threading.Event()

    def events(self) -> Iterator[bytes]:
        self._closed.wait()  # no event ever comes; close() ends the iteration
        yield from ()

    def close(self) -> None:
        self._closed.set()


class BlackHoleEvents(BaseEventEmitter):
    inline = True  # emit() does nothing, so no need for the publisher thread

    def emit(self, event: bytes) -> None:
        """Discard `event`."""

    def listen(self) -> BlackHoleSubscription:
        return BlackHoleSubscription()


class BlackHoleBackend(BaseBackend):
    """`Huey(name, backend="blackhole")` or huey's `BlackHoleHuey(name)`. Takes no options."""

    process_safe = True  # nothing is stored anywhere, so every process sees the same nothing

    def __init__(self, name: str, url: str | None = None, **options: object) -> None:
        if options:
            raise TypeError(f"blackhole backend takes no options, got {sorted(options)}")
        self.name = name
        self.url = url
        self.queue = BlackHoleQueue()
        self.schedule = BlackHoleSchedule()
        self.store = BlackHoleStore()
        self.events = BlackHoleEvents()
