"""In-process storage: thread-safe, priorities, leases, blocking waits on condition variables.

For tests, immediate mode and single-process consumers. Nothing survives the process, and forked
worker processes would each get a private copy, so the consumer refuses `-k process` with it.
"""

from __future__ import annotations

import heapq
import itertools
import queue as stdqueue
import threading
import time
import uuid
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


class MemoryQueue(BaseQueue):
    blocking = True  # dequeue(wait=...) sleeps on a condition variable until enqueue wakes it
    priority = True

    def __init__(self, cond: threading.Condition) -> None:
        self._cond = cond
        self._seq = itertools.count()
        self._claims = itertools.count()
        self._ready: list[tuple[int, int, str]] = []  # (-priority, seq, message id)
        # message id -> data, priority, seq, deliveries
        self._messages: dict[str, tuple[bytes, int, int, int]] = {}
        # lease -> message id, owner, deadline
        self._leases: dict[str, tuple[str, str, float]] = {}

    def _push(self, data: bytes, priority: int) -> None:
        msg_id = uuid.uuid4().hex
        seq = next(self._seq)
        self._messages[msg_id] = (data, priority, seq, 0)
        heapq.heappush(self._ready, (-priority, seq, msg_id))
        self._cond.notify()

    def enqueue(self, data: bytes, priority: int = 0) -> None:
        with self._cond:
            self._push(data, priority)

    def enqueue_many(self, items: list[tuple[bytes, int]]) -> None:
        with self._cond:
            for data, priority in items:
                self._push(data, priority)

    def dequeue(self, owner: str, lease_timeout: float, wait: float = 0.0) -> Delivery | None:
        found = self.dequeue_many(owner, lease_timeout, 1, wait)
        return found[0] if found else None

    def dequeue_many(
        self, owner: str, lease_timeout: float, n: int, wait: float = 0.0
    ) -> list[Delivery]:
        with self._cond:
            if not self._ready and wait > 0:
                self._cond.wait_for(lambda: bool(self._ready), timeout=wait)
            return self._claim(owner, lease_timeout, n)

    def _claim(self, owner: str, lease_timeout: float, n: int) -> list[Delivery]:
        claimed: list[Delivery] = []
        deadline = time.time() + lease_timeout
        nonce = f"{next(self._claims):x}:"  # lease = claim number + position in the batch
        while self._ready and len(claimed) < n:
            data, prio, seq, deliveries = self._messages[self._ready[0][2]]
            if claimed and deliveries:
                break  # handed out before: claimed alone (see BaseQueue.dequeue_many)
            _, _, msg_id = heapq.heappop(self._ready)
            deliveries += 1
            self._messages[msg_id] = (data, prio, seq, deliveries)
            lease = f"{nonce}{len(claimed)}"
            self._leases[lease] = (msg_id, owner, deadline)
            claimed.append(Delivery(data, lease, deliveries))
            if deliveries > 1:
                break
        return claimed

    def ack(self, lease: str) -> None:
        with self._cond:
            self._ack(lease)

    def _ack(self, lease: str) -> None:
        held = self._leases.pop(lease, None)
        if held is not None:
            self._messages.pop(held[0], None)

    def ack_many(self, leases: list[str]) -> None:
        with self._cond:
            for lease in leases:
                self._ack(lease)

    def ack_and_dequeue_many(
        self, leases: list[str], owner: str, lease_timeout: float, n: int, wait: float = 0.0
    ) -> list[Delivery]:
        with self._cond:
            for lease in leases:
                self._ack(lease)
            found = self._claim(owner, lease_timeout, n)
        if found or wait <= 0:
            return found
        return self.dequeue_many(owner, lease_timeout, n, wait)

    def _requeue(self, msg_id: str) -> None:
        _, prio, seq, _ = self._messages[msg_id]
        heapq.heappush(self._ready, (-prio, seq, msg_id))  # keeps its place in line
        self._cond.notify()

    def release(self, lease: str) -> None:
        with self._cond:
            held = self._leases.pop(lease, None)
            if held is not None:
                self._requeue(held[0])

    def extend(self, lease: str, lease_timeout: float) -> bool:
        with self._cond:
            held = self._leases.get(lease)
            if held is None:
                return False
            self._leases[lease] = (held[0], held[1], time.time() + lease_timeout)
            return True

    def recover(self) -> int:
        now = time.time()
        with self._cond:
            expired = [lease for lease, (_, _, deadline) in self._leases.items() if deadline < now]
            for lease in expired:
                self._requeue(self._leases.pop(lease)[0])
            return len(expired)

    def peek(self, n: int = 100) -> list[bytes]:
        with self._cond:
            return [self._messages[m][0] for _, _, m in heapq.nsmallest(n, self._ready)]

    def leases(self) -> list[LeaseInfo]:
        with self._cond:
            return [
                LeaseInfo(lease, owner, deadline, self._messages[m][3], self._messages[m][0])
                for lease, (m, owner, deadline) in self._leases.items()
            ]

    def flush(self) -> None:
        with self._cond:
            self._ready.clear()
            self._messages.clear()
            self._leases.clear()


class MemorySchedule(BaseSchedule):
    def __init__(self, cond: threading.Condition, queue: MemoryQueue) -> None:
        self._cond = cond
        self._queue = queue
        self._seq = itertools.count()
        self._items: list[tuple[float, int, bytes, int]] = []  # (timestamp, seq, data, priority)

    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:
        with self._cond:
            heapq.heappush(self._items, (timestamp, next(self._seq), data, priority))

    def _take_due(self, now: float, limit: int) -> list[tuple[float, int, bytes, int]]:
        due: list[tuple[float, int, bytes, int]] = []
        while self._items and self._items[0][0] <= now and len(due) < limit:
            due.append(heapq.heappop(self._items))
        return due

    def move_due(self, now: float, limit: int = 1000) -> int:
        with self._cond:  # one lock for schedule and queue: the move is atomic
            due = self._take_due(now, limit)
            for _, _, data, priority in due:
                self._queue._push(data, priority)
            return len(due)

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        with self._cond:
            return [item[2] for item in self._take_due(now, limit)]

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:
        with self._cond:
            return [(ts, data) for ts, _, data, _ in heapq.nsmallest(n, self._items)]

    def flush(self) -> None:
        with self._cond:
            self._items.clear()


class MemoryStore(BaseDataStore):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._data: dict[str, tuple[bytes, float | None]] = {}  # key -> value, expires at

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= time.time():
            del self._data[key]
            return None
        return item[0]

    def _write(self, key: str, value: bytes, expires: float | None) -> None:
        self._data[key] = (value, expires)
        self._cond.notify_all()  # wakes wait() on this key, whichever call wrote it

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with self._cond:
            self._write(key, value, None if ttl is None else time.time() + ttl)

    def peek(self, key: str) -> bytes | None:
        with self._cond:
            return self._live(key)

    def pop(self, key: str) -> bytes | None:
        with self._cond:
            value = self._live(key)
            self._data.pop(key, None)
            return value

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        with self._cond:
            if self._live(key) is not None:
                return False
            self._write(key, value, None if ttl is None else time.time() + ttl)
            return True

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with self._cond:
            current = self._live(key)
            if current is None:
                value, expires = amount, None if ttl is None else time.time() + ttl
            else:
                value, expires = int(current) + amount, self._data[key][1]
            self._write(key, str(value).encode(), expires)
            return value

    def wait(self, key: str, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._live(key) is not None, timeout=timeout)

    def items(self, prefix: str = "") -> dict[str, bytes]:
        with self._cond:
            found = {key: self._live(key) for key in list(self._data) if key.startswith(prefix)}
            return {key: value for key, value in found.items() if value is not None}


class MemorySubscription(BaseSubscription):
    def __init__(self, emitter: MemoryEvents) -> None:
        self._emitter = emitter
        self._inbox: stdqueue.SimpleQueue[bytes | None] = stdqueue.SimpleQueue()
        self._closed = False

    def deliver(self, event: bytes) -> None:
        self._inbox.put(event)

    def events(self) -> Iterator[bytes]:
        while not self._closed:
            event = self._inbox.get()
            if event is None:
                return
            yield event

    def close(self) -> None:
        self._closed = True
        self._emitter._unsubscribe(self)
        self._inbox.put(None)  # wakes a blocked iterator at once


class MemoryEvents(BaseEventEmitter):
    # emit() is an in-process hand-off: the core calls it directly rather than from its event
    # publisher thread, so listeners have every event as soon as the emitting call returns.
    inline = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[MemorySubscription] = []

    def emit(self, event: bytes) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.deliver(event)

    def listen(self) -> MemorySubscription:
        sub = MemorySubscription(self)
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: MemorySubscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)


class MemoryBackend(BaseBackend):
    process_safe = False  # state lives in this process: forked workers would not share it

    def __init__(self, name: str, url: str | None = None, **options: object) -> None:
        if options:
            raise TypeError(f"memory backend takes no options, got {sorted(options)}")
        self.name = name
        self.url = url
        cond = threading.Condition()
        self.queue = MemoryQueue(cond)
        self.schedule = MemorySchedule(cond, self.queue)
        self.store = MemoryStore()
        self.events = MemoryEvents()
