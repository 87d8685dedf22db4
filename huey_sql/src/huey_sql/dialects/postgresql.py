"""PostgreSQL (psycopg 3): SKIP LOCKED claims, single statements in autocommit, LISTEN/NOTIFY.

- A statement that is a whole operation runs in autocommit: one round trip, no BEGIN/COMMIT.
- Writers NOTIFY in the same statement or transaction, so a wake-up arrives exactly when the
  row becomes visible; a LISTEN connection in a background thread wakes the waiters.
- Pooled connections are pinged only when they may be broken (see `_ping_idle`).
"""

from __future__ import annotations

import logging
import re
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy import exc as sa_exc

from huey_core.plugins import mask_url
from huey_sql import schema
from huey_sql.dialects.base import Dialect, Row, Waker

log = logging.getLogger("huey_sql")

# Objects inherited across fork that must never be closed or garbage-collected in the child:
# closing them would shut the parent's sockets. Kept alive here on purpose.
_inherited: list[Any] = []

IDLE_PING = 1.0  # seconds a pooled connection may rest before its next checkout pings it
TRANSIENT = ("40P01", "40001", "55P03")  # deadlock, serialization failure, lock timeout
# The server ended the session (shutdown, pg_terminate_backend) instead of answering. PostgreSQL
# reports that only in place of running a statement, never after committing one.
NOT_EXECUTED = ("57P01", "57P02", "57P03")


# A CTE that turns synchronous_commit off for its statement's transaction only (a statement
# must read it, or PostgreSQL skips it).
ASYNC_COMMIT = "async AS (SELECT set_config('synchronous_commit', 'off', true) AS v)"


def _commit_without_flush(statement: str) -> str:
    """`statement` (an UPDATE or DELETE whose WHERE ends the statement or comes before its
    RETURNING, maybe behind a WITH) committing without waiting for the WAL flush."""
    head, returning, tail = statement.rpartition(" RETURNING ")
    if not returning:
        head, tail = statement, ""
    statement = f"{head} AND EXISTS (SELECT 1 FROM async){returning}{tail}"
    if statement.startswith("WITH "):
        return f"WITH {ASYNC_COMMIT}, {statement[5:]}"
    return f"WITH {ASYNC_COMMIT} {statement}"


class PostgresDialect(Dialect):
    name = "postgresql"
    extra = "postgres"
    placeholder = "%s"
    default_poll = 1.0  # only the fallback when a NOTIFY is lost: wake-ups come from LISTEN
    ack_claim_is_one_statement = True
    emit_many_is_one_statement = True
    # A claim that finds nothing costs the same as a read, so waiters claim at once.
    probe_before_claim = False

    def __init__(self, url: Any, tables: Any, options: dict[str, Any]) -> None:
        self.notifies = bool(options["notify"])
        # ack_soon() sends on a held session with a statement prepared on it: not through
        # PgBouncer in transaction mode (notify=False), which hands sessions around
        self.pipelines_acks = self.notifies
        super().__init__(url, tables, options)
        q = tables.queue.name
        # The ack runs as a CTE on another row (a leased one) than the claim (a ready one).
        self.ack_claim_sql = (
            self.sql(f"WITH acked AS (DELETE FROM {q} WHERE name = ? AND lease = ?) ")
            + self.claim_sql
        )
        # The acks of a batch and the next claim, one statement (the rows differ, as above).
        self.ack_claim_many_sql = (
            self.sql(f"WITH acked AS (DELETE FROM {q} WHERE name = ? AND lease = ANY(?)) ")
            + self.claim_many_sql
        )
        # ack_soon(): committed (every session sees it, the consumer may die next) without
        # waiting for the WAL flush, as synchronous_commit = off does, for this transaction
        # only. A server crash in the next fraction of a second can undo it: the task then
        # runs again, as after any lost ack.
        self.ack_soon_sql = _commit_without_flush(self.ack_sql)
        # the same, in libpq's own parameter style, for send_ack()
        n = iter(range(1, 3))
        self._ack_soon_pq = re.sub("%s", lambda _: f"${next(n)}", self.ack_soon_sql).encode()
        # Claims (with the acks that ride on them) and event writes commit without waiting for
        # the WAL flush, as ack_soon() does (about 0.2 ms less per claim here). A server crash
        # in the next fraction of a second can undo them: an undone claim leaves its message
        # ready and an undone ack leaves it leased, so it runs again (at-least-once, as after
        # any lost ack); undone events are gone from the live stream. Enqueues, results and
        # schedules still wait for the disk: they are what a caller was told is stored.
        self.claim_sql = _commit_without_flush(self.claim_sql)
        self.claim_many_sql = _commit_without_flush(self.claim_many_sql)
        self.ack_claim_sql = _commit_without_flush(self.ack_claim_sql)
        self.ack_claim_many_sql = _commit_without_flush(self.ack_claim_many_sql)
        # One round trip for a batch: the events travel as one bytea[] and go in in list order.
        self.emit_many_sql = self.sql(
            f"WITH {ASYNC_COMMIT} INSERT INTO {tables.events.name} (name, created, data) "
            "SELECT ?, ?, e.data FROM unnest(?::bytea[]) WITH ORDINALITY AS e(data, n), async "
            "ORDER BY e.n"
        )
        if self.notifies:
            # One statement instead of two (about 20% faster): the INSERT runs as a CTE, to
            # completion, and the NOTIFY goes out with the commit.
            self.enqueue_sql = self._then_notify(self.enqueue_sql)
            self.emit_many_sql = self._then_notify(self.emit_many_sql)

    def _then_notify(self, insert: str) -> str:
        return f"WITH ins AS ({insert} RETURNING 1) " + self.sql(
            "SELECT pg_notify(?, '') FROM (SELECT 1 FROM ins LIMIT 1) AS one"
        )

    def enqueue(self, cur: Any, args: Row, channel: str) -> None:
        cur.execute(self.enqueue_sql, (*args, channel) if self.notifies else args)

    def ack_and_claim(self, cur: Any, lease: str, claim: Row, name: str) -> Row | None:
        cur.execute(self.ack_claim_sql, (name, lease, *claim, name))
        return cur.fetchone()

    def ack_claim_many(
        self, cur: Any, leases: list[str], claim: Row, name: str, n: int
    ) -> list[Row]:
        cur.execute(self.ack_claim_many_sql, (name, leases, *claim, name, n))
        found = sorted(cur.fetchall(), key=lambda r: (r[3], r[4]))
        return [(r[0], r[1], r[2]) for r in found]

    def emit_many(self, cur: Any, name: str, now: float, events: list[bytes], channel: str) -> None:
        args: Row = (name, now, events)
        cur.execute(self.emit_many_sql, (*args, channel) if self.notifies else args)

    def notify(self, cur: Any, channel: str) -> None:
        if self.notifies:
            cur.execute("SELECT pg_notify(%s, '')", (channel,))

    def send_ack(self, conn: Any, name: str, lease: str) -> None:
        # In autocommit the DELETE commits on its own once the server has read it: if this
        # process dies next, the kernel still delivers what was sent (or, if the answer came
        # back first, the server had run it already).
        from psycopg import errors, pq

        pgconn = conn.pgconn
        conn.autocommit = True
        if pgconn not in _ACK_PREPARED:
            # once per connection: the server parses and plans the statement once
            result = pgconn.prepare(ACK_STATEMENT, self._ack_soon_pq)
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise errors.DatabaseError(result.error_message.decode(errors="replace"))
            _ACK_PREPARED.add(pgconn)
        pgconn.send_query_prepared(ACK_STATEMENT, [name.encode(), lease.encode()])

    def read_ack(self, conn: Any) -> None:
        from psycopg import errors, pq

        pgconn, error = conn.pgconn, None
        while (result := pgconn.get_result()) is not None:
            if result.status != pq.ExecStatus.COMMAND_OK:
                error = result.error_message.decode(errors="replace").strip()
        conn.autocommit = False  # the pool's other users expect transactions
        if error is not None:
            raise errors.DatabaseError(error)

    def begin(self, conn: Any, cur: Any, read: bool, single: bool) -> bool:
        # One statement is its own transaction: autocommit saves the BEGIN and COMMIT.
        if single:
            conn.autocommit = True
        return single

    def end_autocommit(self, conn: Any) -> None:
        if not conn.closed:
            conn.autocommit = False  # the pool's other users expect transactions

    def is_transient(self, exc: BaseException) -> bool:
        return getattr(exc, "sqlstate", None) in TRANSIENT

    def not_executed(self, exc: BaseException) -> bool:
        return getattr(exc, "sqlstate", None) in NOT_EXECUTED

    def lock_schema(self, conn: Connection) -> None:
        key = schema.lock_key(self.tables.prefix)
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def engine_options(self) -> dict[str, Any]:
        return {"connect_args": {"connect_timeout": 5}}

    def create_engine(self) -> Engine:
        engine = super().create_engine()
        # Pinging every checkout would be one more round trip per statement of the task path.
        if not self.options["engine_options"].get("pool_pre_ping"):
            _ping_idle(engine)
        return engine

    def make_waker(self, db: Any) -> Waker:
        poll = self.options["poll_interval"] or self.default_poll
        if not self.notifies:
            return Waker(poll)
        channels = [db.channel(kind) for kind in ("q", "kv", "ev")]
        return PgWaker(lambda: self._listen_connection(db.engine), channels, poll)

    def _listen_connection(self, engine: Engine) -> Any:
        import psycopg

        cargs, cparams = engine.dialect.create_connect_args(self.url)
        cparams.pop("context", None)
        cparams["connect_timeout"] = 5
        cparams.update(self.options["engine_options"].get("connect_args", {}))  # sslmode, ...
        return psycopg.connect(*cargs, **cparams, autocommit=True)


ACK_STATEMENT = b"huey_ack_soon"  # the prepared statement of send_ack(), per connection
_ACK_PREPARED: weakref.WeakSet[Any] = weakref.WeakSet()  # libpq connections that have it


def _ping_idle(engine: Engine) -> None:
    """Ping a connection at checkout when it may be broken, instead of at every checkout.

    An idle healthy connection has nothing to read. When the server ends a connection (restart,
    pg_terminate_backend, idle timeout) it sends an error and closes the socket, which makes
    the socket readable: then, or after IDLE_PING seconds of rest, the checkout pings and a
    dead connection is replaced before use, as with pool_pre_ping. A connection in steady use
    skips the round trip. One that breaks while in use fails its statement, as before.
    """

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


class PgWaker(Waker):
    """LISTENs on a dedicated psycopg connection in a daemon thread and wakes waiters.

    Each channel has a generation counter bumped per notification. Waiters still time out after
    `poll` seconds and look again, so a notification lost to a reconnect strands nothing; a
    reconnect also bumps every generation.
    """

    native = True
    LISTEN_SLICE = 0.5  # seconds between checks of close() while no notification arrives

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
                self._listen()
                backoff = 0.1
            except Exception as exc:  # server restart, network: reconnect with backoff
                if self._stop.is_set():
                    break
                log.warning(
                    "LISTEN connection lost (%s); reconnecting in %.1fs",
                    mask_url(str(exc)),
                    backoff,
                )
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

    def _listen(self) -> None:
        conn = self._conn = self._connect()
        for ch in self._channels:
            conn.execute(f'LISTEN "{ch}"')
        self._bump(self._channels)  # anything sent while we were away: look again
        self._ready.set()
        while not self._stop.is_set():
            # Wake the waiters on each notification as it arrives. notifies() yields until its
            # timeout ends, so collecting a whole slice first would hold every wake-up back
            # until the end of the slice (issue 10: up to LISTEN_SLICE late).
            for notify in conn.notifies(timeout=self.LISTEN_SLICE):
                self._bump((notify.channel,))

    def _bump(self, names: Iterable[str]) -> None:
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
        # The thread notices within one LISTEN_SLICE and closes its own connection; not
        # joining keeps close() instant.
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
