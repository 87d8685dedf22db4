"""The public API: `Huey`, tasks, results, locks, rate limits, pipelines, groups and chords.

Names and meanings follow huey, so a huey application ports by changing its imports and the
storage class. The storage is a `huey_core.protocols.Backend` chosen by name or URL through the
plugin system; everything stored goes through `huey.serializer` as bytes.

Keys this module keeps in the backend's DataStore (all strings):

    <task id>                   the task's result (or an Error)
    r:<task id>                 revocation of one task: (revoke_until, revoke_once)
    rt:<module.task name>       revocation of every task of one kind
    <huey name>.lock.<name>     lock_task() locks
    <huey name>.rl.<name>.<w>   rate_limit() counters, one per time window
    chord:<cid>, chord:<cid>:<i>  chord member count and member results
    periodic:<task>:<minute>    once-per-minute dedup of periodic tasks across consumers
    dead-letter:<id>            dead letters (JSON)
"""

from __future__ import annotations

import base64
import contextlib
import copy
import ctypes
import datetime
import functools
import inspect
import json
import logging
import pickle
import signal as _signal
import threading
import time
import traceback
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from huey_core import signals as S
from huey_core.crontab import crontab
from huey_core.events import EventPublisher, build_event, emit_event, eta_timestamp
from huey_core.exceptions import (
    CancelExecution,
    ConfigurationError,
    HueyException,
    PoisonMessage,
    RateLimitExceeded,
    ResultTimeout,
    RetryTask,
    TaskException,
    TaskLockedException,
    TaskTimeout,
)
from huey_core.protocols import Delivery
from huey_core.serializer import SKIPPED, Error, Serializer, SignedSerializer

logger = logging.getLogger("huey")

__all__ = [
    "ChordResult",
    "Huey",
    "MemoryHuey",
    "PriorityRedisHuey",
    "RedisHuey",
    "SqliteHuey",
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

_DEAD_LETTER = "dead-letter:"
_PERIODIC = "periodic:"
_CHORD = "chord:"
_INFLIGHT = "inflight:"  # consumers' records of when their running tasks started (huey info)
# Exceptions that mean "try again later", not "the task failed": no error result is stored while
# retries are pending.
_RETRYING = (RetryTask, RateLimitExceeded, TaskLockedException)
_WAIT_CHUNK = 5.0  # seconds per store.wait() call when Result.get() waits without a timeout


class _Empty:
    def __repr__(self) -> str:
        return "EmptyData"


EmptyData: Any = _Empty()


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def normalize_time(
    eta: datetime.datetime | None = None,
    delay: float | datetime.timedelta | None = None,
    utc: bool = True,
) -> datetime.datetime:
    """A naive datetime in UTC (utc=True) or local time from exactly one of eta / delay."""
    if (eta is None) == (delay is None):
        raise ValueError("specify either eta (a datetime) or delay (seconds)")
    if delay is not None:
        if not isinstance(delay, datetime.timedelta):
            delay = datetime.timedelta(seconds=delay)
        return (utcnow() if utc else datetime.datetime.now()) + delay
    if not isinstance(eta, datetime.datetime):
        raise ValueError("eta must be a datetime")
    if eta.tzinfo is not None:  # aware: convert to the instance's clock, then drop the zone
        if utc:
            return eta.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return eta.astimezone().replace(tzinfo=None)
    if utc:  # naive datetimes are taken as local time, as in huey
        return eta.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return eta


def normalize_expire_time(expires: Any, utc: bool = True) -> datetime.datetime:
    if isinstance(expires, datetime.datetime):
        return normalize_time(eta=expires, utc=utc)
    return normalize_time(delay=expires, utc=utc)


class _Named:
    """What an event needs to name a message that could not be decoded into a Task."""

    def __init__(self, id: str | None, name: str | None) -> None:
        self.id, self.name = id, name


class ChordConfig:
    """Where a chord member reports: chord id, member count, its index and the callback."""

    __slots__ = ("callback", "cid", "idx", "size")

    def __init__(self, cid: str, size: int, idx: int, callback: Task) -> None:
        self.cid, self.size, self.idx, self.callback = cid, size, idx, callback


# --------------------------------------------------------------------------------------- tasks


class Task:
    """One invocation of a task function: arguments plus execution settings.

    Each `@huey.task()` creates a subclass (named after the function) whose `execute()` calls it.
    """

    name: str = "Task"
    registry_name: str = "Task"
    context = False
    default_expires: Any = None
    default_priority: int | None = None
    default_retries = 0
    default_retry_delay: float = 0
    default_retry_backoff: float = 0
    default_timeout: float | None = None

    def __init__(
        self,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        id: str | None = None,
        eta: datetime.datetime | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        priority: int | None = None,
        expires: Any = None,
        on_complete: Task | None = None,
        on_error: Task | None = None,
        expires_resolved: datetime.datetime | None = None,
        timeout: float | None = None,
        chord_config: ChordConfig | None = None,
        retry_backoff: float | None = None,
    ) -> None:
        self.name = type(self).name
        if args is None:
            args = ()
        elif not isinstance(args, (tuple, list)):
            args = (args,)  # a lone argument, as in add.schedule(3, delay=60)
        self.args = tuple(args)
        self.kwargs = {} if kwargs is None else kwargs
        self.id = id or str(uuid.uuid4())
        self.revoke_id = f"r:{self.id}"
        self.eta = eta
        self.retries = self.default_retries if retries is None else retries
        self.retry_delay = self.default_retry_delay if retry_delay is None else retry_delay
        self.retry_backoff = self.default_retry_backoff if retry_backoff is None else retry_backoff
        self.priority = self.default_priority if priority is None else priority
        self.expires = self.default_expires if expires is None else expires
        self.expires_resolved = expires_resolved
        self.timeout = self.default_timeout if timeout is None else timeout
        self.chord_config = chord_config
        self.on_complete = on_complete
        self.on_error = on_error
        self._deadline: float | None = None

    @property
    def data(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (self.args, self.kwargs)

    def __repr__(self) -> str:
        text = f"{type(self).__module__}.{self.name}: {self.id}"
        if self.eta:
            text += f" @{self.eta}"
        if self.priority:
            text += f" p={self.priority}"
        if self.retries:
            text += f" {self.retries} retries"
        if self.on_complete:
            text += f" -> {self.on_complete}"
        return text

    def __hash__(self) -> int:
        return hash(self.id)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Task)
            and self.id == other.id
            and self.eta == other.eta
            and type(self) is type(other)
        )

    def resolve_expires(self, utc: bool = True) -> datetime.datetime | None:
        if self.expires:
            self.expires_resolved = normalize_expire_time(self.expires, utc)
        return self.expires_resolved

    @property
    def time_remaining(self) -> float:
        """Seconds left before `timeout` (inf without one): for cooperative long tasks."""
        if self._deadline:
            return max(0.0, self._deadline - time.monotonic())
        return float("inf")

    @property
    def is_timed_out(self) -> bool:
        return bool(self._deadline and time.monotonic() >= self._deadline)

    def check_timeout(self) -> None:
        """Raise TaskTimeout when the task ran past its timeout (call it inside long loops)."""
        if self.is_timed_out:
            raise TaskTimeout(f"timeout {self.timeout}s")

    def extend_data(self, data: Any) -> None:
        """Append a parent's return value: tuple -> more args, dict -> default kwargs, else one arg."""
        if data is None or data == ():
            return
        if isinstance(data, tuple):
            self.args += data
        elif isinstance(data, dict):
            for key, value in data.items():
                self.kwargs.setdefault(key, value)
        else:
            self.args = self.args + (data,)

    def then(self, task: Any, *args: Any, **kwargs: Any) -> Task:
        """Run `task` after this one succeeds, with this task's return value appended."""
        if self.on_complete:
            self.on_complete.then(task, *args, **kwargs)
        else:
            self.on_complete = _signature(task, args, kwargs)
        return self

    def error(self, task: Any, *args: Any, **kwargs: Any) -> Task:
        """Run `task` when this one fails for good, with the exception appended."""
        if self.on_error:
            self.on_error.error(task, *args, **kwargs)
        else:
            self.on_error = _signature(task, args, kwargs)
        return self

    def execute(self) -> Any:
        raise NotImplementedError("tasks are created with @huey.task()")


class PeriodicTask(Task):
    def validate_datetime(self, timestamp: datetime.datetime) -> bool:
        return False


def _signature(task: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Task:
    if not isinstance(task, Task):
        return task.s(*args, **(kwargs or {}))
    if args:
        task.extend_data(args)
    if kwargs:
        task.extend_data(kwargs)
    return task


class TaskWrapper:
    """What `@huey.task()` returns: call it to enqueue, `.s()` for a signature, `.schedule()`..."""

    task_base: type[Task] = Task

    def __init__(
        self,
        huey: Huey,
        func: Callable[..., Any],
        context: bool = False,
        name: str | None = None,
        task_base: type[Task] | None = None,
        **settings: Any,
    ) -> None:
        if inspect.iscoroutinefunction(func):
            raise ConfigurationError(
                "async functions cannot be tasks; wrap the coroutine with asyncio.run() in a plain function"
            )
        self.__doc__ = getattr(func, "__doc__", None)
        self.__name__ = getattr(func, "__name__", "task")
        self.__wrapped__ = func
        self.huey = huey
        self.func = func
        self.context = context
        self.name = name
        self.settings = settings
        if task_base is not None:
            self.task_base = task_base
        self.task_class = self.create_task(func, context, name, **settings)
        huey._registry.register(self.task_class)

    @property
    def retries(self) -> int:
        return self.task_class.default_retries

    @property
    def retry_delay(self) -> float:
        return self.task_class.default_retry_delay

    def create_task(
        self, func: Callable[..., Any], context: bool = False, name: str | None = None, **settings: Any
    ) -> type[Task]:
        def execute(task: Task) -> Any:
            args, kwargs = task.data
            if task.context:
                kwargs = dict(kwargs, task=task)  # a copy: a retry must not serialize the task
            return func(*args, **kwargs)

        task_name = name or func.__name__
        attrs: dict[str, Any] = {
            "context": context,
            "execute": execute,
            "name": task_name,
            "registry_name": f"{func.__module__}.{task_name}",
            "__module__": func.__module__,
            "__doc__": func.__doc__,
        }
        attrs.update(settings)
        return type(task_name, (self.task_base,), attrs)

    def unregister(self) -> bool:
        return self.huey._registry.unregister(self.task_class)

    def is_revoked(self, timestamp: datetime.datetime | None = None, peek: bool = True) -> bool:
        return self.huey.is_revoked(self.task_class, timestamp, peek)

    def revoke(self, revoke_until: datetime.datetime | None = None, revoke_once: bool = False) -> None:
        """Skip every task of this kind (until a time, or just the next one)."""
        self.huey.revoke_all(self.task_class, revoke_until, revoke_once)

    def restore(self) -> bool:
        return self.huey.restore_all(self.task_class)

    def schedule(
        self,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        eta: datetime.datetime | None = None,
        delay: float | datetime.timedelta | None = None,
        priority: int | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        retry_backoff: float | None = None,
        expires: Any = None,
        timeout: float | None = None,
        id: str | None = None,
    ) -> Any:
        """Enqueue to run at `eta` or after `delay` seconds: `add.schedule((1, 2), delay=10)`."""
        if eta is None and delay is None:
            if isinstance(args, (int, float)) and not isinstance(args, bool):
                delay, args = args, None
            elif isinstance(args, datetime.timedelta):
                delay, args = args.total_seconds(), None
            elif isinstance(args, datetime.datetime):
                eta, args = args, None
            else:
                raise ValueError("schedule() needs eta= or delay=")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ValueError("schedule() kwargs must be a dict")
        task = self.task_class(
            args or (),
            kwargs or {},
            id=id,
            eta=normalize_time(eta, delay, self.huey.utc),
            retries=retries,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            priority=priority,
            expires=expires,
            timeout=timeout,
        )
        return self.huey.enqueue(task)

    def _apply(self, items: Iterable[Any]) -> list[Task]:
        return [self.s(*(item if isinstance(item, tuple) else (item,))) for item in items]

    def map(self, items: Iterable[Any]) -> ResultGroup | None:
        """Enqueue one task per item (a tuple item is spread as arguments)."""
        results = [self.huey.enqueue(task) for task in self._apply(items)]
        return ResultGroup(results) if self.huey.results else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.huey.enqueue(self.s(*args, **kwargs))

    def call_local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here and now, bypassing the queue."""
        return self.func(*args, **kwargs)

    def s(self, *args: Any, **kwargs: Any) -> Task:
        """A task instance without enqueueing it (for pipelines, groups, chords)."""
        eta = kwargs.pop("eta", None)
        delay = kwargs.pop("delay", None)
        if isinstance(delay, datetime.timedelta):
            delay = delay.total_seconds()
        if eta is not None or delay is not None:
            eta = normalize_time(eta, delay, self.huey.utc)
        return self.task_class(
            args,
            kwargs,
            id=kwargs.pop("id", None),
            eta=eta,
            retries=kwargs.pop("retries", None),
            retry_delay=kwargs.pop("retry_delay", None),
            retry_backoff=kwargs.pop("retry_backoff", None),
            priority=kwargs.pop("priority", None),
            expires=kwargs.pop("expires", None),
            timeout=kwargs.pop("timeout", None),
        )


class Registry:
    """Task classes by "<module>.<name>", the name messages carry."""

    def __init__(self) -> None:
        self._registry: dict[str, type[Task]] = {}
        self._periodic: list[type[Task]] = []

    @staticmethod
    def task_to_string(task_class: type[Task]) -> str:
        return getattr(task_class, "registry_name", None) or f"{task_class.__module__}.{task_class.__name__}"

    def register(self, task_class: type[Task]) -> None:
        key = self.task_to_string(task_class)
        old = self._registry.get(key)
        if old is not None and old in self._periodic:
            self._periodic.remove(old)
        self._registry[key] = task_class
        if hasattr(task_class, "validate_datetime"):
            self._periodic.append(task_class)

    def unregister(self, task_class: type[Task]) -> bool:
        key = self.task_to_string(task_class)
        if task_class in self._periodic:
            self._periodic.remove(task_class)
        return self._registry.pop(key, None) is not None

    def string_to_task(self, name: str) -> type[Task]:
        try:
            return self._registry[name]
        except KeyError:
            raise PoisonMessage(f"unknown task {name!r} (not registered in this process)") from None

    def __contains__(self, name: str) -> bool:
        return name in self._registry

    @property
    def periodic_tasks(self) -> list[Task]:
        return [task_class() for task_class in self._periodic]


# --------------------------------------------------------------------------------------- results


class Result:
    """A handle on a task's future result. `result()` is `result.get()`."""

    def __init__(self, huey: Huey, task: Task) -> None:
        self.huey = huey
        self.task = task
        self.revoke_id = task.revoke_id
        self._result: Any = EmptyData

    def __repr__(self) -> str:
        return f"<Result: task {self.id}>"

    @property
    def id(self) -> str:
        return self.task.id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.get(*args, **kwargs)

    def is_ready(self) -> bool:
        """True when the result is in; it is then read into this handle (and off the store)."""
        return self._get() is not EmptyData

    def _get(self, preserve: bool = False) -> Any:
        if self._result is EmptyData:
            raw = self.huey.get_raw(self.id, peek=preserve)
            if raw is not EmptyData:
                self._result = self.huey.serializer.deserialize(raw)
        return self._result

    def get_raw_result(
        self,
        blocking: bool = False,
        timeout: float | None = None,
        backoff: float = 1.15,
        max_delay: float = 1.0,
        revoke_on_timeout: bool = False,
        preserve: bool = False,
    ) -> Any:
        value = self._get(preserve)
        if value is not EmptyData:
            return value
        if not blocking:
            return None
        # The store wakes us when the key is written (natively where the backend can), so
        # `backoff`/`max_delay` are accepted for huey compatibility but not needed.
        deadline = None if timeout is None else time.monotonic() + timeout
        store = self.huey.storage.store
        while True:
            remaining = _WAIT_CHUNK if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            arrived = store.wait(self.id, min(remaining, _WAIT_CHUNK))
            value = self._get(preserve)
            if value is not EmptyData:
                return value
            if arrived:
                break  # it was there but another reader took it: it will not come back
        if revoke_on_timeout:
            self.revoke()
        raise ResultTimeout(f"timed out after {timeout}s waiting for the result of task {self.id}")

    def get(
        self,
        blocking: bool = False,
        timeout: float | None = None,
        backoff: float = 1.15,
        max_delay: float = 1.0,
        revoke_on_timeout: bool = False,
        preserve: bool = False,
    ) -> Any:
        """The task's return value; None when not ready and not blocking.

        Raises TaskException (error, traceback and retries in `.metadata`) when the task failed,
        ResultTimeout when `blocking` and `timeout` seconds pass. The stored result is consumed
        unless `preserve=True`; this handle remembers it either way.
        """
        value = self.get_raw_result(blocking, timeout, backoff, max_delay, revoke_on_timeout, preserve)
        if isinstance(value, Error):
            raise TaskException(value.metadata)
        return value

    def is_revoked(self) -> bool:
        return self.huey.is_revoked(self.task, peek=True)

    def revoke(self, revoke_once: bool = True) -> None:
        self.huey.revoke(self.task, revoke_once=revoke_once)

    def restore(self) -> bool:
        return self.huey.restore(self.task)

    def reschedule(
        self,
        eta: datetime.datetime | None = None,
        delay: float | None = None,
        expires: Any = None,
        priority: int | None = None,
        preserve_pipeline: bool = True,
    ) -> Any:
        """Revoke this task and enqueue a copy (new id) for `eta`/`delay`, or now."""
        self.revoke()
        if eta is not None or delay is not None:
            eta = normalize_time(eta, delay, self.huey.utc)
        task = type(self.task)(
            self.task.args,
            self.task.kwargs,
            eta=eta,
            retries=self.task.retries,
            retry_delay=self.task.retry_delay,
            retry_backoff=self.task.retry_backoff,
            priority=self.task.priority if priority is None else priority,
            expires=self.task.expires if expires is None else expires,
            timeout=self.task.timeout,
            chord_config=self.task.chord_config,
            on_complete=self.task.on_complete if preserve_pipeline else None,
            on_error=self.task.on_error if preserve_pipeline else None,
        )
        return self.huey.enqueue(task)

    def reset(self) -> None:
        self._result = EmptyData


class ResultGroup:
    """Results of a group, map or pipeline: `get()` returns a list."""

    def __init__(self, results: list[Any]) -> None:
        self._results = results

    def get(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [result.get(*args, **kwargs) for result in self._results]

    __call__ = get

    def __getitem__(self, idx: int) -> Any:
        return self._results[idx].get(True)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def as_completed(self, backoff: float = 1.15, max_delay: float = 1.0) -> Iterator[Any]:
        """Yield values in completion order."""
        pending = deque(self._results)
        delays = {r.id: 0.0 for r in pending}
        while pending:
            result = pending.popleft()
            if delays[result.id]:
                time.sleep(delays[result.id])
            if result._get() is EmptyData:
                pending.append(result)
                delays[result.id] = min((delays[result.id] or 0.05) * backoff, max_delay)
            else:
                yield result.get()


class ChordResult:
    """`get()` returns the chord callback's value; `.results` holds the members' results."""

    def __init__(self, results: list[Result], callback: Result, pipeline: ResultGroup | None = None) -> None:
        self.results = ResultGroup(results)
        self.callback = callback
        self.pipeline_results = pipeline

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.callback.get(*args, **kwargs)

    __call__ = get

    def reset(self) -> None:
        self.callback.reset()


class group:
    """Tasks enqueued together: `huey.enqueue(group([t.s(1), t.s(2)]))` -> ResultGroup."""

    def __init__(self, tasks: Iterable[Task]) -> None:
        self.tasks = list(tasks)

    def then(self, task: Any, *args: Any, **kwargs: Any) -> chord:
        """A chord: `task` runs once with the list of every member's result."""
        return chord(self.tasks, _signature(task, args, kwargs))

    def error(self, *args: Any, **kwargs: Any) -> group:
        for task in self.tasks:
            task.error(*args, **kwargs)
        return self


class chord:
    """Members run in parallel; the callback gets their results as one list, in member order."""

    def __init__(self, tasks: Iterable[Any], callback: Any) -> None:
        self.tasks = list(tasks)
        self.callback = _signature(callback)

    def then(self, task: Any, *args: Any, **kwargs: Any) -> chord:
        self.callback.then(task, *args, **kwargs)
        return self

    def error(self, task: Any, *args: Any, **kwargs: Any) -> chord:
        self.callback.error(task, *args, **kwargs)
        return self


# --------------------------------------------------------------------------------------- locks


class TaskLock(contextlib.ContextDecorator):
    """`huey.lock_task(name)`: a context manager and decorator; TaskLockedException when held."""

    def __init__(self, huey: Huey, name: str, ttl: float | None = None) -> None:
        self._huey = huey
        self._name = name
        self._ttl = ttl
        self._key = f"{huey.name}.lock.{name}"
        huey._locks.add(self._key)

    def is_locked(self) -> bool:
        return self._huey.storage.store.exists(self._key)

    locked = is_locked

    def __enter__(self) -> TaskLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.clear()

    def acquire(self) -> bool:
        if not self._huey.storage.store.put_if_empty(self._key, b"1", self._ttl):
            raise TaskLockedException(f"unable to acquire lock {self._name}")
        return True

    def clear(self) -> bool:
        return self._huey.storage.store.delete(self._key)

    release = clear


class RateLimit(contextlib.ContextDecorator):
    """`huey.rate_limit(name, limit, per)`: at most `limit` entries per `per`-second window.

    A fixed window counted with one atomic `incr` per entry on a key that expires with the
    window, so it holds across every process sharing the backend. When the window is full the
    entry raises RateLimitExceeded(name, seconds until the window resets, retry); inside a task
    with `retry=True` that reschedules the task for when the window reopens.
    """

    def __init__(self, huey: Huey, name: str, limit: int, per: float, retry: bool = True) -> None:
        if limit < 0 or per <= 0:
            raise ValueError("rate_limit needs limit >= 0 and per > 0 seconds")
        self._huey = huey
        self._name = name
        self._limit = limit
        self._per = per
        self._retry = retry
        self._prefix = f"{huey.name}.rl.{name}."

    def _window(self, now: float) -> int:
        return int(now // self._per)

    def acquire(self) -> None:
        now = time.time()
        window = self._window(now)
        count = self._huey.storage.store.incr(f"{self._prefix}{window}", 1, ttl=self._per + 1)
        if count > self._limit:
            reset_in = (window + 1) * self._per - now
            raise RateLimitExceeded(self._name, reset_in, retry=self._retry)

    def current_usage(self) -> int:
        raw = self._huey.storage.store.peek(f"{self._prefix}{self._window(time.time())}")
        return int(raw) if raw else 0

    def reset(self) -> None:
        self._huey.storage.store.flush(self._prefix)

    def __enter__(self) -> RateLimit:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


# --------------------------------------------------------------------------------------- timeouts


class _Timeout:
    """Enforce `timeout=` on the running task, as well as Python allows.

    - Main thread (a process worker, or immediate mode in a script): SIGALRM via setitimer
      interrupts the task, even inside time.sleep().
    - Other threads: a watchdog raises TaskTimeout in the worker thread asynchronously
      (PyThreadState_SetAsyncExc). Python delivers it between bytecodes, so a task blocked in
      one long C call (a socket read, time.sleep) is only interrupted when that call returns.
    - Either way, a task that returns after its deadline is reported as TaskTimeout.
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        self.seconds = float(task.timeout or 0)
        self._guard = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None
        self._old_handler: Any = None
        self._alarm = False

    def __enter__(self) -> _Timeout:
        if self.seconds <= 0:
            return self
        if threading.current_thread() is threading.main_thread() and hasattr(_signal, "setitimer"):
            try:
                self._old_handler = _signal.signal(_signal.SIGALRM, self._on_alarm)
                _signal.setitimer(_signal.ITIMER_REAL, self.seconds)
                self._alarm = True
                return self
            except ValueError:  # not allowed here (e.g. a sub-interpreter)
                pass
        thread_id = threading.get_ident()
        self._timer = threading.Timer(self.seconds, self._interrupt, args=(thread_id,))
        self._timer.daemon = True
        self._timer.start()
        return self

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if not self._done:
            raise TaskTimeout(f"timeout {self.seconds}s")

    def _interrupt(self, thread_id: int) -> None:
        with self._guard:
            if self._done:
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread_id), ctypes.py_object(TaskTimeout)
            )

    def finish(self) -> None:
        """Called as soon as the task returns: no interruption may fire after this."""
        with self._guard:
            self._done = True
        if self._alarm:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            _signal.signal(_signal.SIGALRM, self._old_handler or _signal.SIG_DFL)
            self._alarm = False
        if self._timer is not None:
            self._timer.cancel()

    def __exit__(self, *exc: Any) -> None:
        self.finish()


# --------------------------------------------------------------------------------------- Huey


class Huey:
    """A task queue instance: `huey = Huey("my-app", backend="redis")`.

    Storage is built on first use with `huey_core.plugins.create_backend(name, backend, url,
    **backend_options)`; `backend` may also be a ready Backend object (two Huey objects can share
    one). `immediate=True` runs tasks synchronously in the caller on a private memory backend.
    `secret` signs every message and stored value with HMAC-SHA256; unsigned or tampered
    messages are dead-lettered, never executed.
    """

    def __init__(
        self,
        name: str = "huey",
        backend: Any = None,
        url: str | None = None,
        results: bool = True,
        store_none: bool = False,
        utc: bool = True,
        immediate: bool = False,
        serializer: Any = None,
        events: bool = True,
        secret: str | bytes | None = None,
        lease_timeout: float = 30.0,
        max_deliveries: int = 5,
        result_ttl: float | None = None,
        immediate_use_memory: bool = True,
        store_intermediate_errors: bool = True,
        **backend_options: Any,
    ) -> None:
        self.name = name
        self.results = results
        self.store_none = store_none
        self.store_intermediate_errors = store_intermediate_errors
        self.utc = utc
        self.events = events
        self.lease_timeout = float(lease_timeout)
        self.max_deliveries = int(max_deliveries)
        self.result_ttl = result_ttl
        self.immediate_use_memory = immediate_use_memory
        serializer = Serializer() if serializer is None else serializer
        self.serializer = SignedSerializer(serializer, secret) if secret else serializer
        self._backend_spec: tuple[Any, str | None, dict[str, Any]] = (backend, url, backend_options)
        self._storage: Any = None
        self._immediate_storage: Any = None
        self._storage_lock = threading.Lock()
        self._immediate = bool(immediate)
        self._registry = Registry()
        self._signal = S.Signal()
        self._locks: set[str] = set()
        self._pre_execute: dict[str, Callable[..., Any]] = {}
        self._post_execute: dict[str, Callable[..., Any]] = {}
        self._startup: dict[str, Callable[..., Any]] = {}
        self._shutdown: dict[str, Callable[..., Any]] = {}
        self._tasks_in_flight: set[Task] = set()
        self._local = threading.local()
        # Events go out from a background thread in batches: a task never waits for them.
        self._publisher = EventPublisher()

    def __repr__(self) -> str:
        return f"<Huey {self.name!r}>"

    # -- storage ------------------------------------------------------------------------------

    def create_storage(self) -> Any:
        """Build the backend from the constructor's backend/url/options (plugins decide)."""
        backend, url, options = self._backend_spec
        if backend is not None and not isinstance(backend, str):
            return backend  # a ready Backend object
        from huey_core.plugins import create_backend

        return create_backend(self.name, backend, url, **options)

    def get_immediate_storage(self) -> Any:
        from huey_core.plugins import create_backend

        return create_backend(self.name, "memory")

    @property
    def storage(self) -> Any:
        """The Backend in use (built on first access; the memory backend in immediate mode)."""
        if self._immediate and self.immediate_use_memory:
            if self._immediate_storage is None:
                with self._storage_lock:
                    if self._immediate_storage is None:
                        self._immediate_storage = self.get_immediate_storage()
            return self._immediate_storage
        if self._storage is None:
            with self._storage_lock:
                if self._storage is None:
                    self._storage = self.create_storage()
        return self._storage

    @storage.setter
    def storage(self, backend: Any) -> None:
        self._storage = backend

    def configure_backend(self, backend: Any = None, url: str | None = None, **options: Any) -> None:
        """Choose another backend (the consumer's --backend/--url win over the constructor's).

        The previous backend, if it was built, is closed; the new one is built on next use.
        """
        with self._storage_lock:
            old, self._storage = self._storage, None
            previous_backend, _, previous_options = self._backend_spec
            if not options and backend == previous_backend:
                options = previous_options  # same backend, new URL: keep its options
            self._backend_spec = (backend, url, options)
        if old is not None:
            self.flush_events()  # queued events belong to the old backend
        if old is not None and (self._backend_spec[0] is not old):
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
            self._immediate_storage = None  # a fresh memory store next time, as huey does

    def create_consumer(self, **options: Any) -> Any:
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
        self,
        validate_datetime: Callable[[datetime.datetime], bool],
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
        """A task the consumer enqueues whenever `validate_datetime(now)` (a crontab) is true."""

        def method_validate(task: Task, timestamp: datetime.datetime) -> bool:
            return bool(validate_datetime(timestamp))

        return self.task(
            retries=retries,
            retry_delay=retry_delay,
            retry_backoff=retry_backoff,
            priority=priority,
            context=context,
            name=name,
            expires=expires,
            timeout=timeout,
            validate_datetime=method_validate,
            task_base=PeriodicTask,
            **kwargs,
        )

    def context_task(self, obj: Any, as_argument: bool = False, **kwargs: Any) -> Callable[..., TaskWrapper]:
        """A task that runs inside `with obj:` (passing the context value first if as_argument)."""

        def task_decorator(fn: Callable[..., Any]) -> TaskWrapper:
            @functools.wraps(fn)
            def inner(*a: Any, **k: Any) -> Any:
                with obj as ctx:
                    return fn(ctx, *a, **k) if as_argument else fn(*a, **k)

            return self.task(**kwargs)(inner)

        return task_decorator

    def _hook(self, registry: dict[str, Callable[..., Any]], name: str | None) -> Callable[..., Any]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            registry[name or fn.__name__] = fn
            return fn

        return decorator

    def pre_execute(self, name: str | None = None) -> Callable[..., Any]:
        """`fn(task)` before each task; raising CancelExecution cancels it."""
        return self._hook(self._pre_execute, name)

    def post_execute(self, name: str | None = None) -> Callable[..., Any]:
        """`fn(task, task_value, exception)` after each task."""
        return self._hook(self._post_execute, name)

    def on_startup(self, name: str | None = None) -> Callable[..., Any]:
        """`fn()` once in each consumer worker when it starts."""
        return self._hook(self._startup, name)

    def on_shutdown(self, name: str | None = None) -> Callable[..., Any]:
        """`fn()` once in each consumer worker when it stops."""
        return self._hook(self._shutdown, name)

    def unregister_pre_execute(self, name: str | Callable[..., Any]) -> bool:
        return self._unhook(self._pre_execute, name)

    def unregister_post_execute(self, name: str | Callable[..., Any]) -> bool:
        return self._unhook(self._post_execute, name)

    def unregister_on_startup(self, name: str | Callable[..., Any]) -> bool:
        return self._unhook(self._startup, name)

    def unregister_on_shutdown(self, name: str | Callable[..., Any]) -> bool:
        return self._unhook(self._shutdown, name)

    @staticmethod
    def _unhook(registry: dict[str, Callable[..., Any]], name: str | Callable[..., Any]) -> bool:
        key = name if isinstance(name, str) else name.__name__
        return registry.pop(key, None) is not None

    def _run_hooks(self, registry: dict[str, Callable[..., Any]], kind: str) -> None:
        for name, fn in list(registry.items()):
            try:
                fn()
            except Exception:
                logger.exception("%s hook %s failed", kind, name)

    def run_startup_hooks(self) -> None:
        """Run every on_startup hook (a failing hook is logged; the others still run)."""
        self._run_hooks(self._startup, "startup")

    def run_shutdown_hooks(self) -> None:
        """Run every on_shutdown hook (a failing hook is logged; the others still run)."""
        self._run_hooks(self._shutdown, "shutdown")

    def signal(self, *signals: str) -> Callable[..., Any]:
        """Connect `fn(signal, task, *extra)` to the named signals (all of them when none)."""

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._signal.connect(fn, *signals)
            return fn

        return decorator

    def disconnect_signal(self, receiver: Callable[..., Any], *signals: str) -> None:
        self._signal.disconnect(receiver, *signals)

    def notify_interrupted_tasks(self) -> None:
        """Send SIGNAL_INTERRUPTED (and an event) for every task still running in this process."""
        while self._tasks_in_flight:
            try:
                task = self._tasks_in_flight.pop()
            except KeyError:
                break
            self._send(S.SIGNAL_INTERRUPTED, task)

    # -- events and signals -----------------------------------------------------------------------

    def emit(self, status: str, task: Task | None = None, **fields: Any) -> None:
        """Publish one event (see huey_core.events). Never raises; failures are logged."""
        if not self.events:
            return
        try:
            worker = fields.pop("worker", None) or getattr(self._local, "worker", None)
            if worker:
                fields["worker"] = worker
            event = build_event(status, task, utc=self.utc, huey=self.name, **fields)
            emitter = self.storage.events
            if getattr(emitter, "inline", False):
                emit_event(emitter, event)  # an in-process hand-off: no thread needed
            else:
                self._publisher.submit(emitter, event)
        except Exception:
            logger.warning("could not emit %s event", status, exc_info=True)

    def flush_events(self, timeout: float = 5.0) -> bool:
        """Wait until every event emitted so far has been handed to the backend.

        Events are published asynchronously (see huey_core.events.EventPublisher); the consumer
        flushes when it stops and worker processes before they exit. True when all were sent
        (or failed to send) within `timeout` seconds.
        """
        return self._publisher.flush(timeout)

    # signal name -> event status (DESIGN section 8 names)
    _EVENT_STATUS = {
        S.SIGNAL_EXECUTING: "started",
        S.SIGNAL_COMPLETE: "finished",
        S.SIGNAL_TIMEOUT: "error",
    }

    def _send(self, name: str, task: Task, *args: Any, **fields: Any) -> None:
        """Fire a signal and the matching event."""
        self._signal.send(name, task, *args)
        self.emit(self._EVENT_STATUS.get(name, name), task, **fields)

    # -- serialization --------------------------------------------------------------------------

    def _message(self, task: Task) -> dict[str, Any]:
        name = self._registry.task_to_string(type(task))
        if name not in self._registry:
            raise HueyException(f"task {name} is not registered with {self!r}")
        kwargs = task.kwargs
        if kwargs and kwargs.get("task") is task:  # an injected context=True argument
            kwargs = {k: v for k, v in kwargs.items() if k != "task"}
        cc = task.chord_config
        return {
            "v": 1,
            "id": task.id,
            "name": name,
            "args": tuple(task.args),
            "kwargs": kwargs,
            "eta": task.eta,
            "retries": task.retries,
            "retry_delay": task.retry_delay,
            "retry_backoff": task.retry_backoff,
            "priority": task.priority,
            "expires": task.expires,
            "expires_resolved": task.expires_resolved,
            "timeout": task.timeout,
            "on_complete": self._message(task.on_complete) if task.on_complete else None,
            "on_error": self._message(task.on_error) if task.on_error else None,
            "chord": [cc.cid, cc.size, cc.idx, self._message(cc.callback)] if cc else None,
        }

    def _task(self, message: Any, depth: int = 0) -> Task:
        if depth > 100:
            raise PoisonMessage("message nests too deeply")
        if not isinstance(message, dict):
            raise PoisonMessage(f"message is a {type(message).__name__}, not a task message")
        try:
            name = message["name"]
            task_id = message["id"]
            args = message.get("args") or ()
            kwargs = message.get("kwargs") or {}
            eta = message.get("eta")
            expires_resolved = message.get("expires_resolved")
        except (KeyError, TypeError) as exc:
            raise PoisonMessage(f"task message lacks field {exc}") from None
        if not isinstance(name, str) or not isinstance(task_id, str):
            raise PoisonMessage("task message has a non-string name or id")
        if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
            raise PoisonMessage("task message has malformed args or kwargs")
        if not all(isinstance(k, str) for k in kwargs):
            raise PoisonMessage("task message has non-string keyword names")
        for value in (eta, expires_resolved):
            # Messages carry naive datetimes; an aware one cannot be compared with the clock.
            if value is not None and (
                not isinstance(value, datetime.datetime) or value.tzinfo is not None
            ):
                raise PoisonMessage("task message has a malformed eta or expiry")
        numbers = {}
        for field in ("retries", "retry_delay", "retry_backoff", "priority", "timeout"):
            value = message.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise PoisonMessage(f"task message field {field} is not a number")
            numbers[field] = value
        expires = message.get("expires")
        if expires is not None and (
            isinstance(expires, bool)
            or not isinstance(expires, (int, float, datetime.timedelta, datetime.datetime))
        ):
            raise PoisonMessage("task message has a malformed expires")
        task_class = self._registry.string_to_task(name)
        on_complete = self._task(message["on_complete"], depth + 1) if message.get("on_complete") else None
        on_error = self._task(message["on_error"], depth + 1) if message.get("on_error") else None
        chord_config = None
        if message.get("chord"):
            try:
                cid, size, idx, callback = message["chord"]
                chord_config = ChordConfig(str(cid), int(size), int(idx), self._task(callback, depth + 1))
            except PoisonMessage:
                raise
            except Exception:
                raise PoisonMessage("task message has a malformed chord") from None
        return task_class(
            tuple(args),
            dict(kwargs),
            id=task_id,
            eta=eta,
            retries=numbers["retries"],
            retry_delay=numbers["retry_delay"],
            priority=numbers["priority"],
            expires=expires,
            on_complete=on_complete,
            on_error=on_error,
            expires_resolved=expires_resolved,
            timeout=numbers["timeout"],
            chord_config=chord_config,
            retry_backoff=numbers["retry_backoff"],
        )

    def serialize_task(self, task: Task) -> bytes:
        return self.serializer.serialize(self._message(task))

    def deserialize_task(self, data: bytes) -> Task:
        """The Task in `data`; PoisonMessage (and nothing else) when it cannot run here."""
        try:
            message = self.serializer.deserialize(data)
        except PoisonMessage:
            raise
        except Exception as exc:  # a user-supplied serializer may raise anything
            raise PoisonMessage(f"cannot decode message: {type(exc).__name__}: {exc}") from None
        try:
            return self._task(message)
        except PoisonMessage:
            raise
        except Exception as exc:
            raise PoisonMessage(f"malformed task message: {type(exc).__name__}: {exc}") from None

    # -- time -----------------------------------------------------------------------------------

    def _get_timestamp(self) -> datetime.datetime:
        return utcnow() if self.utc else datetime.datetime.now()

    def _unix(self, dt: datetime.datetime) -> float:
        return eta_timestamp(dt, self.utc) or 0.0

    # -- enqueueing -----------------------------------------------------------------------------

    def enqueue(self, task: Any) -> Any:
        """Put a task (or group, or chord) on the queue; returns its Result (None if results=False)."""
        if isinstance(task, group):
            return ResultGroup([self.enqueue(t) for t in task.tasks])
        if isinstance(task, chord):
            return self._enqueue_chord(task)
        if task.expires:
            task.resolve_expires(self.utc)
        self._send(S.SIGNAL_ENQUEUED, task)
        if self._immediate:
            self.execute(task)
        else:
            self.storage.queue.enqueue(self.serialize_task(task), task.priority or 0)
        if not self.results:
            return None
        results = self._pipeline_results(task)
        return ResultGroup(results) if len(results) > 1 else results[0]

    def _pipeline_results(self, task: Task | None) -> list[Result]:
        results = []
        while task is not None:
            results.append(Result(self, task))
            task = task.on_complete
        return results

    def _enqueue_chord(self, chord_obj: chord) -> ChordResult:
        cid = str(uuid.uuid4())
        size = len(chord_obj.tasks)
        results = []
        for idx, member in enumerate(chord_obj.tasks):
            if isinstance(member, group):
                raise ValueError("a group cannot be a chord member; turn it into a chord with .then()")
            head = member.callback if isinstance(member, chord) else member
            tail = head
            while tail.on_complete is not None:
                tail = tail.on_complete
            tail.chord_config = ChordConfig(cid, size, idx, chord_obj.callback)
            if isinstance(member, chord):
                self._enqueue_chord(member)
            else:
                self.enqueue(head)
            results.append(Result(self, tail))
        if not size:
            callback = copy.copy(chord_obj.callback)
            callback.extend_data(([],))
            self.enqueue(callback)
        pipeline = self._pipeline_results(chord_obj.callback)
        return ChordResult(results, pipeline[0], ResultGroup(pipeline) if len(pipeline) > 1 else None)

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
                self._dead_letter(delivery.data, str(exc), deliveries=delivery.deliveries)

    def add_schedule(self, task: Task) -> None:
        eta = task.eta or datetime.datetime(1970, 1, 1)
        self.storage.schedule.add(self.serialize_task(task), self._unix(eta), task.priority or 0)
        logger.info("task %s scheduled for %s", task.id, eta)
        self._send(S.SIGNAL_SCHEDULED, task)

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
            timestamp = self._get_timestamp()
        return task.eta is None or task.eta <= timestamp

    def execute(self, task: Task, timestamp: datetime.datetime | None = None) -> Any:
        """Run `task` now unless it is not due (scheduled), revoked or expired; return its value.

        Task failures never propagate: they become error results, retries, signals and events.
        """
        if timestamp is None:
            timestamp = self._get_timestamp()
        if not self.ready_to_run(task, timestamp):
            self.add_schedule(task)
        elif self.is_revoked(task, timestamp, False):
            logger.warning("task %s was revoked, not running it", task.id)
            self._send(S.SIGNAL_REVOKED, task)
            self._abort_chord_member(task, SKIPPED)
        elif task.expires_resolved and task.expires_resolved < timestamp:
            logger.info("task %s expired at %s, not running it", task.id, task.expires_resolved)
            self._send(S.SIGNAL_EXPIRED, task)
            self._abort_chord_member(task, SKIPPED)
        else:
            return self._execute(task)
        return None

    def _execute(self, task: Task) -> Any:
        if self._pre_execute:
            try:
                self._run_pre_execute(task)
            except CancelExecution:
                self._send(S.SIGNAL_CANCELED, task)
                self._abort_chord_member(task, SKIPPED)
                return None
        logger.info("executing %s", task)
        self._send(S.SIGNAL_EXECUTING, task)
        start = time.monotonic()
        exception: BaseException | None = None
        retry_eta: datetime.datetime | None = None
        value: Any = None
        if task.timeout:
            task._deadline = start + task.timeout
        error_signal: tuple[Any, ...] | None = None
        try:
            self._tasks_in_flight.add(task)
            timer = _Timeout(task)
            try:
                with timer:
                    value = task.execute()
                    timer.finish()
            finally:
                self._tasks_in_flight.discard(task)
                duration = time.monotonic() - start
            if task.timeout and duration > task.timeout:
                # A thread worker could not interrupt it; the late value is discarded.
                raise TaskTimeout(f"timeout {task.timeout}s (ran {duration:0.3f}s)")
        except TaskTimeout as exc:
            duration = time.monotonic() - start
            logger.warning("task %s timed out after %ss", task.id, task.timeout)
            exception = exc
            error_signal = (S.SIGNAL_TIMEOUT,)
        except RateLimitExceeded as exc:
            delay = task.retry_delay or exc.delay
            if exc.retry or task.retries:
                logger.info("task %s rate-limited on %r, retrying in %0.1fs", task.id, exc.key, delay)
                retry_eta = normalize_time(None, delay, self.utc)
                if exc.retry:
                    task.retries += 1  # waiting for the window does not use up a retry
            exception = exc
            error_signal = (S.SIGNAL_RATE_LIMITED,)
        except TaskLockedException as exc:
            logger.warning("task %s not run: %s", task.id, exc)
            exception = exc
            error_signal = (S.SIGNAL_LOCKED,)
        except RetryTask as exc:
            logger.info("task %s raised RetryTask, retrying", task.id)
            task.retries += 1
            if exc.eta or exc.delay is not None:
                retry_eta = normalize_time(exc.eta, exc.delay, self.utc)
            exception = exc
        except CancelExecution as exc:
            if exc.retry or (exc.retry is None and task.retries):
                task.retries = max(task.retries, 1)
            else:
                task.retries = 0
            logger.warning("task %s canceled itself", task.id)
            exception = exc
            error_signal = (S.SIGNAL_CANCELED,)
        except KeyboardInterrupt:
            logger.warning("task %s interrupted by an exit signal", task.id)
            self._send(S.SIGNAL_INTERRUPTED, task)
            self._local.interrupted = True  # process() re-raises, so the message is not acked
            return None
        except SystemExit as exc:  # sys.exit() inside a task is a task failure, not ours
            logger.error("task %s called sys.exit(%s)", task.id, exc.code)
            exception = TaskException({"error": f"SystemExit({exc.code!r})"}).with_traceback(
                exc.__traceback__
            )
            error_signal = (S.SIGNAL_ERROR, exception)
        except Exception as exc:
            logger.exception("%s failed after %0.3fs", task, time.monotonic() - start)
            exception = exc
            error_signal = (S.SIGNAL_ERROR, exc)
        else:
            logger.info("%s finished in %0.3fs", task, duration)

        if error_signal is not None:
            assert exception is not None
            tb = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
            self._signal.send(error_signal[0], task, *error_signal[1:])
            status = {
                S.SIGNAL_ERROR: "error",
                S.SIGNAL_TIMEOUT: "error",
            }.get(error_signal[0], error_signal[0])
            self.emit(status, task, error=status == "error", traceback=tb, duration=duration,
                      message=repr(exception))

        # A revocation made while the task ran is not looked for here (that would be a write
        # per task): it stays in place and applies when the task would run again (a retry or a
        # re-delivery), and Result.restore() removes it.

        store = self.results and not isinstance(task, PeriodicTask)
        if exception is None:
            if store and (value is not None or self.store_none):
                try:
                    self.put_result(task.id, value)
                except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
                    # The serializer cannot hold this value (e.g. an object under JSON): the
                    # caller gets an error instead of a message that fails forever.
                    logger.error("result of task %s cannot be serialized: %s", task.id, exc)
                    self.put_result(task.id, Error(self.build_error_result(task, exc)))
            self._run_post_execute(task, value, None)
            self._send(S.SIGNAL_COMPLETE, task, duration=duration)
            if task.on_complete:
                task.on_complete.extend_data(value)
                self.enqueue(task.on_complete)
            if task.chord_config is not None:
                self._check_chord(task.chord_config, value)
            return value

        final = not task.retries
        surface = final or (self.store_intermediate_errors and not isinstance(exception, _RETRYING))
        error: Any = None
        if surface:
            error = Error(self.build_error_result(task, exception))
            next_task: Task | None = task if store else None
            while next_task is not None:  # the rest of a failed pipeline never runs
                self.put_result(next_task.id, error)
                next_task = next_task.on_complete if final else None
        self._run_post_execute(task, value, exception)
        if surface and task.on_error:
            handler = copy.copy(task.on_error)  # on_error is shared across retries
            handler.extend_data(exception)
            self.enqueue(handler)
        if final:
            self._abort_chord_member(task, error)
        else:
            self._send(S.SIGNAL_RETRYING, task)
            self._requeue_task(task, self._get_timestamp(), retry_eta)
        return value

    def _requeue_task(self, task: Task, timestamp: datetime.datetime, retry_eta: datetime.datetime | None) -> None:
        task.retries -= 1
        logger.info("requeueing task %s, %s retries left", task.id, task.retries)
        if retry_eta is not None:
            task.eta = retry_eta
            self.add_schedule(task)
        elif task.retry_delay:
            task.eta = timestamp + datetime.timedelta(seconds=task.retry_delay)
            if task.retry_backoff:
                task.retry_delay *= task.retry_backoff
            self.add_schedule(task)
        else:
            task.eta = None
            self.enqueue(task)

    def _abort_chord_member(self, task: Task | None, value: Any) -> None:
        while task is not None:  # the rest of the pipeline will not run: report to its chord
            if task.chord_config is not None:
                self._check_chord(task.chord_config, value)
                return
            task = task.on_complete

    def _check_chord(self, cc: ChordConfig, value: Any) -> None:
        self.put(f"{_CHORD}{cc.cid}:{cc.idx}", value)
        if self.storage.store.incr(f"{_CHORD}{cc.cid}") == cc.size:
            self.delete(f"{_CHORD}{cc.cid}")
            results = [self.get(f"{_CHORD}{cc.cid}:{i}") for i in range(cc.size)]
            callback = cc.callback
            callback.extend_data((results,))
            self.enqueue(callback)

    def _run_pre_execute(self, task: Task) -> None:
        for name, hook in list(self._pre_execute.items()):
            try:
                hook(task)
            except CancelExecution:
                logger.warning("task %s canceled by pre-execute hook %s", task.id, name)
                raise
            except Exception:
                logger.exception("pre-execute hook %s failed for task %s", name, task.id)

    def _run_post_execute(self, task: Task, value: Any, exception: BaseException | None) -> None:
        for name, hook in list(self._post_execute.items()):
            try:
                hook(task, value, exception)
            except Exception:
                logger.exception("post-execute hook %s failed for task %s", name, task.id)

    def build_error_result(self, task: Task, exception: BaseException) -> dict[str, Any]:
        tb = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
        if isinstance(exception, TaskException):
            error = exception.metadata.get("error") or repr(exception)
        else:
            error = repr(exception)
        return {"error": error, "retries": task.retries, "traceback": tb, "task_id": task.id}

    # -- the consumer's entry points (see /tmp/iface.md) -----------------------------------------

    def process(self, delivery: Delivery, worker: str = "") -> None:
        """Handle one dequeued message; the caller acks `delivery.lease` afterwards.

        Undecodable, unsigned/tampered, unknown-task and too-often-delivered messages are
        dead-lettered. Everything else goes through `execute()`. Never raises because of a task
        or a message. A storage failure propagates, and so does KeyboardInterrupt when it cut
        the task short; either way the caller should not ack, so the message runs again.
        """
        try:
            task = self.deserialize_task(delivery.data)
        except PoisonMessage as exc:
            self._dead_letter(delivery.data, str(exc), deliveries=delivery.deliveries)
            return
        if delivery.deliveries > self.max_deliveries:
            reason = (
                f"delivered {delivery.deliveries} times (max_deliveries={self.max_deliveries}); "
                "it probably kills its worker"
            )
            self._dead_letter(delivery.data, reason, task=task, deliveries=delivery.deliveries)
            return
        previous = getattr(self._local, "worker", None)
        self._local.worker = worker or None
        self._local.interrupted = False
        try:
            self.execute(task)
        finally:
            self._local.worker = previous
        if self._local.interrupted:
            # The task did not finish because this process is being stopped: leave the
            # message unacknowledged so it is delivered again (at-least-once).
            self._local.interrupted = False
            raise KeyboardInterrupt

    def enqueue_periodic(self, now: datetime.datetime | None = None) -> list[Task]:
        """Enqueue the periodic tasks due in the minute of `now` (UTC or local per `utc`).

        Deduplicated across every consumer of the backend: only the caller that wins
        put_if_empty("periodic:<task>:<YYYYmmddHHMM>") enqueues a given task for a given minute.
        """
        if now is None:
            now = self._get_timestamp()
        minute = now.strftime("%Y%m%d%H%M")
        enqueued = []
        store = self.storage.store
        for task in self.read_periodic(now):
            key = f"{_PERIODIC}{self._registry.task_to_string(type(task))}:{minute}"
            try:
                if not store.put_if_empty(key, b"1", ttl=3600):
                    continue
            except Exception:
                logger.exception("periodic dedup failed for %s; not enqueueing it", task.name)
                continue
            try:
                self.enqueue(task)
            except Exception:
                # Free the minute again so another consumer (or a retry) can enqueue it.
                logger.exception("could not enqueue periodic task %s", task.name)
                try:
                    store.delete(key)
                except Exception:
                    pass
                continue
            enqueued.append(task)
        return enqueued

    # -- dead letters ---------------------------------------------------------------------------

    def _dead_letter(
        self, data: bytes, reason: str, task: Task | None = None, deliveries: int | None = None
    ) -> str:
        dl_id = uuid.uuid4().hex
        if task is None:  # best effort: name the task even when it cannot run here
            task_id, task_name = self._peek_names(data)
        else:
            task_id, task_name = task.id, self._registry.task_to_string(type(task))
        record = {
            "id": dl_id,
            "reason": reason,
            "time": time.time(),
            "task": task_name,
            "task_id": task_id,
            "deliveries": deliveries,
            "payload": base64.b64encode(bytes(data)).decode("ascii"),
        }
        self.storage.store.put(f"{_DEAD_LETTER}{dl_id}", json.dumps(record).encode())
        logger.error("dead-lettered message %s (task %s): %s", dl_id, task_name or "?", reason)
        if task is not None:
            self._signal.send(S.SIGNAL_DEAD_LETTERED, task, reason)
        # Events name known tasks as every other event does (task.name); unknown ones by the
        # registry name the message carries.
        about = task if task is not None else _Named(task_id, task_name)
        self.emit("dead-lettered", about, error=True, reason=reason, dead_letter_id=dl_id)
        # Rare and important: send it now, not in the next batch, so the worker's next message
        # (a task that kills its process, say) cannot take the event down with it.
        self.flush_events()
        return dl_id

    def _peek_names(self, data: bytes) -> tuple[str | None, str | None]:
        try:
            message = self.serializer.deserialize(data)
            if isinstance(message, dict):
                task_id, name = message.get("id"), message.get("name")
                return (task_id if isinstance(task_id, str) else None, name if isinstance(name, str) else None)
        except Exception:
            pass
        return None, None

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead letter, oldest first.

        Each is a dict: id, reason, time (unix), task ("<module>.<name>" or None when the message
        could not be read), task_id, deliveries, payload (the raw message bytes).
        """
        letters = []
        for key, raw in self.storage.store.items(_DEAD_LETTER).items():
            try:
                record = json.loads(raw)
                record["payload"] = base64.b64decode(record["payload"])
            except Exception:
                record = {"id": key[len(_DEAD_LETTER):], "reason": "unreadable dead-letter record",
                          "time": None, "task": None, "task_id": None, "payload": raw}
            letters.append(record)
        letters.sort(key=lambda r: r.get("time") or 0)
        return letters

    def requeue_dead_letter(self, dl_id: str) -> bool:
        """Put a dead letter's payload back on the queue (fresh delivery count); False if unknown."""
        raw = self.storage.store.pop(f"{_DEAD_LETTER}{dl_id}")
        if raw is None:
            return False
        try:
            payload = base64.b64decode(json.loads(raw)["payload"])
        except Exception:
            payload = raw
        self.storage.queue.enqueue(payload, 0)
        logger.info("requeued dead letter %s", dl_id)
        return True

    def purge_dead_letters(self) -> int:
        """Delete every dead letter; return how many there were."""
        store = self.storage.store
        count = 0
        for key in list(store.items(_DEAD_LETTER)):
            count += bool(store.delete(key))
        return count

    # -- revocation -----------------------------------------------------------------------------

    def _task_key(self, task_class: Any, prefix: str) -> str:
        if isinstance(task_class, TaskWrapper):
            task_class = task_class.task_class
        return f"{prefix}:{self._registry.task_to_string(task_class)}"

    def revoke_all(self, task_class: Any, revoke_until: datetime.datetime | None = None, revoke_once: bool = False) -> None:
        if revoke_until is not None:
            revoke_until = normalize_time(revoke_until, utc=self.utc)
        self.put(self._task_key(task_class, "rt"), (revoke_until, revoke_once))

    def restore_all(self, task_class: Any) -> bool:
        return self.delete(self._task_key(task_class, "rt"))

    def revoke(self, task: Task, revoke_until: datetime.datetime | None = None, revoke_once: bool = False) -> None:
        if revoke_until is not None:
            revoke_until = normalize_time(revoke_until, utc=self.utc)
        self.put(task.revoke_id, (revoke_until, revoke_once))
        self.emit("revoked", task if type(task) is not Task else None, id=task.id)

    def restore(self, task: Task) -> bool:
        return self.delete(task.revoke_id)

    def revoke_by_id(self, id: str, revoke_until: datetime.datetime | None = None, revoke_once: bool = False) -> None:
        self.revoke(Task(id=id), revoke_until, revoke_once)

    def restore_by_id(self, id: str) -> bool:
        return self.restore(Task(id=id))

    def _revoke_keys(self, task: Any) -> list[str]:
        if isinstance(task, TaskWrapper) or inspect.isclass(task):
            return [self._task_key(task, "rt")]
        if isinstance(task, Result):
            task = task.task
        if isinstance(task, Task):
            if type(task) is Task:
                return [task.revoke_id]
            return [task.revoke_id, self._task_key(type(task), "rt")]
        return [f"r:{task}"]

    def is_revoked(self, task: Any, timestamp: datetime.datetime | None = None, peek: bool = True) -> bool:
        """True when `task` (a Task, Result, TaskWrapper, task class or id) is revoked.

        With peek=False (as execution does) a revoke_once or lapsed revoke_until is cleared.
        """
        keys = self._revoke_keys(task)
        store = self.storage.store
        peek_many = getattr(store, "peek_many", None)  # optional: one round trip for all keys
        values = peek_many(keys) if peek_many is not None else [store.peek(key) for key in keys]
        for key, raw in zip(keys, values, strict=True):
            if raw is None:
                continue
            try:
                revoke_until, revoke_once = self.serializer.deserialize(raw)
            except Exception:
                logger.warning("ignoring unreadable revocation %s", key)
                continue
            if revoke_once:
                if not peek:
                    self.delete(key)
                return True
            if revoke_until is not None:
                now = timestamp or self._get_timestamp()
                if revoke_until <= now:
                    if not peek:
                        self.delete(key)
                    continue
            return True
        return False

    # -- inspection -----------------------------------------------------------------------------

    def read_schedule(self, timestamp: datetime.datetime | None = None) -> list[Task]:
        """Remove and return the scheduled tasks due at `timestamp` (now by default)."""
        if timestamp is None:
            timestamp = self._get_timestamp()
        return self._deserialize_all(self.storage.schedule.pop_due(self._unix(timestamp)))

    def read_periodic(self, timestamp: datetime.datetime | None) -> list[Task]:
        if timestamp is None:
            timestamp = self._get_timestamp()
        return [t for t in self._registry.periodic_tasks if t.validate_datetime(timestamp)]  # type: ignore[attr-defined]

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
        return {
            key: value
            for key, value in self.storage.store.items().items()
            if not key.startswith((_DEAD_LETTER, _PERIODIC, _CHORD, _INFLIGHT))
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

    def lock_task(self, lock_name: str, ttl: float | None = None) -> TaskLock:
        """A lock (context manager or decorator) shared by every process using the backend."""
        return TaskLock(self, lock_name, ttl)

    def is_locked(self, lock_name: str) -> bool:
        return TaskLock(self, lock_name).is_locked()

    def flush_locks(self, *names: str) -> set[str]:
        """Release every lock this process created (plus `names`); return the names released."""
        keys = set(self._locks) | {f"{self.name}.lock.{n.strip()}" for n in names}
        flushed = set()
        for key in keys:
            if self.delete(key):
                flushed.add(key.split(".lock.", 1)[-1])
        return flushed

    def rate_limit(self, name: str, limit: int, per: float, retry: bool = True) -> RateLimit:
        """A fixed-window rate limit (context manager or decorator) shared through the backend."""
        return RateLimit(self, name, limit, per, retry=retry)

    def result(
        self,
        id: str,
        blocking: bool = False,
        timeout: float | None = None,
        backoff: float = 1.15,
        max_delay: float = 1.0,
        revoke_on_timeout: bool = False,
        preserve: bool = False,
    ) -> Any:
        """The result of the task with this id (see Result.get)."""
        return Result(self, Task(id=id)).get(
            blocking=blocking, timeout=timeout, backoff=backoff, max_delay=max_delay,
            revoke_on_timeout=revoke_on_timeout, preserve=preserve,
        )


# ----------------------------------------------------------------- huey's storage-class names


class MemoryHuey(Huey):
    """huey's `MemoryHuey`: a Huey on the in-process memory backend."""

    def __init__(self, name: str = "huey", **kwargs: Any) -> None:
        kwargs.setdefault("backend", "memory")
        super().__init__(name, **kwargs)


class RedisHuey(Huey):
    """huey's `RedisHuey(name, host=, port=, db=, password=)` or `RedisHuey(name, url=)`.

    Other keyword arguments are redis backend options.
    """

    def __init__(
        self,
        name: str = "huey",
        host: str | None = None,
        port: int | None = None,
        db: int | None = None,
        password: str | None = None,
        url: str | None = None,
        **kwargs: Any,
    ) -> None:
        if url is None and any(v is not None for v in (host, port, db, password)):
            auth = f":{urllib.parse.quote(password, safe='')}@" if password else ""
            url = f"redis://{auth}{host or '127.0.0.1'}:{port or 6379}/{db or 0}"
        kwargs.setdefault("backend", "redis")
        super().__init__(name, url=url, **kwargs)


PriorityRedisHuey = RedisHuey  # the redis backend always honours priorities


class SqliteHuey(Huey):
    """huey's `SqliteHuey(name, filename="huey.db")`, on the sql backend."""

    def __init__(self, name: str = "huey", filename: str = "huey.db", **kwargs: Any) -> None:
        kwargs.setdefault("backend", "sql")
        url = kwargs.pop("url", None) or f"sqlite:///{filename}"
        super().__init__(name, url=url, **kwargs)
