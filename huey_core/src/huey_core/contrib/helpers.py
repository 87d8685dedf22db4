"""huey.contrib.helpers, on every backend: a counting semaphore and `lock_task_semaphore`.

huey's `RedisSemaphore` keeps holders in a Redis sorted set and needs Redis. This one is built on
the data-store protocol alone, so it behaves the same on memory, Redis and SQL: a semaphore of
value N is N slot keys, and a holder owns a slot by writing its id there with `put_if_empty`,
which every backend makes atomic across threads, processes and machines. Of concurrent callers
at most N hold a slot at once. Each slot is written with a ttl (`timeout`, 300 s by default, as in
huey), so the slot of a holder that died frees itself; a live holder renews it.

Port: `from huey.contrib.helpers import RedisSemaphore, lock_task_semaphore` becomes
`from huey_core.contrib.helpers import RedisSemaphore, lock_task_semaphore` (`Semaphore` is
the same class).
"""

from __future__ import annotations

import functools
import random
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from huey_core import keys
from huey_core.exceptions import TaskLockedException

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["RedisSemaphore", "Semaphore", "lock_task_semaphore"]

F = TypeVar("F", bound=Callable[..., Any])


class Semaphore:
    """At most `value` holders at once across every process sharing the backend.

    `acquire()` returns a holder id (or None when every slot is taken; it never waits),
    `renew(id)` pushes the slot's expiry `timeout` seconds ahead, `release(id)` frees it.

    Like any lease, a holder that stalls longer than `timeout` without renewing loses its
    slot to the next caller; `renew()` then returns False.
    """

    def __init__(self, huey: Huey, name: str, value: int = 1, timeout: float | None = None) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"semaphore {name!r}: value must be an int of at least 1, not {value!r}"
            )
        if timeout is not None and not timeout > 0:
            raise ValueError(f"semaphore {name!r}: timeout must be a number of seconds above 0")
        self.huey = huey
        self.name = name
        self.value = value
        self.timeout = float(timeout or 300)
        # huey's key is "<huey>.lock.<name>": flush_locks() (huey consume -f) frees the slots.
        self._slots = [keys.lock(huey.name, f"{name}.slot{i}") for i in range(value)]
        for key in self._slots:
            huey.remember_lock(key)

    @property
    def _store(self) -> Any:
        return self.huey.storage.store

    def acquire(self, name: str | None = None) -> str | None:
        """Take a free slot for holder `name` (a new id when None); the id, or None when full.

        A holder that already owns a slot renews it and gets its id back (no second slot).
        """
        holder = name or str(uuid.uuid4())
        token = holder.encode()
        held = self._slot_of(token)
        if held is not None:
            self._store.put(held, token, self.timeout)  # as huey: acquiring again renews
            return holder
        start = random.randrange(self.value)  # spread contenders over the slots
        for i in range(self.value):
            key = self._slots[(start + i) % self.value]
            if self._store.put_if_empty(key, token, self.timeout):
                return holder
        return None

    def renew(self, name: str) -> bool:
        """Extend the slot of holder `name` by `timeout` seconds; False when it holds none."""
        key = self._slot_of(name.encode())
        if key is None:
            return False
        self._store.put(key, name.encode(), self.timeout)
        return True

    def release(self, name: str) -> bool:
        """Free the slot of holder `name`; False when it held none (already expired)."""
        key = self._slot_of(name.encode())
        return key is not None and bool(self._store.delete(key))

    def holders(self) -> int:
        """How many slots are held right now."""
        return sum(v is not None for v in self._store.peek_many(self._slots))

    def _slot_of(self, token: bytes) -> str | None:
        for key, held in zip(self._slots, self._store.peek_many(self._slots), strict=True):
            if held == token:
                return key
        return None

    def _renew_until(self, name: str, stop: threading.Event) -> None:
        while not stop.wait(self.timeout / 3.0):
            self.renew(name)


RedisSemaphore = Semaphore  # huey's name: a port keeps its import


def lock_task_semaphore(
    huey: Huey, lock_name: str, value: int = 1, timeout: float | None = None
) -> Callable[[F], F]:
    """Let at most `value` calls of the decorated function run at once, as huey's helper does.

    A call that finds every slot taken raises TaskLockedException (with `retries=` on the task,
    it runs again later). While a call runs a thread renews its slot every `timeout / 3`
    seconds, so `timeout` (300 s) only bounds how long a dead worker's slot stays taken:

        @huey.task(retries=2, retry_delay=60)
        @lock_task_semaphore(huey, "crawler", 3)
        def crawl(url): ...
    """
    sem = Semaphore(huey, lock_name, value, timeout)

    def decorator(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            holder = sem.acquire()
            if holder is None:
                raise TaskLockedException(f"unable to acquire lock {lock_name}")
            stop = threading.Event()
            renewer = threading.Thread(
                target=sem._renew_until, args=(holder, stop), daemon=True,
                name=f"huey-semaphore-{lock_name}",
            )  # fmt: skip
            renewer.start()
            try:
                return fn(*args, **kwargs)
            finally:
                stop.set()
                renewer.join()
                sem.release(holder)

        return inner  # type: ignore[return-value]

    return decorator
