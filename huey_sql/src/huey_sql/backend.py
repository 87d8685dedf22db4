"""SQLBackend: the four huey stores on SQLite, PostgreSQL and MySQL/MariaDB.

Every operation is one short transaction (see db.Database.run); what differs between the
databases lives in dialects/. See docs/sql.md for the options and dialect notes.
"""

from __future__ import annotations

from typing import Any

from huey_core.exceptions import ConfigurationError
from huey_core.plugins import mask_url
from huey_core.protocols import BaseBackend
from huey_sql import schema
from huey_sql.db import Database
from huey_sql.events import SQLEvents
from huey_sql.options import DEFAULTS as _DEFAULTS
from huey_sql.options import OPTIONS
from huey_sql.queue import SQLQueue
from huey_sql.schedule import SQLSchedule
from huey_sql.store import SQLStore

__all__ = ["OPTIONS", "SQLBackend", "SQLEvents", "SQLQueue", "SQLSchedule", "SQLStore"]


class SQLBackend(BaseBackend):
    """The sql backend: `SQLBackend(name, url, **options)`; see docs/sql.md for options."""

    process_safe = True  # state lives in the database; forked workers reconnect (after_fork)

    def __init__(self, name: str, url: str | None = None, **options: Any) -> None:
        # The consumer's --mode vocabulary: "polling" turns LISTEN/NOTIFY off (PgBouncer).
        mode = options.pop("mode", None)
        if mode not in (None, "auto", "blocking", "polling"):
            raise ConfigurationError(f"mode must be auto, blocking or polling, not {mode!r}")
        if mode == "polling":
            options["notify"] = False
        unknown = sorted(set(options) - set(_DEFAULTS))
        if unknown:
            raise TypeError(
                f"sql backend got unknown option(s) {unknown}; known: {sorted(_DEFAULTS)}"
            )
        if not name or len(name) > schema.MAX_NAME:
            raise ConfigurationError(
                f"huey instance name must be 1-{schema.MAX_NAME} characters, got {name!r}"
            )
        self.name = name
        self._db = Database(name, url, {**_DEFAULTS, **options})
        # The password stays inside the engine; nothing reachable from the backend shows it.
        self.url = self._db.url.render_as_string(hide_password=True)
        self.queue = SQLQueue(self._db)
        self.schedule = SQLSchedule(self._db)
        self.store = SQLStore(self._db)
        self.events = SQLEvents(self._db)

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (for operators and tests)."""
        return self._db.engine

    def after_fork(self) -> None:
        """Forget the parent's pooled connections without closing them (they are the parent's)."""
        self._db.engine.dispose(close=False)
        self._db.waker.after_fork()

    def close(self) -> None:
        self._db.waker.close()
        self._db.engine.dispose()

    def describe(self) -> str:
        notifies = self._db.dialect.notifies
        mode = "notify" if notifies else ("watch" if self.queue.blocking else "polling")
        return f"SQLBackend({mask_url(self.url)}, table_prefix={self._db.tables.prefix!r}, {mode})"
