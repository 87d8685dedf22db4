"""Reading a Huey instance's queue, schedule and stored results: what `huey info` and tests look at.

`Huey` inherits these from `QueueInspection`; they go through the four protocols only.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from huey_core import clock, keys
from huey_core.exceptions import PoisonMessage

if TYPE_CHECKING:
    from huey_core.protocols import Backend
    from huey_core.task import Task

logger = logging.getLogger("huey")

__all__ = ["QueueInspection"]


class QueueInspection:
    """Read-only views of the queue, the schedule and the data store (plus `flush`)."""

    if TYPE_CHECKING:
        name: str
        utc: bool

        @property
        def storage(self) -> Backend: ...

        def deserialize_task(self, data: bytes) -> Task: ...

    def read_schedule(self, timestamp: datetime.datetime | None = None) -> list[Task]:
        """Remove and return the scheduled tasks due at `timestamp` (now by default)."""
        if timestamp is None:
            timestamp = clock.now(self.utc)
        due = clock.to_unix(timestamp, self.utc) or 0.0
        return self._deserialize_all(self.storage.schedule.pop_due(due))

    def _deserialize_all(self, messages: Iterable[bytes]) -> list[Task]:
        tasks = []
        for data in messages:
            try:
                tasks.append(self.deserialize_task(data))
            except PoisonMessage as exc:
                logger.warning("skipping a message that cannot be decoded: %s", exc)
        return tasks

    def pending(self, limit: int | None = None) -> list[Task]:
        return self._deserialize_all(self.storage.queue.peek(limit if limit is not None else 2**31))

    def pending_count(self) -> int:
        return self.storage.queue.size()

    def scheduled(self, limit: int | None = None) -> list[Task]:
        items = self.storage.schedule.peek(limit if limit is not None else 2**31)
        return self._deserialize_all(data for _, data in items)

    def scheduled_count(self) -> int:
        return self.storage.schedule.size()

    def all_results(self) -> dict[str, bytes]:
        """Raw stored values (results, revocations, locks), without internal bookkeeping keys."""
        internal = (keys.KeyKind.DEAD_LETTER, keys.KeyKind.INTERNAL)
        return {
            key: value
            for key, value in self.storage.store.items().items()
            if keys.classify(key, self.name) not in internal
        }

    def result_count(self) -> int:
        return len(self.all_results())

    def __bool__(self) -> bool:
        return True

    def __len__(self) -> int:
        return self.pending_count()

    def flush(self) -> None:
        """Empty the queue, the schedule and the data store of this instance."""
        storage = self.storage
        storage.queue.flush()
        storage.schedule.flush()
        storage.store.flush()
