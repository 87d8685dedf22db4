"""The bulk path: `huey.enqueue_many(tasks)` and `task.map(items)`.

Every message goes to the queue with one `queue.enqueue_many` call (one round trip on the
built-in backends), and the `enqueued` events go to the publisher in one hand-off; signals,
events and results are the same as one `huey.enqueue()` per task.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from huey_core import limits
from huey_core import signals as S
from huey_core.events import EventStatus, build_event, emit_event
from huey_core.results import ResultGroup, chord, group, pipeline_results

if TYPE_CHECKING:
    from huey_core.api import Huey
    from huey_core.task import Task

__all__ = ["enqueue_many"]

logger = logging.getLogger("huey")

# A bulk enqueue of more tasks than the event publisher holds waits (up to this many seconds)
# for it to send the events ahead, rather than dropping them: the caller is already waiting on
# a bulk write, and every stored message gets its `enqueued` event.
BULK_EVENTS_WAIT = 30.0


def enqueue_many(huey: Huey, tasks: list[Task]) -> list[Any] | None:
    """Store `tasks` in one bulk write; their Results in order (None if results=False).

    Every task is checked before anything is stored, so a bad one stores none of them. Groups
    and chords, and immediate mode, go through `huey.enqueue()` one by one.
    """
    if huey.immediate or any(isinstance(t, (group, chord)) for t in tasks):
        results = [huey.enqueue(t) for t in tasks]
        return results if huey.results else None
    for task in tasks:
        limits.check_task(task)
        if task.expires:
            task.resolve_expires(huey.utc)
    items = [(huey.serialize_task(task), task.priority or 0) for task in tasks]
    stamp = time.time()
    huey.storage.queue.enqueue_many(items)
    for task in tasks:  # only now: `enqueued` promises a stored message
        huey.signals.send(S.SIGNAL_ENQUEUED, task)
    _emit_many(huey, EventStatus.ENQUEUED, tasks, timestamp=stamp)
    if not huey.results:
        return None
    found: list[Any] = []
    for task in tasks:
        results = pipeline_results(huey, task)
        found.append(ResultGroup(results) if len(results) > 1 else results[0])
    return found


def _emit_many(huey: Huey, status: EventStatus, tasks: list[Task], **fields: Any) -> None:
    """huey.emit() for each task, handed to the publisher in one go. Never raises."""
    if not huey.events:
        return
    try:
        worker = huey.current_worker
        if worker:
            fields["worker"] = worker
        events = [build_event(status, t, utc=huey.utc, huey=huey.name, **fields) for t in tasks]
        emitter = huey.storage.events
        if emitter.inline:
            for event in events:
                emit_event(emitter, event)
        else:
            huey._publisher.submit_many(emitter, events, wait=BULK_EVENTS_WAIT)
    except Exception:
        logger.warning("could not emit %s events", status, exc_info=True)
