"""The Dialect base class: the SQL the three databases share, and the default behaviour.

A dialect object is built once per backend, for its tables. It holds every statement as fixed
SQL text in the driver's parameter style, plus the few operations whose *shape* differs between
databases (a claim in one statement or two, an upsert, NOTIFY). The stores execute these on a
DB-API cursor inside `Database.run()` and never ask which database they talk to.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL

from huey_core.exceptions import ConfigurationError
from huey_sql import schema
from huey_sql.schema import Tables

Row = tuple[Any, ...]


class Waker:
    """What a waiter sleeps on until another connection may have written. Base: a timer.

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


def merge_options(opts: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` wins, except that connect_args are merged key by key (keeping our timeouts)."""
    merged = {**opts, **extra}
    if "connect_args" in extra:
        merged["connect_args"] = {**opts.get("connect_args", {}), **extra["connect_args"]}
    return merged


class Dialect:
    """SQL and behaviour of one database. The base class is standard SQL with `?` parameters.

    Subclasses set the class attributes below and override the methods their database does
    differently; `sql()` turns `?` into the driver's placeholder.
    """

    name = ""  # sqlite | postgresql | mysql
    extra = "sql"  # the huey-core extra that installs this database's driver
    placeholder = "?"
    quote = '"'  # identifier quote: "key" is a reserved word in MySQL
    lock_rows = " FOR UPDATE"  # read-modify-write reads (incr, pop without RETURNING)
    skip_locked = " FOR UPDATE SKIP LOCKED"  # claim reads skip rows other claimers hold
    id_text = "CAST(id AS VARCHAR(20))"  # a row id as text, for batch leases
    max_attempts = 20  # tries of a transaction that hit a deadlock or a lock timeout
    default_poll = 0.1  # seconds between looks of a waiter that has no native wake-up
    # Which operations run exactly one statement, so they may commit on their own (Database.run
    # `single`: PostgreSQL runs them in autocommit, one round trip).
    claim_is_one_statement = True
    ack_claim_is_one_statement = False
    # Queue.ack_soon() sends the ack on a held connection and reads its answer later
    # (send_ack, read_ack); else it runs ack_soon_sql and waits.
    pipelines_acks = False
    pop_is_one_statement = True
    emit_many_is_one_statement = False
    probe_before_claim = True  # an idle waiter reads before it claims (a claim is a write)
    ids_visible_in_order = False  # True: a lower event id never becomes visible after a higher
    notifies = False  # writers NOTIFY waiters of other processes

    def __init__(self, url: URL, tables: Tables, options: dict[str, Any]) -> None:
        self.url = url
        self.tables = tables
        self.options = options
        self._build_queue_sql(tables.queue.name)
        self._build_schedule_sql(tables.schedule.name)
        self._build_store_sql(tables.kv.name, self.ident("key"))
        self._build_event_sql(tables.events.name)

    # -- SQL text ----------------------------------------------------------------------------

    def sql(self, text: str) -> str:
        """Fixed SQL written with ? placeholders, in the driver's parameter style."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def ident(self, name: str) -> str:
        return f"{self.quote}{name}{self.quote}"

    def params(self, n: int) -> str:
        """`n` placeholders for an IN (...) list."""
        return ", ".join([self.placeholder] * n)

    def _build_queue_sql(self, q: str) -> None:
        s = self.sql
        ready = "name = ? AND lease IS NULL"
        self.insert_ready_sql = s(
            f"INSERT INTO {q} (name, sort_key, data, deliveries) VALUES (?, ?, ?, 0)"
        )
        self.enqueue_sql = self.insert_ready_sql
        self.pick_sql = f"SELECT id FROM {q} WHERE {ready} ORDER BY sort_key, id LIMIT 1"
        # The counter stops at the top of its 32-bit column instead of failing every claim of a
        # row that reached it (the core dead-letters such a row by max_deliveries).
        self.count_up = (
            "deliveries = CASE WHEN deliveries < 2147483647 THEN deliveries + 1 ELSE deliveries END"
        )
        # One statement: pick the first ready row (skipping rows other claimers hold) and lease
        # it. SQLite runs it under the write lock its BEGIN IMMEDIATE took.
        self.claim_sql = s(
            f"UPDATE {q} SET lease = ?, owner = ?, deadline = ?, {self.count_up} "
            f"WHERE id = ({self.pick_sql}{self.skip_locked}) RETURNING data, deliveries"
        )
        self.ack_sql = s(f"DELETE FROM {q} WHERE name = ? AND lease = ?")
        # Queue.ack_soon(): where a dialect can, an ack whose commit does not wait for the disk
        self.ack_soon_sql = self.ack_sql
        # A batch claim: up to k ready rows, each leased as <nonce><row id> (a lease per row).
        # A row handed out before (deliveries > 0) is claimed alone, and a batch stops before
        # one (see Queue.dequeue_many). Rows come back in any order: sort_key and id put them
        # in claim order.
        picked = self.pick_sql.replace("SELECT id ", "SELECT id, sort_key, deliveries ")
        earlier = "(r.sort_key < p.sort_key OR (r.sort_key = p.sort_key AND r.id < p.id))"
        self.claim_many_sql = s(
            f"UPDATE {q} SET lease = {self.concat('?', self.id_text)}, owner = ?, deadline = ?, "
            f"{self.count_up} WHERE id IN (WITH picked AS "
            f"({picked.replace('LIMIT 1', 'LIMIT ?')}{self.skip_locked}), "
            "head AS (SELECT id, deliveries FROM picked ORDER BY sort_key, id LIMIT 1) "
            "SELECT p.id FROM picked p WHERE p.id = (SELECT id FROM head) OR "
            "((SELECT deliveries FROM head) = 0 AND p.deliveries = 0 AND NOT EXISTS "
            f"(SELECT 1 FROM picked r WHERE r.deliveries <> 0 AND {earlier}))) "
            "RETURNING lease, data, deliveries, sort_key, id"
        )
        self.has_ready_sql = s(f"SELECT 1 FROM {q} WHERE {ready} LIMIT 1")
        unlease = "lease = NULL, owner = NULL, deadline = NULL"
        self.release_sql = s(f"UPDATE {q} SET {unlease} WHERE name = ? AND lease = ?")
        self.extend_sql = s(f"UPDATE {q} SET deadline = ? WHERE name = ? AND lease = ?")
        # A lease without a deadline (written by an old release or by hand) never expires by
        # comparison: it counts as expired, or its message would stay leased forever.
        self.recover_sql = s(
            f"UPDATE {q} SET {unlease} WHERE name = ? AND lease IS NOT NULL "
            "AND (deadline IS NULL OR deadline < ?)"
        )
        self.queue_size_sql = s(f"SELECT COUNT(*) FROM {q} WHERE {ready}")
        self.queue_peek_sql = s(f"SELECT data FROM {q} WHERE {ready} ORDER BY sort_key, id LIMIT ?")
        self.leases_sql = s(
            f"SELECT lease, owner, deadline, deliveries, data FROM {q} "
            "WHERE name = ? AND lease IS NOT NULL ORDER BY deadline"
        )
        self.queue_flush_sql = s(f"DELETE FROM {q} WHERE name = ?")

    def _build_schedule_sql(self, t: str) -> None:
        s = self.sql
        self.schedule_add_sql = s(f"INSERT INTO {t} (name, ts, priority, data) VALUES (?, ?, ?, ?)")
        # SQLite has no row locks: its movers take turns on the write lock instead.
        self.due_sql = s(
            f"SELECT id, priority, data FROM {t} WHERE name = ? AND ts <= ? "
            f"ORDER BY ts, id LIMIT ?{self.skip_locked}"
        )
        self.schedule_delete_sql = f"DELETE FROM {t} WHERE id IN ({{}})"
        self.schedule_size_sql = s(f"SELECT COUNT(*) FROM {t} WHERE name = ?")
        self.schedule_peek_sql = s(
            f"SELECT ts, data FROM {t} WHERE name = ? ORDER BY ts, id LIMIT ?"
        )
        self.schedule_flush_sql = s(f"DELETE FROM {t} WHERE name = ?")

    def _build_store_sql(self, t: str, k: str) -> None:
        s = self.sql
        live = "(expires_at IS NULL OR expires_at > ?)"
        one = f"name = ? AND {k} = ?"
        self.insert_kv_sql = s(
            f"INSERT INTO {t} (name, {k}, value, expires_at) VALUES (?, ?, ?, ?)"
        )
        self.put_sql = s(self.upsert(self.insert_kv_sql, k))
        self.insert_if_absent_sql = s(self.insert_ignore(self.insert_kv_sql, k))
        self.peek_many_sql = s(
            f"SELECT {k}, value FROM {t} WHERE name = ? AND {k} IN ({{}}) AND {live}"
        )
        self.pop_sql = s(f"DELETE FROM {t} WHERE {one} RETURNING value, expires_at")
        self.read_locked_sql = s(f"SELECT value, expires_at FROM {t} WHERE {one}{self.lock_rows}")
        self.delete_key_sql = s(f"DELETE FROM {t} WHERE {one}")
        self.drop_expired_key_sql = s(f"DELETE FROM {t} WHERE {one} AND expires_at <= ?")
        self.set_value_sql = s(f"UPDATE {t} SET value = ? WHERE {one}")
        self.reset_value_sql = s(f"UPDATE {t} SET value = ?, expires_at = ? WHERE {one}")
        self.store_size_sql = s(f"SELECT COUNT(*) FROM {t} WHERE name = ? AND {live}")
        self.items_sql = s(f"SELECT {k}, value FROM {t} WHERE name = ? AND {live}")
        self.store_flush_sql = s(f"DELETE FROM {t} WHERE name = ?")
        self.prefix_sql = s(self.starts_with(k))
        self.expired_keys_sql = s(f"SELECT {k} FROM {t} WHERE name = ? AND expires_at <= ? LIMIT ?")
        self.delete_expired_sql = s(
            f"DELETE FROM {t} WHERE name = ? AND {k} IN ({{}}) AND expires_at <= ?"
        )

    def _build_event_sql(self, t: str) -> None:
        s = self.sql
        self.emit_sql = s(f"INSERT INTO {t} (name, created, data) VALUES (?, ?, ?)")
        self.last_event_sql = s(f"SELECT MAX(id) FROM {t} WHERE name = ?")
        self.events_after_sql = s(
            f"SELECT id, data FROM {t} WHERE name = ? AND id > ? ORDER BY id LIMIT ?"
        )
        self.events_in_sql = s(
            f"SELECT id, data FROM {t} WHERE name = ? AND id IN ({{}}) ORDER BY id"
        )
        self.trim_cutoff_sql = s(
            f"SELECT id FROM {t} WHERE name = ? ORDER BY id DESC LIMIT 1 OFFSET ?"
        )
        self.trim_old_sql = s(f"DELETE FROM {t} WHERE name = ? AND created < ?")
        self.trim_sql = s(
            f"DELETE FROM {t} WHERE name = ? AND (created < ? OR (id <= ? AND created < ?))"
        )

    def upsert(self, insert: str, key: str) -> str:
        """INSERT that replaces the value and expiry of an existing (name, key) row."""
        return (
            f"{insert} ON CONFLICT (name, {key}) DO UPDATE "
            "SET value = excluded.value, expires_at = excluded.expires_at"
        )

    def insert_ignore(self, insert: str, key: str) -> str:
        """INSERT that does nothing on a duplicate key; RETURNING says whether it went in."""
        return f"{insert} ON CONFLICT DO NOTHING RETURNING {key}"

    def starts_with(self, column: str) -> str:
        """` AND column starts with ?` (case-sensitive, served by the index); see pattern()."""
        return f" AND {column} LIKE ? ESCAPE '!'"

    def pattern(self, prefix: str) -> str:
        """The parameter for starts_with()."""
        return prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"

    # -- operations whose shape differs --------------------------------------------------------

    def enqueue(self, cur: Any, args: Row, channel: str) -> None:
        """Insert one ready message (name, sort_key, data), and NOTIFY `channel` where used."""
        cur.execute(self.enqueue_sql, args)

    def claim(self, cur: Any, claim: Row, name: str) -> Row | None:
        """Lease the next ready row: `claim` is (lease, owner, deadline). (data, deliveries)."""
        cur.execute(self.claim_sql, (*claim, name))
        return cur.fetchone()

    def claim_many(self, cur: Any, claim: Row, name: str, n: int) -> list[Row]:
        """Lease up to `n` ready rows in claim order: `claim` is (nonce, owner, deadline), each
        row's lease is the nonce followed by its id. [(lease, data, deliveries), ...]."""
        cur.execute(self.claim_many_sql, (*claim, name, n))
        found = sorted(cur.fetchall(), key=lambda r: (r[3], r[4]))
        return [(r[0], r[1], r[2]) for r in found]

    def send_ack(self, conn: Any, name: str, lease: str) -> None:
        """Send ack_soon_sql for `lease` on the DB-API connection `conn` without waiting."""
        raise NotImplementedError  # only dialects with pipelines_acks

    def read_ack(self, conn: Any) -> None:
        """Wait for the answer to send_ack() on `conn`; raise if the statement failed."""
        raise NotImplementedError

    def ack_many(self, cur: Any, leases: list[str], name: str) -> None:
        """Delete the rows leased as `leases` (one statement)."""
        if leases:
            q = self.tables.queue.name
            sql = f"DELETE FROM {q} WHERE name = {self.placeholder} AND lease IN "
            cur.execute(f"{sql}({self.params(len(leases))})", (name, *leases))

    def ack_claim_many(
        self, cur: Any, leases: list[str], claim: Row, name: str, n: int
    ) -> list[Row]:
        """ack_many(leases), then claim_many(), in one transaction."""
        self.ack_many(cur, leases, name)
        return self.claim_many(cur, claim, name, n) if n > 0 else []

    def concat(self, a: str, b: str) -> str:
        return f"{a} || {b}"

    def ack_and_claim(self, cur: Any, lease: str, claim: Row, name: str) -> Row | None:
        """Delete the row leased as `lease`, then claim() the next one, in one transaction."""
        cur.execute(self.ack_sql, (name, lease))
        return self.claim(cur, claim, name)

    def pop(self, cur: Any, name: str, key: str) -> Row | None:
        """Delete the row of `key`; (value, expires_at) it held, or None."""
        cur.execute(self.pop_sql, (name, key))
        return cur.fetchone()

    def insert_if_absent(self, cur: Any, args: Row) -> bool:
        """Insert (name, key, value, expires_at) unless the key exists; True when inserted."""
        cur.execute(self.insert_if_absent_sql, args)
        return cur.fetchone() is not None

    def emit_many(self, cur: Any, name: str, now: float, events: list[bytes], channel: str) -> None:
        """Insert `events` in list order, and NOTIFY `channel` once where used."""
        cur.executemany(self.emit_sql, [(name, now, event) for event in events])
        self.notify(cur, channel)

    def notify(self, cur: Any, channel: str) -> None:
        """Tell other processes' waiters about this transaction's write (at its commit)."""

    # -- transactions --------------------------------------------------------------------------

    def writer(self, read: bool) -> AbstractContextManager[Any]:
        """Held around a transaction: SQLite queues this process's writers on a Python lock."""
        return contextlib.nullcontext()

    def begin(self, conn: Any, cur: Any, read: bool, single: bool) -> bool:
        """Open a transaction; True when the statements commit on their own instead."""
        return False  # the DB-API opens one implicitly at the first statement

    def commit(self, conn: Any, cur: Any) -> None:
        conn.commit()

    def rollback(self, conn: Any) -> None:
        with contextlib.suppress(Exception):  # a broken connection is invalidated anyway
            conn.rollback()

    def end_autocommit(self, conn: Any) -> None:
        """After begin() returned True: put the connection back the way the pool's other
        users expect it."""

    # -- errors --------------------------------------------------------------------------------

    def is_transient(self, exc: BaseException) -> bool:
        """The transaction was rolled back by a deadlock or lock timeout: running it again is
        safe."""
        return False

    def not_executed(self, exc: BaseException) -> bool:
        """The server ended the session *instead of* running the statement (so it never ran)."""
        return False

    # -- engine and waiting --------------------------------------------------------------------

    def engine_options(self) -> dict[str, Any]:
        return {}

    def create_engine(self) -> Engine:
        opts = self.options
        base = {"pool_size": opts["pool_size"], "max_overflow": opts["max_overflow"]}
        base.update(self.engine_options())
        try:
            return create_engine(self.url, **merge_options(base, opts["engine_options"]))
        except ImportError as exc:  # SQLAlchemy imports the driver here
            raise ConfigurationError(
                f"{self.url.get_backend_name()} URLs need the {self.url.get_driver_name()} "
                f"driver, which cannot be imported ({exc}); install it with: "
                f'pip install "huey-core[{self.extra}]"'
            ) from exc

    def create_tables(self, engine: Engine) -> None:
        """Create missing tables and check the schema version, holding the schema lock."""
        with engine.connect() as conn, conn.begin():
            self.lock_schema(conn)
            schema.create_all(conn, self.tables)
            schema.check_version(conn, self.tables)

    def lock_schema(self, conn: Connection) -> None:
        """Serialize schema creation across processes, until the transaction ends. SQLite:
        BEGIN IMMEDIATE already took the write lock."""

    def payload_limit(self, read: Callable[[Callable[[Any], Any]], Any]) -> int | None:
        """The largest statement the server accepts, in bytes, or None when only the column
        types limit it. `read(fn)` runs fn(cursor) on a pooled connection."""
        return None

    def check_url(self) -> None:
        """Raise ConfigurationError when the URL cannot work (checked before the first query)."""

    def make_waker(self, db: Any) -> Waker:
        return Waker(self.options["poll_interval"] or self.default_poll)
