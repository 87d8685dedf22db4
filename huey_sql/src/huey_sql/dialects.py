"""What differs between SQLite, PostgreSQL and MySQL: URLs, engines, and how a waiter wakes up.

- SQLite: WAL, a busy timeout, and every write transaction opened with BEGIN IMMEDIATE so a writer
  queues for the lock up front instead of failing to upgrade a read lock. Waiters notice commits
  from any process through `PRAGMA data_version` on one dedicated connection (a read of shared
  memory, no disk I/O).
- PostgreSQL: LISTEN on a dedicated connection in a background thread; writers NOTIFY in the same
  transaction, so the wake-up arrives exactly when the row becomes visible.
- MySQL/MariaDB: no notification channel; waiters poll.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from huey_core.exceptions import ConfigurationError
from huey_core.plugins import mask_url
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

log = logging.getLogger("huey_sql")

# Objects inherited across fork that must never be closed or garbage-collected in the child:
# closing them would shut the parent's sockets/file handles. Kept alive here on purpose.
_inherited: list[Any] = []


def normalize_url(url: str | None) -> URL:
    """The SQLAlchemy URL for a huey URL: driver mapped, SQLite path made absolute.

    `postgresql://` and `postgres://` use psycopg 3. A relative SQLite path resolves against the
    working directory now, so a later chdir (or a daemonized consumer) keeps the same file.
    In-memory SQLite is rejected: each connection would see a different empty database.
    """
    raw = url or "sqlite:///huey.db"
    try:
        u = make_url(raw)
    except Exception:  # sqlalchemy raises ArgumentError with the URL in the message
        raise ConfigurationError(f"cannot parse database URL {mask_url(raw)!r}") from None
    driver = u.drivername
    if driver in ("postgresql", "postgres", "postgresql+psycopg"):
        return u.set(drivername="postgresql+psycopg")
    if driver in ("mysql+pymysql", "mariadb+pymysql"):
        if "charset" not in u.query:
            u = u.update_query_dict({"charset": "utf8mb4"})
        return u
    if driver in ("sqlite", "sqlite+pysqlite"):
        db = u.database or ""
        if db in ("", ":memory:") or db.startswith("file::memory:") or "mode=memory" in str(u):
            raise ConfigurationError(
                "in-memory SQLite cannot be shared between connections or consumer processes; "
                "use a file (sqlite:///huey.db) or the memory backend (memory://)"
            )
        return u.set(drivername="sqlite", database=os.path.abspath(db))
    raise ConfigurationError(
        f"the sql backend does not support {driver!r}; use sqlite:///path, "
        "postgresql://, postgresql+psycopg://, mysql+pymysql:// or mariadb+pymysql://"
    )


def make_engine(url: URL, pool_size: int, max_overflow: int, busy_timeout: float,
                synchronous: str, engine_options: dict[str, Any]) -> Engine:
    backend = url.get_backend_name()
    opts: dict[str, Any] = {"pool_size": pool_size, "max_overflow": max_overflow}
    if backend == "sqlite":
        opts["connect_args"] = {"timeout": busy_timeout, "check_same_thread": False}
        engine = create_engine(url, **_merge(opts, engine_options))
        _setup_sqlite(engine, busy_timeout, synchronous)
        return engine
    # Server databases: a checkout pings first, so connections broken by a server restart are
    # replaced instead of failing the first query after it.
    if backend == "postgresql":
        opts["connect_args"] = {"connect_timeout": 5}
        # Only connections idle for a while are pinged (see _ping_idle): a ping on every
        # checkout would be one more round trip for each of the task path's statements.
        engine = create_engine(url, **_merge(opts, engine_options))
        if not engine_options.get("pool_pre_ping"):
            _ping_idle(engine)
        return engine
    opts["pool_pre_ping"] = True  # MySQL/MariaDB
    opts["connect_args"] = {"connect_timeout": 5}
    opts["pool_recycle"] = 3600  # below MySQL's default wait_timeout of 8 hours
    # SKIP LOCKED claims with fewer gap locks, and a locking read sees the latest commit.
    opts["isolation_level"] = "READ COMMITTED"
    return create_engine(url, **_merge(opts, engine_options))


IDLE_PING = 1.0  # seconds a pooled connection may rest before its next checkout pings it


def _ping_idle(engine: Engine) -> None:
    """Ping a connection at checkout when it may be broken, instead of at every checkout.

    An idle healthy connection has nothing to read. When the server ends a connection (restart,
    pg_terminate_backend, idle timeout) it sends an error and closes the socket, which makes
    the socket readable: then, or after IDLE_PING seconds of rest, the checkout pings and a
    dead connection is replaced before use, as with pool_pre_ping. A connection in steady use
    skips the round trip. One that breaks while in use fails its statement, as before.
    """
    import select

    from sqlalchemy import exc as sa_exc

    def suspect(dbapi_conn: Any) -> bool:
        try:
            readable, _, broken = select.select([dbapi_conn.fileno()], [], [dbapi_conn.fileno()], 0)
        except Exception:  # no socket to look at: ask the server
            return True
        return bool(readable or broken)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["huey_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("huey_idle_since")
        if since is None:
            return  # connected just now
        if time.monotonic() - since < IDLE_PING and not suspect(dbapi_conn):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception:
            alive = False
        if not alive:
            record.info.pop("huey_idle_since", None)
            raise sa_exc.DisconnectionError("connection lost while idle")


def _merge(opts: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` wins, except that connect_args are merged key by key (keeping our timeouts)."""
    merged = {**opts, **extra}
    if "connect_args" in extra:
        merged["connect_args"] = {**opts.get("connect_args", {}), **extra["connect_args"]}
    return merged


def _setup_sqlite(engine: Engine, busy_timeout: float, synchronous: str) -> None:
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigurationError(f"sqlite_synchronous must be NORMAL or FULL, not {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's begin event (below) issue BEGIN instead of the sqlite3 module.
        dbapi_conn.isolation_level = None
        dbapi_conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        _set_wal(dbapi_conn)
        # NORMAL in WAL mode is safe against process crashes (kill -9); only an OS crash or
        # power loss can drop the last commits. FULL closes that window at the cost of fsyncs.
        dbapi_conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock at BEGIN, where busy_timeout applies; a deferred
        # transaction that reads and then writes can fail at once with SQLITE_BUSY instead.
        mode = conn.get_execution_options().get("huey_sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _set_wal(dbapi_conn: sqlite3.Connection) -> None:
    # Switching to WAL needs a moment alone with the file; processes starting together retry.
    for attempt in range(50):
        try:
            dbapi_conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.02)


def is_transient(exc: BaseException) -> bool:
    """Errors after which the whole transaction can safely run again (it was rolled back)."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlstate", None)
    if code in ("40P01", "40001", "55P03"):  # PG deadlock, serialization failure, lock timeout
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in (1213, 1205):  # MySQL deadlock, lock wait timeout
        return True
    msg = str(orig).lower()
    return isinstance(orig, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


class Waker:
    """Something a waiter sleeps on until another connection may have written. Base: a timer.

    `token()` is taken before looking for work and `wait(token, timeout)` returns early when a
    write happened since, so a write between the look and the sleep is never missed.
    """

    native = False  # True when wake-ups come from the database rather than a timer

    def __init__(self, poll: float) -> None:
        self.poll = poll
        self._cond = threading.Condition()
        self._local = 0  # writes made through this process's backend object

    def token(self, channel: str) -> Any:
        with self._cond:
            return self._local

    def touch(self, channel: str) -> None:
        """A write by this process: wake local waiters at once."""
        with self._cond:
            self._local += 1
            self._cond.notify_all()

    def wait(self, channel: str, token: Any, timeout: float) -> None:
        with self._cond:
            if self._local == token:
                self._cond.wait(min(timeout, self.poll))

    def close(self) -> None:
        pass

    def after_fork(self) -> None:
        self._cond = threading.Condition()


class SQLiteWaker(Waker):
    """Polls `PRAGMA data_version`, which changes whenever another connection commits."""

    native = True

    def __init__(self, path: str, poll: float) -> None:
        super().__init__(poll)
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _version(self) -> int:
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(self._path, isolation_level=None,
                                             check_same_thread=False, timeout=5)
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def token(self, channel: str) -> Any:
        return (super().token(channel), self._version())

    def wait(self, channel: str, token: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with self._cond:
                if self._local != token[0]:
                    return
                self._cond.wait(min(remaining, self.poll))
            if self._local != token[0] or self._version() != token[1]:
                return

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


def channel_name(prefix: str, name: str, kind: str) -> str:
    """A LISTEN channel per instance and kind; hashed so any instance name is a safe identifier."""
    digest = hashlib.sha1(name.encode()).hexdigest()[:16]
    return f"{prefix}{digest}_{kind}"


class PgWaker(Waker):
    """LISTENs on a dedicated psycopg connection in a daemon thread and wakes waiters.

    Each channel has a generation counter bumped per notification. Waiters still time out after
    `poll` seconds and look again, so a notification lost to a reconnect strands nothing; a
    reconnect also bumps every generation.
    """

    native = True

    def __init__(self, connect: Callable[[], Any], channels: list[str], poll: float) -> None:
        super().__init__(poll)
        self._connect = connect
        self._channels = channels
        self._gens = dict.fromkeys(channels, 0)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._conn: Any = None
        self._start_lock = threading.Lock()

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._stop.clear()
                    self._ready.clear()
                    self._thread = threading.Thread(
                        target=self._run, name="huey-sql-listen", daemon=True
                    )
                    self._thread.start()
        # Before the first look for work, so a NOTIFY right after it is not missed; if the
        # server is unreachable the waiter falls back to polling.
        self._ready.wait(2.0)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                conn = self._connect()
                self._conn = conn
                for ch in self._channels:
                    conn.execute(f'LISTEN "{ch}"')
                self._bump(self._channels)  # anything sent while we were away: look again
                self._ready.set()
                backoff = 0.1
                while not self._stop.is_set():
                    # Wake the waiters on each notification as it arrives: notifies() yields
                    # until its timeout ends, so collecting a whole slice first held every
                    # wake-up back until the end of the slice (up to 0.5 s late).
                    for notify in conn.notifies(timeout=0.5):
                        self._bump((notify.channel,))
            except Exception as exc:  # server restart, network: reconnect with backoff
                if self._stop.is_set():
                    break
                log.warning("LISTEN connection lost (%s); reconnecting in %.1fs",
                            mask_url(str(exc)), backoff)
                self._ready.set()  # waiters poll meanwhile
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                conn, self._conn = self._conn, None
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass

    def _bump(self, names: Any) -> None:
        with self._cond:
            for n in names:
                if n in self._gens:
                    self._gens[n] += 1
            self._cond.notify_all()

    def token(self, channel: str) -> Any:
        self._ensure_started()
        with self._cond:
            return (self._local, self._gens[channel])

    def wait(self, channel: str, token: Any, timeout: float) -> None:
        with self._cond:
            if (self._local, self._gens[channel]) == token:
                self._cond.wait(min(timeout, self.poll))

    def close(self) -> None:
        # The thread notices within one notifies() timeout and closes its own connection;
        # not joining keeps close() instant.
        self._stop.set()
        self._thread = None

    def after_fork(self) -> None:
        super().after_fork()
        # The listener thread did not survive the fork; its socket belongs to the parent.
        if self._conn is not None:
            _inherited.append(self._conn)
        self._conn = None
        self._thread = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
