"""The "lite" backend: huey's four stores in one SQLite file, with nothing but the standard library.

It exists to teach (docs/writing-backends.md walks through it), yet it is complete: it passes the
whole conformance suite, several processes can share the file, and a crash loses nothing. It
writes only the methods the base classes of huey_core.protocols mark as required; everything
else (sizes, delete, exists, wait, flush, batched calls, listen) is derived from them.

Choices worth copying:
- Every row carries the instance `name`, so many huey instances share one file without seeing
  each other's data.
- A message is leased, not deleted, on dequeue: `lease`, `owner` and `deadline` are set, and only
  ack() deletes it. recover() clears leases whose deadline passed, in a single UPDATE.
- Writes that read first (dequeue, pop, incr, move_due) run in `BEGIN IMMEDIATE` transactions,
  which take SQLite's write lock up front: two processes can never claim the same row.
- SQLite cannot tell another connection that a row arrived, so the queue is not blocking and
  the derived wait() and listen() poll: the capability flag says so and the consumer polls.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid

from huey_core.protocols import (
    EVENT_RETENTION,
    BaseBackend,
    BaseDataStore,
    BaseEventEmitter,
    BaseQueue,
    BaseSchedule,
    Delivery,
    LeaseInfo,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS lite_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order; AUTOINCREMENT never reuses an id
    name TEXT NOT NULL,
    priority INTEGER NOT NULL,
    data BLOB NOT NULL,
    lease TEXT,                            -- NULL while the message is ready
    owner TEXT,
    deadline REAL,
    deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS lite_queue_ready ON lite_queue (name, lease, priority DESC, id);
CREATE INDEX IF NOT EXISTS lite_queue_deadline ON lite_queue (name, deadline);
CREATE TABLE IF NOT EXISTS lite_schedule (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    ts REAL NOT NULL,
    priority INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS lite_schedule_due ON lite_schedule (name, ts, id);
CREATE TABLE IF NOT EXISTS lite_store (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    expires REAL,                          -- unix time; NULL never expires
    PRIMARY KEY (name, key)
);
CREATE INDEX IF NOT EXISTS lite_store_expires ON lite_store (name, expires);
CREATE TABLE IF NOT EXISTS lite_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- a listener's cursor: ids only grow
    name TEXT NOT NULL,
    emitted REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS lite_events_name ON lite_events (name, id);
CREATE INDEX IF NOT EXISTS lite_events_emitted ON lite_events (name, emitted);
"""


class _Connections:
    """One sqlite3 connection per thread (sqlite3 objects must not be shared between threads)."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: autocommit, so we write BEGIN IMMEDIATE ourselves where a
            # read and a write must be one atomic step. check_same_thread=False only lets
            # close() run from another thread; each connection is still used by one thread.
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def forget(self) -> None:
        """After fork: drop the parent's connections without touching them."""
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()


class _LiteBase:
    """What the four stores share: the instance name and the per-thread connections."""

    def __init__(self, name: str, conns: _Connections) -> None:
        self.name = name
        self._conns = conns

    def _run(self, sql: str, *args: object) -> sqlite3.Cursor:
        """One statement: SQLite runs each one atomically."""
        return self._conns.get().execute(sql, args)

    def _begin(self) -> sqlite3.Connection:
        """`with self._begin() as conn:` runs the block as one write transaction.

        BEGIN IMMEDIATE takes the write lock now, not at the first write, so nobody changes
        what the block reads; `with conn` commits at the end, or rolls back on an exception.
        """
        conn = self._conns.get()
        conn.execute("BEGIN IMMEDIATE")
        return conn


class LiteQueue(_LiteBase, BaseQueue):
    blocking = False  # SQLite cannot wake a waiter in another process: dequeue returns at once
    priority = True  # ORDER BY priority DESC, id

    def enqueue(self, data: bytes, priority: int = 0) -> None:
        """Append a message. One INSERT: atomic."""
        sql = "INSERT INTO lite_queue (name, priority, data) VALUES (?, ?, ?)"
        self._run(sql, self.name, priority, data)

    def dequeue(self, owner: str, lease_timeout: float, wait: float = 0.0) -> Delivery | None:
        """Lease the first ready message; None at once when there is none (`wait` is ignored)."""
        lease = uuid.uuid4().hex
        with self._begin() as conn:
            row = conn.execute(
                "SELECT id, data, deliveries FROM lite_queue WHERE name = ? AND lease IS NULL "
                "ORDER BY priority DESC, id LIMIT 1",
                (self.name,),
            ).fetchone()
            if row is None:
                return None
            msg_id, data, deliveries = row
            conn.execute(
                "UPDATE lite_queue SET lease = ?, owner = ?, deadline = ?, deliveries = ? "
                "WHERE id = ?",
                (lease, owner, time.time() + lease_timeout, deliveries + 1, msg_id),
            )
        return Delivery(bytes(data), lease, deliveries + 1)

    def ack(self, lease: str) -> None:
        """Delete the leased message; an unknown lease matches no row, so it is a no-op."""
        self._run("DELETE FROM lite_queue WHERE name = ? AND lease = ?", self.name, lease)

    def release(self, lease: str) -> None:
        """Clear the lease: the message is ready again at its old place in line."""
        self._run(
            "UPDATE lite_queue SET lease = NULL, owner = NULL, deadline = NULL "
            "WHERE name = ? AND lease = ?",
            self.name,
            lease,
        )

    def extend(self, lease: str, lease_timeout: float) -> bool:
        """Move the deadline; False when no row holds this lease any more."""
        sql = "UPDATE lite_queue SET deadline = ? WHERE name = ? AND lease = ?"
        return self._run(sql, time.time() + lease_timeout, self.name, lease).rowcount == 1

    def recover(self) -> int:
        """One UPDATE: each expired message is either still leased or ready, never both."""
        cursor = self._run(
            "UPDATE lite_queue SET lease = NULL, owner = NULL, deadline = NULL "
            "WHERE name = ? AND lease IS NOT NULL AND deadline < ?",
            self.name,
            time.time(),
        )
        return cursor.rowcount

    def peek(self, n: int = 100) -> list[bytes]:
        rows = self._run(
            "SELECT data FROM lite_queue WHERE name = ? AND lease IS NULL "
            "ORDER BY priority DESC, id LIMIT ?",
            self.name,
            n,
        )
        return [bytes(data) for (data,) in rows]

    def leases(self) -> list[LeaseInfo]:
        rows = self._run(
            "SELECT lease, owner, deadline, deliveries, data FROM lite_queue "
            "WHERE name = ? AND lease IS NOT NULL ORDER BY deadline",
            self.name,
        )
        return [
            LeaseInfo(lease, owner, deadline, n, bytes(data))
            for lease, owner, deadline, n, data in rows
        ]

    def flush(self) -> None:
        self._run("DELETE FROM lite_queue WHERE name = ?", self.name)


class LiteSchedule(_LiteBase, BaseSchedule):
    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:
        sql = "INSERT INTO lite_schedule (name, ts, priority, data) VALUES (?, ?, ?, ?)"
        self._run(sql, self.name, timestamp, priority, data)

    def move_due(self, now: float, limit: int = 1000) -> int:
        """Delete due rows and insert them into the queue in ONE transaction: nothing is lost."""
        with self._begin() as conn:
            due = self._take_due(conn, now, limit)
            conn.executemany(  # in due order, so equal priorities stay FIFO in the queue
                "INSERT INTO lite_queue (name, priority, data) VALUES (?, ?, ?)",
                [(self.name, priority, data) for priority, data in due],
            )
        return len(due)

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        with self._begin() as conn:
            return [bytes(data) for _, data in self._take_due(conn, now, limit)]

    def _take_due(
        self, conn: sqlite3.Connection, now: float, limit: int
    ) -> list[tuple[int, bytes]]:
        """Delete up to `limit` due rows, earliest first; return (priority, data) of each."""
        rows = conn.execute(
            "SELECT id, priority, data FROM lite_schedule WHERE name = ? AND ts <= ? "
            "ORDER BY ts, id LIMIT ?",
            (self.name, now, limit),
        ).fetchall()
        conn.executemany("DELETE FROM lite_schedule WHERE id = ?", [(row[0],) for row in rows])
        return [(priority, data) for _, priority, data in rows]

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:
        sql = "SELECT ts, data FROM lite_schedule WHERE name = ? ORDER BY ts, id LIMIT ?"
        return [(ts, bytes(data)) for ts, data in self._run(sql, self.name, n)]

    def flush(self) -> None:
        self._run("DELETE FROM lite_schedule WHERE name = ?", self.name)


# A key is live when it never expires or expires in the future; every read adds this condition,
# so an expired row behaves like a missing one even before anybody deletes it.
_LIVE = "(expires IS NULL OR expires > ?)"
# Prefix match without LIKE: "_" and "%" in a key are ordinary characters, and case matters.
_PREFIX = "substr(key, 1, length(?)) = ?"


def _expires(ttl: float | None) -> float | None:
    return None if ttl is None else time.time() + ttl


class LiteStore(_LiteBase, BaseDataStore):
    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        sql = "INSERT OR REPLACE INTO lite_store (name, key, value, expires) VALUES (?, ?, ?, ?)"
        self._run(sql, self.name, key, value, _expires(ttl))
        self._forget_expired(ttl)

    def peek(self, key: str) -> bytes | None:
        sql = f"SELECT value FROM lite_store WHERE name = ? AND key = ? AND {_LIVE}"
        row = self._run(sql, self.name, key, time.time()).fetchone()
        return None if row is None else bytes(row[0])

    def pop(self, key: str) -> bytes | None:
        with self._begin() as conn:
            sql = f"SELECT value FROM lite_store WHERE name = ? AND key = ? AND {_LIVE}"
            row = conn.execute(sql, (self.name, key, time.time())).fetchone()
            conn.execute("DELETE FROM lite_store WHERE name = ? AND key = ?", (self.name, key))
        return None if row is None else bytes(row[0])

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """One upsert that only overwrites an EXPIRED row: of concurrent callers, one changes it."""
        cursor = self._run(
            "INSERT INTO lite_store (name, key, value, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name, key) DO UPDATE SET value = excluded.value, expires = excluded.expires "
            "WHERE lite_store.expires IS NOT NULL AND lite_store.expires <= ?",
            self.name,
            key,
            value,
            _expires(ttl),
            time.time(),
        )
        self._forget_expired(ttl)
        return cursor.rowcount == 1

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with self._begin() as conn:
            row = conn.execute(
                f"SELECT value, expires FROM lite_store WHERE name = ? AND key = ? AND {_LIVE}",
                (self.name, key, time.time()),
            ).fetchone()
            if row is None:
                value, expires = amount, _expires(ttl)  # created now: the ttl applies
            else:
                value, expires = int(row[0]) + amount, row[1]  # existing: keep its expiry
            conn.execute(
                "INSERT OR REPLACE INTO lite_store (name, key, value, expires) VALUES (?, ?, ?, ?)",
                (self.name, key, str(value).encode(), expires),
            )
        self._forget_expired(ttl)
        return value

    def items(self, prefix: str = "") -> dict[str, bytes]:
        sql = f"SELECT key, value FROM lite_store WHERE name = ? AND {_LIVE} AND {_PREFIX}"
        rows = self._run(sql, self.name, time.time(), prefix, prefix)
        return {key: bytes(value) for key, value in rows}

    def _forget_expired(self, ttl: float | None) -> None:
        """After a write with a ttl, delete expired rows so that they never pile up.

        Reads ignore them already; this keeps the file small (a per-minute dedup key is a new
        row every minute).
        """
        if ttl is not None:
            sql = "DELETE FROM lite_store WHERE name = ? AND expires <= ?"
            self._run(sql, self.name, time.time())


class LiteEvents(_LiteBase, BaseEventEmitter):
    """Events in a table; the derived listen() polls read_after() for rows past its cursor."""

    def emit(self, event: bytes) -> None:
        """Append the event, and drop this instance's events older than EVENT_RETENTION."""
        now = time.time()
        sql = "INSERT INTO lite_events (name, emitted, data) VALUES (?, ?, ?)"
        self._run(sql, self.name, now, event)
        sql = "DELETE FROM lite_events WHERE name = ? AND emitted < ?"
        self._run(sql, self.name, now - EVENT_RETENTION)

    def read_after(self, cursor: object | None) -> tuple[object, list[bytes]]:
        """The cursor is the id of the last event read; ids only grow (AUTOINCREMENT)."""
        if cursor is None:  # a new subscription starts after the newest stored event
            sql = "SELECT COALESCE(MAX(id), 0) FROM lite_events WHERE name = ?"
            return self._run(sql, self.name).fetchone()[0], []
        sql = "SELECT id, data FROM lite_events WHERE name = ? AND id > ? ORDER BY id LIMIT 1000"
        rows = self._run(sql, self.name, cursor).fetchall()
        return (rows[-1][0] if rows else cursor), [bytes(data) for _, data in rows]


class LiteBackend(BaseBackend):
    """The factory: `LiteBackend(name, "lite:///path/to/file.db", poll_interval=0.05)`.

    Without a URL (url=None) it uses huey-lite.db in the working directory.
    """

    def __init__(
        self,
        name: str,
        url: str | None = None,
        *,
        poll_interval: float = 0.05,
        busy_timeout: float = 30.0,
    ) -> None:
        self.name = name
        path = url.split("://", 1)[1] if url else "huey-lite.db"
        path = path[1:] if path.startswith("/") else path  # lite:///rel.db, lite:////abs.db
        self.path = os.path.abspath(path)
        self.url = f"lite:///{self.path}"  # what the derived describe() shows: the file used
        self._conns = _Connections(self.path, busy_timeout)
        self._conns.get().executescript(SCHEMA)  # idempotent: CREATE ... IF NOT EXISTS
        self.queue = LiteQueue(name, self._conns)
        self.schedule = LiteSchedule(name, self._conns)
        self.store = LiteStore(name, self._conns)
        self.events = LiteEvents(name, self._conns)
        # The derived wait() and listen() check for new data this often.
        self.store.poll_interval = self.events.poll_interval = poll_interval

    def after_fork(self) -> None:
        self._conns.forget()

    def close(self) -> None:
        self._conns.close()
