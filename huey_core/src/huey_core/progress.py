"""Progress of long tasks: `task.progress(done, total, note)` inside, `result.progress()` outside.

A task declared with `context=True` gets `task` and reports with `task.progress(...)`. The latest
report is stored as JSON under `progress:<task id>` ({"done", "total", "note", "time"}, kept for
`result_ttl` or a day) and published as a `progress` event with `done`, `total` and `note`.
Reports are rate-limited per task to one write every `INTERVAL` seconds: a tight loop costs the
backend ten writes a second at most, and the report held back is written when the interval ends
(or when the task returns), so the last one always lands.
"""

from __future__ import annotations

import json
import logging
import numbers
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

from huey_core import keys
from huey_core.events import EventStatus

if TYPE_CHECKING:
    from huey_core.api import Huey
    from huey_core.task import Task

__all__ = ["INTERVAL", "NOTE_LIMIT", "Progress", "ProgressReporter", "read_progress"]

logger = logging.getLogger("huey")

INTERVAL = 0.1  # seconds between two writes of one task's progress
NOTE_LIMIT = 200  # characters of a note kept: a label for a progress bar, not a log
DEFAULT_TTL = 86400.0  # a day, when the instance keeps results for ever


class Progress(NamedTuple):
    """The latest progress a task reported: `done` of `total` (None: unknown), a note, unix time."""

    done: float
    total: float | None
    note: str | None
    time: float

    @property
    def fraction(self) -> float | None:
        """done / total between 0 and 1, or None without a positive total."""
        if not self.total or self.total <= 0:
            return None
        return max(0.0, min(1.0, self.done / self.total))


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"task.progress(): {what} must be a number, got {value!r}")
    return value  # type: ignore[return-value]


def make_progress(done: float, total: float | None, note: str | None) -> Progress:
    """A Progress for now; TypeError when done/total are not numbers or note is not a string."""
    _number(done, "done")
    if total is not None:
        _number(total, "total")
    if note is not None:
        if not isinstance(note, str):
            raise TypeError(f"task.progress(): note must be a string, got {note!r}")
        note = note[:NOTE_LIMIT]
    return Progress(done, total, note, time.time())


class ProgressReporter:
    """Writes one running task's progress, at most once every INTERVAL seconds."""

    def __init__(self, huey: Huey, task: Task) -> None:
        self.huey = huey
        self.task = task
        self.worker = huey.current_worker  # the timer thread publishes in the worker's name
        self.writes = 0
        self._lock = threading.Lock()  # one write at a time, in report order
        self._pending: Progress | None = None
        self._next_write = 0.0  # monotonic time from which a report may be written at once
        self._timer: threading.Timer | None = None

    def report(self, done: float, total: float | None = None, note: str | None = None) -> None:
        progress = make_progress(done, total, note)
        with self._lock:
            self._pending = progress
            wait = self._next_write - time.monotonic()
            if wait <= 0:
                self._cancel_timer()
                self._write_pending()
            elif self._timer is None:
                self._start_timer(wait)

    def _start_timer(self, wait: float) -> None:
        timer = threading.Timer(wait, lambda: self._timer_fired(timer))
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timer_fired(self, timer: threading.Timer) -> None:
        # A timer that fired while the task held the lock may find its report already written
        # (a later report fell due and wrote at once): then it is stale and writes nothing.
        with self._lock:
            if self._timer is not timer:
                return
            self._timer = None
            wait = self._next_write - time.monotonic()
            if wait > 0:
                self._start_timer(wait)
            else:
                self._write_pending()

    def flush(self) -> None:
        """Write the report held back, if any (the executor, as the task ends)."""
        with self._lock:
            self._cancel_timer()
            self._write_pending()

    def _write_pending(self) -> None:
        progress, self._pending = self._pending, None
        if progress is None:
            return
        self._next_write = time.monotonic() + INTERVAL
        self.writes += 1
        data = json.dumps(progress._asdict()).encode()
        ttl = self.huey.result_ttl or DEFAULT_TTL
        try:
            self.huey.storage.store.put(keys.progress(self.task.id), data, ttl)
        except Exception:  # noqa: BLE001 - progress is for people watching; the task goes on
            logger.warning("could not store the progress of task %s", self.task.id, exc_info=True)
        self.huey.emit(
            EventStatus.PROGRESS,
            self.task,
            worker=self.worker,
            done=progress.done,
            total=progress.total,
            note=progress.note,
        )


def read_progress(huey: Huey, task_id: str) -> Progress | None:
    """The latest progress stored for `task_id` (one peek), or None when there is none."""
    raw = huey.storage.store.peek(keys.progress(task_id))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return Progress(data["done"], data.get("total"), data.get("note"), data["time"])
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring unreadable progress stored for task %s", task_id)
        return None
