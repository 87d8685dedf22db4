"""SQLite: one file, one writer at a time.

- WAL, a busy timeout, and every write transaction opened with BEGIN IMMEDIATE, so a writer
  queues for the lock up front instead of failing to upgrade a read lock.
- Threads of one process queue for the write lock on a Python lock (see `_writer_lock`).
- Waiters notice commits from any process through `PRAGMA data_version` on one dedicated
  connection (a read of shared memory, no disk I/O).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

from huey_core.exceptions import ConfigurationError
from huey_sql.dialects.base import Dialect, Waker
from huey_sql.schema import Tables

# Objects inherited across fork that must never be closed or garbage-collected in the child:
# closing them would shut the parent's file handles. Kept alive here on purpose.
_inherited: list[Any] = []

# SQLite has one writer per file. Threads of one process queue for it on a Python lock instead
# of SQLite's busy handler, which sleeps in steps of up to 100 ms and so turns a few
# microseconds of contention (worker threads, the event publisher) into long stalls. Other
# processes still meet at BEGIN IMMEDIATE under busy_timeout.
_writers: dict[str, threading.RLock] = {}
_writers_lock = threading.Lock()


def _writer_lock(path: str) -> threading.RLock:
    lock = _writers.get(path)
    if lock is None:
        with _writers_lock:
            lock = _writers.setdefault(path, threading.RLock())
    return lock


def _forget_writers() -> None:
    # A lock held by a parent thread at fork time would stay held in the child forever.
    _writers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_writers)


# WAL (the default) lets readers and the writer work at once; the others are huey's choices too.
JOURNAL_MODES = ("WAL", "DELETE", "TRUNCATE", "PERSIST", "MEMORY", "OFF")


class SQLiteDialect(Dialect):
    name = "sqlite"
    lock_rows = ""  # BEGIN IMMEDIATE already holds the file's write lock
    skip_locked = ""
    max_attempts = 3  # "locked" comes only after busy_timeout has passed: a few more tries
    default_poll = 0.02  # PRAGMA data_version is a read of shared memory: cheap to look often
    ids_visible_in_order = True  # one writer at a time: ids commit in order

    def __init__(self, url: URL, tables: Tables, options: dict[str, Any]) -> None:
        super().__init__(url, tables, options)
        self.path = url.database or ""

    def starts_with(self, column: str) -> str:
        return f" AND {column} GLOB ?"  # LIKE is case-insensitive in SQLite; GLOB is not

    def pattern(self, prefix: str) -> str:
        return "".join(f"[{c}]" if c in "*?[" else c for c in prefix) + "*"

    def writer(self, read: bool) -> AbstractContextManager[Any]:
        if read:
            return super().writer(read)
        return _writers.get(self.path) or _writer_lock(self.path)

    def begin(self, conn: Any, cur: Any, read: bool, single: bool) -> bool:
        if single:
            # One statement is its own transaction in autocommit mode (isolation_level None):
            # a read sees one snapshot; a write takes the write lock as it starts (busy_timeout
            # applies, and no read lock is held before it that could deadlock) and commits as
            # it ends. Saves the BEGIN and COMMIT of every ack, enqueue and single write.
            return True
        cur.execute("BEGIN DEFERRED" if read else "BEGIN IMMEDIATE")
        return False

    def commit(self, conn: Any, cur: Any) -> None:
        # Through the cursor that ran the last statement, which resets it first.
        cur.execute("COMMIT")

    def rollback(self, conn: Any) -> None:
        if conn.in_transaction:
            conn.rollback()

    def is_transient(self, exc: BaseException) -> bool:
        msg = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)

    def check_url(self) -> None:
        folder = os.path.dirname(self.url.database or "")
        if folder and not os.path.isdir(folder):
            raise ConfigurationError(
                f"the SQLite database folder {folder!r} does not exist; create it or point the "
                "URL elsewhere"
            )

    def engine_options(self) -> dict[str, Any]:
        return {
            "connect_args": {"timeout": self.options["busy_timeout"], "check_same_thread": False},
            # Every transaction ends in COMMIT or ROLLBACK before its connection goes back
            # (Database.run, SQLAlchemy's Connection): the pool's rollback on return is a no-op.
            "pool_reset_on_return": None,
        }

    def create_engine(self) -> Engine:
        synchronous = str(self.options["sqlite_synchronous"]).upper()
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError(
                f"sqlite_synchronous must be NORMAL or FULL, not {self.options['sqlite_synchronous']!r}"
            )
        busy_ms = int(self.options["busy_timeout"] * 1000)
        journal = str(self.options["sqlite_journal_mode"]).upper()
        if journal not in JOURNAL_MODES:
            raise ConfigurationError(
                f"sqlite_journal_mode must be one of {', '.join(JOURNAL_MODES)}, "
                f"not {self.options['sqlite_journal_mode']!r}"
            )
        cache_mb = self.options["sqlite_cache_mb"]
        cache_kib = None if cache_mb is None else int(float(cache_mb) * 1000)
        engine = super().create_engine()

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            # Transactions are opened explicitly (begin() here, _on_begin for SQLAlchemy).
            dbapi_conn.isolation_level = None
            dbapi_conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
            _set_journal_mode(dbapi_conn, journal)
            if cache_kib:
                dbapi_conn.execute(f"PRAGMA cache_size = {-cache_kib}")  # negative: KiB
            # NORMAL in WAL mode is safe against process crashes (kill -9); only an OS crash or
            # power loss can drop the last commits. FULL closes that window at the cost of fsyncs.
            dbapi_conn.execute(f"PRAGMA synchronous = {synchronous}")

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Schema creation (and operators' own SQLAlchemy connections) write too.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def make_waker(self, db: Any) -> Waker:
        return SQLiteWaker(self.path, self.options["poll_interval"] or self.default_poll)


def _set_journal_mode(dbapi_conn: sqlite3.Connection, mode: str) -> None:
    # Switching to WAL needs a moment alone with the file; processes starting together retry.
    for attempt in range(50):
        try:
            dbapi_conn.execute(f"PRAGMA journal_mode = {mode}")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.02)


class SQLiteWaker(Waker):
    """Polls `PRAGMA data_version`, which changes whenever another connection commits.

    While writes keep coming (one seen in the last BUSY_FOR seconds) it looks ten times as
    often, so a steady trickle of tasks starts within a couple of milliseconds; an idle
    consumer goes back to one look per `poll` seconds.
    """

    native = True
    BUSY_FOR = 2.0  # seconds after a write during which waiters poll fast

    def __init__(self, path: str, poll: float) -> None:
        super().__init__(poll)
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._active = 0.0  # monotonic time a write was last seen

    def _version(self) -> int:
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False, timeout=5
                )
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def token(self, channel: str) -> Any:
        return (super().token(channel), self._version())

    def wait(self, channel: str, token: Any, timeout: float) -> None:
        now = time.monotonic()
        deadline = now + timeout
        while True:
            remaining = deadline - now
            if remaining <= 0:
                return
            busy = now - self._active < self.BUSY_FOR
            with self._cond:
                if self._local != token[0]:
                    return
                self._cond.wait(min(remaining, self.poll / 10 if busy else self.poll))
            if self._local != token[0] or self._version() != token[1]:
                self._active = time.monotonic()
                return
            now = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def after_fork(self) -> None:
        super().after_fork()
        if self._conn is not None:
            _inherited.append(self._conn)
        self._conn = None
        self._lock = threading.Lock()
