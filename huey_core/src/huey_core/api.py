"""The `Huey` object: the one thing an application creates, and the facade over the core.

Names and meanings follow huey, so a huey application ports by changing its imports and the
storage class. Each behaviour lives in a module of its own and `Huey` hands over to it:

    task.py        Task, TaskWrapper (what @huey.task makes), the Registry
    message.py     the wire format (MessageCodec)
    execution.py   running a task and settling its outcome; retries.py decides retries
    results.py     Result, groups and chords; progress.py task progress
    aio.py         async tasks on the worker's event loop; awaiting and enqueueing from async code
    locks.py       lock_task and rate_limit
    inspection.py  pending, scheduled, results: reading the queue and the store
    hooks.py       registering hooks and signal receivers
    revocation.py  revoke / restore
    deadletters.py the dead-letter store
    keys.py        every data-store key the core uses
    events.py      the event stream; signals.py huey's signals

The storage is a `huey_core.protocols.Backend`, chosen by name or URL through the plugin system
(`huey_core.plugins`); everything stored goes through `huey.serializer` as bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from huey_core import bulk, clock, keys, limits, periodic
from huey_core import signals as S
from huey_core.crontab import crontab
from huey_core.deadletters import DeadLetters
from huey_core.events import EventPublisher, EventStatus, Subject, build_event, emit_event
from huey_core.events import status_of as _status_of
from huey_core.exceptions import ConfigurationError, PoisonMessage
from huey_core.execution import Executor, Hooks, error_metadata
from huey_core.hooks import HookMethods
from huey_core.inspection import QueueInspection
from huey_core.locks import RateLimit, TaskLock
from huey_core.message import MessageCodec
from huey_core.progress import Progress, read_progress
from huey_core.protocols import Backend, Delivery
from huey_core.results import (
    ChordResult,
    EmptyData,
    Result,
    ResultGroup,
    chord,
    enqueue_chord,
    group,
    pipeline_results,
)
from huey_core.revocation import Revocations
from huey_core.serializer import Serializer, build_serializer
from huey_core.storage import BackendSpec, StorageChoice
from huey_core.storage_classes import BaseStorage, from_storage_class
from huey_core.task import PeriodicTask, Registry, Task, TaskWrapper

if TYPE_CHECKING:
    from huey_core.consumer import Consumer

logger = logging.getLogger("huey")

__all__ = [
    "ChordResult",
    "EmptyData",
    "Huey",
    "PeriodicTask",
    "RateLimit",
    "Result",
    "ResultGroup",
    "Task",
    "TaskLock",
    "TaskWrapper",
    "chord",
    "crontab",
    "group",
]

Hook = Callable[..., Any]


class Huey(HookMethods, QueueInspection):
    """A task queue instance: `huey = Huey("my-app", backend="redis")`.

    Storage is built on first use with `huey_core.plugins.create_backend(name, backend, url,
    **backend_options)`; `backend` may also be a ready Backend object (two Huey objects can share
    one), or huey's `storage_class=` (huey_core.storage_classes) with its keyword arguments.
    `immediate=True` runs tasks synchronously in the caller on a private memory backend.
    `secret` signs every message and stored value with HMAC-SHA256; unsigned or tampered
    messages are dead-lettered, never executed.
    """

    storage_class: type[BaseStorage] | None = None  # huey's; subclasses set it

    def __init__(
        self,
        name: str = "huey",
        backend: str | Backend | None = None,
        url: str | None = None,
        results: bool = True,
        store_none: bool = False,
        utc: bool = True,
        immediate: bool = False,
        serializer: Serializer | None = None,
        events: bool = True,
        secret: str | bytes | None = None,
        compression: bool = False,
        use_zlib: bool = False,
        lease_timeout: float = 30.0,
        max_deliveries: int = 5,
        result_ttl: float | None = None,
        immediate_use_memory: bool = True,
        store_intermediate_errors: bool = True,
        storage_class: type[BaseStorage] | None = None,
        **backend_options: Any,
    ) -> None:
        self.name = name
        storage_class = storage_class or self.storage_class
        if storage_class is not None:
            spec = from_storage_class(storage_class, name, backend, url, backend_options)
            backend, url, backend_options = spec.backend, spec.url, spec.options
            result_ttl = spec.result_ttl if result_ttl is None else result_ttl
        self.results = results
        self.store_none = store_none
        self.store_intermediate_errors = store_intermediate_errors
        self.utc = utc
        self.events = events
        self.lease_timeout = limits.check_lease_timeout(lease_timeout)
        self.max_deliveries = limits.check_count("max_deliveries", max_deliveries, 1)
        self.result_ttl = limits.check_ttl("result_ttl", result_ttl)
        self.immediate_use_memory = immediate_use_memory
        self.serializer = build_serializer(serializer, secret, compression, use_zlib)
        self._storage = StorageChoice(name, backend, url, backend_options)
        self._immediate = bool(immediate)
        self.registry = Registry()
        self.codec = MessageCodec(self.registry, self.serializer)
        self.hooks = Hooks()
        self.signals = S.Signal()
        self.executor = Executor(self)
        self._revocations = Revocations(self)
        self._dead_letters = DeadLetters(self)
        self._locks: set[str] = set()
        self._local = threading.local()  # the consumer worker running a task, for its events
        # Events go out from a background thread in batches: a task never waits for them.
        self._publisher = EventPublisher()
        if not (self._immediate and immediate_use_memory):
            self._storage.warn_if_missing()

    def __repr__(self) -> str:
        return f"<Huey {self.name!r}>"

    # -- storage ------------------------------------------------------------------------------

    def create_storage(self) -> Backend:
        """Build the backend from the constructor's backend/url/options (plugins decide)."""
        return self._storage.build()

    def get_immediate_storage(self) -> Backend:
        from huey_core.plugins import create_backend

        return create_backend(self.name, "memory")

    @property
    def storage(self) -> Backend:
        """The Backend in use (built on first access; the memory backend in immediate mode)."""
        if self._immediate and self.immediate_use_memory:
            return self._storage.get_immediate(self.get_immediate_storage)
        return self._storage.get(self.create_storage)

    @storage.setter
    def storage(self, backend: Backend) -> None:
        self._storage.set(backend)

    @property
    def storage_built(self) -> bool:
        """True once the backend has been built (so closing it has something to do)."""
        return self._storage.built

    @property
    def backend_spec(self) -> BackendSpec:
        """The (backend, url, options) this instance builds its storage from."""
        return self._storage.spec

    def configure_backend(
        self, backend: str | Backend | None = None, url: str | None = None, **options: Any
    ) -> None:
        """Choose another backend (the consumer's --backend/--url win over the constructor's).

        The previous backend, if it was built, is closed; the new one is built on next use.
        """
        old = self._storage.configure(backend, url, options)
        if old is None:
            return
        self.flush_events()  # queued events belong to the old backend
        try:
            old.close()
        except Exception:
            logger.warning("closing the previous backend failed", exc_info=True)

    @property
    def immediate(self) -> bool:
        return self._immediate

    @immediate.setter
    def immediate(self, value: bool) -> None:
        self._immediate = bool(value)
        if not value:
            self._storage.forget_immediate()

    def create_consumer(self, **options: Any) -> Consumer:
        from huey_core.consumer import Consumer

        return Consumer(self, **options)

    # -- decorators -----------------------------------------------------------------------------

    def task(
        self,
        retries: int = 0,
        retry_delay: float = 0,
        retry_backoff: float = 0,
        priority: int | None = None,
        context: bool = False,
        name: str | None = None,
        expires: Any = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """Make a function a task: calling it enqueues and returns a Result."""
        limits.check_task_options(retries, retry_delay, retry_backoff, priority, timeout, expires)

        def decorator(func: Callable[..., Any]) -> TaskWrapper:
            return TaskWrapper(
                self,
                func.func if isinstance(func, TaskWrapper) else func,
                context=context,
                name=name,
                default_retries=retries,
                default_retry_delay=retry_delay,
                default_retry_backoff=retry_backoff,
                default_priority=priority,
                default_expires=expires,
                default_timeout=timeout,
                **kwargs,
            )

        return decorator

    def periodic_task(
        self, validate_datetime: Callable[[datetime.datetime], bool], **options: Any
    ) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """A task the consumer enqueues whenever `validate_datetime(now)` (a crontab) is true.

        Takes the options of task().
        """
        return self.task(crontab=validate_datetime, task_base=PeriodicTask, **options)

    def context_task(
        self, obj: Any, as_argument: bool = False, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], TaskWrapper]:
        """A task that runs inside `with obj:` (passing the context value first if as_argument)."""

        def task_decorator(fn: Callable[..., Any]) -> TaskWrapper:
            if inspect.iscoroutinefunction(fn):
                raise ConfigurationError(
                    f"context_task() wraps plain functions; make {fn.__name__} a task with "
                    "@huey.task() and use `async with` inside it"
                )

            @functools.wraps(fn)
            def inner(*a: Any, **k: Any) -> Any:
                with obj as ctx:
                    return fn(ctx, *a, **k) if as_argument else fn(*a, **k)

            return self.task(**kwargs)(inner)

        return task_decorator

    # -- events and signals -----------------------------------------------------------------------

    def emit(self, status: EventStatus | str, task: Subject | None = None, **fields: Any) -> None:
        """Publish one event (see huey_core.events). Never raises; failures are logged."""
        if not self.events:
            return
        try:
            worker = fields.pop("worker", None) or self.current_worker
            if worker:
                fields["worker"] = worker
            event = build_event(status, task, utc=self.utc, huey=self.name, **fields)
            emitter = self.storage.events
            if emitter.inline:
                emit_event(emitter, event)  # an in-process hand-off: no thread needed
            else:
                self._publisher.submit(emitter, event)
        except Exception:
            logger.warning("could not emit %s event", status, exc_info=True)

    def emit_signal_event(self, signal: str, task: Task, **fields: Any) -> None:
        """The event that reports `signal` (error events carry error=true)."""
        status = _status_of(signal)
        self.emit(status, task, error=status is EventStatus.ERROR, **fields)

    def send_signal(self, signal: str, task: Task, *args: Any, **fields: Any) -> None:
        """Fire a signal and the matching event."""
        self.signals.send(signal, task, *args)
        self.emit(_status_of(signal), task, **fields)

    def flush_events(self, timeout: float = 5.0) -> bool:
        """Wait until every event emitted so far has been handed to the backend.

        Events are published asynchronously (see huey_core.events.EventPublisher); the consumer
        flushes when it stops and worker processes before they exit. True when all were sent
        (or failed to send) within `timeout` seconds.
        """
        return self._publisher.flush(timeout)

    def notify_interrupted_tasks(self) -> None:
        """Send SIGNAL_INTERRUPTED (and an event) for every task still running in this process."""
        while self.executor.in_flight:
            try:
                task = self.executor.in_flight.pop()
            except KeyError:
                break
            self.send_signal(S.SIGNAL_INTERRUPTED, task)

    @property
    def current_worker(self) -> str | None:
        """The consumer worker running a task in this thread (None outside one)."""
        return getattr(self._local, "worker", None)

    @contextlib.contextmanager
    def running_as(self, worker: str) -> Iterator[None]:
        """Events emitted by this thread inside the block name `worker` (a consumer worker)."""
        previous = getattr(self._local, "worker", None)
        self._local.worker = worker or None
        try:
            yield
        finally:
            self._local.worker = previous

    # -- serialization --------------------------------------------------------------------------

    def serialize_task(self, task: Task) -> bytes:
        return self.codec.encode(task)

    def deserialize_task(self, data: bytes) -> Task:
        """The Task in `data`; PoisonMessage (and nothing else) when it cannot run here."""
        return self.codec.decode(data)

    # -- enqueueing -----------------------------------------------------------------------------

    def enqueue(self, task: Task | group | chord) -> Any:
        """Put a task (or group, or chord) on the queue; returns its Result (None if results=False)."""
        if isinstance(task, group):
            return ResultGroup([self.enqueue(t) for t in task.tasks])
        if isinstance(task, chord):
            return enqueue_chord(self, task)
        limits.check_task(task)
        if task.expires:
            task.resolve_expires(self.utc)
        if self._immediate:
            self.send_signal(S.SIGNAL_ENQUEUED, task)
            self.execute(task)
        else:
            stamp = time.time()
            self.storage.queue.enqueue(self.serialize_task(task), task.priority or 0)
            # Only now (stamped before the store): `enqueued` promises a stored message.
            self.send_signal(S.SIGNAL_ENQUEUED, task, timestamp=stamp)
        if not self.results:
            return None
        results = pipeline_results(self, task)
        return ResultGroup(results) if len(results) > 1 else results[0]

    def enqueue_many(self, tasks: list[Task]) -> list[Any] | None:
        """Enqueue `tasks` in one round trip where the backend can (`queue.enqueue_many`);
        their Results in order (None if results=False). Groups and chords go one by one."""
        return bulk.enqueue_many(self, tasks)

    async def aenqueue(self, task: Task | group | chord) -> Any:
        """enqueue() for async code: the backend round trip runs in a thread, not on the loop."""
        return await asyncio.to_thread(self.enqueue, task)

    def dequeue(self) -> Task | None:
        """Take the next task off the queue for good (huey's API; consumers use leases instead).

        A message that cannot run is dead-lettered and skipped.
        """
        queue = self.storage.queue
        while True:
            delivery = queue.dequeue("dequeue", self.lease_timeout)
            if delivery is None:
                return None
            queue.ack(delivery.lease)
            try:
                return self.deserialize_task(delivery.data)
            except PoisonMessage as exc:
                self._dead_letters.add(delivery.data, str(exc), deliveries=delivery.deliveries)

    def add_schedule(self, task: Task) -> None:
        eta = task.eta or datetime.datetime(1970, 1, 1)
        timestamp = clock.to_unix(eta, self.utc) or 0.0
        self.storage.schedule.add(self.serialize_task(task), timestamp, task.priority or 0)
        logger.info("task %s scheduled for %s", task.id, eta)
        self.send_signal(S.SIGNAL_SCHEDULED, task)

    # -- key/value ------------------------------------------------------------------------------

    def put(self, key: str, data: Any) -> None:
        self.storage.store.put(key, self.serializer.serialize(data))

    def put_result(self, key: str, data: Any) -> None:
        self.storage.store.put(key, self.serializer.serialize(data), self.result_ttl)

    def put_if_empty(self, key: str, data: Any, ttl: float | None = None) -> bool:
        return self.storage.store.put_if_empty(key, self.serializer.serialize(data), ttl)

    def get_raw(self, key: str, peek: bool = False) -> Any:
        store = self.storage.store
        raw = store.peek(key) if peek else store.pop(key)
        return EmptyData if raw is None else raw

    def get(self, key: str, peek: bool = False) -> Any:
        """The value under `key` (removed unless peek), or None when missing."""
        raw = self.get_raw(key, peek)
        return None if raw is EmptyData else self.serializer.deserialize(raw)

    def delete(self, key: str) -> bool:
        return self.storage.store.delete(key)

    # -- executing ------------------------------------------------------------------------------

    def ready_to_run(self, task: Task, timestamp: datetime.datetime | None = None) -> bool:
        if timestamp is None:
            timestamp = clock.now(self.utc)
        return task.eta is None or task.eta <= timestamp

    def execute(self, task: Task, timestamp: datetime.datetime | None = None) -> Any:
        """Run `task` now unless it is not due (scheduled), revoked or expired; return its value.

        Task failures never propagate: they become error results, retries, signals and events.
        """
        return self.executor.execute(task, timestamp).value

    def build_error_result(self, task: Task, exception: BaseException) -> dict[str, Any]:
        return error_metadata(task, exception)

    def process(self, delivery: Delivery, worker: str = "") -> bool:
        """Handle one dequeued message; True when the caller should ack it, False to release it.

        See Executor.process: poison messages are dead-lettered (and acked), False means an
        exit signal cut the task short.
        """
        return self.executor.process(delivery, worker)

    def enqueue_periodic(self, now: datetime.datetime | None = None) -> list[Task]:
        """Enqueue the periodic tasks due in the minute of `now`, once across all consumers."""
        return periodic.enqueue_periodic(self, now)

    # -- dead letters ---------------------------------------------------------------------------

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter, oldest first.

        Each is a dict: id, reason, time (unix), task ("<module>.<name>" or None when the message
        could not be read), task_id, deliveries, payload (the raw message bytes).
        """
        return self._dead_letters.list()

    def requeue_dead_letter(self, dl_id: str) -> bool:
        """Put a dead letter's payload back on the queue (fresh delivery count); False if unknown."""
        return self._dead_letters.requeue(dl_id)

    def purge_dead_letters(self) -> int:
        """Delete every dead letter; return how many there were."""
        return self._dead_letters.purge()

    def dead_letter(
        self, data: bytes, reason: str, task: Task | None = None, deliveries: int | None = None
    ) -> str:
        """Store a message that can never run as a dead letter; return its id."""
        return self._dead_letters.add(data, reason, task, deliveries)

    # -- revocation -----------------------------------------------------------------------------

    def revoke_all(
        self,
        task_class: Any,
        revoke_until: datetime.datetime | None = None,
        revoke_once: bool = False,
    ) -> None:
        self._revocations.revoke_all(task_class, revoke_until, revoke_once)

    def restore_all(self, task_class: Any) -> bool:
        return self._revocations.restore_all(task_class)

    def revoke(
        self, task: Task, revoke_until: datetime.datetime | None = None, revoke_once: bool = False
    ) -> None:
        self._revocations.revoke(task, revoke_until, revoke_once)

    def restore(self, task: Task) -> bool:
        return self._revocations.restore(task)

    def revoke_by_id(
        self, id: str, revoke_until: datetime.datetime | None = None, revoke_once: bool = False
    ) -> None:
        self.revoke(Task(id=id), revoke_until, revoke_once)

    def restore_by_id(self, id: str) -> bool:
        return self.restore(Task(id=id))

    def is_revoked(
        self, task: Any, timestamp: datetime.datetime | None = None, peek: bool = True
    ) -> bool:
        """True when `task` (a Task, Result, TaskWrapper, task class or id) is revoked.

        With peek=False (as execution does) a revoke_once or lapsed revoke_until is cleared.
        """
        return self._revocations.is_revoked(task, timestamp, peek)

    def read_periodic(self, timestamp: datetime.datetime | None) -> list[PeriodicTask]:
        return periodic.due_periodic_tasks(self, timestamp or clock.now(self.utc))

    # -- locks and rate limits ------------------------------------------------------------------

    def lock_task(self, lock_name: str, ttl: float | None = None) -> TaskLock:
        """A lock (context manager or decorator) shared by every process using the backend."""
        return TaskLock(self, lock_name, ttl)

    def is_locked(self, lock_name: str) -> bool:
        return TaskLock(self, lock_name).is_locked()

    def remember_lock(self, key: str) -> None:
        """Note a lock key this process created, so flush_locks() can release it."""
        self._locks.add(key)

    def flush_locks(self, *names: str) -> set[str]:
        """Release every lock this process created (plus `names`); return the names released."""
        lock_keys = set(self._locks) | {keys.lock(self.name, n.strip()) for n in names}
        return {keys.lock_name(key) for key in lock_keys if self.delete(key)}

    def rate_limit(self, name: str, limit: int, per: float, retry: bool = True) -> RateLimit:
        """A fixed-window rate limit (context manager or decorator) shared through the backend."""
        return RateLimit(self, name, limit, per, retry=retry)

    def result(
        self, id: str, blocking: bool = False, timeout: float | None = None, **options: Any
    ) -> Any:
        """The result of the task with this id (see Result.get for the options)."""
        return Result(self, Task(id=id)).get(blocking, timeout, **options)

    async def aresult(self, id: str, timeout: float | None = None, **options: Any) -> Any:
        """The result of the task with this id, awaited (see Result.aget for the options)."""
        return await Result(self, Task(id=id)).aget(timeout, **options)

    def progress(self, task_id: str) -> Progress | None:
        """The latest progress the task with this id reported (see Result.progress)."""
        return read_progress(self, task_id)

    async def aprogress(self, task_id: str) -> Progress | None:
        """progress() for async code (the read runs in a thread)."""
        return await asyncio.to_thread(read_progress, self, task_id)
