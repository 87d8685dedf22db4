"""Events: one JSON object per thing that happens to a task (docs/events.md).

Fields of every event:

    status        one of EventStatus: enqueued, scheduled, revoked, started, finished, error,
                  retrying, expired, locked, interrupted, canceled, rate-limited,
                  dead-lettered, recovered, progress
    id            task id, or null when the message could not be decoded
    task          task name, or null
    retries       retries left (int) or null
    retry_delay   seconds (float) or null
    execute_time  unix timestamp of the task's eta, or null when it runs as soon as possible
    error         true for error and dead-lettered events
    traceback     string or null
    timestamp     unix time of the event
    consumer      "<host>:<pid>" of the process that emitted it
    huey          instance name

`duration` (seconds) is added to finished and error events, `worker` when a consumer worker ran
the task, `reason` to dead-lettered events, `done`, `total` and `note` to progress events; other
keyword fields pass through unchanged.
"""

from __future__ import annotations

import atexit
import collections
import datetime
import enum
import json
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from huey_core import signals as S
from huey_core.clock import to_unix
from huey_core.plugins import mask_url

if TYPE_CHECKING:
    from huey_core.api import Huey
    from huey_core.protocols import EventEmitter, Subscription

logger = logging.getLogger("huey.events")

__all__ = [
    "EventListener",
    "EventPublisher",
    "EventStatus",
    "Named",
    "build_event",
    "consumer_identity",
    "decode_event",
    "encode_event",
    "status_of",
]


class EventStatus(str, enum.Enum):
    """Every event status, defined once (the values are what events carry)."""

    ENQUEUED = "enqueued"
    SCHEDULED = "scheduled"
    REVOKED = "revoked"
    STARTED = "started"
    FINISHED = "finished"
    ERROR = "error"
    RETRYING = "retrying"
    EXPIRED = "expired"
    LOCKED = "locked"
    INTERRUPTED = "interrupted"
    CANCELED = "canceled"
    RATE_LIMITED = "rate-limited"
    DEAD_LETTERED = "dead-lettered"
    RECOVERED = "recovered"
    PROGRESS = "progress"  # a running task reported how far it got (huey_core.progress)

    def __str__(self) -> str:
        return self.value


# The event each signal is reported with (huey's signal names differ for three of them).
_STATUS_OF_SIGNAL = {
    S.SIGNAL_CANCELED: EventStatus.CANCELED,
    S.SIGNAL_COMPLETE: EventStatus.FINISHED,
    S.SIGNAL_ERROR: EventStatus.ERROR,
    S.SIGNAL_EXECUTING: EventStatus.STARTED,
    S.SIGNAL_EXPIRED: EventStatus.EXPIRED,
    S.SIGNAL_LOCKED: EventStatus.LOCKED,
    S.SIGNAL_RETRYING: EventStatus.RETRYING,
    S.SIGNAL_REVOKED: EventStatus.REVOKED,
    S.SIGNAL_SCHEDULED: EventStatus.SCHEDULED,
    S.SIGNAL_INTERRUPTED: EventStatus.INTERRUPTED,
    S.SIGNAL_ENQUEUED: EventStatus.ENQUEUED,
    S.SIGNAL_TIMEOUT: EventStatus.ERROR,
    S.SIGNAL_RATE_LIMITED: EventStatus.RATE_LIMITED,
    S.SIGNAL_DEAD_LETTERED: EventStatus.DEAD_LETTERED,
}


def status_of(signal: str) -> EventStatus:
    """The event status that reports `signal`."""
    return _STATUS_OF_SIGNAL[signal]


class Subject(Protocol):
    """What an event says about its task (a Task has all of it)."""

    @property
    def id(self) -> str | None: ...

    @property
    def name(self) -> str | None: ...

    @property
    def retries(self) -> int | None: ...

    @property
    def retry_delay(self) -> float | None: ...

    @property
    def eta(self) -> datetime.datetime | None: ...


class Named:
    """The Subject of an event about a message that could not be decoded into a Task."""

    retries = None
    retry_delay = None
    eta = None

    def __init__(self, id: str | None, name: str | None) -> None:
        self.id, self.name = id, name


_IDENTITY: tuple[int, str] | None = None


def consumer_identity() -> str:
    """ "<host>:<pid>", recomputed after a fork."""
    global _IDENTITY
    pid = os.getpid()
    if _IDENTITY is None or _IDENTITY[0] != pid:
        _IDENTITY = (pid, f"{socket.gethostname()}:{pid}")
    return _IDENTITY[1]


def build_event(
    status: EventStatus | str,
    task: Subject | None = None,
    *,
    utc: bool = True,
    huey: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The event dict for `status` about `task` (a huey_core.api.Task or None)."""
    # Built for every event of every task: one dict literal, no per-field helper calls.
    name = status.value if type(status) is EventStatus else str(status)
    if task is None:
        event: dict[str, Any] = {
            "status": name,
            "id": None,
            "task": None,
            "retries": None,
            "retry_delay": None,
            "execute_time": None,
        }
    else:
        eta = task.eta
        event = {
            "status": name,
            "id": task.id,
            "task": task.name,
            "retries": task.retries,
            "retry_delay": task.retry_delay,
            "execute_time": None if eta is None else to_unix(eta, utc),
        }
    event["error"] = False
    event["traceback"] = None
    event["timestamp"] = time.time()
    event["consumer"] = consumer_identity()
    event["huey"] = huey
    for key, value in fields.items():
        if value is not None or key not in event:
            # An exception message may quote a URL with its password (a task's own database,
            # a backend error); events leave the process, so mask it here, once, for every
            # listener.
            if key in _MASKED and isinstance(value, str):
                value = mask_url(value)
            event[key] = value
    event["error"] = bool(event["error"])
    return event


_MASKED = frozenset(("traceback", "message", "reason"))


# One encoder for every event: json.dumps with options builds a new JSONEncoder on each call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode


def encode_event(event: dict[str, Any]) -> bytes:
    """Compact JSON; values JSON cannot hold (datetimes, exceptions) become strings."""
    return _ENCODE(event).encode()


def decode_event(data: bytes | str) -> dict[str, Any]:
    """The event dict back from what an EventEmitter subscription yields."""
    event: dict[str, Any] = json.loads(data)
    return event


def emit_event(emitter: EventEmitter, event: dict[str, Any]) -> bool:
    """Publish `event`; log and return False on any failure (events never break a task)."""
    try:
        emitter.emit(encode_event(event))
        return True
    except Exception as exc:
        _log_emit_failure(f"{event.get('status')} event for task {event.get('id')}", exc)
        return False


def _log_emit_failure(what: str, exc: Exception) -> None:
    # One line: a producer whose event backend is down must not print a traceback per batch
    # (a command-line tool shows every warning). The traceback is there with DEBUG logging.
    text = mask_url(" ".join(str(exc).split())) or "(no message)"
    logger.warning("could not emit %s (%s: %s)", what, type(exc).__name__, text)
    logger.debug("emit failure", exc_info=exc)


class EventPublisher:
    """Publishes events from one background thread, so a task never waits for an event write.

    `submit()` only appends to a bounded in-memory queue and returns; the publisher thread sends
    what has accumulated in batches (`emit_many()`: one INSERT or one pipeline per batch where
    the backend can), in submission order, so every producer's events keep their order. A
    listener in another process sees an event as soon as its batch is written, which with an
    idle publisher is at once. When the queue is full (the backend is slower than the producers
    for a long while, or down) new events are dropped and counted, with a warning at most every
    `WARN_EVERY` seconds: events are observability and never slow down or break a task.

    `flush()` waits until everything submitted so far has been sent (the consumer calls it when
    it stops, worker processes before they exit, and an atexit hook for every publisher). After
    a fork the child starts with an empty queue and no thread: the parent's pending events are
    the parent's to send.
    """

    MAX_PENDING = 10_000
    MAX_BATCH = 500
    WARN_EVERY = 60.0
    # While events keep coming (the last batch went out less than BUSY seconds ago) the thread
    # waits LINGER seconds after waking, so a busy producer's events go out many per write
    # instead of one write each (a write costs the backend far more than the events in it). An
    # event after a quiet spell goes out at once. 20 ms: a busy listener sees events at most that
    # late, and a consumer draining quick tasks spends about a tenth less per task than at 5 ms
    # (fewer, larger writes; fewer wake-ups of this thread competing with the workers).
    LINGER = 0.02
    BUSY = 0.05
    IDLE_EXIT = 30.0  # seconds without events after which the publisher thread ends

    def __init__(self, max_pending: int | None = None) -> None:
        self.max_pending = self.MAX_PENDING if max_pending is None else int(max_pending)
        self.dropped = 0  # events dropped because the queue was full (never reset)
        self._reset()
        _PUBLISHERS.add(self)

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._pending: collections.deque[tuple[EventEmitter, dict[str, Any]]] = collections.deque()
        self._submitted = 0  # sequence numbers: flush() waits until _done reaches _submitted
        self._done = 0
        self._thread: threading.Thread | None = None
        self._idle = False  # the thread is waiting for work (submit notifies only then)
        self._last_warning = 0.0

    def submit(self, emitter: EventEmitter, event: dict[str, Any]) -> bool:
        """Queue `event` for `emitter`; False when it was dropped (queue full). Never blocks."""
        if self._pid != os.getpid():  # forked without the at-fork hook (e.g. os.fork in C code)
            self._reset()
        with self._cond:
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                now = time.monotonic()
                warn = now - self._last_warning >= self.WARN_EVERY
                if warn:
                    self._last_warning = now
            else:
                self._pending.append((emitter, event))
                self._submitted += 1
                if self._thread is None:
                    self._start()
                elif self._idle:
                    self._cond.notify()
                return True
        if warn:
            logger.warning(
                "event queue full (%d pending): dropped %d event(s) so far; the event backend "
                "is slower than the task rate or unreachable",
                self.max_pending,
                self.dropped,
            )
        return False

    def submit_many(
        self, emitter: EventEmitter, events: list[dict[str, Any]], wait: float = 0.0
    ) -> int:
        """submit() each event, in order, under one lock; how many were queued.

        `wait`: a batch larger than the room left waits up to that many seconds for the thread
        to send what is ahead of it, instead of dropping what does not fit (a bulk enqueue's
        events: `task.map()` of more tasks than `max_pending`)."""
        if self._pid != os.getpid():
            self._reset()
        deadline = time.monotonic() + wait
        queued = 0
        with self._cond:
            while True:
                room = max(0, self.max_pending - len(self._pending))
                taken = events[queued : queued + room]
                if taken:
                    self._pending.extend((emitter, event) for event in taken)
                    self._submitted += len(taken)
                    queued += len(taken)
                    if self._thread is None:
                        self._start()
                    elif self._idle:
                        self._cond.notify_all()  # flush() and other callers may wait here too
                left = deadline - time.monotonic()
                if queued == len(events) or left <= 0:
                    break
                self._cond.wait(left)  # the thread notifies after every batch it sends
            dropped = len(events) - queued
            self.dropped += dropped
        if dropped:
            logger.warning(
                "event queue full (%d pending): dropped %d event(s) so far; the event backend "
                "is slower than the task rate or unreachable",
                self.max_pending,
                self.dropped,
            )
        return queued

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="huey-events", daemon=True)
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        cond = self._cond
        last_send = 0.0
        while True:
            with cond:
                while not self._pending:
                    self._idle = True
                    if not cond.wait(self.IDLE_EXIT) and not self._pending:
                        # Nothing to do for a while: end, and let submit() start a new thread
                        # when events come again (many idle Huey objects keep no threads).
                        self._idle = False
                        self._thread = None
                        return
                self._idle = False
            # A full batch already waiting goes out at once: lingering then only falls behind.
            if (
                self.LINGER > 0
                and len(self._pending) < self.MAX_BATCH
                and time.monotonic() - last_send < self.BUSY
            ):
                time.sleep(self.LINGER)
            with cond:
                batch: list[tuple[EventEmitter, dict[str, Any]]] = []
                while self._pending and len(batch) < self.MAX_BATCH:
                    batch.append(self._pending.popleft())
            self._send(batch)
            last_send = time.monotonic()
            with cond:
                self._done += len(batch)
                cond.notify_all()

    @staticmethod
    def _send(batch: list[tuple[EventEmitter, dict[str, Any]]]) -> None:
        # Consecutive events for the same emitter go out together (usually the whole batch).
        start = 0
        while start < len(batch):
            emitter = batch[start][0]
            end = start
            while end < len(batch) and batch[end][0] is emitter:
                end += 1
            chunk = batch[start:end]
            try:
                emitter.emit_many([encode_event(event) for _, event in chunk])
            except Exception as exc:
                first = chunk[0][1]
                _log_emit_failure(
                    f"{len(chunk)} event(s), first {first.get('status')} for task "
                    f"{first.get('id')}",
                    exc,
                )
            start = end

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event submitted before this call has been sent (or failed to).

        True when done, False after `timeout` seconds. Called from the publisher thread itself
        (an emitter calling back into huey) it returns at once instead of deadlocking.
        """
        if self._pid != os.getpid() or threading.current_thread() is self._thread:
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    @property
    def pending(self) -> int:
        """Events submitted and not yet sent."""
        with self._cond:
            return self._submitted - self._done


_PUBLISHERS: weakref.WeakSet[EventPublisher] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for publisher in list(_PUBLISHERS):
        publisher._reset()


def flush_all(timeout: float = 2.0) -> None:
    """Flush every publisher of this process (at exit: events of the last tasks still go out)."""
    deadline = time.monotonic() + timeout
    for publisher in list(_PUBLISHERS):
        publisher.flush(max(0.0, deadline - time.monotonic()))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(flush_all)


class EventListener:
    """Calls `handle(event)` for every event of an instance's stream, on a thread, until stop().

    For long-running subscribers (the metrics exporter, the dashboard). When the backend goes
    away, the subscription is opened again after a pause that grows from RETRY_FIRST to
    RETRY_MAX seconds, so a Redis or PostgreSQL restart costs only the events emitted while it
    was down. Payloads that are not JSON objects are skipped; `handle` raising is logged and the
    stream goes on. `ready` is set once the first subscription is open: events emitted after
    that are seen.
    """

    RETRY_FIRST = 0.5
    RETRY_MAX = 10.0

    def __init__(
        self, huey: Huey, handle: Callable[[dict[str, Any]], object], name: str = "huey-listener"
    ) -> None:
        self.huey = huey
        self.handle = handle
        self.name = name
        self.ready = threading.Event()
        self.received = 0  # events handed to `handle`
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._subscription: Subscription | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Close the subscription and wait up to `timeout` seconds for the thread to end."""
        self._stopped.set()
        with self._lock:
            subscription = self._subscription
        if subscription is not None:
            subscription.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.RETRY_FIRST
        while not self._stopped.is_set():
            try:
                subscription = self.huey.storage.events.listen()
            except Exception as exc:  # noqa: BLE001 - the backend is down: try again later
                logger.warning(
                    "%s: cannot subscribe to events (%s); retrying in %.1f s",
                    self.name,
                    _one_line(exc),
                    delay,
                )
            else:
                with self._lock:
                    self._subscription = subscription
                if self._stopped.is_set():
                    subscription.close()
                    return
                self.ready.set()
                if self._read(subscription):
                    delay = self.RETRY_FIRST
            if self._stopped.wait(delay):
                return
            delay = min(delay * 2, self.RETRY_MAX)

    def _read(self, subscription: Subscription) -> bool:
        """Hand over events until the subscription ends; True when it delivered any."""
        got = False
        try:
            for raw in subscription:
                got = True
                try:
                    event = decode_event(raw)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self.received += 1
                    try:
                        self.handle(event)
                    except Exception:
                        logger.exception(
                            "%s: handling a %s event failed", self.name, event.get("status")
                        )
        except Exception as exc:  # noqa: BLE001 - connection lost: resubscribe
            if not self._stopped.is_set():
                logger.warning(
                    "%s: the event subscription failed (%s); resubscribing",
                    self.name,
                    _one_line(exc),
                )
        finally:
            subscription.close()
        return got


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {mask_url(text)}"
