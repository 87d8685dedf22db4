"""The Database shared by the four stores of one backend: engine, dialect, tables, wake-ups, and
`run()`, the one place that runs a transaction and decides whether to run it again.

Statements go straight to the DB-API driver on a pooled connection: SQLAlchemy provides the
URL handling, the engine and its pool, and schema creation, while its per-statement machinery
(which costs several times what the database spends on these one-row statements) stays out of
the task path.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from huey_core.exceptions import MessageTooLarge
from huey_core.plugins import mask_url, remember_secrets
from huey_sql import dialects, schema

T = TypeVar("T")

_schema_ready: set[tuple[str, str]] = set()  # (url, prefix) created by this process
_schema_lock = threading.Lock()

RECONNECT_ATTEMPTS = 3  # tries of a transaction whose connection was lost before it committed
# What a statement adds to the payload it carries: SQL text, the other parameters, quoting.
STATEMENT_OVERHEAD = 4096
# Bytes MySQL drivers send as two (a backslash escape) inside a string literal.
ESCAPED_BYTES = (b"\x00", b"\n", b"\r", b"\x1a", b"'", b'"', b"\\")


def channel_name(prefix: str, name: str, kind: str) -> str:
    """A wake-up channel per instance and kind; hashed so any instance name is a safe identifier
    (PostgreSQL LISTENs on it)."""
    digest = hashlib.sha1(name.encode()).hexdigest()[:16]
    return f"{prefix}{digest}_{kind}"


def scalar(cur: Any, sql: str, args: tuple[Any, ...]) -> Any:
    cur.execute(sql, args)
    row = cur.fetchone()
    return None if row is None else row[0]


def fetchall(cur: Any, sql: str, args: tuple[Any, ...]) -> list[Any]:
    cur.execute(sql, args)
    return list(cur.fetchall())


def rowcount(cur: Any, sql: str, args: tuple[Any, ...]) -> int:
    cur.execute(sql, args)
    return int(cur.rowcount)


class _Attempt:
    """How far one try of a transaction got: whether its work may already be committed, and
    whether its connection was lost. (Class defaults: this runs on every operation.)"""

    committing = False
    lost = False


class Database:
    """Engine, dialect, tables and the transaction runner of one backend."""

    def __init__(self, name: str, url: str | None, options: dict[str, Any]) -> None:
        self.name = name
        remember_secrets(url)  # scrubbed from every error text, in whatever form a driver quotes
        self.url = dialects.normalize_url(url)
        self.tables = schema.build_tables(options["table_prefix"], self.url.get_backend_name())
        self.options = options
        self.dialect = dialects.dialect_for(self.url)(self.url, self.tables, options)
        self.engine = self.dialect.create_engine()
        self._dbapi = self.engine.dialect.loaded_dbapi
        self._ready = False
        self._channels = {k: channel_name(self.tables.prefix, name, k) for k in ("q", "kv", "ev")}
        self.waker = self.dialect.make_waker(self)

    def channel(self, kind: str) -> str:
        """The wake-up channel of "q" (queue), "kv" (store) or "ev" (events)."""
        found = self._channels.get(kind)
        return found if found is not None else channel_name(self.tables.prefix, self.name, kind)

    def ensure_schema(self) -> None:
        if self._ready:
            return
        self.dialect.check_url()
        key = (self.url.render_as_string(hide_password=True), self.tables.prefix)
        with _schema_lock:
            if key not in _schema_ready:
                try:
                    schema.create_schema(lambda: self.dialect.create_tables(self.engine))
                except SQLAlchemyError as exc:
                    self._raise(exc)
                _schema_ready.add(key)
        self._ready = True

    # -- transactions --------------------------------------------------------------------------

    def run(
        self,
        fn: Callable[[Any], T],
        *,
        read: bool = False,
        single: bool = False,
        retry_integrity: bool = False,
    ) -> T:
        """Run `fn(cursor)` in one transaction on a pooled DB-API connection and return its
        result; run it again when that is safe.

        `read`: `fn` only reads (SQLite: no write lock). `single`: `fn` runs exactly one
        statement, which may then commit on its own (PostgreSQL autocommit).
        Retried: a deadlock or lock timeout (rolled back, so safe), up to the dialect's
        `max_attempts`, with a short random backoff; a connection lost before COMMIT (nothing
        was committed), up to RECONNECT_ATTEMPTS; an integrity error when `retry_integrity`
        (a racing first insert). A connection lost during COMMIT is ambiguous and raises.
        Every other error propagates, with the password masked: the consumer backs off and
        calls again.
        """
        if not self._ready:
            self.ensure_schema()
        attempt = 0
        while True:
            state = _Attempt()
            try:
                return self._once(fn, read, single, state)
            except Exception as exc:
                if not self._retryable(exc, attempt, state, retry_integrity):
                    self._raise(exc)
            attempt += 1
            time.sleep(random.uniform(0.001, 0.01) * attempt)

    def _once(self, fn: Callable[[Any], T], read: bool, single: bool, state: _Attempt) -> T:
        d = self.dialect
        with d.writer(read):
            raw = self.engine.raw_connection()
            conn: Any = raw.driver_connection
            autocommit = False
            try:
                cur = conn.cursor()
                autocommit = state.committing = d.begin(conn, cur, read, single)
                try:
                    result = fn(cur)
                    if not autocommit:
                        state.committing = True
                        d.commit(conn, cur)
                except BaseException:
                    d.rollback(conn)
                    raise
                return result
            except Exception as exc:
                if self._lost(exc, conn):
                    state.lost = True
                    raw.invalidate(exc)
                raise
            finally:
                if autocommit:
                    d.end_autocommit(conn)
                raw.close()

    def _lost(self, exc: Exception, conn: Any) -> bool:
        """The connection is gone (server restart, killed session): never reuse it."""
        if self.dialect.not_executed(exc):
            return True
        return isinstance(exc, self._dbapi.Error) and bool(
            self.engine.dialect.is_disconnect(exc, conn, None)
        )

    def _retryable(self, exc: Exception, attempt: int, state: _Attempt, integrity: bool) -> bool:
        d = self.dialect
        orig = getattr(exc, "orig", exc)  # checkout errors come wrapped by SQLAlchemy
        if isinstance(orig, self._dbapi.IntegrityError):
            return integrity and attempt < d.max_attempts - 1
        lost = state.lost or getattr(exc, "connection_invalidated", False)
        if lost and attempt < RECONNECT_ATTEMPTS - 1:
            if not state.committing or d.not_executed(orig):
                return True
        return d.is_transient(orig) and attempt < d.max_attempts - 1

    def _raise(self, exc: BaseException) -> None:
        # Drivers do not echo passwords, but a DSN can end up in a message; never let it out.
        text = str(exc)
        masked = mask_url(text)
        if masked != text:
            raise ConnectionError(masked) from None
        raise exc

    # -- limits --------------------------------------------------------------------------------

    def check_size(self, data: bytes, what: str = "message") -> None:
        """MessageTooLarge, before anything is sent, when `data` cannot fit in one statement.

        MySQL refuses a statement longer than max_allowed_packet by closing the connection
        ("server has gone away"), after the driver has built the whole escaped statement in
        memory; this check says so in one line instead.
        """
        limit = self.dialect.payload_limit(lambda fn: self.run(fn, read=True, single=True))
        if limit is None or len(data) + STATEMENT_OVERHEAD <= limit // 2:
            return  # fits even if every byte needed escaping
        escaped = len(data) + sum(data.count(b) for b in ESCAPED_BYTES) + STATEMENT_OVERHEAD
        if escaped > limit:
            raise MessageTooLarge(
                f"the {what} is {len(data):,} bytes, more than max_allowed_packet "
                f"({limit:,} bytes) allows in one statement; raise max_allowed_packet on the "
                "server (and in the client's connect_args), or pass a reference (a path, a "
                "key) instead of the data itself"
            )

    # -- waiting -------------------------------------------------------------------------------

    def notify(self, cur: Any, kind: str) -> None:
        """NOTIFY in the writer's transaction (delivered at commit, when the row is visible)."""
        self.dialect.notify(cur, self.channel(kind))

    def wait_for(self, kind: str, probe: Callable[[], T | None], timeout: float) -> T | None:
        """Call `probe` until it returns something or `timeout` passes, sleeping on the waker."""
        deadline = time.monotonic() + timeout
        channel = self.channel(kind)
        while True:
            token = self.waker.token(channel)
            found = probe()
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            self.waker.wait(channel, token, remaining)
