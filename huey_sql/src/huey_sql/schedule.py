"""Messages waiting for a time, indexed by (name, ts); due ones move to the queue atomically."""

from __future__ import annotations

import math
from typing import Any

from huey_core.protocols import BaseSchedule
from huey_sql import rows
from huey_sql.db import Database, fetchall, scalar


def _checked(priority: Any, data: Any) -> tuple[int, bytes] | str:
    """(priority, payload) of a due schedule row, or why it cannot go to the queue."""
    payload, number = rows.payload(data), rows.integer(priority)
    if payload is None:
        return f"schedule row holds {rows.kind(data)} instead of a message payload"
    if number is None or abs(number) > rows.MAX_COUNT:
        return f"schedule row has a priority of {rows.kind(priority)}"
    return number, payload


def _time(value: Any) -> float:
    found = rows.seconds(value)
    return math.inf if found is None else found


class SQLSchedule(BaseSchedule):
    """A row per scheduled message; moving deletes it and inserts the queue row in one
    transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = db.dialect
        self._name = db.name

    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:
        self._db.check_size(data)
        args = (self._name, float(timestamp), int(priority), data)
        self._db.run(lambda cur: cur.execute(self._sql.schedule_add_sql, args), single=True)

    def _take(self, cur: Any, now: float, limit: int) -> list[Any]:
        """Lock (skipping rows other movers hold) and delete up to `limit` due rows, oldest
        first: (id, priority, data) each."""
        rows = fetchall(cur, self._sql.due_sql, (self._name, now, limit))
        if rows:
            sql = self._sql.schedule_delete_sql.format(self._sql.params(len(rows)))
            cur.execute(sql, tuple(r[0] for r in rows))
        return rows

    def move_due(self, now: float, limit: int = 1000) -> int:
        """Move due rows into the queue: delete and insert in ONE transaction.

        A crash rolls both back; concurrent movers skip rows another mover has locked
        (SQLite: one mover at a time), so no row is moved twice.
        """
        if limit <= 0:
            return 0

        bad: list[tuple[str, str]] = []

        def tx(cur: Any) -> int:
            bad.clear()  # a retried transaction starts over
            taken = self._take(cur, now, limit)
            ready = []
            for _, priority, data in taken:
                checked = _checked(priority, data)
                if isinstance(checked, str):
                    bad.append((checked, rows.dead_letter(cur, self._db, data, checked)))
                else:
                    ready.append((self._name, -checked[0], checked[1]))
            if ready:
                cur.executemany(self._sql.insert_ready_sql, ready)
                self._db.notify(cur, "q")
            return len(taken)

        n = self._db.run(tx)
        for reason, key in bad:
            rows.logged(self._db, reason, key)
        if n:
            self._db.waker.touch("q")
        return n

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        """Remove and return due messages, oldest first (the caller enqueues them)."""
        if limit <= 0:
            return []
        return self._db.run(lambda cur: [rows.shown(r[2]) for r in self._take(cur, now, limit)])

    def size(self) -> int:
        """One COUNT(*) instead of reading every message."""
        args = (self._name,)
        count = self._db.run(
            lambda cur: scalar(cur, self._sql.schedule_size_sql, args), read=True, single=True
        )
        return int(count or 0)

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:
        args = (self._name, max(0, n))
        found = self._db.run(
            lambda cur: fetchall(cur, self._sql.schedule_peek_sql, args), read=True, single=True
        )
        # A time that is not a number never becomes due (SQLite sorts text after numbers).
        return [(_time(r[0]), rows.shown(r[1])) for r in found]

    def flush(self) -> None:
        args = (self._name,)
        self._db.run(lambda cur: cur.execute(self._sql.schedule_flush_sql, args), single=True)
