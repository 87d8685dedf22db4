"""Tasks: what `@huey.task()` makes, one invocation of it, and the registry of task classes.

`@huey.task()` returns a `TaskWrapper`; calling it builds a `Task` (an instance of a subclass
made for the function) and enqueues it. A message names its task by registry name,
"<module>.<name>", and the `Registry` turns that name back into the class in the consumer.
An `async def` function makes an async task: its `execute()` returns a coroutine, which the
executor runs on the worker thread's event loop (huey_core.aio).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import inspect
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from huey_core import clock, keys
from huey_core.exceptions import PoisonMessage, TaskTimeout

if TYPE_CHECKING:
    from huey_core.api import Huey
    from huey_core.progress import ProgressReporter
    from huey_core.results import ResultGroup

__all__ = ["ChordConfig", "PeriodicTask", "Registry", "Task", "TaskWrapper", "signature"]


class ChordConfig:
    """Where a chord member reports: chord id, member count, its index and the callback."""

    __slots__ = ("callback", "cid", "idx", "size")

    def __init__(self, cid: str, size: int, idx: int, callback: Task) -> None:
        self.cid, self.size, self.idx, self.callback = cid, size, idx, callback


class Task:
    """One invocation of a task function: arguments plus execution settings.

    Each `@huey.task()` creates a subclass (named after the function) whose `execute()` calls it.
    """

    name: str = "Task"
    registry_name: str = "Task"
    context = False
    is_async = False  # execute() returns a coroutine: the executor runs it on the worker's loop
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
        self.revoke_id = keys.revoke(self.id)
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
        self._progress: ProgressReporter | None = None  # set by the executor while it runs

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
            self.expires_resolved = clock.normalize_expire_time(self.expires, utc)
        return self.expires_resolved

    def start_clock(self) -> None:
        """Start counting towards `timeout` (the executor calls it as the task starts)."""
        self._deadline = time.monotonic() + self.timeout if self.timeout else None

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

    def progress(self, done: float, total: float | None = None, note: str | None = None) -> None:
        """Report how far the task got (`context=True` tasks): `task.progress(3, 10, "pages")`.

        Stored for `Result.progress()` and published as a `progress` event; calls closer than
        0.1 s apart are merged, the last one always lands (huey_core.progress).
        """
        if self._progress is None:
            raise RuntimeError(
                f"task {self.id}: progress() works only while a consumer (or immediate mode) "
                "runs the task"
            )
        self._progress.report(done, total, note)

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
            self.on_complete = signature(task, args, kwargs)
        return self

    def error(self, task: Any, *args: Any, **kwargs: Any) -> Task:
        """Run `task` when this one fails for good, with the exception appended."""
        if self.on_error:
            self.on_error.error(task, *args, **kwargs)
        else:
            self.on_error = signature(task, args, kwargs)
        return self

    def execute(self) -> Any:
        raise NotImplementedError("tasks are created with @huey.task()")


class PeriodicTask(Task):
    """A task the consumer enqueues by itself whenever `validate_datetime(now)` is true.

    `crontab` is the callable it was declared with (usually a `crontab(...)`), so tools can show
    the schedule and compute the next run.
    """

    crontab: Callable[[datetime.datetime], bool] | None = None

    def validate_datetime(self, timestamp: datetime.datetime) -> bool:
        check = type(self).crontab
        return bool(check(timestamp)) if check is not None else False


def signature(task: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Task:
    """A Task from a Task (arguments appended) or a TaskWrapper (a new invocation)."""
    if not isinstance(task, Task):
        return task.s(*args, **(kwargs or {}))  # type: ignore[no-any-return]
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
        huey.registry.register(self.task_class)

    @property
    def retries(self) -> int:
        return self.task_class.default_retries

    @property
    def retry_delay(self) -> float:
        return self.task_class.default_retry_delay

    def create_task(
        self,
        func: Callable[..., Any],
        context: bool = False,
        name: str | None = None,
        **settings: Any,
    ) -> type[Task]:
        def execute(task: Task) -> Any:
            args, kwargs = task.data
            if task.context:
                kwargs = dict(kwargs, task=task)  # a copy: a retry must not serialize the task
            return func(*args, **kwargs)

        task_name = name or func.__name__
        module = _module_of(func)
        attrs: dict[str, Any] = {
            "context": context,
            "is_async": inspect.iscoroutinefunction(func),
            "execute": execute,
            "name": task_name,
            "registry_name": f"{module}.{task_name}",
            "__module__": module,
            "__doc__": func.__doc__,
        }
        attrs.update(settings)
        return type(task_name, (self.task_base,), attrs)

    def unregister(self) -> bool:
        return self.huey.registry.unregister(self.task_class)

    def is_revoked(self, timestamp: datetime.datetime | None = None, peek: bool = True) -> bool:
        return self.huey.is_revoked(self.task_class, timestamp, peek)

    def revoke(
        self, revoke_until: datetime.datetime | None = None, revoke_once: bool = False
    ) -> None:
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
            eta=clock.normalize_time(eta, delay, self.huey.utc),
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
        from huey_core.results import ResultGroup

        results = self.huey.enqueue_many(self._apply(items))  # one round trip where it can
        return ResultGroup(results) if results is not None else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.huey.enqueue(self.s(*args, **kwargs))

    async def aenqueue(self, *args: Any, **kwargs: Any) -> Any:
        """`await add.aenqueue(1, 2)`: enqueue from async code, the backend call in a thread."""
        return await self.huey.aenqueue(self.s(*args, **kwargs))

    async def aschedule(self, *args: Any, **kwargs: Any) -> Any:
        """`await add.aschedule((1, 2), delay=10)`: schedule() without blocking the event loop."""
        return await asyncio.to_thread(functools.partial(self.schedule, *args, **kwargs))

    def call_local(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here and now, bypassing the queue (async tasks: await the result)."""
        return self.func(*args, **kwargs)

    def s(self, *args: Any, **kwargs: Any) -> Task:
        """A task instance without enqueueing it (for pipelines, groups, chords)."""
        eta = kwargs.pop("eta", None)
        delay = kwargs.pop("delay", None)
        if isinstance(delay, datetime.timedelta):
            delay = delay.total_seconds()
        if eta is not None or delay is not None:
            eta = clock.normalize_time(eta, delay, self.huey.utc)
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


def _module_of(func: Callable[..., Any]) -> str:
    """The module a consumer imports to find `func`.

    A module run as a script (`python my_app.py`, `python -m my_app`) is `__main__` in that
    process, but `my_app` in the consumer that imports it; the messages it sends must carry
    the name the consumer knows, or every task would be dead-lettered as unknown.
    """
    module = func.__module__
    if module != "__main__":
        return module
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return str(spec.name)  # python -m my_app
    path = getattr(main, "__file__", None)
    if path:
        return os.path.splitext(os.path.basename(str(path)))[0]  # python my_app.py
    return module  # an interactive session: only this process knows the task


class Registry:
    """Task classes by registry name ("<module>.<name>"), the name messages carry."""

    def __init__(self) -> None:
        self._tasks: dict[str, type[Task]] = {}

    @staticmethod
    def name_of(task_class: type[Task]) -> str:
        """The registry name of a task class."""
        return task_class.registry_name

    def register(self, task_class: type[Task]) -> None:
        """Add a task class; ValueError when its name is taken, as in huey.

        Two functions with one name would share messages: the consumer would run whichever
        registered last for both. The same function decorated twice is refused too (huey does
        the same): a module that re-creates its tasks on a shared Huey must unregister first.
        """
        name = self.name_of(task_class)
        if name in self._tasks:
            raise ValueError(
                f"a task named {name!r} is already registered: pass name= to give this one "
                "another name (or unregister() the first)"
            )
        self._tasks[name] = task_class

    def unregister(self, task_class: type[Task]) -> bool:
        return self._tasks.pop(self.name_of(task_class), None) is not None

    def get(self, name: str) -> type[Task]:
        """The task class registered under `name`; PoisonMessage when none is."""
        try:
            return self._tasks[name]
        except KeyError:
            raise PoisonMessage(f"unknown task {name!r} (not registered in this process)") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    @property
    def tasks(self) -> dict[str, type[Task]]:
        """Every registered task class by registry name (a copy)."""
        return dict(self._tasks)

    @property
    def periodic(self) -> list[type[PeriodicTask]]:
        """The registered periodic task classes."""
        return [cls for cls in self._tasks.values() if issubclass(cls, PeriodicTask)]

    @property
    def periodic_tasks(self) -> list[PeriodicTask]:
        """One instance of each periodic task (what the consumer enqueues when due)."""
        return [cls() for cls in self.periodic]
