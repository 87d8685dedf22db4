"""The consumer: worker threads or processes, the scheduler, the periodic enqueuer, shutdown.

A worker claims one message at a time under a lease (`queue.dequeue`), hands it to
`huey.process()` and acknowledges the lease afterwards, so a message is deleted only once its task
has ended. While the task runs, the consumer's heartbeat thread extends the lease, so a long task
is not handed to another consumer; a consumer killed with SIGKILL stops extending and its leases
expire, after which any consumer's scheduler `recover()`s them.

Shutdown (SIGTERM or SIGINT, or `stop()`): workers stop taking work and finish what they hold;
after `shutdown_timeout` seconds, tasks still running are released back to the queue (event
`interrupted`). The schedule stays in storage. A second signal stops at once, releasing every lease
still held, so nothing acknowledged is lost and nothing in flight waits for its lease to expire.

Backend errors (server down, connection reset) never end a worker or the consumer: the worker logs
them, backs off with the polling backoff and tries again.
"""

from __future__ import annotations

import datetime
import json
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from huey_core.events import consumer_identity
from huey_core.exceptions import ConfigurationError
from huey_core.plugins import mask_url

if TYPE_CHECKING:
    from huey_core.protocols import Delivery

__all__ = ["Backoff", "Consumer", "WORKER_TYPES", "MODES"]

logger = logging.getLogger("huey.consumer")

WORKER_TYPES = ("thread", "process")
MODES = ("auto", "blocking", "polling")

BLOCKING_WAIT = 1.0  # seconds per blocking dequeue: short, so a shutdown is noticed promptly
_RUNNING, _STOP_GRACEFUL, _STOP_NOW = 0, 1, 2  # parent -> worker process commands
MOVE_LIMIT = 1000  # messages per move_due call; the scheduler loops while a call fills it


def _describe_error(exc: BaseException) -> str:
    """One line for the log: exception type and message, with any URL password masked."""
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {mask_url(text)}"


class Backoff:
    """The polling delay: `initial`, then times `factor` per empty poll, capped at `maximum`.

    `next()` returns the delay to sleep now and grows the next one; `reset()` (after a message
    arrives) starts again at `initial`. The same sequence paces retries after backend errors.
    """

    def __init__(self, initial: float = 0.1, factor: float = 1.15, maximum: float = 10.0) -> None:
        if initial <= 0:
            raise ConfigurationError(f"the polling delay must be > 0, got {initial}")
        if factor <= 1:
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


# Data-store keys under which each consumer process records when its running tasks started.
INFLIGHT_PREFIX = "inflight:"


class _Heartbeat:
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

    def add(self, lease: str, worker: str) -> None:
        with self._lock:
            self._leases[lease] = worker
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
        queue = self.consumer.huey.storage.queue
        while not self._stop.wait(self.interval):
            with self._lock:
                held = list(self._leases.items())
            for lease, worker in held:
                try:
                    alive = queue.extend(lease, self.consumer.lease_timeout)
                except Exception as exc:  # noqa: BLE001 - the backend may be down; try next beat
                    logger.warning(
                        "%s: could not extend the lease of its running task (%s); will retry",
                        worker,
                        _describe_error(exc),
                    )
                    continue
                if alive:
                    self.extensions += 1
                    continue
                with self._lock:
                    still_running = lease in self._leases
                if still_running:
                    logger.warning(
                        "%s: the lease of its running task expired and was recovered; "
                        "another consumer may run the task again",
                        worker,
                    )
            self._publish_running()

    def _publish_running(self) -> None:
        """Write (or, once idle, delete) this process's in-flight record for `huey info`."""
        with self._lock:
            running = {
                lease: {"worker": worker, "since": self._since.get(lease)}
                for lease, worker in self._leases.items()
            }
        if not running and not self._published:
            return
        store = self.consumer.huey.storage.store
        key = f"{INFLIGHT_PREFIX}{consumer_identity()}"
        try:
            if running:
                ttl = self.consumer.lease_timeout + self.interval
                store.put(key, json.dumps(running).encode(), ttl=ttl)
            else:
                store.delete(key)
            self._published = bool(running)
        except Exception:  # noqa: BLE001 - bookkeeping for operators; the next beat retries
            logger.debug("could not record running tasks", exc_info=True)


class _Worker:
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
        self.backend_errors = 0
        self._lock = threading.Lock()  # decides between ack (worker) and release (shutdown)
        self._current: Delivery | None = None
        self._current_since = 0.0
        self._abandoned = False
        self._phase = "idle"  # running (the task) or acking (the task is done)
        self._failures = 0  # consecutive backend errors
        self._process_failures = 0  # consecutive process() calls that raised
        self._finished: Delivery | None = None  # done, to be acked by the next dequeue

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{self.name}"
        self.thread = threading.Thread(target=self.run, name=f"huey-{self.name}", daemon=True)
        self.thread.start()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._current is not None and not self._abandoned

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
            if not self.consumer._hard_stop.is_set():
                try:
                    huey.run_shutdown_hooks()
                except Exception:
                    logger.exception("%s: a shutdown hook failed", self.name)

    def loop(self) -> None:
        consumer = self.consumer
        queue = consumer.huey.storage.queue
        try:
            self._loop(queue)
        finally:
            self._flush_ack()

    def _loop(self, queue: Any) -> None:
        consumer = self.consumer
        while not consumer._stopping.is_set():
            wait = BLOCKING_WAIT if consumer.blocking else 0.0
            finished, self._finished = self._finished, None
            try:
                if finished is not None:
                    # Ack the finished message and claim the next one in one round trip.
                    delivery = queue.ack_and_dequeue(
                        finished.lease, self.owner, consumer.lease_timeout, wait=wait
                    )
                    logger.debug("%s: acknowledged message %s", self.name, finished.lease)
                else:
                    delivery = queue.dequeue(self.owner, consumer.lease_timeout, wait=wait)
            except Exception as exc:  # noqa: BLE001 - server down: back off, never die
                self._backend_error("ack-and-dequeue" if finished else "dequeue", exc)
                if finished is not None:
                    self._ack(finished)  # the ack may not have happened: until it works
                continue
            self._backend_ok()
            if delivery is None:
                if consumer.blocking:
                    self.backoff.reset()
                else:
                    self._sleep(self.backoff.next())
                continue
            self.backoff.reset()
            self.polls.append(("hit", 0.0))
            if consumer._stopping.is_set():
                # Stop arrived while we were claiming: hand it straight back, untouched.
                self._release(delivery)
                break
            self.handle(delivery)

    def _flush_ack(self) -> None:
        """Acknowledge the finished message still waiting to ride on the next dequeue."""
        finished, self._finished = self._finished, None
        if finished is not None:
            self._ack(finished)
            logger.debug("%s: acknowledged message %s", self.name, finished.lease)

    def _sleep(self, delay: float) -> None:
        self.polls.append(("sleep", delay))
        self.consumer._stopping.wait(delay)

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
            _describe_error(exc),
            delay,
            self._failures,
        )
        (self.consumer._stopping if until is None else until).wait(delay)

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
        consumer._heartbeat.add(delivery.lease, self.name)
        logger.debug("%s: leased message %s (delivery %d)", self.name, delivery.lease,
                     delivery.deliveries)
        ok = True
        try:
            consumer.huey.process(delivery, worker=self.owner)
        except KeyboardInterrupt:
            # process() says the task was cut short (it raised KeyboardInterrupt, or an exit
            # signal interrupted it): not done, so no ack. Release it to run again; the delivery
            # count dead-letters a task that does this every time. Letting it escape would end
            # this thread with the lease still heartbeated, stranding the message for good.
            ok = False
            logger.warning(
                "%s: its task was interrupted before it finished; releasing it to the queue",
                self.name,
            )
        except Exception as exc:
            # process() handles everything a task or a message does; this is a backend failure
            # half-way (e.g. storing the result). Give the message back so it runs again; the
            # delivery count lets the core dead-letter it if this keeps happening.
            ok = False
            self._process_failures += 1
            if self._process_failures % 10 == 1:  # the traceback once, then every tenth time
                logger.exception(
                    "%s: processing a message failed outside the task (failure %d in a row); "
                    "releasing it to the queue",
                    self.name,
                    self._process_failures,
                )
            else:
                logger.warning(
                    "%s: processing a message failed again (%s; failure %d in a row); "
                    "releasing it to the queue",
                    self.name,
                    _describe_error(exc),
                    self._process_failures,
                )
        else:
            self._process_failures = 0
        with self._lock:
            abandoned = self._abandoned
            self._phase = "acking"
        try:
            if abandoned:
                return  # shutdown released the lease already; the message is back in the queue
            self.processed += 1
            if ok and not consumer._stopping.is_set():
                # Acknowledged by the next dequeue, which the loop calls right away (and
                # _flush_ack when the loop ends): one round trip instead of two.
                self._finished = delivery
            elif ok:
                self._ack(delivery)
                logger.debug("%s: acknowledged message %s", self.name, delivery.lease)
            else:
                self._release(delivery)
                # Whatever failed (most likely the backend) may fail again at once: no spinning.
                consumer._stopping.wait(self.backoff.next())
        finally:
            consumer._heartbeat.discard(delivery.lease)
            with self._lock:
                self._current = None

    def _ack(self, delivery: Delivery) -> None:
        """Acknowledge until it works, or until shutdown gives up on it (the lease then expires
        and the task runs again: at-least-once)."""
        queue = self.consumer.huey.storage.queue
        while True:
            try:
                queue.ack(delivery.lease)
            except Exception as exc:  # noqa: BLE001
                # Not cut short by a graceful stop: that waits for acks (up to its timeout).
                self._backend_error("ack", exc, until=self.consumer._hard_stop)
                with self._lock:
                    gave_up = self._abandoned or self.consumer._acks_given_up.is_set()
                if gave_up or self.consumer._hard_stop.is_set():
                    return
                continue
            self._backend_ok()
            return

    def _release(self, delivery: Delivery) -> None:
        try:
            self.consumer.huey.storage.queue.release(delivery.lease)
        except Exception as exc:  # noqa: BLE001 - the lease expires and recover() requeues it
            logger.warning(
                "%s: could not release a message (%s); it returns when its lease expires",
                self.name,
                _describe_error(exc),
            )

    def abandon(self, reason: str) -> bool:
        """Shutdown gives up on this worker's message. True when a running task was released.

        A running task's message goes back to the queue at once. A finished task whose ack keeps
        failing is left alone: its lease expires and the task may run again.
        """
        with self._lock:
            delivery = self._current
            if delivery is None or self._abandoned:
                return False
            self._abandoned = True
            phase = self._phase
        self.consumer._heartbeat.discard(delivery.lease)
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


class _Scheduler:
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
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - server down: back off, never die
                delay = self.backoff.next()
                self._failures += 1
                logger.log(
                    logging.WARNING if self._failures % 10 == 1 else logging.DEBUG,
                    "scheduler: %s failed (%s); retrying in %.2f s (failure %d in a row)",
                    self.consumer.backend_description,
                    _describe_error(exc),
                    delay,
                    self._failures,
                )
                self._stop.wait(delay)
                continue
            if self._failures:
                logger.info(
                    "scheduler: the backend answers again after %d failure(s)", self._failures
                )
                self._failures = 0
            self.backoff.reset()
            self._stop.wait(self._next_wait(interval))

    def _next_wait(self, interval: float) -> float:
        if not self.consumer.periodic:
            return interval
        # Never sleep across a minute boundary by more than a moment: periodic tasks are due
        # at the start of the minute.
        to_next_minute = 60.0 - (time.time() % 60.0) + 0.01
        return max(min(interval, to_next_minute), 0.01)

    def tick(self, now: float | None = None) -> None:
        """One scheduler step: move due messages, recover expired leases, periodic check."""
        consumer = self.consumer
        storage = consumer.huey.storage
        now = time.time() if now is None else now
        moved = 0
        while True:
            n = storage.schedule.move_due(now, MOVE_LIMIT)
            moved += n
            if n < MOVE_LIMIT or self._stop.is_set():
                break
        if moved:
            logger.debug("scheduler: moved %d due task(s) to the queue", moved)
        recovered = storage.queue.recover()
        if recovered:
            logger.warning(
                "scheduler: recovered %d task(s) whose consumer stopped extending the lease; "
                "they will run again",
                recovered,
            )
            consumer._emit("recovered", count=recovered)
        if consumer.periodic:
            self.periodic_check(now)

    def periodic_check(self, now: float) -> list[Any]:
        """Enqueue periodic tasks once per minute: the first check in a new minute does it."""
        minute = self.consumer.to_datetime(now).replace(second=0, microsecond=0)
        if minute == self.last_periodic_minute:
            return []
        tasks = self.consumer.enqueue_periodic(minute)
        # Only now: if the backend failed half-way, the next tick tries this minute again, and
        # the per-minute dedup keys keep the tasks already enqueued from being enqueued twice.
        self.last_periodic_minute = minute
        return tasks


def _child_main(
    huey: Any, options: dict[str, Any], state: Any, index: int
) -> None:  # pragma: no cover - runs in a forked child (covered by subprocess tests)
    """A worker process: one thread worker of its own, stopped by signal or by its parent."""
    # SIGINT goes to the whole foreground process group on Ctrl-C; the parent relays shutdown
    # through `graceful`/`hard`, so the child must not count the same keypress twice.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    code = 0
    try:
        huey.storage.after_fork()
        child = Consumer(huey, **options)
        child._worker_base = index - 1
        child._parent_state = state
        child._parent_pid = os.getppid()
        child.run(signals=(signal.SIGTERM,), banner=False)
    except Exception:
        logger.exception("worker process %d failed", index)
        code = 1
    finally:
        flush = getattr(huey, "flush_events", None)
        if flush is not None:
            try:
                flush(5.0)  # os._exit skips atexit: send this process's last events now
            except Exception:  # noqa: BLE001
                pass
        logging.shutdown()
        os._exit(code)


class Consumer:
    """Runs the tasks of one Huey instance.

    `start()` starts everything in the background and returns (for tests or an app that embeds a
    consumer); `stop()` ends it; `run()` is the command-line loop: start, wait for SIGTERM or
    SIGINT, shut down as described in the module docstring, return the exit code (0).

    Options mirror `huey consume`: `workers` threads or processes (`worker_type`), `periodic`
    enqueues crontab tasks, `initial_delay`/`backoff`/`max_delay` pace polling, `mode` picks
    blocking waits or polling (auto: blocking where the queue supports it),
    `scheduler_interval` paces the scheduler, `shutdown_timeout` bounds a graceful stop,
    `utc` decides the clock periodic tasks are matched against (default: `huey.utc`),
    `lease_timeout` overrides `huey.lease_timeout`.
    """

    def __init__(
        self,
        huey: Any,
        workers: int = 1,
        periodic: bool = True,
        initial_delay: float = 0.1,
        backoff: float = 1.15,
        max_delay: float = 10.0,
        scheduler_interval: float = 1.0,
        worker_type: str = "thread",
        mode: str = "auto",
        shutdown_timeout: float = 30.0,
        utc: bool | None = None,
        lease_timeout: float | None = None,
        check_worker_health: bool = True,
        scheduler: bool = True,
    ) -> None:
        if workers < 1:
            raise ConfigurationError(f"workers must be at least 1, got {workers}")
        if worker_type not in WORKER_TYPES:
            raise ConfigurationError(
                f"unknown worker type {worker_type!r}; choose one of: {', '.join(WORKER_TYPES)}"
            )
        if mode not in MODES:
            raise ConfigurationError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
        if scheduler_interval <= 0:
            raise ConfigurationError(
                f"the scheduler interval must be > 0, got {scheduler_interval}"
            )
        if shutdown_timeout < 0:
            raise ConfigurationError(f"the shutdown timeout must be >= 0, got {shutdown_timeout}")
        Backoff(initial_delay, backoff, max_delay)  # validates the three together
        self.huey = huey
        self.workers = workers
        self.periodic = periodic
        self.initial_delay = initial_delay
        self.backoff = backoff
        self.max_delay = max_delay
        self.scheduler_interval = scheduler_interval
        self.worker_type = worker_type
        self.mode = mode
        self.shutdown_timeout = shutdown_timeout
        self.utc = bool(getattr(huey, "utc", True)) if utc is None else utc
        if lease_timeout is not None:
            if lease_timeout <= 0:
                raise ConfigurationError(f"the lease timeout must be > 0, got {lease_timeout}")
            huey.lease_timeout = lease_timeout
        self.check_worker_health = check_worker_health
        self.run_scheduler = scheduler
        storage = huey.storage
        if worker_type == "process" and not getattr(storage, "process_safe", True):
            raise ConfigurationError(
                f"the {self.backend_description} backend keeps its data inside one process, so "
                "worker processes would not share it; use --worker-type thread or another backend"
            )
        queue_blocks = bool(getattr(storage.queue, "blocking", False))
        if mode == "blocking" and not queue_blocks:
            logger.warning(
                "the %s queue cannot wait for messages; polling instead",
                self.backend_description,
            )
        self.blocking = queue_blocks and mode != "polling"
        self._stopping = threading.Event()  # workers take no new work
        self._hard_stop = threading.Event()  # stop at once; release what is in flight
        self._stopped = threading.Event()
        # Set once a graceful stop has waited long enough: acks that keep failing are dropped
        # (the lease expires and the task runs again: at-least-once).
        self._acks_given_up = threading.Event()
        self._heartbeat = _Heartbeat(self)
        self._scheduler = _Scheduler(self)
        self._workers: list[_Worker] = []
        self._processes: list[Any] = []
        self._started = False
        self._worker_base = 0  # index offset for a forked child's worker name
        self._signals_received = 0
        # Process workers: the parent writes _STOP_GRACEFUL or _STOP_NOW into a shared integer
        # that children poll. A plain shared value, not a multiprocessing.Event: a child that
        # exits while holding an Event's lock would deadlock the parent's next set().
        self._parent_state: Any = None
        self._parent_pid: int | None = None
        self._mp_state: Any = None

    # -- properties ----------------------------------------------------------------------------

    @property
    def lease_timeout(self) -> float:
        return float(getattr(self.huey, "lease_timeout", 30.0))

    @property
    def backend_description(self) -> str:
        storage = self.huey.storage
        try:
            return mask_url(storage.describe())
        except Exception:  # noqa: BLE001 - a banner must not fail
            return type(storage).__name__

    @property
    def worker_list(self) -> list[_Worker]:
        """The worker threads (empty in a process-type parent, whose workers are processes)."""
        return list(self._workers)

    @property
    def scheduler(self) -> _Scheduler:
        return self._scheduler

    @property
    def heartbeat(self) -> _Heartbeat:
        return self._heartbeat

    def to_datetime(self, timestamp: float) -> datetime.datetime:
        """The naive datetime periodic tasks are matched against: UTC or local time."""
        if self.utc:
            return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).replace(
                tzinfo=None
            )
        return datetime.datetime.fromtimestamp(timestamp)

    def enqueue_periodic(self, now: datetime.datetime) -> list[Any]:
        """Enqueue the periodic tasks due at `now` (deduplicated across consumers by the core)."""
        tasks = list(self.huey.enqueue_periodic(now) or [])
        for task in tasks:
            logger.info("enqueued periodic task %s", getattr(task, "name", task))
        return tasks

    def _emit(self, status: str, **fields: Any) -> None:
        emit = getattr(self.huey, "emit", None)
        if emit is None:
            return
        try:
            emit(status, None, **fields)
        except Exception:  # noqa: BLE001 - huey.emit should not raise; belt and braces
            logger.debug("could not emit %s", status, exc_info=True)

    def _notify_interrupted(self, workers: list[_Worker], reason: str) -> None:
        """Signal and emit `interrupted` for the tasks shutdown gave up on."""
        notify = getattr(self.huey, "notify_interrupted_tasks", None)
        if notify is not None:
            try:
                notify()  # the core knows which tasks are running: signal + event per task
                return
            except Exception:  # noqa: BLE001
                logger.debug("notify_interrupted_tasks failed", exc_info=True)
        for worker in workers:
            self._emit("interrupted", worker=worker.owner, reason=reason)

    # -- start / stop --------------------------------------------------------------------------

    def start(self) -> None:
        """Start workers, heartbeat, scheduler and periodic enqueuer in the background."""
        if self._started:
            raise RuntimeError("this consumer has already been started")
        self._started = True
        if self.worker_type == "process":
            self._start_processes()
        else:
            self._heartbeat.start()
            for n in range(1, self.workers + 1):
                worker = _Worker(self, self._worker_base + n)
                self._workers.append(worker)
                worker.start()
        if self.run_scheduler:
            self._scheduler.start()

    def _child_options(self) -> dict[str, Any]:
        return {
            "workers": 1,
            "periodic": False,
            "initial_delay": self.initial_delay,
            "backoff": self.backoff,
            "max_delay": self.max_delay,
            "scheduler_interval": self.scheduler_interval,
            "worker_type": "thread",
            "mode": self.mode,
            "shutdown_timeout": self.shutdown_timeout,
            "utc": self.utc,
            "scheduler": False,
        }

    def _start_processes(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self._mp_state = ctx.RawValue("i", _RUNNING)
        for n in range(1, self.workers + 1):
            self._processes.append(self._spawn(ctx, n))

    def _spawn(self, ctx: Any, n: int) -> Any:
        proc = ctx.Process(
            target=_child_main,
            args=(self.huey, self._child_options(), self._mp_state, n),
            name=f"huey-worker-{n}",
            daemon=False,
        )
        proc.start()
        return proc

    def stop(self, graceful: bool = True, timeout: float | None = None) -> None:
        """Stop the consumer and wait for it.

        graceful: stop taking work, wait up to `timeout` (default `shutdown_timeout`) for
        running tasks, then release the ones still running. Not graceful: release at once.
        The schedule stays in storage either way.
        """
        timeout = self.shutdown_timeout if timeout is None else timeout
        self._stopping.set()
        self._scheduler.stop()
        if not graceful:
            self._hard_stop.set()
        if self._processes:
            self._stop_processes(graceful, timeout)
        else:
            self._stop_threads(graceful, timeout)
        self._heartbeat.stop()
        self._flush_events(5.0 if graceful else 1.0)
        self._stopped.set()

    def _flush_events(self, timeout: float) -> None:
        """Events are sent by a background thread: let the last ones out before returning."""
        flush = getattr(self.huey, "flush_events", None)
        if flush is not None:
            try:
                flush(timeout)
            except Exception:  # noqa: BLE001 - never fail a shutdown over events
                logger.debug("could not flush events", exc_info=True)

    def _stop_threads(self, graceful: bool, timeout: float) -> None:
        deadline = time.monotonic() + (timeout if graceful else 0.0)
        while time.monotonic() < deadline and not self._hard_stop.is_set():
            if not any(w.busy for w in self._workers):
                break
            time.sleep(0.05)
        reason = "shutdown timeout reached" if graceful and not self._hard_stop.is_set() else (
            "immediate shutdown"
        )
        self._acks_given_up.set()
        abandoned = [w for w in self._workers if w.busy and w.abandon(reason)]
        if abandoned:
            self._notify_interrupted(abandoned, reason)
        # Idle workers leave their dequeue within one blocking slice or polling sleep; workers
        # whose task was abandoned may run on for a while (threads cannot be killed): their
        # result no longer matters, so nobody waits for them.
        if self._hard_stop.is_set():
            return
        deadline = time.monotonic() + BLOCKING_WAIT + 1.0
        for worker in self._workers:
            if worker.thread is not None and worker not in abandoned:
                worker.thread.join(max(deadline - time.monotonic(), 0.0))

    def _stop_processes(self, graceful: bool, timeout: float) -> None:
        if graceful:
            self._mp_state.value = _STOP_GRACEFUL
            # Children enforce the shutdown timeout themselves; the margin covers their exit.
            deadline = time.monotonic() + timeout + 5.0
            while time.monotonic() < deadline and not self._hard_stop.is_set():
                if not any(p.is_alive() for p in self._processes):
                    break
                time.sleep(0.05)
        self._mp_state.value = _STOP_NOW
        deadline = time.monotonic() + 3.0
        for proc in self._processes:
            proc.join(max(deadline - time.monotonic(), 0.0))
        for proc in self._processes:
            if proc.is_alive():
                logger.error(
                    "worker process %s did not stop; killing it (its lease expires and the task "
                    "runs again elsewhere)",
                    proc.pid,
                )
                proc.kill()
                proc.join(1.0)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the consumer has stopped; True when it has."""
        return self._stopped.wait(timeout)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    # -- health --------------------------------------------------------------------------------

    def check_health(self) -> None:
        """Replace workers that died (a thread that escaped its loop, a killed process)."""
        if self._stopping.is_set():
            return
        for i, worker in enumerate(self._workers):
            if worker.thread is not None and not worker.thread.is_alive():
                logger.error("%s stopped unexpectedly; starting a new one", worker.name)
                fresh = _Worker(self, worker.index)
                self._workers[i] = fresh
                fresh.start()
        for i, proc in enumerate(self._processes):
            if not proc.is_alive() and not self._stopping.is_set():
                logger.error(
                    "worker process %s exited with code %s; starting a new one",
                    proc.pid,
                    proc.exitcode,
                )
                self._processes[i] = self._spawn(multiprocessing.get_context("fork"), i + 1)

    # -- the command-line loop -----------------------------------------------------------------

    def log_banner(self) -> None:
        logger.info(
            "huey consumer starting: instance %r on %s",
            getattr(self.huey, "name", "?"),
            self.backend_description,
        )
        logger.info(
            "%d %s worker(s), %s mode, lease timeout %.1f s, scheduler every %.1f s, "
            "shutdown timeout %.1f s",
            self.workers,
            self.worker_type,
            "blocking" if self.blocking else (
                f"polling (delay {self.initial_delay} s, x{self.backoff}, max {self.max_delay} s)"
            ),
            self.lease_timeout,
            self.scheduler_interval,
            self.shutdown_timeout,
        )
        names = _periodic_task_names(self.huey)
        if not self.periodic:
            logger.info("periodic tasks: disabled (--no-periodic)")
        elif names:
            logger.info(
                "periodic tasks (%s): %s", "UTC" if self.utc else "local time", ", ".join(names)
            )
        else:
            logger.info("periodic tasks: none registered")

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals_received += 1
        name = signal.Signals(signum).name
        if self._signals_received == 1:
            logger.info(
                "%s received: finishing running tasks (up to %.1f s); send it again to stop now",
                name,
                self.shutdown_timeout,
            )
        else:
            logger.warning("%s received again: stopping now, releasing running tasks", name)
            self._hard_stop.set()
        self._stopping.set()

    def run(
        self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT), banner: bool = True
    ) -> int:
        """Run until SIGTERM/SIGINT (or `stop()` from another thread); return the exit code.

        Must be called from the main thread (signal handlers live there).
        """
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        try:
            if banner:
                self.log_banner()
            self.start()
            if not self._processes and banner:
                logger.info("consumer ready (pid %d)", os.getpid())
            elif banner:
                logger.info(
                    "consumer ready (pid %d, worker processes %s)",
                    os.getpid(),
                    ", ".join(str(p.pid) for p in self._processes),
                )
            last_health = time.monotonic()
            while not self._stopping.wait(0.1):
                if self._parent_state is not None and self._parent_should_stop():
                    break
                if self.check_worker_health and time.monotonic() - last_health > 1.0:
                    last_health = time.monotonic()
                    self.check_health()
            self._shutdown()
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _parent_should_stop(self) -> bool:
        state = self._parent_state.value
        if state == _STOP_NOW:
            self._hard_stop.set()
            return True
        return state == _STOP_GRACEFUL or os.getppid() != self._parent_pid

    def _shutdown(self) -> None:
        self._stopping.set()
        self._scheduler.stop()
        if self._hard_stop.is_set():
            self.stop(graceful=False)
            logger.info("consumer stopped at once; running tasks were released to the queue")
            return
        # Graceful: stop() polls; a second signal sets _hard_stop and cuts the wait short.
        # Children of a process-type consumer also stop at once when the parent says so.
        if self._parent_state is not None:
            watcher = threading.Thread(target=self._watch_parent_hard, daemon=True)
            watcher.start()
        self.stop(graceful=True)
        if self._hard_stop.is_set():
            logger.info("consumer stopped at once; running tasks were released to the queue")
        else:
            logger.info("consumer stopped")

    def _watch_parent_hard(self) -> None:
        while not self._stopped.is_set():
            if self._parent_state.value == _STOP_NOW:
                self._hard_stop.set()
                return
            time.sleep(0.05)

    @property
    def stopped_at_once(self) -> bool:
        """True when the consumer stopped without waiting for running tasks."""
        return self._hard_stop.is_set()


def _periodic_task_names(huey: Any) -> list[str]:
    """Names of the registered periodic tasks, whatever the core calls its registry."""
    registry = getattr(huey, "_registry", None)
    for holder, attr in ((registry, "periodic_tasks"), (huey, "periodic_tasks")):
        found = getattr(holder, attr, None) if holder is not None else None
        if callable(found):
            try:
                found = found()
            except Exception:  # noqa: BLE001
                found = None
        if found:
            return sorted(getattr(t, "name", str(t)) for t in found)
    return []
