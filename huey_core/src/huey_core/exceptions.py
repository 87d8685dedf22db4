"""Exceptions, with huey's names and meanings so that `except` clauses port unchanged."""

from __future__ import annotations

import signal
import threading
from typing import Any


class HueyException(Exception):
    """Base class of every exception raised by the toolkit."""


class ConfigurationError(HueyException):
    """A setting is wrong: unknown backend, bad URL, missing driver. The message says what to do."""


class UnknownBackend(ConfigurationError):
    """No installed backend has the requested name or URL scheme."""


class TaskLockedException(HueyException):
    """Raised inside a task when a `lock_task` lock is already held."""


class CancelExecution(Exception):
    """Raise in a pre-execute hook (or a task) to cancel the task.

    `retry=True` retries it, `retry=False` never does, None retries only when the task has
    retries left (huey's meaning).
    """

    def __init__(self, msg: str | None = None, retry: bool | None = None) -> None:
        self.retry = retry
        super().__init__(*(() if msg is None else (msg,)))


class RetryTask(Exception):
    """Raise inside a task to retry it now, after `delay` seconds, or at `eta`."""

    def __init__(self, msg: str | None = None, eta: Any = None, delay: float | None = None) -> None:
        self.eta = eta
        self.delay = delay
        super().__init__(msg)


class RateLimitExceeded(HueyException):
    """A `huey.rate_limit(name, limit, per)` window is full.

    `key` names the limit, `delay` is the number of seconds until the window resets, and `retry`
    tells the executing task to be retried after `delay` instead of failing.
    """

    def __init__(self, key: str = "", delay: float = 0.0, retry: bool = True) -> None:
        self.key = key
        self.delay = delay
        self.retry = retry
        super().__init__(key, delay, retry)

    def __str__(self) -> str:
        if self.retry:
            return f'Rate limit exceeded on "{self.key}", retry in {self.delay:0.1f}s'
        return f'Rate limit exceeded on "{self.key}"'


class TaskTimeout(HueyException):
    """A task ran longer than its `timeout=` seconds; it is reported as an error."""


class TaskException(HueyException):
    """Result.get() found that the task failed; `metadata` holds error, traceback and retries."""

    def __init__(self, metadata: dict[str, Any] | None = None, *args: Any) -> None:
        self.metadata = metadata or {}
        super().__init__(*args)

    def __str__(self) -> str:
        return str(self.metadata.get("error") or "unknown error")


class ResultTimeout(HueyException):
    """Result.get(blocking=True, timeout=...) ran out of time."""


class MessageTooLarge(HueyException, ValueError):
    """A message or value is larger than the backend can store; the message names the limit."""


class PoisonMessage(HueyException):
    """A message that can never run: undecodable, bad signature, unknown task. Dead-lettered."""


def is_user_interrupt(exc: BaseException) -> bool:
    """True for a KeyboardInterrupt that may be Ctrl-C, which must stop the program.

    Python delivers signals to the main thread only, so on any other thread, or in a process
    that ignores SIGINT (a consumer's worker process), a KeyboardInterrupt (like SystemExit or a
    bare BaseException) was raised by code, and a consumer treats it as that code failing rather
    than let it end a worker.
    """
    return (
        isinstance(exc, KeyboardInterrupt)
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    )
