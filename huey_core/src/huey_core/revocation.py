"""Revocation: skipping one task, or every task of a kind, until a time or just once.

A revocation is a data-store value `(revoke_until, revoke_once)` under `r:<task id>` (one task)
or `rt:<module.task>` (every task of that kind). Before a task runs, the executor reads both keys
in one `peek_many` round trip; a once-only or lapsed revocation is cleared as it is used.

A revocation made while a task runs applies to its next run (a retry or a re-delivery); it is not
looked for after each task, which would cost a write per task.

A worker that claimed a batch of messages reads the revocations of the whole batch in one
`peek_many` (`prefetch`) and checks each task against that read while it is younger than
PREFETCH_FRESH seconds, then reads again; a revocation made in this process drops the read at
once. The read is the process's, so a fellow worker that takes a waiting message of that batch
(and any is_revoked() call of the process meanwhile) uses it while it is that young. So a
revocation written by another process within PREFETCH_FRESH seconds before a batched task starts
may be missed, as one written just after the check always is.
"""

from __future__ import annotations

import datetime
import inspect
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from huey_core import clock, keys
from huey_core.events import EventStatus
from huey_core.task import Task, TaskWrapper

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["PREFETCH_FRESH", "Revocations"]

logger = logging.getLogger("huey")

PREFETCH_FRESH = 0.02  # seconds a batch's revocation read stands in for a read per task
READ_MAX = 1024  # entries of the batches' read before the stale ones are dropped


class Revocations:
    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self._generation = 0  # bumped by every revoke/restore made in this process
        self._kind_keys: dict[Any, str] = {}  # task class -> its revoke-all key
        # The batches' reads, for every worker of this process (a message one worker takes from
        # another's batch too): key -> (value, read at, generation). Written under the lock.
        self._read: dict[str, tuple[bytes | None, float, int]] = {}
        self._read_lock = threading.Lock()

    def prefetch(self, tasks: list[Any]) -> None:
        """Read the revocations of `tasks` in one round trip, for the is_revoked() calls of
        this process's workers in the next PREFETCH_FRESH seconds."""
        wanted = list(dict.fromkeys(key for task in tasks for key in self.keys_for(task)))
        values = self.huey.storage.store.peek_many(wanted)
        now, generation = time.monotonic(), self._generation
        with self._read_lock:
            read = self._read
            if len(read) > READ_MAX:
                read = self._read = {k: v for k, v in read.items() if now - v[1] < PREFETCH_FRESH}
            for key, value in zip(wanted, values, strict=True):
                read[key] = (value, now, generation)

    def _fresh(self, revocation_keys: list[str]) -> list[bytes | None] | None:
        """The batches' read of `revocation_keys` while it is fresh (younger than
        PREFETCH_FRESH, no revoke/restore since in this process), else None."""
        found = [self._read.get(key) for key in revocation_keys]
        now, generation = time.monotonic(), self._generation
        if all(f is not None and f[2] == generation and now - f[1] < PREFETCH_FRESH for f in found):
            return [f[0] for f in found]  # type: ignore[index]
        return None

    def fresh(self, task: Any) -> bool:
        """True while a batch's read of `task`'s revocations may stand in for a new one."""
        return self._fresh(self.keys_for(task)) is not None

    def _values(self, revocation_keys: list[str]) -> list[bytes | None]:
        found = self._fresh(revocation_keys)
        return self.huey.storage.store.peek_many(revocation_keys) if found is None else found

    def _kind_key(self, task_class: Any) -> str:
        if isinstance(task_class, TaskWrapper):
            task_class = task_class.task_class
        key = self._kind_keys.get(task_class)
        if key is None:  # looked up before every task: cached per class
            key = self._kind_keys[task_class] = keys.revoke_all(
                self.huey.registry.name_of(task_class)
            )
        return key

    def _until(self, revoke_until: datetime.datetime | None) -> datetime.datetime | None:
        if revoke_until is None:
            return None
        return clock.normalize_time(revoke_until, utc=self.huey.utc)

    def revoke_all(
        self, task_class: Any, revoke_until: datetime.datetime | None, revoke_once: bool
    ) -> None:
        self._generation += 1
        self.huey.put(self._kind_key(task_class), (self._until(revoke_until), revoke_once))

    def restore_all(self, task_class: Any) -> bool:
        self._generation += 1
        return self.huey.delete(self._kind_key(task_class))

    def revoke(self, task: Task, revoke_until: datetime.datetime | None, revoke_once: bool) -> None:
        self._generation += 1
        self.huey.put(task.revoke_id, (self._until(revoke_until), revoke_once))
        # A bare Task(id=...) (revoke_by_id) names no task kind: the event carries the id only.
        about = task if type(task) is not Task else None
        self.huey.emit(EventStatus.REVOKED, about, id=task.id)

    def restore(self, task: Task) -> bool:
        self._generation += 1
        return self.huey.delete(task.revoke_id)

    def keys_for(self, task: Any) -> list[str]:
        """The revocation keys that apply to a Task, Result, TaskWrapper, task class or id."""
        if not isinstance(task, Task):  # a Task (twice per task run) skips the other checks
            from huey_core.results import Result

            if isinstance(task, TaskWrapper) or inspect.isclass(task):
                return [self._kind_key(task)]
            if isinstance(task, Result):
                task = task.task
        if isinstance(task, Task):
            if type(task) is Task:
                return [task.revoke_id]
            return [task.revoke_id, self._kind_key(type(task))]
        return [keys.revoke(str(task))]

    def is_revoked(
        self, task: Any, timestamp: datetime.datetime | None = None, peek: bool = True
    ) -> bool:
        """True when `task` is revoked; with peek=False a used-up revocation is cleared."""
        revocation_keys = self.keys_for(task)
        values = self._values(revocation_keys)
        for key, raw in zip(revocation_keys, values, strict=True):
            if raw is not None and self._applies(key, raw, timestamp, peek):
                return True
        return False

    def _applies(
        self, key: str, raw: bytes, timestamp: datetime.datetime | None, peek: bool
    ) -> bool:
        try:
            revoke_until, revoke_once = self.huey.serializer.deserialize(raw)
        except Exception:  # noqa: BLE001 - a value another version wrote, or garbage
            logger.warning("ignoring unreadable revocation %s", key)
            return False
        if revoke_once:
            if not peek:
                self._clear(key)
            return True
        if revoke_until is not None and revoke_until <= (timestamp or clock.now(self.huey.utc)):
            if not peek:
                self._clear(key)
            return False
        return True

    def _clear(self, key: str) -> None:
        self.huey.delete(key)
        with self._read_lock:
            found = self._read.get(key)
            if found is not None:  # used up: the batch's read must not apply it again
                self._read[key] = (None, found[1], found[2])
