"""huey's storage-class names, mapped onto backends, so a huey app ports by changing imports."""

from __future__ import annotations

import urllib.parse
from typing import Any

from huey_core.api import Huey

__all__ = ["MemoryHuey", "PriorityRedisHuey", "RedisHuey", "SqliteHuey"]


class MemoryHuey(Huey):
    """huey's `MemoryHuey`: a Huey on the in-process memory backend."""

    def __init__(self, name: str = "huey", **kwargs: Any) -> None:
        kwargs.setdefault("backend", "memory")
        super().__init__(name, **kwargs)


class RedisHuey(Huey):
    """huey's `RedisHuey(name, host=, port=, db=, password=)` or `RedisHuey(name, url=)`.

    Other keyword arguments are redis backend options.
    """

    def __init__(
        self,
        name: str = "huey",
        host: str | None = None,
        port: int | None = None,
        db: int | None = None,
        password: str | None = None,
        url: str | None = None,
        **kwargs: Any,
    ) -> None:
        if url is None and any(v is not None for v in (host, port, db, password)):
            auth = f":{urllib.parse.quote(password, safe='')}@" if password else ""
            url = f"redis://{auth}{host or '127.0.0.1'}:{port or 6379}/{db or 0}"
        kwargs.setdefault("backend", "redis")
        super().__init__(name, url=url, **kwargs)


PriorityRedisHuey = RedisHuey  # the redis backend always honours priorities


class SqliteHuey(Huey):
    """huey's `SqliteHuey(name, filename="huey.db")`, on the sql backend."""

    def __init__(self, name: str = "huey", filename: str = "huey.db", **kwargs: Any) -> None:
        kwargs.setdefault("backend", "sql")
        url = kwargs.pop("url", None) or f"sqlite:///{filename}"
        super().__init__(name, url=url, **kwargs)
