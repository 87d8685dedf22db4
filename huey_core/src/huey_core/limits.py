"""The limits every option is checked against where it enters: `Huey(...)`, `Consumer(...)`,
`@huey.task(...)`, a task call or `schedule()`, and the command line.

An option outside its limits raises ConfigurationError at once, with one line naming the option,
the value and what is allowed, instead of storing a value that breaks later: a NaN lease timeout
stored a lease that never expired, a priority of 2**31 a message PostgreSQL and MySQL cannot
store, and 10,000 worker threads a consumer that starved itself.

    lease timeout       finite, at least MIN_LEASE_TIMEOUT seconds
    priority            an integer from PRIORITY_MIN to PRIORITY_MAX (what every backend stores)
    workers             1 to MAX_WORKERS
    max tasks           None, or an integer of at least 1
    scheduler interval  more than 0 and at most MAX_SCHEDULER_INTERVAL seconds
    graceful signal     None (both stop gracefully), "INT" or "TERM"
    other seconds       finite (no NaN, no infinity), with the lower bound each option states
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from huey_core.exceptions import ConfigurationError

__all__ = [
    "GRACEFUL_SIGNALS",
    "MAX_SCHEDULER_INTERVAL",
    "MAX_WORKERS",
    "MIN_LEASE_TIMEOUT",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "check_count",
    "check_graceful_signal",
    "check_lease_timeout",
    "check_max_tasks",
    "check_priority",
    "check_scheduler_interval",
    "check_seconds",
    "check_task",
    "check_task_options",
    "check_ttl",
    "check_workers",
]

# Below a second the heartbeat (every lease_timeout / 3) loses to ordinary scheduling jitter and
# one task runs several times in one consumer.
MIN_LEASE_TIMEOUT = 1.0
# The SQL backends store -priority in a 32-bit signed column, so the priority itself must fit
# with its sign flipped: -(2**31 - 1) .. 2**31 - 1.
PRIORITY_MAX = 2**31 - 1
PRIORITY_MIN = -PRIORITY_MAX
# Each worker is a thread (or a process) with its own connection; past this a consumer spends its
# time switching between them. Run more consumers instead.
MAX_WORKERS = 1000
# The scheduler also recovers expired leases and notices a new minute for periodic tasks; less
# often than once a minute would delay both by more than a periodic task's own period. huey
# takes whole seconds that divide 60; any of those is accepted here, and so are fractions.
MAX_SCHEDULER_INTERVAL = 60.0
# huey's -g/--graceful-signal: the signal that stops gracefully; the other one stops at once.
GRACEFUL_SIGNALS = ("INT", "TERM")


def check_seconds(
    name: str,
    value: Any,
    minimum: float | None = 0.0,
    *,
    open_min: bool = False,
    optional: bool = False,
) -> float | None:
    """`value` as float seconds: finite and >= `minimum` (> with open_min); None if optional."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ConfigurationError(f"{name} must be a finite number of seconds, got {value!r}")
    if minimum is not None and (seconds <= minimum if open_min else seconds < minimum):
        relation = ">" if open_min else ">="
        raise ConfigurationError(f"{name} must be {relation} {minimum:g} seconds, got {value!r}")
    return seconds


def check_ttl(name: str, value: Any) -> float | None:
    """None (never expires), or finite seconds > 0."""
    return check_seconds(name, value, 0.0, open_min=True, optional=True)


def check_lease_timeout(value: Any) -> float:
    """A lease timeout: finite and at least MIN_LEASE_TIMEOUT seconds."""
    seconds = check_seconds("lease_timeout", value, MIN_LEASE_TIMEOUT)
    assert seconds is not None
    return seconds


def check_count(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigurationError(f"{name} must be {bound}, got {value!r}")
    return value


def check_workers(value: Any) -> int:
    return check_count("workers", value, 1, MAX_WORKERS)


def check_max_tasks(value: Any) -> int | None:
    """None (a worker runs forever), or the number of tasks after which it is replaced."""
    if value is None:
        return None
    return check_count("max_tasks", value, 1)


def check_scheduler_interval(value: Any) -> float:
    seconds = check_seconds("the scheduler interval", value, 0.0, open_min=True)
    assert seconds is not None
    if seconds > MAX_SCHEDULER_INTERVAL:
        raise ConfigurationError(
            f"the scheduler interval must be at most {MAX_SCHEDULER_INTERVAL:g} seconds (it "
            f"must run at least once a minute), got {value!r}"
        )
    return seconds


def check_graceful_signal(value: Any) -> str | None:
    """None, "INT" or "TERM" (any case, with or without "SIG"), returned as "INT" or "TERM"."""
    if value is None:
        return None
    name = value.upper().removeprefix("SIG") if isinstance(value, str) else value
    if name not in GRACEFUL_SIGNALS:
        raise ConfigurationError(f"the graceful signal must be INT or TERM, got {value!r}")
    return str(name)


def check_priority(value: Any) -> int | None:
    """None, or an integer every backend can store."""
    if value is None:
        return None
    return check_count("priority", value, PRIORITY_MIN, PRIORITY_MAX)


def _check_expires(value: Any) -> None:
    if value is None or isinstance(value, (datetime.datetime, datetime.timedelta)):
        return
    check_seconds("expires", value)


def check_task_options(
    retries: Any = 0,
    retry_delay: Any = 0,
    retry_backoff: Any = 0,
    priority: Any = None,
    timeout: Any = None,
    expires: Any = None,
) -> None:
    """The options of `@huey.task(...)` and of one task invocation."""
    check_count("retries", retries)
    check_seconds("retry_delay", retry_delay)
    check_seconds("retry_backoff", retry_backoff)
    check_priority(priority)
    check_seconds("timeout", timeout, optional=True)
    _check_expires(expires)


def check_task(task: Any) -> None:
    """A Task about to be stored, with the tasks of its pipeline and error handler."""
    seen = 0
    pending = [task]
    while pending and seen < 1000:  # bounded: a pipeline is a chain, never a cycle
        step = pending.pop()
        seen += 1
        check_task_options(
            step.retries,
            step.retry_delay,
            step.retry_backoff,
            step.priority,
            step.timeout,
            step.expires,
        )
        pending.extend(t for t in (step.on_complete, step.on_error) if t is not None)
