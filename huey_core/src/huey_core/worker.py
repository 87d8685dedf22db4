"""The worker loop: claim a message under a lease, process it, acknowledge it.

A worker claims one message at a time (`queue.dequeue`), hands it to `huey.process()` and
acknowledges the lease afterwards, so a message is deleted only once its task has ended. The ack
of a finished message rides on the next claim (`queue.ack_and_dequeue`: one round trip where the
backend can). While the task runs, the consumer's heartbeat extends the lease.

Backend errors (server down, connection reset) never end a worker: it logs them, backs off with
the polling backoff and tries again. A message whose processing failed half-way (a result that
could not be stored, say) is released so it runs again; the delivery count dead-letters it if
that keeps happening.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from huey_core import aio, limits
from huey_core.exceptions import ConfigurationError
from huey_core.plugins import mask_url
from huey_core.protocols import Delivery, Queue

if TYPE_CHECKING:
    from huey_core.consumer import Consumer

__all__ = ["BLOCKING_WAIT", "CLAIM_MAX", "CLAIM_WINDOW", "Backoff", "Worker", "describe_error"]

logger = logging.getLogger("huey.consumer")

BLOCKING_WAIT = 1.0  # seconds per blocking dequeue: short, so a shutdown is noticed promptly
# A worker claims several messages per round trip while its tasks are quick: about as many as
# run in CLAIM_WINDOW seconds, at most CLAIM_MAX. Each has its own lease, extended by the
# heartbeat while it waits its turn; a crash strands at most CLAIM_MAX per worker until their
# leases expire, and a slow task never holds messages other workers could run. A worker claims
# one at a time while its pace is unknown, and while another worker of its consumer is waiting
# for work: a batch never keeps messages from a worker that is idle at that moment. A worker
# that runs out of work takes the last waiting message of a fellow worker's batch before it
# claims from the backend, so a quick task claimed behind a long one does not wait for it.
CLAIM_WINDOW = 0.02
CLAIM_MAX = 16


def describe_error(exc: BaseException) -> str:
    """One line for the log: exception type and message, with any URL password masked."""
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {mask_url(text)}"


class Backoff:
    """The polling delay: `initial`, then times `factor` per empty poll, capped at `maximum`.

    `next()` returns the delay to sleep now and grows the next one; `reset()` (after a message
    arrives) starts again at `initial`. The same sequence paces retries after backend errors.
    """

    def __init__(self, initial: float = 0.1, factor: float = 1.15, maximum: float = 10.0) -> None:
        limits.check_seconds("the polling delay", initial, 0.0, open_min=True)
        limits.check_seconds("the maximum delay", maximum, 0.0, open_min=True)
        if not math.isfinite(factor) or factor <= 1:
            raise ConfigurationError(f"the backoff factor must be greater than 1, got {factor}")
        if maximum < initial:
            raise ConfigurationError(
                f"the maximum delay ({maximum}) must be at least the initial delay ({initial})"
            )
        self.initial = initial
        self.factor = factor
        self.maximum = maximum
        self._current = initial

    def next(self) -> float:
        delay = self._current
        self._current = min(self._current * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        self._current = self.initial

    @property
    def current(self) -> float:
        """The delay the next `next()` call will return."""
        return self._current


class Worker:
    """One worker thread: dequeue, process, acknowledge, until the consumer stops taking work."""

    def __init__(self, consumer: Consumer, index: int) -> None:
        self.consumer = consumer
        self.index = index
        self.name = f"Worker-{index}"
        self.owner = ""  # set in start(): the pid differs in a forked child
        self.thread: threading.Thread | None = None
        self.backoff = Backoff(consumer.initial_delay, consumer.backoff, consumer.max_delay)
        # Every polling sleep and every message received, in order: ("sleep", delay) and
        # ("hit", 0.0). Bounded, so a long-running consumer does not grow it.
        self.polls: deque[tuple[str, float]] = deque(maxlen=1000)
        self.processed = 0
        self.handled = 0  # messages taken, counted against the consumer's max_tasks
        self.claiming = False  # in a claim: a round trip, or a wait for work when idle
        self.idle = True  # its last claim found nothing: a claim now is a wait for work
        self.recycled = False  # left after max_tasks: the consumer starts a fresh worker
        self.backend_errors = 0
        self._lock = threading.Lock()  # decides between ack (worker) and release (shutdown)
        self._current: Delivery | None = None
        self._current_since = 0.0
        self._abandoned = False
        self._phase = "idle"  # running (the task) or acking (the task is done)
        self._failures = 0  # consecutive backend errors
        self._process_failures = 0  # consecutive process() calls that raised
        self._finished: list[Delivery] = []  # done, to be acked by the next claim
        self._unsettled: list[Delivery] = []  # acks sent, their answers not read yet
        self._claimed: deque[Delivery] = deque()  # claimed in a batch, not started yet
        self._task_seconds = CLAIM_WINDOW  # recent average time per message (claim sizing)

    @property
    def queue(self) -> Queue:
        return self.consumer.huey.storage.queue

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{self.name}"
        self.thread = threading.Thread(target=self.run, name=f"huey-{self.name}", daemon=True)
        self.thread.start()

    def run_here(self) -> None:
        """Run the worker loop on the calling thread (a worker process's main thread, where
        SIGALRM can interrupt a task that outlives its timeout)."""
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{self.name}"
        self.thread = threading.current_thread()
        self.run()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._current is not None and not self._abandoned

    @property
    def running_since(self) -> float | None:
        """When its current task started (time.monotonic()); None between tasks."""
        with self._lock:
            running = self._phase == "running" and self._current is not None
            return self._current_since if running else None

    def is_alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def run(self) -> None:
        huey = self.consumer.huey
        try:
            huey.run_startup_hooks()
        except Exception:
            logger.exception("%s: a startup hook failed; the worker runs anyway", self.name)
        try:
            self.loop()
        finally:
            if not self.consumer.hard_stop.is_set():
                try:
                    huey.run_shutdown_hooks()
                except Exception:
                    logger.exception("%s: a shutdown hook failed", self.name)
            aio.close_thread_loop()  # the loop async tasks and hooks of this worker ran on

    def loop(self) -> None:
        gate = self.consumer.gate
        if gate is not None and gate.parks_at_start(self):
            gate.park(self)
        try:
            while not self.consumer.stopping.is_set():
                delivery = self._next()
                if delivery is None:
                    continue
                if self.consumer.stopping.is_set():
                    # Stop arrived while we were claiming: hand it straight back, untouched.
                    self._release(delivery)
                    break
                self.handle(delivery)
                if self._reached_max_tasks():
                    break
                if gate is not None and not self._claimed and gate.should_park(self):
                    self._flush_ack()  # a parked worker holds no message
                    gate.park(self)
        finally:
            self._release_claimed()
            self._flush_ack()

    def _reached_max_tasks(self) -> bool:
        """-M/--max-tasks: after that many messages the worker leaves and is replaced."""
        self.handled += 1
        limit = self.consumer.max_tasks
        if limit is None or self.handled < limit:
            return False
        logger.info("%s: reached max tasks (%d); a new worker takes over", self.name, limit)
        self.recycled = True
        return True

    def _next(self) -> Delivery | None:
        """The next claimed message: from the current batch, else from a new claim."""
        with self._lock:
            if self._claimed:
                return self._claimed.popleft()
        stolen = self._take_from_fellow()
        if stolen is not None:
            return stolen
        batch = self._claim()
        if not batch:
            return None
        first = batch[0]
        if len(batch) > 1:
            # Decode the batch and read its revocations in one round trip (checked again if
            # the batch takes long enough for a revocation to arrive meanwhile).
            self.consumer.huey.executor.prepare(batch)
        heartbeat = self.consumer.heartbeat
        for delivery in batch:  # leases waiting in the batch stay alive too
            heartbeat.add(delivery.lease, self.name, running=False)
        with self._lock:
            self._claimed.extend(batch[1:])
        return first

    def _take_from_fellow(self) -> Delivery | None:
        """The last waiting message of another worker's batch, if one has any (its lease stays
        alive in the heartbeat; the worker that runs it acknowledges it)."""
        for worker in self.consumer.worker_list:
            if worker is self:
                continue
            with worker._lock:
                if worker._claimed:
                    return worker._claimed.pop()
        return None

    def _claim_size(self) -> int:
        """How many messages to claim: as many as run in about CLAIM_WINDOW seconds at the
        recent pace of this worker's tasks, at most CLAIM_MAX (a crash strands that many
        leases until they expire); 1 while tasks are slow, so idle workers get the rest."""
        average = self._task_seconds
        if average <= 0 or any(
            w.claiming and w.idle for w in self.consumer.worker_list if w is not self
        ):
            return 1  # a fellow waits for work: leave the next message to it
        size = max(1, min(CLAIM_MAX, int(CLAIM_WINDOW / average)))
        limit = self.consumer.max_tasks  # -M: never claim past the task this worker leaves at
        return size if limit is None else max(1, min(size, limit - self.handled))

    def _claim(self) -> list[Delivery]:
        """The next batch of messages (acking the finished ones on the way); [] after a wait."""
        consumer = self.consumer
        wait = BLOCKING_WAIT if consumer.blocking else 0.0
        self._settle_acks()
        finished, self._finished = self._finished, []
        n = self._claim_size()
        self.claiming = True
        try:
            if finished:
                batch = self.queue.ack_and_dequeue_many(
                    [d.lease for d in finished], self.owner, consumer.lease_timeout, n, wait=wait
                )
                self._log_acks(finished)
            else:
                batch = self.queue.dequeue_many(self.owner, consumer.lease_timeout, n, wait=wait)
        except Exception as exc:  # noqa: BLE001 - server down: back off, never die
            self._backend_error("ack-and-dequeue" if finished else "dequeue", exc)
            for delivery in finished:
                self._ack(delivery)  # the ack may not have happened: until it works
            return []
        finally:
            self.claiming = False
        self._backend_ok()
        # A fellow busy with quick tasks claims again at once; only one whose last claim found
        # nothing is waiting for work (else every claim of a busy consumer would be one message
        # and cost a revocation read of its own).
        self.idle = not batch
        if not batch:
            if consumer.gate is not None:
                consumer.gate.wake_all()  # the queue ran empty: every worker waits for work
            if consumer.blocking:
                self.backoff.reset()
            else:
                self._sleep(self.backoff.next())
            return []
        self.backoff.reset()
        self.polls.append(("hit", 0.0))
        return batch

    def _log_acks(self, finished: list[Delivery]) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            for delivery in finished:
                logger.debug("%s: acknowledged message %s", self.name, delivery.lease)

    def _flush_ack(self) -> None:
        """Acknowledge the finished messages still waiting to ride on the next claim."""
        self._settle_acks()
        finished, self._finished = self._finished, []
        if len(finished) > 1:
            try:
                self.queue.ack_many([d.lease for d in finished])
            except Exception as exc:  # noqa: BLE001 - one by one below, until each works
                self._backend_error("ack", exc, until=self.consumer.hard_stop)
            else:
                self._log_acks(finished)
                return
        for delivery in finished:
            self._ack(delivery)
            logger.debug("%s: acknowledged message %s", self.name, delivery.lease)

    def _release_claimed(self) -> int:
        """Give back the claimed messages no task has started on; return how many."""
        with self._lock:
            waiting = list(self._claimed)
            self._claimed.clear()
        for delivery in waiting:
            self.consumer.heartbeat.discard(delivery.lease)
            self._release(delivery)
        return len(waiting)

    def _sleep(self, delay: float) -> None:
        self.polls.append(("sleep", delay))
        self.consumer.stopping.wait(delay)

    def _backend_error(
        self, operation: str, exc: BaseException, until: threading.Event | None = None
    ) -> None:
        """Log a failed backend call and wait one backoff step (cut short when `until` is set)."""
        self.backend_errors += 1
        self._failures += 1
        delay = self.backoff.next()
        # While a server is down every poll fails: warn on the first failure and every tenth,
        # so the log says what is going on without a line per retry.
        level = logging.WARNING if self._failures % 10 == 1 else logging.DEBUG
        logger.log(
            level,
            "%s: %s failed on %s (%s); retrying in %.2f s (failure %d in a row)",
            self.name,
            operation,
            self.consumer.backend_description,
            describe_error(exc),
            delay,
            self._failures,
        )
        (self.consumer.stopping if until is None else until).wait(delay)

    def _backend_ok(self) -> None:
        if self._failures:
            logger.info(
                "%s: the backend answers again after %d failure(s)", self.name, self._failures
            )
            self._failures = 0

    # -- one message ---------------------------------------------------------------------------

    def handle(self, delivery: Delivery) -> None:
        """Process one message and acknowledge it; the lease stays extended until the ack."""
        consumer = self.consumer
        with self._lock:
            self._current = delivery
            self._current_since = time.monotonic()
            self._phase = "running"
            self._abandoned = False
        consumer.heartbeat.add(delivery.lease, self.name)
        logger.debug(
            "%s: leased message %s (delivery %d)", self.name, delivery.lease, delivery.deliveries
        )
        try:
            started = time.monotonic()
            done = self._process(delivery)
            # an average over the last few tasks: one slow task shrinks the next claim at once
            self._task_seconds = (self._task_seconds + time.monotonic() - started) / 2
            with self._lock:
                abandoned = self._abandoned
                self._phase = "acking"
            if not abandoned:  # else shutdown released the lease: the message is queued again
                self._settle(delivery, done)
        finally:
            consumer.heartbeat.discard(delivery.lease)
            with self._lock:
                self._current = None

    def _process(self, delivery: Delivery) -> bool:
        """huey.process(); True when the message is done (ack), False to release it."""
        try:
            done = self.consumer.huey.process(delivery, worker=self.owner)
        except BaseException as exc:  # noqa: BLE001 - whatever it was, the worker goes on
            # process() handles everything a task or a message does; this is a backend failure
            # half-way (e.g. storing the result), or a hook or signal receiver that raised
            # SystemExit or KeyboardInterrupt outside the task. Give the message back at once
            # so it runs again; its delivery count dead-letters it if this keeps happening.
            self._process_failures += 1
            self._log_process_failure(exc)
            return False
        self._process_failures = 0
        if not done:
            # An exit signal cut the task short: not done, so no ack. Release it to run again;
            # the delivery count dead-letters a task that does this every time.
            logger.warning(
                "%s: its task was interrupted before it finished; releasing it to the queue",
                self.name,
            )
        return done

    def _log_process_failure(self, exc: BaseException) -> None:
        if self._process_failures % 10 == 1:  # the traceback once, then every tenth time
            logger.exception(
                "%s: processing a message failed outside the task (failure %d in a row); "
                "releasing it to the queue",
                self.name,
                self._process_failures,
            )
        else:
            logger.warning(
                "%s: processing a message failed again (%s; failure %d in a row); releasing it "
                "to the queue",
                self.name,
                describe_error(exc),
                self._process_failures,
            )

    def _settle(self, delivery: Delivery, done: bool) -> None:
        self.processed += 1
        if not done:
            self._release(delivery)
            # Whatever failed (most likely the backend) may fail again at once: no spinning.
            self.consumer.stopping.wait(self.backoff.next())
        elif not self.consumer.stopping.is_set() and not self._claimed:
            # The last of its batch: acknowledged by the next claim, which the loop makes right
            # away (and _flush_ack when the loop ends): one round trip for both.
            self._finished.append(delivery)
        else:
            # Acked before the next task starts, so a crash in that task never runs this one
            # again: a crash re-runs only what was running. The ack is sent now; its answer is
            # read before the next claim (queue.ack_soon), so no task waits for it.
            self._ack_soon(delivery)

    def _ack_soon(self, delivery: Delivery) -> None:
        try:
            self.queue.ack_soon(delivery.lease)
        except Exception as exc:  # noqa: BLE001 - no ack in flight is known to have happened
            self._backend_error("ack", exc, until=self.consumer.hard_stop)
            unsure, self._unsettled = [*self._unsettled, delivery], []
            for each in unsure:
                self._ack(each)
            return
        self._unsettled.append(delivery)
        logger.debug("%s: acknowledged message %s", self.name, delivery.lease)

    def _settle_acks(self) -> None:
        """Read the answers to the acks in flight (ack_soon); ack again if that failed."""
        unsettled, self._unsettled = self._unsettled, []
        if not unsettled:
            return
        try:
            self.queue.settle_acks()
        except Exception as exc:  # noqa: BLE001 - the acks may not have happened: again
            self._backend_error("ack", exc, until=self.consumer.hard_stop)
            for each in unsettled:
                self._ack(each)

    def _ack(self, delivery: Delivery) -> None:
        """Acknowledge until it works, or until shutdown gives up on it (the lease then expires
        and the task runs again: at-least-once)."""
        consumer = self.consumer
        while True:
            try:
                self.queue.ack(delivery.lease)
            except Exception as exc:  # noqa: BLE001
                # Not cut short by a graceful stop: that waits for acks (up to its timeout).
                self._backend_error("ack", exc, until=consumer.hard_stop)
                with self._lock:
                    gave_up = self._abandoned or consumer.acks_given_up.is_set()
                if gave_up or consumer.hard_stop.is_set():
                    return
                continue
            self._backend_ok()
            return

    def _release(self, delivery: Delivery) -> None:
        try:
            self.queue.release(delivery.lease)
        except Exception as exc:  # noqa: BLE001 - the lease expires and recover() requeues it
            logger.warning(
                "%s: could not release a message (%s); it returns when its lease expires",
                self.name,
                describe_error(exc),
            )

    def abandon(self, reason: str) -> bool:
        """Shutdown gives up on this worker's message. True when a running task was released.

        A running task's message goes back to the queue at once. A finished task whose ack keeps
        failing is left alone: its lease expires and the task may run again.
        """
        self._release_claimed()  # messages of this worker's batch that never started
        with self._lock:
            delivery = self._current
            if delivery is None or self._abandoned:
                return False
            self._abandoned = True
            phase = self._phase
        self.consumer.heartbeat.discard(delivery.lease)
        if phase != "running":
            logger.warning(
                "%s: %s before its finished task could be acknowledged; it may run again "
                "once its lease expires",
                self.name,
                reason,
            )
            return False
        self._release(delivery)
        running = time.monotonic() - self._current_since
        logger.warning(
            "%s: %s after %.1f s; its task was released back to the queue and will run again",
            self.name,
            reason,
            running,
        )
        return True
