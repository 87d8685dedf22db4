"""huey toolkit core: `from huey_core import Huey, crontab`.

The public API mirrors huey's (huey.api, huey.exceptions, huey.signals), so a huey application
ports by changing its imports and the storage class.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from huey_core.api import Huey
from huey_core.compat import (
    BlackHoleHuey,
    CySqliteHuey,
    FileHuey,
    MemoryHuey,
    PostgresHuey,
    PriorityRedisExpireHuey,
    PriorityRedisHuey,
    RedisExpireHuey,
    RedisHuey,
    SqliteHuey,
)
from huey_core.crontab import crontab
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
    UnknownBackend,
)
from huey_core.hookspecs import hookimpl
from huey_core.locks import RateLimit, TaskLock
from huey_core.progress import Progress
from huey_core.results import ChordResult, Result, ResultGroup, chord, group
from huey_core.serializer import JSONSerializer, PickleSerializer, Serializer, SignedSerializer
from huey_core.task import PeriodicTask, Task, TaskWrapper

try:
    __version__ = _metadata.version("huey-core")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BlackHoleHuey",
    "CancelExecution",
    "ChordResult",
    "ConfigurationError",
    "CySqliteHuey",
    "FileHuey",
    "Huey",
    "HueyException",
    "JSONSerializer",
    "MemoryHuey",
    "PeriodicTask",
    "PickleSerializer",
    "PoisonMessage",
    "PostgresHuey",
    "PriorityRedisExpireHuey",
    "PriorityRedisHuey",
    "Progress",
    "RateLimit",
    "RateLimitExceeded",
    "RedisExpireHuey",
    "RedisHuey",
    "Result",
    "ResultGroup",
    "ResultTimeout",
    "RetryTask",
    "Serializer",
    "SignedSerializer",
    "SqliteHuey",
    "Task",
    "TaskException",
    "TaskLock",
    "TaskLockedException",
    "TaskTimeout",
    "TaskWrapper",
    "UnknownBackend",
    "chord",
    "crontab",
    "group",
    "hookimpl",
]
