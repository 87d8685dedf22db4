"""The sql backend's options and their defaults (docs/sql.md). Import-light: no SQLAlchemy, so
huey_core.storage_classes can check a SqliteHuey's options at construction cheaply."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULTS", "OPTIONS"]

DEFAULTS: dict[str, Any] = {
    "table_prefix": "huey_tk_",  # not "huey_": huey's own PostgresHuey tables use that
    "pool_size": 5,
    "max_overflow": 10,
    "notify": True,
    "poll_interval": None,  # per dialect: sqlite 0.02, postgresql fallback 1.0, mysql 0.1
    "busy_timeout": 30.0,
    "sqlite_synchronous": "NORMAL",
    "sqlite_journal_mode": "WAL",  # huey's SqliteHuey(journal_mode=)
    "sqlite_cache_mb": None,  # huey's SqliteHuey(cache_mb=); None keeps SQLite's default
    "events_keep": 10_000,
    "events_max_age": 3600.0,
    "engine_options": {},
}

# Every option name the backend takes (huey_core.storage_classes checks against it).
OPTIONS = frozenset(DEFAULTS) | {"mode"}
