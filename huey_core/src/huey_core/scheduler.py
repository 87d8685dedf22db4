"""The consumer's two background threads besides its workers.

- `Heartbeat` keeps the leases of running tasks alive, so a long task is not handed to another
  consumer; a consumer killed with SIGKILL stops extending, and its leases expire.
- `Scheduler` moves due scheduled messages to the queue, recovers expired leases (any consumer's)
  and enqueues periodic tasks once a minute (deduplicated across consumers by the core).
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from huey_core import clock, keys
from huey_core.events import EventStatus, consumer_identity
from huey_core.task import Task
from huey_core.worker import Backoff, describe_error

if TYPE_CHECKING:
    from huey_core.consumer import Consumer

__all__ = ["MOVE_LIMIT", "Heartbeat", "Scheduler"]

logger = logging.getLogger("huey.consumer")

MOVE_LIMIT = 1000  # messages per move_due call; the scheduler loops while a call fills it


class Heartbeat:
    """One thread per consumer that keeps the leases of running tasks alive.

    Every `lease_timeout / 3` seconds it extends every registered lease; a lease the backend no
    longer knows (recovered by another consumer after a stall) is logged, because that task may
    now run twice. On the same beat it records when each running task started under
    `inflight:<host>:<pid>` in the data store (expiring with the lease), so `huey info` can show
    how long a task has been running; nothing is written while no task runs.
    """

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self._leases: dict[str, str] = {}  # lease -> worker name
        self._since: dict[str, float] = {}  # lease -> unix time the worker took it
        self._published = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.extensions = 0  # successful extend() calls, for tests and `huey info`

    @property
    def interval(self) -> float:
        return max(self.consumer.lease_timeout / 3.0, 0.01)

    def add(self, lease: str, worker: str, running: bool = True) -> None:
        """Keep `lease` alive; `running` False for a claimed message still waiting its turn
        (not shown as running until added again with running True)."""
        with self._lock:
            self._leases[lease] = worker
            if running:
                self._since[lease] = time.time()

    def discard(self, lease: str) -> None:
        with self._lock:
            self._leases.pop(lease, None)
            self._since.pop(lease, None)

    def start(self) -> None:
        self._stop.clear()
        self.thread = threading.Thread(target=self._run, name="huey-heartbeat", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        """Extend every held lease once and record the running tasks."""
        with self._lock:
            held = list(self._leases.items())
        for lease, worker in held:
            self._extend(lease, worker)
        self._publish_running()

    def _extend(self, lease: str, worker: str) -> None:
        queue = self.consumer.huey.storage.queue
        try:
            alive = queue.extend(lease, self.consumer.lease_timeout)
        except Exception as exc:  # noqa: BLE001 - the backend may be down; try next beat
            logger.warning(
                "%s: could not extend the lease of its running task (%s); will retry",
                worker,
                describe_error(exc),
            )
            return
        if alive:
            self.extensions += 1
            return
        with self._lock:
            still_running = lease in self._leases
        if still_running:
            logger.warning(
                "%s: the lease of its running task expired and was recovered; "
                "another consumer may run the task again",
                worker,
            )

    def _publish_running(self) -> None:
        """Write (or, once idle, delete) this process's in-flight record for `huey info`."""
        with self._lock:
            running = {
                lease: {"worker": self._leases[lease], "since": since}
                for lease, since in self._since.items()
                if lease in self._leases
            }
        if not running and not self._published:
            return
        store = self.consumer.huey.storage.store
        key = keys.inflight(consumer_identity())
        try:
            if running:
                ttl = self.consumer.lease_timeout + self.interval
                store.put(key, json.dumps(running).encode(), ttl=ttl)
            else:
                store.delete(key)
            self._published = bool(running)
        except Exception:  # noqa: BLE001 - bookkeeping for operators; the next beat retries
            logger.debug("could not record running tasks", exc_info=True)


class Scheduler:
    """Moves due messages to the queue, recovers expired leases, and enqueues periodic tasks."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.backoff = Backoff(consumer.initial_delay, consumer.backoff, consumer.max_delay)
        self.last_periodic_minute: datetime.datetime | None = None
        self._failures = 0

    def start(self) -> None:
        self._stop.clear()
        self.thread = threading.Thread(target=self._run, name="huey-scheduler", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        interval = self.consumer.scheduler_interval
        while not self._stop.is_set():
            failed = self.tick()
            if failed:
                self._failed(failed)
                continue
            if self._failures:
                logger.info(
                    "scheduler: the backend answers again after %d failure(s)", self._failures
                )
                self._failures = 0
            self.backoff.reset()
            self._stop.wait(self._next_wait(interval))

    def _failed(self, failed: list[tuple[str, Exception]]) -> None:
        delay = self.backoff.next()
        self._failures += 1
        logger.log(
            logging.WARNING if self._failures % 10 == 1 else logging.DEBUG,
            "scheduler: %s on %s; retrying in %.2f s (failure %d in a row)",
            "; ".join(f"{step} failed ({describe_error(exc)})" for step, exc in failed),
            self.consumer.backend_description,
            delay,
            self._failures,
        )
        self._stop.wait(delay)

    def _next_wait(self, interval: float) -> float:
        if not self.consumer.periodic:
            return interval
        # Never sleep across a minute boundary by more than a moment: periodic tasks are due
        # at the start of the minute.
        to_next_minute = 60.0 - (time.time() % 60.0) + 0.01
        return max(min(interval, to_next_minute), 0.01)

    def tick(self, now: float | None = None) -> list[tuple[str, Exception]]:
        """One scheduler step: move due messages, recover expired leases, periodic check.

        Each part runs whether or not the others fail: a schedule the backend cannot move
        must not hold back the recovery of a dead consumer's tasks, nor the periodic tasks.
        Returns the parts that failed, with their errors (empty when all went well).
        """
        now = time.time() if now is None else now
        steps: list[tuple[str, Callable[[], object]]] = [
            ("moving due tasks", lambda: self.move_due(now)),
            ("recovering expired leases", self.recover),
        ]
        if self.consumer.periodic:
            steps.append(("enqueueing periodic tasks", lambda: self.periodic_check(now)))
        failed: list[tuple[str, Exception]] = []
        for step, run in steps:
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - server down: back off, never die
                failed.append((step, exc))
        return failed

    def move_due(self, now: float) -> int:
        schedule = self.consumer.huey.storage.schedule
        moved = 0
        while True:
            n = schedule.move_due(now, MOVE_LIMIT)
            moved += n
            if n < MOVE_LIMIT or self._stop.is_set():
                break
        if moved:
            logger.debug("scheduler: moved %d due task(s) to the queue", moved)
        return moved

    def recover(self) -> int:
        recovered = self.consumer.huey.storage.queue.recover()
        if recovered:
            logger.warning(
                "scheduler: recovered %d task(s) whose consumer stopped extending the lease; "
                "they will run again",
                recovered,
            )
            self.consumer.huey.emit(EventStatus.RECOVERED, None, count=recovered)
        return recovered

    def periodic_check(self, now: float) -> list[Task]:
        """Enqueue periodic tasks once per minute: the first check in a new minute does it."""
        minute = clock.to_datetime(now, self.consumer.utc).replace(second=0, microsecond=0)
        if minute == self.last_periodic_minute:
            return []
        tasks = self.consumer.enqueue_periodic(minute)
        # Only now: if the backend failed half-way, the next tick tries this minute again, and
        # the per-minute dedup keys keep the tasks already enqueued from being enqueued twice.
        self.last_periodic_minute = minute
        return tasks
