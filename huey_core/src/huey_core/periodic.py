"""Periodic tasks: which are due in a minute, and enqueueing each once across every consumer.

Every consumer's scheduler calls `enqueue_periodic` at the start of each minute. Only the caller
that wins `put_if_empty("periodic:<task>:<YYYYmmddHHMM>")` enqueues a task for that minute, so
a fleet of consumers, all with periodic tasks on, enqueues each due task exactly once.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from typing import TYPE_CHECKING

from huey_core import clock, keys
from huey_core.task import PeriodicTask, Task

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["DEDUP_TTL", "due_periodic_tasks", "enqueue_periodic"]

logger = logging.getLogger("huey")

DEDUP_TTL = 3600  # seconds a per-minute dedup key lives: far longer than any clock skew


def due_periodic_tasks(huey: Huey, timestamp: datetime.datetime) -> list[PeriodicTask]:
    return [t for t in huey.registry.periodic_tasks if t.validate_datetime(timestamp)]


def enqueue_periodic(huey: Huey, now: datetime.datetime | None = None) -> list[Task]:
    """Enqueue the periodic tasks due in the minute of `now` (see the module docstring)."""
    if now is None:
        now = clock.now(huey.utc)
    minute = now.strftime("%Y%m%d%H%M")
    enqueued: list[Task] = []
    store = huey.storage.store
    for task in due_periodic_tasks(huey, now):
        key = keys.periodic(huey.registry.name_of(type(task)), minute)
        try:
            if not store.put_if_empty(key, b"1", ttl=DEDUP_TTL):
                continue
        except Exception:
            logger.exception("periodic dedup failed for %s; not enqueueing it", task.name)
            continue
        try:
            huey.enqueue(task)
        except Exception:
            # Free the minute again so another consumer (or a retry) can enqueue it.
            logger.exception("could not enqueue periodic task %s", task.name)
            with contextlib.suppress(Exception):
                store.delete(key)
            continue
        enqueued.append(task)
    return enqueued
