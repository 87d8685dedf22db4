"""The retry policy: whether a task that did not succeed runs again, and when.

A task has `retries` left and a `retry_delay` (seconds) that `retry_backoff` multiplies after
each retry. Some exceptions change that before the usual rule applies:

- RetryTask: a retry that does not use one up, now or at the eta/delay it names;
- RateLimitExceeded with retry=True: run again when the window reopens, without using a retry
  (with retry=False it retries like an error, but only after the window reopens);
- CancelExecution: retry=True retries once at least, retry=False never, None as an error.
"""

from __future__ import annotations

import datetime

from huey_core import clock
from huey_core.exceptions import (
    CancelExecution,
    RateLimitExceeded,
    RetryTask,
    TaskLockedException,
)
from huey_core.task import Task

__all__ = ["RETRY_LATER", "next_run", "prepare"]

# "Try again later", not "the task failed": no error result is stored while retries remain.
RETRY_LATER = (RetryTask, RateLimitExceeded, TaskLockedException)


def prepare(task: Task, exc: BaseException, utc: bool) -> datetime.datetime | None:
    """Apply what `exc` says about retrying to `task.retries`; return the eta it asks for."""
    if isinstance(exc, RateLimitExceeded):
        if not (exc.retry or task.retries):
            return None
        if exc.retry:
            task.retries += 1  # waiting for the window does not use up a retry
        return clock.normalize_time(None, task.retry_delay or exc.delay, utc)
    if isinstance(exc, RetryTask):
        task.retries += 1
        if exc.eta or exc.delay is not None:
            return clock.normalize_time(exc.eta, exc.delay, utc)
        return None
    if isinstance(exc, CancelExecution):
        if exc.retry or (exc.retry is None and task.retries):
            task.retries = max(task.retries, 1)
        else:
            task.retries = 0
    return None


def next_run(
    task: Task, now: datetime.datetime, eta: datetime.datetime | None
) -> datetime.datetime | None:
    """Use up one retry and return when it runs: `eta`, or after the retry delay, or now (None).

    The retry delay grows by `retry_backoff` for the retry after this one.
    """
    task.retries -= 1
    if eta is not None:
        return eta
    if not task.retry_delay:
        return None
    eta = now + datetime.timedelta(seconds=task.retry_delay)
    if task.retry_backoff:
        task.retry_delay *= task.retry_backoff
    return eta
