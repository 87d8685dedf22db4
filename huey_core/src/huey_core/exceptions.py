"""Exceptions, with huey's names and meanings so that `except` clauses port unchanged."""

from __future__ import annotations

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
    """Raise in a pre-execute hook (or a task) to cancel the task; `retry=True` retries it."""

    def __init__(self, retry: bool | None = None, *args: Any) -> None:
        self.retry = retry
        super().__init__(*args)


class RetryTask(Exception):
    """Raise inside a task to retry it now, after `delay` seconds, or at `eta`."""

    def __init__(self, msg: str | None = None, eta: Any = None, delay: float | None = None) -> None:
        self.eta = eta
        self.delay = delay
        super().__init__(msg)


class RateLimitExceeded(HueyException):
    """A task called more often than its `rate_limit` allows."""


class TaskException(HueyException):
    """Result.get() found that the task failed; `metadata` holds error, traceback and retries."""

    def __init__(self, metadata: dict[str, Any] | None = None, *args: Any) -> None:
        self.metadata = metadata or {}
        super().__init__(*args)

    def __str__(self) -> str:
        return str(self.metadata.get("error") or super().__str__())


class ResultTimeout(HueyException):
    """Result.get(blocking=True, timeout=...) ran out of time."""


class PoisonMessage(HueyException):
    """A message that can never run: undecodable, bad signature, unknown task. Dead-lettered."""
