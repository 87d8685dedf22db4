"""How many of a consumer's worker threads run at once while its tasks are quick.

Python runs one thread at a time (the GIL). A worker busy with quick tasks keeps the CPU busy on
its own; more threads only add hand-offs of the GIL at every blocking call (measured on Redis:
four threads drained a queue of no-op tasks 25-30% slower than one). So the worker threads beyond
the first start parked, and the consumer finds out by trial how many to run:

- once per PERIOD it measures its drain rate (tasks/s) and its CPU use (CPUs, from
  time.process_time());
- while the CPU has room (under SPARE) and workers are parked, it wakes as many as would bring
  the CPU to SPARE at the current pace per worker (tasks that wait on I/O overlap their waits);
- while the CPU is full (BUSY or more) and every running worker does quick tasks, it parks one;
- the next period judges the trial: it stays unless the rate fell (for one more worker: under
  KEEP[1] of before; for one fewer: under KEEP[-1]); a trial undone waits twice as long as the
  last before the next one the same way (from PROBE_MIN up to PROBE_MAX).

Whatever the trials say, a parked worker runs again within QUICK seconds once every running
worker is in a task that has taken QUICK or more (a slow task never holds up quick ones queued
behind it), at once when a worker finds the queue empty (idle workers all wait on the backend,
so a burst is claimed by all of them; the trials start afresh), and at shutdown. One parked
worker (the head) looks every QUICK seconds; the others sleep until it joins. A worker parks
only at the end of its batch and after acknowledging its finished messages: a parked worker
holds no message.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from huey_core.consumer import Consumer
    from huey_core.worker import Worker

__all__ = [
    "BUSY",
    "KEEP",
    "PERIOD",
    "PROBE_MAX",
    "PROBE_MIN",
    "QUICK",
    "SPARE",
    "RunGate",
    "Trials",
]

QUICK = 0.01  # seconds: a task under this is quick; past it, a parked worker may run
PERIOD = 0.1  # seconds per measurement: a trial runs this long
FIRST = 0.05  # seconds of work before the first measurement
BUSY = 0.9  # CPUs the process uses before it tries one quick worker fewer
SPARE = 0.7  # CPUs under which it tries more workers
KEEP = {1: 0.9, -1: 0.97}  # a trial stays when the rate keeps this share of the rate before it
PROBE_MIN = 0.1  # seconds before the first trial; a trial that stayed is followed by the next
PROBE_MAX = 5.0  # at once, one undone waits twice as long as the last, up to this


class Trials:
    """The decisions of a RunGate, from its measurements alone (no threads, no clock)."""

    def __init__(self, now: float) -> None:
        self._trial: tuple[int, float] | None = None  # (workers more or fewer, rate before)
        self._wait = {1: PROBE_MIN, -1: PROBE_MIN}  # per direction: seconds until the next trial
        self._next = {1: now + PROBE_MIN, -1: now + PROBE_MIN}

    def step(
        self, now: float, rate: float, load: float, running: int, parked: int, quick: bool
    ) -> int:
        """How many workers to wake (> 0) or park (< 0) after a period that drained `rate`
        tasks/s on `load` CPUs with `running` workers running and `parked` parked; `quick`:
        no running worker is in a slow task."""
        if self._trial is not None:
            change, before = self._trial
            self._trial = None
            direction = 1 if change > 0 else -1
            if rate >= before * KEEP[direction]:
                self._wait[direction] = PROBE_MIN
                self._next[direction] = now  # and the next step that way
                return 0
            self._wait[direction] = min(self._wait[direction] * 2, PROBE_MAX)
            self._next[direction] = now + self._wait[direction]
            return -change  # back to what it was
        if running > 1 and quick and load >= BUSY and now >= self._next[-1]:
            change = -1  # the CPU is full: would one worker fewer do as well?
        elif parked > 0 and load < SPARE and now >= self._next[1]:
            # The CPU has room: as many more as would bring it to SPARE at this pace per worker.
            wanted = math.ceil(running * SPARE / max(load, 0.01)) - running
            change = max(1, min(parked, wanted))
        else:
            return 0
        self._trial = (change, rate)
        return change


class RunGate:
    """Parks and wakes the worker threads of one consumer (see the module docstring)."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self._cond = threading.Condition(threading.Lock())
        # Parked workers, each with the wake_all() count when it parked: one that comes while a
        # worker acknowledges its batch on the way to park() wakes it too.
        self._parked: dict[Worker, int] = {}
        self._head: Worker | None = None  # the parked worker that looks every QUICK seconds
        self._wakeups = 0  # bumped by wake_all(): every parked worker runs again
        self._first: Worker | None = None  # the worker that does not park at start
        self._to_park = 0  # workers to park at the end of their batch
        self._to_join = 0  # parked workers to wake
        self._restart(time.monotonic())
        self.rate = 0.0  # tasks per second over the last period
        self.load = 0.0  # CPUs the process used over the last period
        self.parks = 0  # how many times a worker parked (for tests and operators)

    @property
    def parked(self) -> int:
        return len(self._parked)

    def _restart(self, now: float, first: float = PERIOD) -> None:
        self._tick = now + first  # the next measurement
        self._mark = (now, self._done(), time.process_time())  # time, tasks done, CPU time
        self._trials = Trials(now)

    def _done(self) -> int:
        return sum(w.processed for w in self._consumer.worker_list)

    # -- measuring and deciding ----------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Once per PERIOD (whoever comes first): measure, and wake or park workers."""
        if now < self._tick:
            return
        with self._cond:
            if now < self._tick:
                return
            self._tick = now + PERIOD
            done, cpu = self._done(), time.process_time()
            then, done_then, cpu_then = self._mark
            self._mark = (now, done, cpu)
            if done < done_then:
                return  # a worker was replaced (max tasks): its count started again
            self.rate = (done - done_then) / (now - then)
            self.load = (cpu - cpu_then) / (now - then)
            parked = len(self._parked) - self._to_join
            running = self._consumer.workers - parked - self._to_park
            quick = self._free_for_quick_work(now) >= running
            change = self._trials.step(now, self.rate, self.load, running, parked, quick)
            if change > 0:
                self._to_join += change
                self._cond.notify_all()  # the head looks now
            elif change < 0:
                self._to_park -= change

    def _free_for_quick_work(self, now: float) -> int:
        """Running workers not stuck in a slow task (in a claim, between tasks, or in a task
        younger than QUICK)."""
        free = 0
        for worker in self._consumer.worker_list:
            if worker in self._parked or not worker.is_alive():
                continue
            since = worker.running_since
            if since is None or now - since < QUICK:
                free += 1
        return free

    # -- the workers' side ---------------------------------------------------------------------

    def parks_at_start(self, worker: Worker) -> bool:
        """Every worker but the first starts parked: trials decide how many join it."""
        with self._cond:
            if self._first is None or not self._first.is_alive():
                if self._first is None:  # the first measurement starts with the work
                    self._restart(time.monotonic(), FIRST)
                self._first = worker
                return False
            self._parked[worker] = self._wakeups
            return True

    def should_park(self, worker: Worker) -> bool:
        """Called by a worker at the end of its batch: True when it is to park now."""
        self.tick(time.monotonic())
        if not self._to_park:
            return False  # the common case
        with self._cond:
            if not self._to_park or self._consumer.stopping.is_set():
                return False
            self._to_park -= 1
            if len(self._parked) + 1 >= self._consumer.workers:
                return False  # the last one running never parks
            self._parked[worker] = self._wakeups
            self.parks += 1
        return True

    def park(self, worker: Worker) -> None:
        """Wait until `worker` is to run again (parks_at_start() or should_park() said True)."""
        stopping = self._consumer.stopping
        with self._cond:
            wakeups = self._parked.get(worker, self._wakeups)
            try:
                while not stopping.is_set() and self._wakeups == wakeups:
                    if self._head is None:
                        self._head = worker
                    if self._head is not worker:
                        self._cond.wait(1.0)  # until the head joins (or a wake_all)
                        continue
                    if self._to_join:
                        self._to_join -= 1
                        break
                    self._cond.wait(QUICK)
                    now = time.monotonic()
                    if not self._free_for_quick_work(now):
                        break  # every running worker is in a slow task
                    self._cond.release()  # tick() takes the lock
                    try:
                        self.tick(now)
                    finally:
                        self._cond.acquire()
            finally:
                self._parked.pop(worker, None)
                if self._head is worker:
                    self._head = None
                    self._cond.notify_all()  # the next parked worker becomes the head

    def wake_all(self) -> None:
        """Every parked worker runs again (the queue ran empty, or the consumer stops); the
        next busy spell starts its trials afresh."""
        with self._cond:
            self._wakeups += 1
            self._to_join = self._to_park = 0
            self._restart(time.monotonic())
            self._cond.notify_all()
