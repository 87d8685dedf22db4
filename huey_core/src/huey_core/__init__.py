"""huey toolkit core: `from huey_core import Huey, crontab`."""

from __future__ import annotations

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
    UnknownBackend,
)
from huey_core.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "CancelExecution",
    "ConfigurationError",
    "HueyException",
    "PoisonMessage",
    "RateLimitExceeded",
    "ResultTimeout",
    "RetryTask",
    "TaskException",
    "TaskLockedException",
    "UnknownBackend",
    "hookimpl",
]
# Huey, crontab, Result and friends are added here by huey_core.api (see DESIGN.md section 3).
