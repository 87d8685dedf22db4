"""The ready queue with leases: a row is ready while its lease is NULL; ack deletes by lease.

Claims never hold a lock longer than one statement or two: PostgreSQL and MySQL pick the next
ready row with `FOR UPDATE SKIP LOCKED` (concurrent claimers skip each other's rows instead of
queueing), SQLite claims inside one BEGIN IMMEDIATE transaction (it has a single writer anyway).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from huey_core.protocols import BaseQueue, Delivery, LeaseInfo
from huey_sql import rows
from huey_sql.db import Database, fetchall, rowcount, scalar


class SQLQueue(BaseQueue):
    """Ready messages by priority, then arrival; each claim leases one row."""

    priority = True  # sort_key = -priority: one ascending index serves the claim order

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = db.dialect
        self._name = db.name
        self._channel = db.channel("q")
        self._in_flight = threading.local()  # per thread: (connection, lease) of an ack_soon()
        # SQLite: dequeue waits, waking on PRAGMA data_version (cheap, any process).
        # PostgreSQL with notify: waits on LISTEN/NOTIFY. MySQL (and PostgreSQL without
        # notify): dequeue returns at once and the consumer polls with backoff.
        self.blocking = db.waker.native

    def enqueue(self, data: bytes, priority: int = 0) -> None:
        """Append a message: one insert (with its NOTIFY on PostgreSQL)."""
        self._db.check_size(data)
        args = (self._name, -int(priority), data)
        self._db.run(lambda cur: self._sql.enqueue(cur, args, self._channel), single=True)
        self._db.waker.touch("q")

    def enqueue_many(self, items: list[tuple[bytes, int]]) -> None:
        """Append every message in one transaction (one executemany, one NOTIFY). Atomic."""
        if not items:
            return
        for data, _ in items:
            self._db.check_size(data)
        args = [(self._name, -int(priority), data) for data, priority in items]

        def tx(cur: Any) -> None:
            cur.executemany(self._sql.insert_ready_sql, args)
            self._db.notify(cur, "q")

        self._db.run(tx)
        self._db.waker.touch("q")

    def dequeue_many(
        self, owner: str, lease_timeout: float, n: int, wait: float = 0.0
    ) -> list[Delivery]:
        """Claim up to `n` ready messages in one statement (MySQL: two), a lease per row.

        Atomic per row (SKIP LOCKED / SQLite write lock); waits as dequeue() does.
        """
        found = self._claim_many([], owner, lease_timeout, n)
        if found or wait <= 0 or not self.blocking:
            return found

        def probe() -> list[Delivery] | None:
            if self._sql.probe_before_claim and not self._has_ready():
                return None
            return self._claim_many([], owner, lease_timeout, n) or None

        return self._db.wait_for("q", probe, wait) or []

    def ack_many(self, leases: list[str]) -> None:
        """Delete every leased message in one statement. Unknown leases: no-op."""
        if leases:
            self._db.run(lambda cur: self._sql.ack_many(cur, leases, self._name), single=True)

    def ack_and_dequeue_many(
        self, leases: list[str], owner: str, lease_timeout: float, n: int, wait: float = 0.0
    ) -> list[Delivery]:
        """ack_many(leases) and claim up to `n` messages in one transaction.

        The acks are done once this returns; if it raises, they were rolled back with the claim.
        """
        found = self._claim_many(leases, owner, lease_timeout, n)
        if found or wait <= 0 or not self.blocking:
            return found
        return self.dequeue_many(owner, lease_timeout, n, wait)

    def _claim_many(
        self, acks: list[str], owner: str, lease_timeout: float, n: int
    ) -> list[Delivery]:
        nonce = uuid.uuid4().hex[:12]  # + a row id of up to 19 digits fits the 32 of a lease
        claim = (nonce, owner[:200], time.time() + lease_timeout)

        sql = self._sql
        if acks:
            single = sql.ack_claim_is_one_statement
            claimed = self._db.run(
                lambda cur: sql.ack_claim_many(cur, acks, claim, self._name, n), single=single
            )
        else:
            claimed = self._db.run(
                lambda cur: sql.claim_many(cur, claim, self._name, n),
                single=sql.claim_is_one_statement,
            )
        found = [self._checked((row[1], row[2]), str(row[0])) for row in claimed]
        return [d for d in found if d is not None]

    def _lease(self, owner: str, lease_timeout: float) -> tuple[str, str, float]:
        return uuid.uuid4().hex, owner[:200], time.time() + lease_timeout

    def _claim(self, owner: str, lease_timeout: float) -> Delivery | None:
        for _ in range(rows.BAD_ROWS_PER_CALL):
            claim = self._lease(owner, lease_timeout)
            row = self._claim_row(claim)
            if row is None:
                return None
            delivery = self._checked(row, claim[0])
            if delivery is not None:
                return delivery
        return None  # a run of bad rows: set aside so far; the next call goes on

    def _claim_row(self, claim: tuple[str, str, float]) -> Any:
        return self._db.run(
            lambda cur: self._sql.claim(cur, claim, self._name),
            single=self._sql.claim_is_one_statement,
        )

    def _checked(self, row: Any, lease: str) -> Delivery | None:
        """The Delivery of a claimed row, or None after setting a malformed row aside."""
        data, deliveries = rows.payload(row[0]), rows.integer(row[1])
        if data is not None and deliveries is not None:
            return Delivery(data, lease, deliveries)
        if data is None:
            reason = f"queue row holds {rows.kind(row[0])} instead of a message payload"
        else:
            reason = f"queue row has a delivery count of {rows.kind(row[1])}"
        args = (self._name, lease)

        def tx(cur: Any) -> str:
            cur.execute(self._sql.ack_sql, args)
            return rows.dead_letter(cur, self._db, row[0], reason)

        rows.logged(self._db, reason, self._db.run(tx))
        return None

    def dequeue(self, owner: str, lease_timeout: float, wait: float = 0.0) -> Delivery | None:
        """Claim the next ready message (priority DESC, arrival) under a new lease.

        Atomic (SKIP LOCKED / SQLite write lock). With `blocking` and `wait` > 0, waits up to
        `wait` seconds; an idle SQLite waiter only reads, never queues for the write lock.
        """
        found = self._claim(owner, lease_timeout)
        if found is not None or wait <= 0 or not self.blocking:
            return found
        return self._wait_and_claim(owner, lease_timeout, wait)

    def _wait_and_claim(self, owner: str, lease_timeout: float, wait: float) -> Delivery | None:
        def probe() -> Delivery | None:
            if self._sql.probe_before_claim and not self._has_ready():
                return None
            return self._claim(owner, lease_timeout)

        return self._db.wait_for("q", probe, wait)

    def _has_ready(self) -> bool:
        args = (self._name,)
        found = self._db.run(
            lambda cur: scalar(cur, self._sql.has_ready_sql, args), read=True, single=True
        )
        return found is not None

    def ack_and_dequeue(
        self, lease: str, owner: str, lease_timeout: float, wait: float = 0.0
    ) -> Delivery | None:
        """ack(lease) and claim the next message in one transaction (PostgreSQL: one statement).

        The ack is done once this returns; if it raises, the ack was rolled back with the claim.
        """
        claim = self._lease(owner, lease_timeout)
        row = self._db.run(
            lambda cur: self._sql.ack_and_claim(cur, lease, claim, self._name),
            single=self._sql.ack_claim_is_one_statement,
        )
        if row is not None:
            delivery = self._checked(row, claim[0])
            return delivery if delivery is not None else self.dequeue(owner, lease_timeout, wait)
        if wait <= 0 or not self.blocking:
            return None
        return self._wait_and_claim(owner, lease_timeout, wait)

    def ack(self, lease: str) -> None:
        """Delete the leased message. Unknown lease: no-op."""
        args = (self._name, lease)
        self._db.run(lambda cur: cur.execute(self._sql.ack_sql, args), single=True)

    def ack_soon(self, lease: str) -> None:
        """ack(lease), committed without waiting for the disk where the database can
        (PostgreSQL: synchronous_commit off for this transaction): it holds if this process
        dies next; a database crash right after can undo it, and the task runs again.

        PostgreSQL: sent on a connection of this thread's without waiting for the answer, which
        settle_acks() (or the next ack_soon()) reads. Sent means the server has the statement:
        it runs and commits even if this process dies next."""
        sql = self._sql
        if not sql.pipelines_acks:
            args = (self._name, lease)
            self._db.run(lambda cur: cur.execute(sql.ack_soon_sql, args), single=True)
            return
        self.settle_acks()
        self._db.ensure_schema()
        raw = self._db.engine.raw_connection()
        try:
            sql.send_ack(raw.driver_connection, self._name, lease)
        except BaseException:
            raw.invalidate()  # may hold part of a statement: never hand it out again
            raw.close()
            raise
        self._in_flight.sent = (raw, lease)

    def settle_acks(self) -> None:
        """Read the answer to this thread's ack_soon() (PostgreSQL); raise if it failed."""
        sent = getattr(self._in_flight, "sent", None)
        if sent is None:
            return
        self._in_flight.sent = None
        raw, _lease = sent
        try:
            self._sql.read_ack(raw.driver_connection)
        except BaseException:
            raw.invalidate()  # its state is unknown
            raw.close()
            raise
        raw.close()

    def _unlease(self, sql: str, args: tuple[Any, ...]) -> int:
        """Make rows ready again (and wake waiters when there were any)."""

        def tx(cur: Any) -> int:
            n = rowcount(cur, sql, args)
            if n:
                self._db.notify(cur, "q")
            return n

        n = self._db.run(tx)
        if n:
            self._db.waker.touch("q")
        return n

    def release(self, lease: str) -> None:
        """Make the leased message ready again, keeping its place and delivery count."""
        self._unlease(self._sql.release_sql, (self._name, lease))

    def extend(self, lease: str, lease_timeout: float) -> bool:
        """Move the deadline; False when the lease is gone."""
        args = (time.time() + lease_timeout, self._name, lease)
        return bool(
            self._db.run(lambda cur: rowcount(cur, self._sql.extend_sql, args), single=True)
        )

    def recover(self) -> int:
        """Clear every expired lease in one UPDATE; each row is recovered by exactly one caller."""
        return self._unlease(self._sql.recover_sql, (self._name, time.time()))

    def size(self) -> int:
        """One COUNT(*) over the ready rows of the index (instead of reading every message)."""
        args = (self._name,)
        count = self._db.run(
            lambda cur: scalar(cur, self._sql.queue_size_sql, args), read=True, single=True
        )
        return int(count or 0)

    def peek(self, n: int = 100) -> list[bytes]:
        args = (self._name, max(0, n))
        found = self._db.run(
            lambda cur: fetchall(cur, self._sql.queue_peek_sql, args), read=True, single=True
        )
        return [rows.shown(r[0]) for r in found]

    def leases(self) -> list[LeaseInfo]:
        """Every leased row; a row without a usable deadline shows deadline None."""
        args = (self._name,)
        found = self._db.run(
            lambda cur: fetchall(cur, self._sql.leases_sql, args), read=True, single=True
        )
        return [
            LeaseInfo(
                str(r[0]),
                str(r[1] or ""),
                rows.seconds(r[2]),
                rows.integer(r[3]) or 0,
                rows.shown(r[4]),
            )  # fmt: skip
            for r in found
        ]

    def flush(self) -> None:
        args = (self._name,)
        self._db.run(lambda cur: cur.execute(self._sql.queue_flush_sql, args), single=True)
