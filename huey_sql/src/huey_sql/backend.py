"""SQLBackend: the four huey stores on SQLAlchemy Core, for SQLite, PostgreSQL and MySQL/MariaDB.

Every method is one short transaction. Claims never hold a lock longer than one statement or two:
PostgreSQL and MySQL pick the next ready row with `FOR UPDATE SKIP LOCKED` (concurrent claimers
skip each other's rows instead of queueing), SQLite claims inside one BEGIN IMMEDIATE transaction
(SQLite has a single writer anyway). See docs/sql.md for the options and dialect notes.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from huey_core.exceptions import ConfigurationError
from huey_core.plugins import mask_url
from huey_core.protocols import (
    BaseBackend,
    BaseDataStore,
    BaseEventEmitter,
    BaseQueue,
    BaseSchedule,
    BaseSubscription,
    Delivery,
    LeaseInfo,
)
from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from huey_sql import dialects, schema

log = logging.getLogger("huey_sql")
T = TypeVar("T")

_schema_ready: set[tuple[str, str]] = set()  # (url, prefix) created by this process
_schema_lock = threading.Lock()

# SQLite has one writer per file. Threads of one process queue for it on a Python lock instead
# of SQLite's busy handler, which sleeps in steps of up to 100 ms and so turns a few
# microseconds of contention (worker threads, the event publisher) into long stalls. Other
# processes still meet at BEGIN IMMEDIATE under busy_timeout.
_sqlite_writers: dict[str, threading.RLock] = {}


def _terminated(exc: BaseException) -> bool:
    """The server ended the session (shutdown, pg_terminate_backend) instead of answering.

    PostgreSQL reports that only in place of running a statement, never after committing one,
    so an autocommit statement that got it did not take effect and may run again.
    """
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in ("57P01", "57P02", "57P03")


def _sqlite_writer(path: str) -> threading.RLock:
    lock = _sqlite_writers.get(path)
    if lock is None:
        with _schema_lock:
            lock = _sqlite_writers.setdefault(path, threading.RLock())
    return lock


def _forget_sqlite_writers() -> None:
    # A lock held by a parent thread at fork time would stay held in the child forever.
    _sqlite_writers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_sqlite_writers)


class _DB:
    """Engine, tables and the transaction runner shared by the four stores of one backend."""

    def __init__(self, name: str, url: str | None, options: dict[str, Any]) -> None:
        self.name = name
        self.url = dialects.normalize_url(url)
        kind = self.url.get_backend_name()
        self.kind = "mysql" if kind == "mariadb" else kind  # sqlite | postgresql | mysql
        self.tables = schema.build_tables(options["table_prefix"])
        self.options = options
        self.engine = dialects.make_engine(
            self.url,
            options["pool_size"],
            options["max_overflow"],
            options["busy_timeout"],
            options["sqlite_synchronous"],
            options["engine_options"],
        )
        self._password = self.url.password or ""
        self._ready = False
        # PostgreSQL: single-statement operations run in autocommit (the statement is its own
        # transaction), which saves the BEGIN and COMMIT round trips psycopg would add.
        self._autocommit = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.kind == "postgresql" else None
        )
        self._writer_path = self.url.database or "" if self.kind == "sqlite" else None
        self.waker = self._make_waker()

    def _make_waker(self) -> dialects.Waker:
        opts = self.options
        if self.kind == "sqlite":
            return dialects.SQLiteWaker(self.url.database or "", opts["poll_interval"] or 0.02)
        if self.kind == "postgresql" and opts["notify"]:
            channels = [
                dialects.channel_name(self.tables.prefix, self.name, k) for k in ("q", "kv", "ev")
            ]
            return dialects.PgWaker(self._listen_connection, channels, opts["poll_interval"] or 1.0)
        return dialects.Waker(opts["poll_interval"] or 0.1)

    def channel(self, kind: str) -> str:
        return dialects.channel_name(self.tables.prefix, self.name, kind)

    def _listen_connection(self) -> Any:
        import psycopg

        cargs, cparams = self.engine.dialect.create_connect_args(self.url)
        cparams.pop("context", None)
        cparams["connect_timeout"] = 5
        cparams.update(self.options["engine_options"].get("connect_args", {}))  # sslmode, ...
        return psycopg.connect(*cargs, **cparams, autocommit=True)

    @property
    def notifies(self) -> bool:
        return isinstance(self.waker, dialects.PgWaker)

    def ensure_schema(self) -> None:
        if self._ready:
            return
        if self.kind == "sqlite":
            folder = os.path.dirname(self.url.database or "")
            if folder and not os.path.isdir(folder):
                raise ConfigurationError(
                    f"the SQLite database folder {folder!r} does not exist; create it or "
                    "point the URL elsewhere"
                )
        key = (self.url.render_as_string(hide_password=True), self.tables.prefix)
        with _schema_lock:
            if key not in _schema_ready:
                self._guard(lambda: schema.create_schema(self.engine, self.tables))
                _schema_ready.add(key)
        self._ready = True

    def run(self, fn: Callable[[Connection], T], read: bool = False,
            retry_integrity: bool = False, single: bool = False) -> T:
        """Run `fn(conn)` in one transaction; rerun it after a deadlock or a lock timeout.

        Those errors roll the transaction back, so running it again is safe. Any other error
        propagates (with the password masked): the consumer backs off and calls again.
        `single=True` promises that `fn` runs exactly one statement: on PostgreSQL it then runs
        in autocommit, and a connection lost during it is not retried (it may have committed).
        """
        self.ensure_schema()
        writer = None if read or self._writer_path is None else _sqlite_writer(self._writer_path)
        engine = self._autocommit if single and self._autocommit is not None else self.engine
        autocommit = engine is not self.engine
        for attempt in range(20):
            committing = autocommit
            try:
                if writer is not None:
                    writer.acquire()
                try:
                    with engine.connect() as conn:
                        if read and self.kind == "sqlite":
                            conn = conn.execution_options(huey_sqlite_begin="DEFERRED")
                        with conn.begin():
                            result = fn(conn)
                            committing = True
                        return result
                finally:
                    if writer is not None:
                        writer.release()
            except IntegrityError:
                if not retry_integrity or attempt == 19:
                    raise
            except DBAPIError as exc:
                # A connection that died before COMMIT (server restart) committed nothing, so
                # one more try on a fresh connection is safe; a failure during COMMIT is
                # ambiguous and goes to the caller.
                if exc.connection_invalidated and attempt < 2 and (
                    not committing or _terminated(exc)
                ):
                    continue
                # SQLite reports "locked" only after busy_timeout has passed: a few more tries,
                # not twenty (the server dialects' deadlocks resolve in milliseconds).
                limit = 3 if self.kind == "sqlite" else 20
                if not dialects.is_transient(exc) or attempt >= limit - 1:
                    self._raise(exc)
                time.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
            except SQLAlchemyError as exc:
                self._raise(exc)
        raise AssertionError("unreachable")

    def run_sqlite(self, fn: Callable[[Any], T], read: bool = False) -> T:
        """SQLite only: run `fn(cursor)` in one transaction on a raw sqlite3 connection.

        The hot paths (enqueue, claim, ack, revocation reads, event batches) send fixed SQL
        straight to the driver: SQLAlchemy's per-statement machinery costs several times what
        SQLite itself spends on these one-row statements. Same contract as run(): BEGIN
        IMMEDIATE for writes (under the process's writer lock), BEGIN DEFERRED for reads, and a
        rerun after "database is locked".
        """
        self.ensure_schema()
        writer = None if read else _sqlite_writer(self._writer_path or "")
        begin = "BEGIN DEFERRED" if read else "BEGIN IMMEDIATE"
        for attempt in range(3):
            if writer is not None:
                writer.acquire()
            try:
                raw = self.engine.raw_connection()
                try:
                    dbapi = raw.driver_connection
                    cur = dbapi.cursor()
                    cur.execute(begin)
                    try:
                        result = fn(cur)
                        cur.execute("COMMIT")
                    except BaseException:
                        if dbapi.in_transaction:
                            dbapi.rollback()
                        raise
                    return result
                finally:
                    raw.close()
            except sqlite3.OperationalError as exc:
                if not dialects.is_transient(exc) or attempt == 2:
                    raise
            finally:
                if writer is not None:
                    writer.release()
            time.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
        raise AssertionError("unreachable")

    @property
    def fast(self) -> bool:
        """True when run_fast() serves this dialect (SQLite and PostgreSQL)."""
        return self.kind in ("sqlite", "postgresql")

    def sql(self, text: str) -> str:
        """Fixed SQL written with ? placeholders, in the driver's parameter style."""
        return text.replace("?", "%s") if self.kind == "postgresql" else text

    def run_fast(self, fn: Callable[[Any], T], read: bool = False) -> T:
        """Run `fn(cursor)` on a raw driver connection: SQLite in a transaction (run_sqlite),
        PostgreSQL in autocommit, so `fn` must then run exactly one statement (run_pg)."""
        if self.kind == "sqlite":
            return self.run_sqlite(fn, read)
        return self.run_pg(fn)

    def run_pg(self, fn: Callable[[Any], T]) -> T:
        """PostgreSQL only: run `fn(cursor)`, one statement, in autocommit on a pooled psycopg
        connection: one round trip, without SQLAlchemy's per-statement work.

        The pool still checks connections out (and pings idle or suspect ones, see
        dialects._ping_idle). A connection that breaks is invalidated; the statement runs again
        only when the server reports that it ended the session instead of running it, or after
        a deadlock or lock timeout (rolled back). Other errors propagate, password masked.
        """
        self.ensure_schema()
        for attempt in range(3):
            raw = None
            try:
                raw = self.engine.raw_connection()
                dbapi = raw.driver_connection
                dbapi.autocommit = True
                try:
                    return fn(dbapi.cursor())
                finally:
                    if not dbapi.closed:
                        dbapi.autocommit = False  # the pool's other users expect transactions
            except Exception as exc:
                if raw is not None and (raw.driver_connection.closed
                                        or getattr(raw.driver_connection, "broken", False)):
                    raw.invalidate(exc)
                orig = getattr(exc, "orig", exc)
                retry = getattr(orig, "sqlstate", None) in ("57P01", "57P02", "57P03")
                if attempt < 2 and (retry or dialects.is_transient(exc)):
                    time.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
                    continue
                self._raise(exc)
                raise
            finally:
                if raw is not None:
                    raw.close()
        raise AssertionError("unreachable")

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except SQLAlchemyError as exc:
            self._raise(exc)
            raise

    def _raise(self, exc: BaseException) -> None:
        # Drivers do not echo passwords, but a DSN can end up in a message; never let it out.
        if self._password and self._password in str(exc):
            raise ConnectionError(str(exc).replace(self._password, "***")) from None
        raise exc

    def notify(self, conn: Connection, kind: str) -> None:
        """NOTIFY in the writer's transaction: delivered at commit, when the row is visible."""
        if self.notifies:
            conn.execute(select(func.pg_notify(self.channel(kind), "")))

    def wait_for(self, kind: str, probe: Callable[[], T | None], timeout: float) -> T | None:
        """Call `probe` until it returns something or `timeout` passes, sleeping on the waker."""
        deadline = time.monotonic() + timeout
        while True:
            token = self.waker.token(self.channel(kind))
            found = probe()
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            self.waker.wait(self.channel(kind), token, remaining)

    def lock_for_update(self, stmt: Any) -> Any:
        """SELECT ... FOR UPDATE SKIP LOCKED where supported (SQLite holds the write lock)."""
        if self.kind == "sqlite":
            return stmt
        return stmt.with_for_update(skip_locked=True)

    def prefix_clause(self, column: Any, prefix: str) -> Any:
        """`column` starts with `prefix`, case-sensitively and through the index."""
        if self.kind == "sqlite":
            # LIKE is case-insensitive in SQLite; GLOB is case-sensitive.
            escaped = "".join(f"[{c}]" if c in "*?[" else c for c in prefix)
            return column.op("GLOB")(escaped + "*")
        escaped = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        return column.like(escaped + "%", escape="!")


class SQLQueue(BaseQueue):
    """The ready queue with leases. Ready = lease IS NULL; ack deletes by lease token."""

    priority = True

    def __init__(self, db: _DB) -> None:
        self._db = db
        self._t = db.tables.queue
        # SQLite: waits inside dequeue, waking on PRAGMA data_version (cheap, any process).
        # PostgreSQL with notify: waits on LISTEN/NOTIFY. Otherwise dequeue returns at once and
        # the consumer polls with backoff.
        self.blocking = db.waker.native
        self._build_statements()

    def _mine(self) -> Any:
        return self._t.c.name == self._db.name

    def _build_statements(self) -> None:
        # The statements of the per-task path are built once, with bindparam() for what varies:
        # building a statement costs more than SQLAlchemy's compiled-cache lookup that runs it.
        t, db = self._t, self._db
        stmt: Any = insert(t).values(
            name=db.name, sort_key=bindparam("b_sort_key"), data=bindparam("b_data"),
            deliveries=0,
        )
        if db.notifies:
            # One statement instead of two (about 20% faster): the INSERT runs as a CTE, to
            # completion, and the NOTIFY goes out with the commit.
            inserted = stmt.returning(t.c.id).cte("inserted")
            stmt = select(func.pg_notify(db.channel("q"), "")).select_from(inserted)
        self._enqueue_stmt = stmt
        values = dict(
            lease=bindparam("b_lease"),
            owner=bindparam("b_owner"),
            deadline=bindparam("b_deadline"),
            deliveries=t.c.deliveries + 1,
        )
        pick = db.lock_for_update(
            select(t.c.id)
            .where(self._mine(), t.c.lease.is_(None))
            .order_by(t.c.sort_key, t.c.id)
            .limit(1)
        )
        if db.kind == "mysql":
            # MySQL cannot UPDATE a table it selects from in a subquery: lock, then update.
            self._pick_stmt = pick.with_only_columns(t.c.id, t.c.data, t.c.deliveries)
            self._claim_stmt = update(t).where(t.c.id == bindparam("b_id")).values(**values)
        else:
            # One statement: pick the first ready row (skipping rows other claimers hold) and
            # lease it. SQLite runs it under the write lock taken by BEGIN IMMEDIATE.
            self._claim_stmt = (
                update(t)
                .where(t.c.id == pick.scalar_subquery())
                .values(**values)
                .returning(t.c.data, t.c.deliveries)
            )
        self._ack_stmt = delete(t).where(self._mine(), t.c.lease == bindparam("b_lease"))
        self._has_ready_stmt = select(t.c.id).where(self._mine(), t.c.lease.is_(None)).limit(1)
        # SQLite and PostgreSQL: the same operations as fixed SQL sent to the driver (see
        # _DB.run_fast); each is a single statement, so atomic on its own.
        self._fast = db.fast
        q = t.name
        insert_sql = f"INSERT INTO {q} (name, sort_key, data, deliveries) VALUES (?, ?, ?, 0)"
        if db.notifies:
            insert_sql = (
                f"WITH inserted AS ({insert_sql} RETURNING id) "
                "SELECT pg_notify(?, '') FROM inserted"
            )
        self._sql_enqueue = db.sql(insert_sql)
        skip_locked = " FOR UPDATE SKIP LOCKED" if db.kind == "postgresql" else ""
        self._sql_claim = db.sql(
            f"UPDATE {q} SET lease = ?, owner = ?, deadline = ?, deliveries = deliveries + 1 "
            f"WHERE id = (SELECT id FROM {q} WHERE name = ? AND lease IS NULL "
            f"ORDER BY sort_key, id LIMIT 1{skip_locked}) RETURNING data, deliveries"
        )
        self._sql_ack = db.sql(f"DELETE FROM {q} WHERE name = ? AND lease = ?")
        # PostgreSQL acks and claims in one statement: the DELETE runs as a CTE on another row
        # (a leased one) than the UPDATE claims (a ready one).
        self._sql_ack_claim = (
            db.sql(f"WITH acked AS (DELETE FROM {q} WHERE name = ? AND lease = ?) ")
            + self._sql_claim if db.kind == "postgresql" else None
        )
        self._sql_has_ready = db.sql(f"SELECT id FROM {q} WHERE name = ? AND lease IS NULL LIMIT 1")

    def enqueue(self, data: bytes, priority: int = 0) -> None:
        """Append a message. One short insert transaction (plus NOTIFY on PostgreSQL)."""
        if self._fast:
            args: tuple[Any, ...] = (self._db.name, -int(priority), data)
            if self._db.notifies:
                args += (self._db.channel("q"),)
            self._db.run_fast(lambda cur: cur.execute(self._sql_enqueue, args))
        else:
            stmt, params = self._enqueue_stmt, {"b_sort_key": -int(priority), "b_data": data}
            self._db.run(lambda conn: conn.execute(stmt, params), single=True)
        self._db.waker.touch("q")

    def _claim(self, owner: str, lease_timeout: float) -> Delivery | None:
        lease = uuid.uuid4().hex
        params = {"b_lease": lease, "b_owner": owner[:200],
                  "b_deadline": time.time() + lease_timeout}
        claim = self._claim_stmt
        if self._fast:
            args = (lease, owner[:200], params["b_deadline"], self._db.name)

            def fast(cur: Any) -> Delivery | None:
                row = cur.execute(self._sql_claim, args).fetchone()
                return None if row is None else Delivery(bytes(row[0]), lease, row[1])

            return self._db.run_fast(fast)
        if self._db.kind == "mysql":
            pick = self._pick_stmt

            def tx(conn: Connection) -> Delivery | None:
                row = conn.execute(pick).first()
                if row is None:
                    return None
                conn.execute(claim, {**params, "b_id": row.id})
                return Delivery(bytes(row.data), lease, row.deliveries + 1)
        else:

            def tx(conn: Connection) -> Delivery | None:
                row = conn.execute(claim, params).first()
                return None if row is None else Delivery(bytes(row.data), lease, row.deliveries)

            return self._db.run(tx, single=True)

        return self._db.run(tx)

    def _has_ready(self) -> bool:
        if self._fast:
            args = (self._db.name,)
            return self._db.run_fast(
                lambda cur: cur.execute(self._sql_has_ready, args).fetchone() is not None, read=True
            )
        stmt = self._has_ready_stmt
        return self._db.run(
            lambda conn: conn.execute(stmt).first() is not None, read=True, single=True
        )

    def ack_and_dequeue(
        self, lease: str, owner: str, lease_timeout: float, wait: float = 0.0
    ) -> Delivery | None:
        """ack(lease), then dequeue(owner, lease_timeout, wait).

        SQLite: the delete and the claim in one write transaction; PostgreSQL: one statement.
        Elsewhere: the two calls. The ack is done once this returns (or raises after it).
        """
        if not self._fast:
            self.ack(lease)
            return self.dequeue(owner, lease_timeout, wait)
        new_lease = uuid.uuid4().hex
        db = self._db
        claim_args = (new_lease, owner[:200], time.time() + lease_timeout, db.name)
        if db.kind == "postgresql":

            def tx(cur: Any) -> Delivery | None:
                row = cur.execute(self._sql_ack_claim, (db.name, lease, *claim_args)).fetchone()
                return None if row is None else Delivery(bytes(row[0]), new_lease, row[1])
        else:

            def tx(cur: Any) -> Delivery | None:
                cur.execute(self._sql_ack, (db.name, lease))
                row = cur.execute(self._sql_claim, claim_args).fetchone()
                return None if row is None else Delivery(bytes(row[0]), new_lease, row[1])

        found = db.run_fast(tx)
        if found is not None or wait <= 0 or not self.blocking:
            return found
        return self.dequeue(owner, lease_timeout, wait)

    def dequeue(self, owner: str, lease_timeout: float, wait: float = 0.0) -> Delivery | None:
        """Claim the next ready message (priority DESC, arrival) under a new lease.

        Atomic (SKIP LOCKED / SQLite write lock). With `blocking` and `wait` > 0, waits up to
        `wait` seconds; between claims it only runs a cheap read, never a write.
        """
        found = self._claim(owner, lease_timeout)
        if found is not None or wait <= 0 or not self.blocking:
            return found

        def probe() -> Delivery | None:
            # SQLite: a read first, so idle waiters never queue for the write lock. PostgreSQL:
            # a claim that finds nothing costs the same as that read, so claim at once.
            if self._db.kind != "postgresql" and not self._has_ready():
                return None
            return self._claim(owner, lease_timeout)

        return self._db.wait_for("q", probe, wait)

    def ack(self, lease: str) -> None:
        """Delete the leased message. Unknown lease: no-op."""
        if self._fast:
            args = (self._db.name, lease)
            self._db.run_fast(lambda cur: cur.execute(self._sql_ack, args))
            return
        stmt, params = self._ack_stmt, {"b_lease": lease}
        self._db.run(lambda conn: conn.execute(stmt, params), single=True)

    def release(self, lease: str) -> None:
        """Make the leased message ready again, keeping its place and delivery count."""
        t = self._t

        def tx(conn: Connection) -> int:
            n = conn.execute(
                update(t)
                .where(self._mine(), t.c.lease == lease)
                .values(lease=None, owner=None, deadline=None)
            ).rowcount
            if n:
                self._db.notify(conn, "q")
            return n

        if self._db.run(tx):
            self._db.waker.touch("q")

    def extend(self, lease: str, lease_timeout: float) -> bool:
        """Move the deadline; False when the lease is gone."""
        t = self._t
        stmt = (
            update(t)
            .where(self._mine(), t.c.lease == lease)
            .values(deadline=time.time() + lease_timeout)
        )
        return bool(self._db.run(lambda conn: conn.execute(stmt).rowcount))

    def recover(self) -> int:
        """Clear every expired lease in one UPDATE; each row is recovered by exactly one caller."""
        t = self._t

        def tx(conn: Connection) -> int:
            n = conn.execute(
                update(t)
                .where(self._mine(), t.c.lease.is_not(None), t.c.deadline < time.time())
                .values(lease=None, owner=None, deadline=None)
            ).rowcount
            if n:
                self._db.notify(conn, "q")
            return n

        n = self._db.run(tx)
        if n:
            self._db.waker.touch("q")
        return n

    def size(self) -> int:
        t = self._t
        stmt = select(func.count()).select_from(t).where(self._mine(), t.c.lease.is_(None))
        return int(self._db.run(lambda conn: conn.execute(stmt).scalar() or 0, read=True))

    def peek(self, n: int = 100) -> list[bytes]:
        t = self._t
        stmt = (
            select(t.c.data)
            .where(self._mine(), t.c.lease.is_(None))
            .order_by(t.c.sort_key, t.c.id)
            .limit(max(0, n))
        )
        return self._db.run(lambda conn: [bytes(r[0]) for r in conn.execute(stmt)], read=True)

    def leases(self) -> list[LeaseInfo]:
        t = self._t
        stmt = (
            select(t.c.lease, t.c.owner, t.c.deadline, t.c.deliveries, t.c.data)
            .where(self._mine(), t.c.lease.is_not(None))
            .order_by(t.c.deadline)
        )
        return self._db.run(
            lambda conn: [
                LeaseInfo(r.lease, r.owner or "", float(r.deadline), r.deliveries, bytes(r.data))
                for r in conn.execute(stmt)
            ],
            read=True,
        )

    def flush(self) -> None:
        t = self._t
        self._db.run(lambda conn: conn.execute(delete(t).where(self._mine())))


class SQLSchedule(BaseSchedule):
    """Messages waiting for a time, indexed by (name, ts)."""

    def __init__(self, db: _DB, queue: SQLQueue) -> None:
        self._db = db
        self._t = db.tables.schedule
        self._queue = queue

    def _mine(self) -> Any:
        return self._t.c.name == self._db.name

    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:
        stmt = insert(self._t).values(
            name=self._db.name, ts=float(timestamp), priority=int(priority), data=data
        )
        self._db.run(lambda conn: conn.execute(stmt))

    def _take(self, conn: Connection, now: float, limit: int) -> list[Any]:
        """Lock (skipping rows other movers hold) and delete up to `limit` due rows."""
        t = self._t
        rows = conn.execute(
            self._db.lock_for_update(
                select(t.c.id, t.c.priority, t.c.data)
                .where(self._mine(), t.c.ts <= now)
                .order_by(t.c.ts, t.c.id)
                .limit(limit)
            )
        ).all()
        if rows:
            conn.execute(delete(t).where(t.c.id.in_([r.id for r in rows])))
        return rows

    def move_due(self, now: float, limit: int = 1000) -> int:
        """Move due rows into the queue: insert and delete in ONE transaction.

        A crash rolls both back; concurrent movers skip rows another mover has locked
        (SQLite: one mover at a time), so no row is moved twice.
        """
        if limit <= 0:
            return 0
        q = self._db.tables.queue

        def tx(conn: Connection) -> int:
            rows = self._take(conn, now, limit)
            if rows:
                conn.execute(
                    insert(q),
                    [
                        {"name": self._db.name, "sort_key": -r.priority, "data": r.data,
                         "deliveries": 0}
                        for r in rows
                    ],
                )
                self._db.notify(conn, "q")
            return len(rows)

        n = self._db.run(tx)
        if n:
            self._db.waker.touch("q")
        return n

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        """Remove and return due messages, oldest first (the caller enqueues them)."""
        if limit <= 0:
            return []
        return self._db.run(lambda conn: [bytes(r.data) for r in self._take(conn, now, limit)])

    def size(self) -> int:
        stmt = select(func.count()).select_from(self._t).where(self._mine())
        return int(self._db.run(lambda conn: conn.execute(stmt).scalar() or 0, read=True))

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:
        t = self._t
        stmt = (
            select(t.c.ts, t.c.data).where(self._mine()).order_by(t.c.ts, t.c.id).limit(max(0, n))
        )
        return self._db.run(
            lambda conn: [(float(r.ts), bytes(r.data)) for r in conn.execute(stmt)], read=True
        )

    def flush(self) -> None:
        self._db.run(lambda conn: conn.execute(delete(self._t).where(self._mine())))


class SQLStore(BaseDataStore):
    """Key/value rows with an optional expiry; expired rows read as missing, cleaned lazily."""

    CLEANUP_EVERY = 60.0  # seconds between sweeps of expired rows, per process
    CLEANUP_BATCH = 500

    def __init__(self, db: _DB) -> None:
        self._db = db
        self._t = db.tables.kv
        self._next_cleanup = 0.0
        t = self._t
        live = or_(t.c.expires_at.is_(None), t.c.expires_at > bindparam("b_now"))
        mine = t.c.name == db.name
        self._peek_stmt = select(t.c.value).where(mine, t.c.key == bindparam("b_key"), live)
        self._peek_many_stmt = select(t.c.key, t.c.value).where(
            mine, t.c.key.in_(bindparam("b_keys", expanding=True)), live
        )
        self._fast = db.fast
        self._sql_peek = db.sql(
            f"SELECT key, value FROM {t.name} WHERE name = ? AND key IN ({{}}) "
            "AND (expires_at IS NULL OR expires_at > ?)"
        )

    def _key(self, key: str) -> Any:
        t = self._t
        if len(key) > schema.MAX_KEY:
            raise ValueError(f"key longer than {schema.MAX_KEY} characters: {key[:40]!r}...")
        return and_(t.c.name == self._db.name, t.c.key == key)

    def _live(self, now: float) -> Any:
        t = self._t
        return or_(t.c.expires_at.is_(None), t.c.expires_at > now)

    @staticmethod
    def _expiry(ttl: float | None) -> float | None:
        return None if ttl is None else time.time() + ttl

    def _upsert(self, values: dict[str, Any]) -> Any:
        t, kind = self._t, self._db.kind
        changed = {"value": values["value"], "expires_at": values["expires_at"]}
        if kind == "postgresql":
            stmt = pg_dialect.insert(t).values(**values)
            return stmt.on_conflict_do_update(index_elements=["name", "key"], set_=changed)
        if kind == "sqlite":
            stmt = sqlite_dialect.insert(t).values(**values)
            return stmt.on_conflict_do_update(index_elements=["name", "key"], set_=changed)
        return mysql_dialect.insert(t).values(**values).on_duplicate_key_update(**changed)

    def _insert_if_absent(self, values: dict[str, Any]) -> Any:
        t, kind = self._t, self._db.kind
        # RETURNING tells whether the row went in (psycopg reports no rowcount for a skipped
        # ON CONFLICT insert); MySQL's INSERT IGNORE reports 0 affected rows on a duplicate.
        if kind == "postgresql":
            stmt = pg_dialect.insert(t).values(**values).on_conflict_do_nothing()
            return stmt.returning(t.c.key)
        if kind == "sqlite":
            stmt = sqlite_dialect.insert(t).values(**values).on_conflict_do_nothing()
            return stmt.returning(t.c.key)
        return insert(t).values(**values).prefix_with("IGNORE")

    def _written(self, conn: Connection) -> None:
        self._db.notify(conn, "kv")

    def _maybe_cleanup(self) -> None:
        now = time.time()
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + self.CLEANUP_EVERY
        t = self._t

        def tx(conn: Connection) -> None:
            keys = conn.execute(
                select(t.c.key)
                .where(t.c.name == self._db.name, t.c.expires_at <= now)
                .limit(self.CLEANUP_BATCH)
            ).scalars().all()
            if keys:
                conn.execute(
                    delete(t).where(
                        t.c.name == self._db.name, t.c.key.in_(keys), t.c.expires_at <= now
                    )
                )

        try:
            self._db.run(tx)
        except Exception:  # housekeeping must never fail a user's write
            log.debug("expired key cleanup failed", exc_info=True)

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value`, replacing any value and ttl. One upsert."""
        stmt = self._upsert(
            {"name": self._db.name, "key": key, "value": value, "expires_at": self._expiry(ttl)}
        )
        self._key(key)

        def tx(conn: Connection) -> None:
            conn.execute(stmt)
            self._written(conn)

        self._db.run(tx)
        self._db.waker.touch("kv")
        self._maybe_cleanup()

    def _check(self, key: str) -> None:
        if len(key) > schema.MAX_KEY:
            raise ValueError(f"key longer than {schema.MAX_KEY} characters: {key[:40]!r}...")

    def peek(self, key: str) -> bytes | None:
        self._check(key)
        if self._fast:
            return self.peek_many([key])[0]
        stmt, params = self._peek_stmt, {"b_key": key, "b_now": time.time()}
        value = self._db.run(
            lambda conn: conn.execute(stmt, params).scalar(), read=True, single=True
        )
        return None if value is None else bytes(value)

    def peek_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of `keys` in order (None where missing or expired), in one SELECT."""
        if not keys:
            return []
        for key in keys:
            self._check(key)
        if self._fast:
            sql = self._sql_peek.format(", ".join([self._db.sql("?")] * len(keys)))
            args = (self._db.name, *keys, time.time())
            rows = self._db.run_fast(lambda cur: cur.execute(sql, args).fetchall(), read=True)
            found = {r[0]: bytes(r[1]) for r in rows}
            return [found.get(key) for key in keys]
        stmt, params = self._peek_many_stmt, {"b_keys": list(keys), "b_now": time.time()}
        rows = self._db.run(lambda conn: conn.execute(stmt, params).all(), read=True, single=True)
        found = {r.key: bytes(r.value) for r in rows}
        return [found.get(key) for key in keys]

    def pop(self, key: str) -> bytes | None:
        """Delete and return in one transaction: of concurrent callers one gets the value."""
        t, where = self._t, self._key(key)
        now = time.time()
        if self._db.engine.dialect.delete_returning:

            def tx(conn: Connection) -> Any:
                return conn.execute(delete(t).where(where).returning(t.c.value, t.c.expires_at)).first()
        else:

            def tx(conn: Connection) -> Any:
                row = conn.execute(
                    select(t.c.value, t.c.expires_at).where(where).with_for_update()
                ).first()
                if row is not None:
                    conn.execute(delete(t).where(where))
                return row

        row = self._db.run(tx)
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            return None
        return bytes(row.value)

    def delete(self, key: str) -> bool:
        """Remove `key`; True only when it held a live value (expired rows go too)."""
        t, where = self._t, self._key(key)

        def tx(conn: Connection) -> bool:
            live = conn.execute(delete(t).where(where, self._live(time.time()))).rowcount
            if not live:
                conn.execute(delete(t).where(where))
            return bool(live)

        return self._db.run(tx)

    def exists(self, key: str) -> bool:
        return self.peek(key) is not None

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Insert unless a live row exists; atomic across processes.

        An expired row is deleted first in the same transaction, then INSERT ... ON CONFLICT DO
        NOTHING (INSERT IGNORE on MySQL): the unique key decides the single winner.
        """
        t, where = self._t, self._key(key)
        values = {"name": self._db.name, "key": key, "value": value,
                  "expires_at": self._expiry(ttl)}
        stmt = self._insert_if_absent(values)

        def tx(conn: Connection) -> bool:
            conn.execute(delete(t).where(where, t.c.expires_at <= time.time()))
            result = conn.execute(stmt)
            won = result.first() is not None if result.returns_rows else result.rowcount == 1
            if won:
                self._written(conn)
            return won

        won = self._db.run(tx)
        if won:
            self._db.waker.touch("kv")
        return won

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Read-modify-write under a row lock; a racing first insert retries the transaction."""
        t, where = self._t, self._key(key)

        def tx(conn: Connection) -> int:
            now = time.time()
            row = conn.execute(
                select(t.c.value, t.c.expires_at).where(where).with_for_update()
            ).first()
            if row is None:
                value = amount
                conn.execute(
                    insert(t).values(name=self._db.name, key=key, value=str(value).encode(),
                                     expires_at=self._expiry(ttl))
                )
            elif row.expires_at is not None and row.expires_at <= now:
                value = amount
                conn.execute(
                    update(t).where(where).values(value=str(value).encode(),
                                                  expires_at=self._expiry(ttl))
                )
            else:
                value = int(bytes(row.value)) + amount
                conn.execute(update(t).where(where).values(value=str(value).encode()))
            self._written(conn)
            return value

        value = self._db.run(tx, retry_integrity=True)
        self._db.waker.touch("kv")
        return value

    def wait(self, key: str, timeout: float) -> bool:
        """Block until `key` is live or `timeout` passes.

        PostgreSQL sleeps on NOTIFY (with a fallback poll); SQLite looks again only when
        `PRAGMA data_version` says another connection committed; MySQL polls with backoff.
        """
        if self.exists(key):
            return True
        if timeout <= 0:
            return False
        if self._db.waker.native:
            return bool(self._db.wait_for("kv", lambda: True if self.exists(key) else None, timeout))
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self.exists(key)
            time.sleep(min(delay, remaining))
            if self.exists(key):
                return True
            delay = min(delay * 1.5, 0.25)

    def size(self) -> int:
        t = self._t
        stmt = select(func.count()).select_from(t).where(
            t.c.name == self._db.name, self._live(time.time())
        )
        return int(self._db.run(lambda conn: conn.execute(stmt).scalar() or 0, read=True))

    def items(self, prefix: str = "") -> dict[str, bytes]:
        t = self._t
        stmt = select(t.c.key, t.c.value).where(t.c.name == self._db.name, self._live(time.time()))
        if prefix:
            stmt = stmt.where(self._db.prefix_clause(t.c.key, prefix))
        rows = self._db.run(lambda conn: conn.execute(stmt).all(), read=True)
        return {r.key: bytes(r.value) for r in rows if r.key.startswith(prefix)}

    def flush(self, prefix: str = "") -> None:
        t = self._t
        stmt = delete(t).where(t.c.name == self._db.name)
        if prefix:
            stmt = stmt.where(self._db.prefix_clause(t.c.key, prefix))
        self._db.run(lambda conn: conn.execute(stmt))


class SQLSubscription(BaseSubscription):
    """Reads the events table by id; PostgreSQL wakes it with NOTIFY, elsewhere it polls.

    Ids are assigned at insert but rows become visible at commit, so on PostgreSQL and MySQL a
    lower id can appear after a higher one. Gaps are remembered for a few seconds and looked up
    again, so such late events are still delivered (out of order across producers).
    """

    HOLE_TTL = 3.0
    MAX_HOLES = 2000

    def __init__(self, events: SQLEvents) -> None:
        self._events = events
        self._db = events._db
        self._closed = threading.Event()
        t = events._t
        self._last = int(
            self._db.run(
                lambda conn: conn.execute(
                    select(func.max(t.c.id)).where(t.c.name == self._db.name)
                ).scalar() or 0,
                read=True,
            )
        )
        self._holes: dict[int, float] = {}

    def _fetch(self) -> list[bytes]:
        t = self._events._t
        now = time.monotonic()
        self._holes = {i: ts for i, ts in self._holes.items() if now - ts < self.HOLE_TTL}
        holes = sorted(self._holes)

        def tx(conn: Connection) -> tuple[list[Any], list[Any]]:
            late = []
            if holes:
                late = conn.execute(
                    select(t.c.id, t.c.data)
                    .where(t.c.name == self._db.name, t.c.id.in_(holes))
                    .order_by(t.c.id)
                ).all()
            new = conn.execute(
                select(t.c.id, t.c.data)
                .where(t.c.name == self._db.name, t.c.id > self._last)
                .order_by(t.c.id)
                .limit(1000)
            ).all()
            return late, new

        late, new = self._db.run(tx, read=True)
        out = []
        for row in late:
            self._holes.pop(row.id, None)
            out.append(bytes(row.data))
        for row in new:
            if self._db.kind != "sqlite" and row.id > self._last + 1:
                gap = range(self._last + 1, row.id)
                if len(gap) + len(self._holes) <= self.MAX_HOLES:
                    self._holes.update(dict.fromkeys(gap, now))
            self._last = row.id
            out.append(bytes(row.data))
        return out

    def events(self) -> Iterator[bytes]:
        waker = self._db.waker
        while not self._closed.is_set():
            token = waker.token(self._db.channel("ev"))
            batch = self._fetch()
            if batch:
                for event in batch:
                    if self._closed.is_set():
                        return
                    yield event
                continue
            # Wake within a second of close(); on PostgreSQL a NOTIFY wakes us at once.
            if waker.native:
                waker.wait(self._db.channel("ev"), token, 0.5)
            else:
                self._closed.wait(min(waker.poll, 0.5))

    def close(self) -> None:
        self._closed.set()
        self._db.waker.touch("ev")


class SQLEvents(BaseEventEmitter):
    """Events in a table, so they cross processes; retention bounded by count and age."""

    TRIM_EVERY = 500  # emits between trims, per process

    def __init__(self, db: _DB) -> None:
        self._db = db
        self._t = db.tables.events
        self._emits = 0
        self.keep = int(db.options["events_keep"])
        self.max_age = float(db.options["events_max_age"])
        self._insert = insert(self._t)

    def emit(self, event: bytes) -> None:
        """Insert the event (and NOTIFY on PostgreSQL). Nobody listening is fine."""
        stmt = insert(self._t).values(name=self._db.name, created=time.time(), data=event)

        def tx(conn: Connection) -> None:
            conn.execute(stmt)
            self._db.notify(conn, "ev")

        self._db.run(tx)
        self._after_emit(1)

    def emit_many(self, events: list[bytes]) -> None:
        """Insert a batch of events in one transaction (one NOTIFY), in list order."""
        if not events:
            return
        now = time.time()
        if self._db.kind == "sqlite":
            args = [(self._db.name, now, event) for event in events]
            sql = f"INSERT INTO {self._t.name} (name, created, data) VALUES (?, ?, ?)"
            self._db.run_sqlite(lambda cur: cur.executemany(sql, args))
            self._after_emit(len(events))
            return
        if self._db.kind == "postgresql":
            # One statement, one round trip: the batch travels as one bytea[] and is inserted
            # in list order (ids follow ORDER BY), with one NOTIFY when notifications are on.
            sql = (
                f"INSERT INTO {self._t.name} (name, created, data) SELECT %s, %s, e.data "
                "FROM unnest(%s::bytea[]) WITH ORDINALITY AS e(data, n) ORDER BY e.n"
            )
            args: tuple[Any, ...] = (self._db.name, now, list(events))
            if self._db.notifies:
                sql = (f"WITH ins AS ({sql} RETURNING 1) "
                       "SELECT pg_notify(%s, '') FROM (SELECT 1 FROM ins LIMIT 1) AS one")
                args += (self._db.channel("ev"),)
            self._db.run_pg(lambda cur: cur.execute(sql, args))
            self._after_emit(len(events))
            return
        rows = [{"name": self._db.name, "created": now, "data": event} for event in events]

        def tx(conn: Connection) -> None:
            conn.execute(self._insert, rows)
            self._db.notify(conn, "ev")

        self._db.run(tx)
        self._after_emit(len(events))

    def _after_emit(self, n: int) -> None:
        self._db.waker.touch("ev")
        before, self._emits = self._emits, self._emits + n
        if before // self.TRIM_EVERY != self._emits // self.TRIM_EVERY or before == 0:
            self.trim()

    def trim(self) -> None:
        """Delete events beyond the newest `events_keep` or older than `events_max_age`."""
        t = self._t
        mine = t.c.name == self._db.name

        def tx(conn: Connection) -> None:
            cutoff = conn.execute(
                select(t.c.id).where(mine).order_by(t.c.id.desc()).offset(self.keep).limit(1)
            ).scalar()
            old = t.c.created < time.time() - self.max_age
            conn.execute(delete(t).where(mine, old if cutoff is None else or_(old, t.c.id <= cutoff)))

        try:
            self._db.run(tx)
        except Exception:  # housekeeping must never fail an emit
            log.debug("event trim failed", exc_info=True)

    def listen(self) -> SQLSubscription:
        """Events emitted (by any process) after this call."""
        return SQLSubscription(self)


_DEFAULTS: dict[str, Any] = {
    "table_prefix": "huey_tk_",  # not "huey_": huey's own PostgresHuey tables use that
    "pool_size": 5,
    "max_overflow": 10,
    "notify": True,
    "poll_interval": None,  # per dialect: sqlite 0.02, postgresql fallback 1.0, mysql 0.1
    "busy_timeout": 30.0,
    "sqlite_synchronous": "NORMAL",
    "events_keep": 10_000,
    "events_max_age": 3600.0,
    "engine_options": {},
}


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
        opts = {**_DEFAULTS, **options}
        self.name = name
        self._db = _DB(name, url, opts)
        # The password stays inside the engine; nothing reachable from the backend shows it.
        self.url = self._db.url.render_as_string(hide_password=True)
        self.queue = SQLQueue(self._db)
        self.schedule = SQLSchedule(self._db, self.queue)
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
        mode = "notify" if self._db.notifies else ("watch" if self.queue.blocking else "polling")
        return (
            f"SQLBackend({mask_url(self.url)}, table_prefix={self._db.tables.prefix!r}, {mode})"
        )
