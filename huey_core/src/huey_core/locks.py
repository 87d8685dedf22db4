"""Locks and rate limits shared by every process using the backend, built on the data store."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from huey_core import keys
from huey_core.exceptions import RateLimitExceeded, TaskLockedException

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["RateLimit", "TaskLock"]


class TaskLock(contextlib.ContextDecorator):
    """`huey.lock_task(name)`: a context manager and decorator; TaskLockedException when held.

    Acquired with `put_if_empty` (one process wins); released when the block ends, whether it
    returned or raised. `ttl` lets a lock expire by itself if its holder dies.
    """

    def __init__(self, huey: Huey, name: str, ttl: float | None = None) -> None:
        self._huey = huey
        self._name = name
        self._ttl = ttl
        self._key = keys.lock(huey.name, name)
        huey.remember_lock(self._key)

    def is_locked(self) -> bool:
        return self._huey.storage.store.exists(self._key)

    locked = is_locked

    def __enter__(self) -> TaskLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()

    def acquire(self) -> bool:
        if not self._huey.storage.store.put_if_empty(self._key, b"1", self._ttl):
            raise TaskLockedException(f"unable to acquire lock {self._name}")
        return True

    def clear(self) -> bool:
        return self._huey.storage.store.delete(self._key)

    release = clear


class RateLimit(contextlib.ContextDecorator):
    """`huey.rate_limit(name, limit, per)`: at most `limit` entries per `per`-second window.

    A fixed window counted with one atomic `incr` per entry on a key that expires with the
    window, so it holds across every process sharing the backend. When the window is full the
    entry raises RateLimitExceeded(name, seconds until the window resets, retry); inside a task
    with `retry=True` that reschedules the task for when the window reopens.
    """

    def __init__(self, huey: Huey, name: str, limit: int, per: float, retry: bool = True) -> None:
        if limit < 0 or per <= 0:
            raise ValueError("rate_limit needs limit >= 0 and per > 0 seconds")
        self._huey = huey
        self._name = name
        self._limit = limit
        self._per = per
        self._retry = retry
        self._prefix = keys.rate_limit_prefix(huey.name, name)

    def _window(self, now: float) -> int:
        return int(now // self._per)

    def acquire(self) -> None:
        now = time.time()
        window = self._window(now)
        count = self._huey.storage.store.incr(f"{self._prefix}{window}", 1, ttl=self._per + 1)
        if count > self._limit:
            reset_in = (window + 1) * self._per - now
            raise RateLimitExceeded(self._name, reset_in, retry=self._retry)

    def current_usage(self) -> int:
        raw = self._huey.storage.store.peek(f"{self._prefix}{self._window(time.time())}")
        return int(raw) if raw else 0

    def reset(self) -> None:
        self._huey.storage.store.flush(self._prefix)

    def __enter__(self) -> RateLimit:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        pass
