"""Task decorators for Django code: database hygiene and enqueueing on commit.

A consumer worker thread is not a request: nothing closes its database connections between
tasks, so a connection the server dropped (restart, idle timeout) or one past CONN_MAX_AGE would
stay in use. `db_task` does for each task what Django does around each request.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections, connections, transaction

from huey_core import Huey, Task, TaskWrapper
from huey_core.results import ResultGroup, pipeline_results
from huey_django.config import get_huey

__all__ = [
    "OnCommitTask",
    "close_db",
    "db_periodic_task",
    "db_task",
    "enqueue_on_commit",
    "lock_task",
    "on_commit_task",
    "periodic_task",
    "task",
]


def _in_transaction() -> bool:
    return any(conn.in_atomic_block for conn in connections.all(initialized_only=True))


def close_db(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap `fn` in django.db.close_old_connections(), before and after, as a request is.

    Skipped when the task runs in its caller (immediate mode, call_local) inside a transaction:
    closing there would break the caller's transaction.
    """

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        if get_huey().immediate or _in_transaction():
            return fn(*args, **kwargs)
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return inner


def task(**options: Any) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """settings.HUEY's `@huey.task(...)`."""
    return get_huey().task(**options)


def periodic_task(
    validate_datetime: Callable[[datetime.datetime], bool], **options: Any
) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """settings.HUEY's `@huey.periodic_task(crontab(...), ...)`."""
    return get_huey().periodic_task(validate_datetime, **options)


def lock_task(lock_name: str, ttl: float | None = None) -> Any:
    """settings.HUEY's `huey.lock_task(name)`."""
    return get_huey().lock_task(lock_name, ttl)


def db_task(**options: Any) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """A task that uses the database: stale connections are closed before and after it runs."""

    def decorator(fn: Callable[..., Any]) -> TaskWrapper:
        return get_huey().task(**options)(close_db(fn))

    return decorator


def db_periodic_task(
    validate_datetime: Callable[[datetime.datetime], bool], **options: Any
) -> Callable[[Callable[..., Any]], TaskWrapper]:
    """A periodic task that uses the database (see db_task)."""

    def decorator(fn: Callable[..., Any]) -> TaskWrapper:
        return get_huey().periodic_task(validate_datetime, **options)(close_db(fn))

    return decorator


def enqueue_on_commit(task: Task, using: str | None = None, huey: Huey | None = None) -> Any:
    """Enqueue `task` (a signature: `send_receipt.s(order.pk)`) when the transaction commits.

    Returns its Result (a ResultGroup for a pipeline; None with results=False) at once, so the
    id can be stored with the rows the transaction writes. Rolled back: never enqueued, and the
    result never arrives. Outside a transaction (autocommit) it is enqueued immediately.
    `using` is the database alias whose transaction counts (default: "default").
    """
    huey = get_huey() if huey is None else huey
    transaction.on_commit(functools.partial(huey.enqueue, task), using=using)
    if not huey.results:
        return None
    results = pipeline_results(huey, task)
    return ResultGroup(results) if len(results) > 1 else results[0]


class OnCommitTask:
    """What `@on_commit_task()` makes: calling it enqueues when the transaction commits.

    `.task` is the underlying db_task (a TaskWrapper) for everything else: `.task.s(...)`,
    `.task.schedule(...)`, `.task.revoke()`, and calling `.task(...)` to enqueue at once.
    """

    def __init__(self, task: TaskWrapper, using: str | None = None) -> None:
        functools.update_wrapper(self, task.func)
        self.task = task
        self.using = using

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return enqueue_on_commit(self.task.s(*args, **kwargs), self.using, self.task.huey)

    def call_local(self, *args: Any, **kwargs: Any) -> Any:
        return self.task.call_local(*args, **kwargs)


def on_commit_task(
    using: str | None = None, **options: Any
) -> Callable[[Callable[..., Any]], OnCommitTask]:
    """A db_task whose calls are enqueued only when the current transaction commits."""

    def decorator(fn: Callable[..., Any]) -> OnCommitTask:
        return OnCommitTask(db_task(**options)(fn), using)

    return decorator
