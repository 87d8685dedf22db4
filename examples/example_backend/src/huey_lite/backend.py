"""The "lite" backend: huey's four stores in one SQLite file, with nothing but the standard library.

It exists to teach (docs/writing-backends.md walks through it), yet it is complete: it passes the
whole conformance suite, several processes can share the file, and a crash loses nothing.

Choices worth copying:
- Every row carries the instance `name`, so many huey instances share one file without seeing
  each other's data.
- A message is leased, not deleted, on dequeue: `lease`, `owner` and `deadline` are set, and only
  ack() deletes it. recover() clears leases whose deadline passed, in a single UPDATE.
- Writes that read first (dequeue, incr, pop, move_due) run in `BEGIN IMMEDIATE` transactions,
  which take SQLite's write lock up front: two processes can never claim the same row.
- SQLite cannot tell another connection that a row arrived, so the queue is not blocking and
  wait()/listen() poll: the capability flag says so and the consumer polls with backoff.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

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
CREATE TABLE IF NOT EXISTS lite_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS lite_events_name ON lite_events (name, id);
"""

EVENTS_KEPT = 1000  # per instance: listeners poll often, so a short tail is enough


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


class _Transaction:
    """`with tx(conns) as conn:` runs the block in BEGIN IMMEDIATE ... COMMIT (or ROLLBACK)."""

    def __init__(self, conns: _Connections) -> None:
        self.conn = conns.get()

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first write
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


class LiteQueue(BaseQueue):
    blocking = False  # SQLite cannot wake a waiter in another process: dequeue returns at once
    priority = True  # ORDER BY priority DESC, id

    def __init__(self, name: str, conns: _Connections) -> None:
        self.name = name
        self._conns = conns

    def enqueue(self, data: bytes, priority: int = 0) -> None:
        """Append a message. One INSERT: atomic."""
        self._conns.get().execute(
            "INSERT INTO lite_queue (name, priority, data) VALUES (?, ?, ?)",
            (self.name, priority, data),
        )

    def dequeue(self, owner: str, lease_timeout: float, wait: float = 0.0) -> Delivery | None:
        """Lease the first ready message; None at once when there is none (`wait` is ignored)."""
        lease = uuid.uuid4().hex
        with _Transaction(self._conns) as conn:
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
        self._conns.get().execute(
            "DELETE FROM lite_queue WHERE name = ? AND lease = ?", (self.name, lease)
        )

    def release(self, lease: str) -> None:
        """Clear the lease: the message is ready again at its old place in line."""
        self._conns.get().execute(
            "UPDATE lite_queue SET lease = NULL, owner = NULL, deadline = NULL "
            "WHERE name = ? AND lease = ?",
            (self.name, lease),
        )

    def extend(self, lease: str, lease_timeout: float) -> bool:
        """Move the deadline; False when no row holds this lease any more."""
        cursor = self._conns.get().execute(
            "UPDATE lite_queue SET deadline = ? WHERE name = ? AND lease = ?",
            (time.time() + lease_timeout, self.name, lease),
        )
        return cursor.rowcount == 1

    def recover(self) -> int:
        """One UPDATE: each expired message is either still leased or ready, never both."""
        cursor = self._conns.get().execute(
            "UPDATE lite_queue SET lease = NULL, owner = NULL, deadline = NULL "
            "WHERE name = ? AND lease IS NOT NULL AND deadline < ?",
            (self.name, time.time()),
        )
        return cursor.rowcount

    def size(self) -> int:
        return (
            self._conns.get()
            .execute(
                "SELECT COUNT(*) FROM lite_queue WHERE name = ? AND lease IS NULL", (self.name,)
            )
            .fetchone()[0]
        )

    def peek(self, n: int = 100) -> list[bytes]:
        rows = self._conns.get().execute(
            "SELECT data FROM lite_queue WHERE name = ? AND lease IS NULL "
            "ORDER BY priority DESC, id LIMIT ?",
            (self.name, n),
        )
        return [bytes(data) for (data,) in rows]

    def leases(self) -> list[LeaseInfo]:
        rows = self._conns.get().execute(
            "SELECT lease, owner, deadline, deliveries, data FROM lite_queue "
            "WHERE name = ? AND lease IS NOT NULL ORDER BY deadline",
            (self.name,),
        )
        return [
            LeaseInfo(lease, owner, deadline, n, bytes(data))
            for lease, owner, deadline, n, data in rows
        ]

    def flush(self) -> None:
        self._conns.get().execute("DELETE FROM lite_queue WHERE name = ?", (self.name,))


class LiteSchedule(BaseSchedule):
    def __init__(self, name: str, conns: _Connections) -> None:
        self.name = name
        self._conns = conns

    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:
        self._conns.get().execute(
            "INSERT INTO lite_schedule (name, ts, priority, data) VALUES (?, ?, ?, ?)",
            (self.name, timestamp, priority, data),
        )

    def move_due(self, now: float, limit: int = 1000) -> int:
        """Copy due rows into the queue and delete them in ONE transaction: nothing is lost."""
        with _Transaction(self._conns) as conn:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM lite_schedule WHERE name = ? AND ts <= ? ORDER BY ts, id LIMIT ?",
                    (self.name, now, limit),
                )
            ]
            for msg_id in ids:  # in due order, so equal priorities stay FIFO in the queue
                conn.execute(
                    "INSERT INTO lite_queue (name, priority, data) "
                    "SELECT name, priority, data FROM lite_schedule WHERE id = ?",
                    (msg_id,),
                )
                conn.execute("DELETE FROM lite_schedule WHERE id = ?", (msg_id,))
        return len(ids)

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        with _Transaction(self._conns) as conn:
            rows = conn.execute(
                "SELECT id, data FROM lite_schedule WHERE name = ? AND ts <= ? ORDER BY ts, id LIMIT ?",
                (self.name, now, limit),
            ).fetchall()
            conn.executemany("DELETE FROM lite_schedule WHERE id = ?", [(r[0],) for r in rows])
        return [bytes(data) for _, data in rows]

    def size(self) -> int:
        return (
            self._conns.get()
            .execute("SELECT COUNT(*) FROM lite_schedule WHERE name = ?", (self.name,))
            .fetchone()[0]
        )

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:
        rows = self._conns.get().execute(
            "SELECT ts, data FROM lite_schedule WHERE name = ? ORDER BY ts, id LIMIT ?",
            (self.name, n),
        )
        return [(ts, bytes(data)) for ts, data in rows]

    def flush(self) -> None:
        self._conns.get().execute("DELETE FROM lite_schedule WHERE name = ?", (self.name,))


# A key is live when it never expires or expires in the future; every read adds this condition,
# so an expired row behaves like a missing one even before anybody deletes it.
_LIVE = "(expires IS NULL OR expires > ?)"
# Prefix match without LIKE: "_" and "%" in a key are ordinary characters, and case matters.
_PREFIX = "substr(key, 1, length(?)) = ?"


class LiteStore(BaseDataStore):
    def __init__(self, name: str, conns: _Connections, poll_interval: float) -> None:
        self.name = name
        self._conns = conns
        self._poll = poll_interval

    @staticmethod
    def _expires(ttl: float | None) -> float | None:
        return None if ttl is None else time.time() + ttl

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._conns.get().execute(
            "INSERT OR REPLACE INTO lite_store (name, key, value, expires) VALUES (?, ?, ?, ?)",
            (self.name, key, value, self._expires(ttl)),
        )

    def peek(self, key: str) -> bytes | None:
        row = (
            self._conns.get()
            .execute(
                f"SELECT value FROM lite_store WHERE name = ? AND key = ? AND {_LIVE}",
                (self.name, key, time.time()),
            )
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def pop(self, key: str) -> bytes | None:
        with _Transaction(self._conns) as conn:
            row = conn.execute(
                f"SELECT value FROM lite_store WHERE name = ? AND key = ? AND {_LIVE}",
                (self.name, key, time.time()),
            ).fetchone()
            conn.execute("DELETE FROM lite_store WHERE name = ? AND key = ?", (self.name, key))
        return None if row is None else bytes(row[0])

    def delete(self, key: str) -> bool:
        return self.pop(key) is not None

    def exists(self, key: str) -> bool:
        return self.peek(key) is not None

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """One upsert that only overwrites an EXPIRED row: of concurrent callers, one changes it."""
        now = time.time()
        cursor = self._conns.get().execute(
            "INSERT INTO lite_store (name, key, value, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name, key) DO UPDATE SET value = excluded.value, expires = excluded.expires "
            "WHERE lite_store.expires IS NOT NULL AND lite_store.expires <= ?",
            (self.name, key, value, self._expires(ttl), now),
        )
        return cursor.rowcount == 1

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with _Transaction(self._conns) as conn:
            row = conn.execute(
                f"SELECT value, expires FROM lite_store WHERE name = ? AND key = ? AND {_LIVE}",
                (self.name, key, time.time()),
            ).fetchone()
            if row is None:
                value, expires = amount, self._expires(ttl)  # created now: the ttl applies
            else:
                value, expires = int(row[0]) + amount, row[1]  # existing: keep its expiry
            conn.execute(
                "INSERT OR REPLACE INTO lite_store (name, key, value, expires) VALUES (?, ?, ?, ?)",
                (self.name, key, str(value).encode(), expires),
            )
        return value

    def wait(self, key: str, timeout: float) -> bool:
        """Poll every `poll_interval` seconds: SQLite has no way to announce a write."""
        deadline = time.monotonic() + timeout
        while True:
            if self.exists(key):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self._poll, remaining))

    def size(self) -> int:
        return (
            self._conns.get()
            .execute(
                f"SELECT COUNT(*) FROM lite_store WHERE name = ? AND {_LIVE}",
                (self.name, time.time()),
            )
            .fetchone()[0]
        )

    def items(self, prefix: str = "") -> dict[str, bytes]:
        rows = self._conns.get().execute(
            f"SELECT key, value FROM lite_store WHERE name = ? AND {_LIVE} AND {_PREFIX}",
            (self.name, time.time(), prefix, prefix),
        )
        return {key: bytes(value) for key, value in rows}

    def flush(self, prefix: str = "") -> None:
        self._conns.get().execute(
            f"DELETE FROM lite_store WHERE name = ? AND {_PREFIX}", (self.name, prefix, prefix)
        )


class LiteSubscription(BaseSubscription):
    """Polls the events table for rows newer than the last one seen; close() stops it."""

    def __init__(self, name: str, conns: _Connections, poll_interval: float) -> None:
        self.name = name
        self._conns = conns
        self._poll = poll_interval
        self._closed = threading.Event()
        # Remember where the table ends now: only events emitted after listen() are delivered.
        self._last = (
            conns.get()
            .execute("SELECT COALESCE(MAX(id), 0) FROM lite_events WHERE name = ?", (name,))
            .fetchone()[0]
        )

    def events(self) -> Iterator[bytes]:
        while not self._closed.is_set():
            rows = (
                self._conns.get()
                .execute(
                    "SELECT id, data FROM lite_events WHERE name = ? AND id > ? ORDER BY id",
                    (self.name, self._last),
                )
                .fetchall()
            )
            for event_id, data in rows:
                if self._closed.is_set():
                    return
                self._last = event_id
                yield bytes(data)
            if not rows:
                self._closed.wait(self._poll)  # returns early when close() is called

    def close(self) -> None:
        self._closed.set()


class LiteEvents(BaseEventEmitter):
    def __init__(self, name: str, conns: _Connections, poll_interval: float) -> None:
        self.name = name
        self._conns = conns
        self._poll = poll_interval

    def emit(self, event: bytes) -> None:
        """Append the event and trim the table; listeners or not, nothing to raise about."""
        conn = self._conns.get()
        cursor = conn.execute(
            "INSERT INTO lite_events (name, data) VALUES (?, ?)", (self.name, event)
        )
        if cursor.lastrowid and cursor.lastrowid % 100 == 0:  # trim now and then, not every time
            conn.execute(
                "DELETE FROM lite_events WHERE name = ? AND id <= ?",
                (self.name, cursor.lastrowid - EVENTS_KEPT),
            )

    def listen(self) -> LiteSubscription:
        return LiteSubscription(self.name, self._conns, self._poll)


class LiteBackend(BaseBackend):
    """The factory: `LiteBackend(name, "lite:///path/to/file.db", poll_interval=0.05)`."""

    def __init__(
        self,
        name: str,
        url: str | None = None,
        *,
        poll_interval: float = 0.05,
        busy_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.url = url
        path = url.split("://", 1)[1] if url else "huey-lite.db"
        path = path[1:] if path.startswith("/") else path  # lite:///rel.db, lite:////abs.db
        self.path = os.path.abspath(path)
        self._conns = _Connections(self.path, busy_timeout)
        self._conns.get().executescript(SCHEMA)  # idempotent: CREATE ... IF NOT EXISTS
        self.queue = LiteQueue(name, self._conns)
        self.schedule = LiteSchedule(name, self._conns)
        self.store = LiteStore(name, self._conns, poll_interval)
        self.events = LiteEvents(name, self._conns, poll_interval)

    def after_fork(self) -> None:
        self._conns.forget()

    def close(self) -> None:
        self._conns.close()

    def describe(self) -> str:
        return f"LiteBackend({self.name} at {self.path})"
