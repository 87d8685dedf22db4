"""Which Backend a Huey instance uses, built when first needed.

The choice (first match wins): the consumer's `--backend/--url` (through `configure`), the
constructor's `backend=`/`url=`, the environment (`HUEY_BACKEND`/`HUEY_URL`), the embedded
default; `huey_core.plugins.resolve` applies the last three. `backend=` may also be a ready
Backend object, which two Huey objects can share. In immediate mode a private memory backend
stands in, so a test or a script runs tasks without any server.

huey's storage classes are importable from here too, as from `huey.storage`
(`from huey_core.storage import RedisStorage`); they live in huey_core.storage_classes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from huey_core.protocols import Backend
from huey_core.storage_classes import (
    BaseStorage,
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
    SqlStorage,
)

__all__ = [
    "BackendSpec",
    "BaseStorage",
    "BlackHoleStorage",
    "CySqliteStorage",
    "FileStorage",
    "MemoryStorage",
    "PostgresStorage",
    "PriorityRedisExpireStorage",
    "PriorityRedisStorage",
    "RedisExpireStorage",
    "RedisStorage",
    "SqlStorage",
    "SqliteStorage",
    "StorageChoice",
]

logger = logging.getLogger("huey")

BackendSpec = tuple["str | Backend | None", "str | None", "dict[str, Any]"]


class StorageChoice:
    """The backend spec of one Huey instance and the Backend built from it (lazily, once)."""

    def __init__(
        self, name: str, backend: str | Backend | None, url: str | None, options: dict[str, Any]
    ) -> None:
        self.name = name
        self.spec: BackendSpec = (backend, url, options)
        self._built: Backend | None = None
        self._immediate: Backend | None = None
        self._lock = threading.Lock()

    def build(self) -> Backend:
        """A new Backend from the spec (plugins decide which)."""
        backend, url, options = self.spec
        if backend is not None and not isinstance(backend, str):
            return backend  # a ready Backend object
        from huey_core.plugins import create_backend

        return create_backend(self.name, backend, url, **options)

    def warn_if_missing(self) -> None:
        """Say in one line, at construction, which extra to install when the backend is absent.

        Only a warning: a test or script that switches to immediate mode needs no backend, and
        a consumer may choose another one with --backend/--url. The first use of storage raises
        the same message.
        """
        backend, url, _ = self.spec
        if backend is not None and not isinstance(backend, str):
            return  # a ready Backend object
        from huey_core.plugins import missing_backend

        problem = missing_backend(backend, url)
        if problem:
            logger.warning("Huey(%r): %s", self.name, problem)

    def get(self, build: Callable[[], Backend]) -> Backend:
        """The Backend in use, built with `build` on first use."""
        if self._built is None:
            with self._lock:
                if self._built is None:
                    self._built = build()
        return self._built

    def get_immediate(self, build: Callable[[], Backend]) -> Backend:
        """The private backend of immediate mode, built with `build` on first use."""
        if self._immediate is None:
            with self._lock:
                if self._immediate is None:
                    self._immediate = build()
        return self._immediate

    def set(self, backend: Backend | None) -> None:
        self._built = backend

    @property
    def built(self) -> bool:
        return self._built is not None

    def forget_immediate(self) -> None:
        self._immediate = None  # a fresh memory store next time, as huey does

    def configure(
        self, backend: str | Backend | None, url: str | None, options: dict[str, Any]
    ) -> Backend | None:
        """Switch to another spec; return the previously built Backend, if any, to close."""
        with self._lock:
            old, self._built = self._built, None
            previous_backend, _, previous_options = self.spec
            if not options and backend == previous_backend:
                options = previous_options  # same backend, new URL: keep its options
            self.spec = (backend, url, options)
        if old is not None and self.spec[0] is old:
            return None  # the same ready object: keep it open
        return old
