"""Key/value rows with an optional expiry: results, locks, revocations, counters, dead letters.

Expired rows read as missing everywhere and are deleted lazily (a bounded sweep once a minute
per process, and by the writes that meet them).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from huey_core.protocols import BaseDataStore
from huey_sql import schema
from huey_sql.db import Database, fetchall, scalar

log = logging.getLogger("huey_sql")


def _check(key: str) -> None:
    if len(key) > schema.MAX_KEY:
        raise ValueError(f"key longer than {schema.MAX_KEY} characters: {key[:40]!r}...")


def _expiry(ttl: float | None) -> float | None:
    return None if ttl is None else time.time() + ttl


class SQLStore(BaseDataStore):
    """One row per (instance, key). delete() and exists() are the derived ones (pop, peek)."""

    CLEANUP_EVERY = 60.0  # seconds between sweeps of expired rows, per process
    CLEANUP_BATCH = 500

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = db.dialect
        self._name = db.name
        self._next_cleanup = 0.0

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value`, replacing any value and ttl. One upsert."""
        _check(key)
        self._db.check_size(value, "value")
        args = (self._name, key, value, _expiry(ttl))

        def tx(cur: Any) -> None:
            cur.execute(self._sql.put_sql, args)
            self._db.notify(cur, "kv")

        self._db.run(tx)
        self._db.waker.touch("kv")
        self._maybe_cleanup()

    def peek(self, key: str) -> bytes | None:
        return self.peek_many([key])[0]

    def peek_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of `keys` in order (None where missing or expired), in one SELECT."""
        if not keys:
            return []
        for key in keys:
            _check(key)
        sql = self._sql.peek_many_sql.format(self._sql.params(len(keys)))
        args = (self._name, *keys, time.time())
        rows = self._db.run(lambda cur: fetchall(cur, sql, args), read=True, single=True)
        found = {r[0]: bytes(r[1]) for r in rows}
        return [found.get(key) for key in keys]

    def pop(self, key: str) -> bytes | None:
        """Delete and return in one transaction: of concurrent callers one gets the value."""
        _check(key)
        now = time.time()
        row = self._db.run(
            lambda cur: self._sql.pop(cur, self._name, key),
            single=self._sql.pop_is_one_statement,
        )
        if row is None or (row[1] is not None and row[1] <= now):
            return None
        return bytes(row[0])

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Insert unless a live row exists; atomic across processes.

        An expired row is deleted first in the same transaction, then INSERT ... ON CONFLICT DO
        NOTHING (INSERT IGNORE on MySQL): the unique key decides the single winner.
        """
        _check(key)
        self._db.check_size(value, "value")
        args = (self._name, key, value, _expiry(ttl))

        def tx(cur: Any) -> bool:
            cur.execute(self._sql.drop_expired_key_sql, (self._name, key, time.time()))
            won = self._sql.insert_if_absent(cur, args)
            if won:
                self._db.notify(cur, "kv")
            return won

        won = self._db.run(tx)
        if won:
            self._db.waker.touch("kv")
        return won

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Read-modify-write under a row lock; a racing first insert retries the transaction."""
        _check(key)
        sql, name = self._sql, self._name

        def tx(cur: Any) -> int:
            cur.execute(sql.read_locked_sql, (name, key))
            row = cur.fetchone()
            if row is None:
                value = amount
                cur.execute(sql.insert_kv_sql, (name, key, str(value).encode(), _expiry(ttl)))
            elif row[1] is not None and row[1] <= time.time():
                value = amount
                cur.execute(sql.reset_value_sql, (str(value).encode(), _expiry(ttl), name, key))
            else:
                value = int(bytes(row[0])) + amount
                cur.execute(sql.set_value_sql, (str(value).encode(), name, key))
            self._db.notify(cur, "kv")
            return value

        value = self._db.run(tx, retry_integrity=True)
        self._db.waker.touch("kv")
        return value

    def wait(self, key: str, timeout: float) -> bool:
        """Block until `key` is live or `timeout` passes.

        PostgreSQL sleeps on NOTIFY (with a fallback poll); SQLite looks again only when
        `PRAGMA data_version` says another connection committed; MySQL polls (the base wait).
        """
        if not self._db.waker.native:
            return super().wait(key, timeout)
        if self.exists(key):
            return True
        if timeout <= 0:
            return False
        return bool(self._db.wait_for("kv", lambda: True if self.exists(key) else None, timeout))

    def size(self) -> int:
        """One COUNT(*) instead of reading every value."""
        args = (self._name, time.time())
        count = self._db.run(
            lambda cur: scalar(cur, self._sql.store_size_sql, args), read=True, single=True
        )
        return int(count or 0)

    def items(self, prefix: str = "") -> dict[str, bytes]:
        sql, args = self._matching(self._sql.items_sql, (self._name, time.time()), prefix)
        rows = self._db.run(lambda cur: fetchall(cur, sql, args), read=True, single=True)
        return {r[0]: bytes(r[1]) for r in rows if r[0].startswith(prefix)}

    def flush(self, prefix: str = "") -> None:
        """One DELETE (instead of one per key)."""
        sql, args = self._matching(self._sql.store_flush_sql, (self._name,), prefix)
        self._db.run(lambda cur: cur.execute(sql, args), single=True)

    def _matching(
        self, sql: str, args: tuple[Any, ...], prefix: str
    ) -> tuple[str, tuple[Any, ...]]:
        """`sql` narrowed to keys that start with `prefix` (when there is one)."""
        if not prefix:
            return sql, args
        return sql + self._sql.prefix_sql, (*args, self._sql.pattern(prefix))

    def _maybe_cleanup(self) -> None:
        now = time.time()
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + self.CLEANUP_EVERY
        sql, name = self._sql, self._name

        def tx(cur: Any) -> None:
            keys = [
                r[0] for r in fetchall(cur, sql.expired_keys_sql, (name, now, self.CLEANUP_BATCH))
            ]
            if keys:
                delete = sql.delete_expired_sql.format(sql.params(len(keys)))
                cur.execute(delete, (name, *keys, now))

        try:
            self._db.run(tx)
        except Exception:  # housekeeping must never fail a user's write
            log.debug("expired key cleanup failed", exc_info=True)
