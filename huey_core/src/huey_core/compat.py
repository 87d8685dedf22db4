"""huey's Huey subclasses (`from huey import RedisHuey`), each a Huey with a storage class.

As in huey, `RedisHuey(name, host=..., db=...)` is `Huey(name, storage_class=RedisStorage,
host=..., db=...)`; huey_core.storage_classes turns the storage arguments into a backend choice
at construction. docs/backends.md ("huey storage classes") tables the mapping.
"""

from __future__ import annotations

from huey_core.api import Huey
from huey_core.storage_classes import (
    BlackHoleStorage,
    CySqliteStorage,
    FileStorage,
    MemoryStorage,
    PostgresStorage,
    PriorityRedisExpireStorage,
    PriorityRedisStorage,
    RedisExpireStorage,
    RedisStorage,
    SqliteStorage,
)

__all__ = [
    "BlackHoleHuey",
    "CySqliteHuey",
    "FileHuey",
    "MemoryHuey",
    "PostgresHuey",
    "PriorityRedisExpireHuey",
    "PriorityRedisHuey",
    "RedisExpireHuey",
    "RedisHuey",
    "SqliteHuey",
]


class BlackHoleHuey(Huey):
    """Discards everything: enqueue does nothing and no result is ever stored."""

    storage_class = BlackHoleStorage


class MemoryHuey(Huey):
    """The in-process memory backend."""

    storage_class = MemoryStorage


class SqliteHuey(Huey):
    """`SqliteHuey(name, filename="huey.db", fsync=, journal_mode=, cache_mb=, timeout=,
    strict_fifo=)` on the sql backend."""

    storage_class = SqliteStorage


class CySqliteHuey(Huey):
    """`CySqliteHuey(name, filename=, pragmas=)`: the same SQLite database as SqliteHuey."""

    storage_class = CySqliteStorage


class PostgresHuey(Huey):
    """`PostgresHuey(name, dsn=... or host=/dbname=/user=/password=)` on the sql backend."""

    storage_class = PostgresStorage


class FileHuey(Huey):
    """`FileHuey(name, path=DIRECTORY)`: a SQLite database file in that directory."""

    storage_class = FileStorage


class RedisHuey(Huey):
    """`RedisHuey(name, host=, port=, db=, password=)`, `url=` or `connection_pool=`; other
    keyword arguments are redis-py connection options or redis backend options."""

    storage_class = RedisStorage


class RedisExpireHuey(RedisHuey):
    """Results expire `expire_time` seconds (default 86400) after they are stored."""

    storage_class = RedisExpireStorage


class PriorityRedisHuey(RedisHuey):
    """The same as RedisHuey: every Redis queue here honours priorities."""

    storage_class = PriorityRedisStorage


class PriorityRedisExpireHuey(RedisHuey):
    """The same as RedisExpireHuey: every Redis queue here honours priorities."""

    storage_class = PriorityRedisExpireStorage
