"""Events in a table, so they cross processes; retention bounded by count and age.

Listeners read the table by id (`read_after`). PostgreSQL wakes them with NOTIFY and SQLite with
PRAGMA data_version; on MySQL they poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from huey_core.protocols import EVENT_RETENTION, BaseEventEmitter, BaseSubscription
from huey_sql.db import Database, fetchall, scalar

log = logging.getLogger("huey_sql")


class EventCursor:
    """Where a reader stands: the last id it read, and the gaps below it still worth a look.

    Ids are assigned at insert but rows become visible at commit, so on PostgreSQL and MySQL a
    lower id can appear after a higher one. Gaps are remembered for HOLE_TTL seconds and looked
    up again, so such late events are still delivered (out of order across producers).
    """

    __slots__ = ("holes", "last")

    def __init__(self, last: int, holes: dict[int, float] | None = None) -> None:
        self.last = last
        self.holes = holes or {}  # id -> monotonic time the gap was seen


class SQLEvents(BaseEventEmitter):
    """An events table shared by every process of one instance."""

    # Trims, per process: after TRIM_EVERY emits, at most every TRIM_SECONDS (only events older
    # than EVENT_RETENTION go, and a trim reads past the newest `events_keep` to find them).
    TRIM_EVERY = 500
    TRIM_SECONDS = 1.0
    BATCH = 1000  # events per read
    HOLE_TTL = 3.0
    MAX_HOLES = 2000

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = db.dialect
        self._name = db.name
        self._channel = db.channel("ev")
        self._emits = 0
        self._trimmed = 0.0  # time.monotonic() of the last trim
        self.keep = int(db.options["events_keep"])
        self.max_age = float(db.options["events_max_age"])

    def emit(self, event: bytes) -> None:
        """Insert the event (and NOTIFY on PostgreSQL). Nobody listening is fine."""
        self.emit_many([event])

    def emit_many(self, events: list[bytes]) -> None:
        """Insert a batch of events in one transaction (PostgreSQL: one statement), in list
        order, with one NOTIFY."""
        if not events:
            return
        now = time.time()
        self._db.run(
            lambda cur: self._sql.emit_many(cur, self._name, now, events, self._channel),
            single=self._sql.emit_many_is_one_statement,
        )
        self._db.waker.touch("ev")
        before, self._emits = self._emits, self._emits + len(events)
        if before == 0 or (
            before // self.TRIM_EVERY != self._emits // self.TRIM_EVERY
            and time.monotonic() - self._trimmed >= self.TRIM_SECONDS
        ):
            self._trimmed = time.monotonic()
            self.trim()

    def read_after(self, cursor: object | None) -> tuple[EventCursor, list[bytes]]:
        """Events stored after `cursor` (an EventCursor), oldest first; None: the newest."""
        if not isinstance(cursor, EventCursor):
            args = (self._name,)
            last = self._db.run(
                lambda cur: scalar(cur, self._sql.last_event_sql, args), read=True, single=True
            )
            return EventCursor(int(last or 0)), []
        now = time.monotonic()
        holes = {i: ts for i, ts in cursor.holes.items() if now - ts < self.HOLE_TTL}
        late, new = self._db.run(
            lambda cur: self._read(cur, sorted(holes), cursor.last), read=True, single=not holes
        )
        out = []
        for row in late:
            holes.pop(row[0], None)
            out.append(bytes(row[1]))
        last = cursor.last
        for row in new:
            if not self._sql.ids_visible_in_order and row[0] > last + 1:
                gap = range(last + 1, row[0])
                if len(gap) + len(holes) <= self.MAX_HOLES:
                    holes.update(dict.fromkeys(gap, now))
            last = row[0]
            out.append(bytes(row[1]))
        return EventCursor(last, holes), out

    def _read(self, cur: Any, holes: list[int], last: int) -> tuple[list[Any], list[Any]]:
        late = []
        if holes:
            sql = self._sql.events_in_sql.format(self._sql.params(len(holes)))
            late = fetchall(cur, sql, (self._name, *holes))
        return late, fetchall(cur, self._sql.events_after_sql, (self._name, last, self.BATCH))

    def trim(self) -> None:
        """Delete events older than `events_max_age`, and those beyond the newest
        `events_keep` once they are EVENT_RETENTION seconds old (a burst stays readable)."""
        sql, name = self._sql, self._name

        def tx(cur: Any) -> None:
            cutoff = scalar(cur, sql.trim_cutoff_sql, (name, self.keep))
            now = time.time()
            old = now - self.max_age
            if cutoff is None:
                cur.execute(sql.trim_old_sql, (name, old))
            else:
                cur.execute(sql.trim_sql, (name, old, cutoff, now - EVENT_RETENTION))

        try:
            self._db.run(tx)
        except Exception:  # housekeeping must never fail an emit
            log.debug("event trim failed", exc_info=True)

    def listen(self) -> SQLSubscription:
        """Events emitted (by any process) after this call; sleeps on the backend's waker."""
        return SQLSubscription(self)


class SQLSubscription(BaseSubscription):
    """read_after() in a loop; between empty reads it sleeps until a wake-up or close()."""

    def __init__(self, events: SQLEvents) -> None:
        self._events = events
        self._db = events._db
        self._closed = threading.Event()
        self._cursor, _ = events.read_after(None)

    def events(self) -> Iterator[bytes]:
        waker, channel = self._db.waker, self._db.channel("ev")
        while not self._closed.is_set():
            token = waker.token(channel)
            self._cursor, batch = self._events.read_after(self._cursor)
            if batch:
                for event in batch:
                    if self._closed.is_set():
                        return
                    yield event
                continue
            # Wake within a second of close(); on PostgreSQL a NOTIFY wakes us at once.
            if waker.native:
                waker.wait(channel, token, 0.5)
            else:
                self._closed.wait(min(waker.poll, 0.5))

    def close(self) -> None:
        self._closed.set()
        self._db.waker.touch("ev")
