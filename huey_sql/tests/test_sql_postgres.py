"""The sql backend on PostgreSQL (psycopg 3): the conformance suite, then PostgreSQL specifics."""

from __future__ import annotations

import os
import threading
import time

import pytest

from huey_core.testing import BackendConformance
from huey_sql.backend import SQLBackend
from huey_sql.testing import make_factory, malformed_rows


@pytest.fixture(scope="module")
def sql_url(postgres_url: str) -> str:
    return postgres_url


class TestPostgresBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self, sql_url: str, sql_prefix: str):
        yield from make_factory(sql_url, sql_prefix)

    @pytest.fixture
    def malformed_rows(self, sql_url: str):
        return malformed_rows(sql_url)


class TestPostgresPollingBackend(BackendConformance):
    """notify=False (for PgBouncer in transaction mode): same contract, the consumer polls."""

    @pytest.fixture
    def backend_factory(self, sql_url: str, sql_prefix: str):
        yield from make_factory(sql_url, sql_prefix, notify=False)


class TestPostgresSpecifics:
    def test_plain_postgresql_scheme_uses_psycopg(self, sql_url: str, sql_prefix: str) -> None:
        url = sql_url.replace("postgresql+psycopg://", "postgresql://")
        backend = SQLBackend("x", url, table_prefix=sql_prefix)
        assert backend.engine.url.drivername == "postgresql+psycopg"
        backend.close()

    def test_mode_follows_the_notify_option(self, factory) -> None:
        assert factory().queue.blocking is True
        assert factory(notify=False).queue.blocking is False
        assert factory(mode="polling").queue.blocking is False
        assert "polling" in factory(notify=False).describe()

    def test_notify_wakes_a_waiting_dequeue_long_before_the_fallback_poll(self, factory) -> None:
        backend = factory(poll_interval=30.0)  # the fallback poll alone would take 30 s
        other = factory(backend.name, notify=True)
        timer = threading.Timer(0.3, other.queue.enqueue, args=(b"wake",))
        timer.start()
        started = time.monotonic()
        delivery = backend.queue.dequeue("w", 30, wait=10)
        assert delivery is not None and delivery.data == b"wake"
        assert time.monotonic() - started < 2

    def test_fallback_poll_finds_work_when_no_notify_arrives(self, factory) -> None:
        backend = factory(poll_interval=0.2)
        silent = factory(backend.name, notify=False)  # a writer behind PgBouncer: no NOTIFY
        timer = threading.Timer(0.3, silent.queue.enqueue, args=(b"quiet",))
        timer.start()
        delivery = backend.queue.dequeue("w", 30, wait=5)
        assert delivery is not None and delivery.data == b"quiet"

    def test_store_wait_wakes_on_notify(self, factory) -> None:
        backend = factory(poll_interval=30.0)
        other = factory(backend.name)
        timer = threading.Timer(0.3, other.store.put, args=("result:1", b"done"))
        timer.start()
        started = time.monotonic()
        assert backend.store.wait("result:1", 10) is True
        assert time.monotonic() - started < 2

    def test_listener_reconnects_after_its_connection_is_killed(self, factory) -> None:
        backend = factory(poll_interval=30.0)
        assert backend.queue.dequeue("w", 30, wait=0.1) is None  # starts the LISTEN thread
        listening = (
            "SELECT pid FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid() AND query LIKE %(q)s"
        )
        channel = {"q": f"%{backend._db.channel('')}%"}
        with backend.engine.connect() as conn:
            killed = {pid for (pid,) in conn.exec_driver_sql(listening, channel)}
            assert killed
            conn.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM ({listening}) l", channel)
        deadline = time.monotonic() + 10
        while True:  # until a new session LISTENs again: the reconnect the test is about
            with backend.engine.connect() as conn:
                now = {pid for (pid,) in conn.exec_driver_sql(listening, channel)}
            if now - killed:
                break
            assert time.monotonic() < deadline, "the listener never listened again"
            time.sleep(0.02)
        other = factory(backend.name)
        timer = threading.Timer(1.0, other.queue.enqueue, args=(b"after restart",))
        timer.start()
        started = time.monotonic()
        delivery = backend.queue.dequeue("w", 30, wait=10)
        assert delivery is not None and delivery.data == b"after restart"
        assert time.monotonic() - started < 5

    def test_pooled_connections_killed_by_the_server_are_replaced(self, factory) -> None:
        """A server restart drops every pooled connection; the next calls reconnect."""
        tag = f"huey-test-{time.monotonic_ns()}"
        backend = factory(engine_options={"connect_args": {"application_name": tag}})
        results = []

        def use(i: int) -> None:
            backend.queue.enqueue(f"before-{i}".encode())
            results.append(i)

        threads = [threading.Thread(target=use, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        admin = factory()
        with admin.engine.connect() as conn:
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %(tag)s",
                {"tag": tag},
            ).scalar()
        assert killed >= 1
        for i in range(8):  # more calls than pooled connections: every one must succeed
            backend.queue.enqueue(f"after-{i}".encode())
        assert backend.queue.size() == 12

    def test_claim_reads_the_ready_index_in_order_without_sorting(self, factory) -> None:
        backend = factory()
        backend.queue.enqueue(b"x")
        q = backend._db.tables.queue
        with backend.engine.connect() as conn:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # judge the index, not size
            plan = "\n".join(
                row[0]
                for row in conn.exec_driver_sql(
                    f"EXPLAIN SELECT id FROM {q.name} WHERE name = %(n)s AND lease IS NULL "
                    "ORDER BY sort_key, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    {"n": backend.name},
                )
            )
        assert f"{q.name}_ready" in plan, plan
        assert "Sort" not in plan, plan


def _ack_soon_then_die(backend, lease: str, wait: float) -> None:
    backend.after_fork()
    backend.queue.ack_soon(lease)
    time.sleep(wait)  # 0: the ack may still be on its way; 0.2: its answer is back, unread
    os._exit(0)  # as a task that kills its worker: no settle_acks(), no clean-up


@pytest.mark.parametrize("wait", [0.0, 0.2])
def test_an_ack_sent_with_ack_soon_commits_when_the_process_dies_right_after(factory, wait):
    """The worker acks a finished task with ack_soon() before the next task starts: if that task
    kills the process, the finished one must not run again."""
    import multiprocessing

    backend = factory()
    assert backend.queue._sql.pipelines_acks  # the statement is sent, its answer read later
    backend.queue.enqueue_many([(b"finished", 0), (b"running", 0)])
    finished, running = backend.queue.dequeue_many("w", 30, 2)
    child = multiprocessing.get_context("fork").Process(
        target=_ack_soon_then_die, args=(backend, finished.lease, wait)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    deadline = time.monotonic() + 5  # the server may still be running it
    while len(backend.queue.leases()) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [info.lease for info in backend.queue.leases()] == [running.lease]


def test_claims_and_event_writes_skip_the_wal_flush_for_their_own_transaction_only(factory):
    """A claim or an event write may be undone by a server crash (the message runs again; the
    events are gone), so it does not wait for the disk; the enqueue after it on the same pooled
    connection must still wait: what a producer was told is stored stays stored."""
    backend = factory(pool_size=1, max_overflow=0)  # every statement on one connection
    backend.queue.enqueue_many([(b"first", 0), (b"second", 0)])
    finished, claimed = backend.queue.dequeue_many("w", 30, 2)
    backend.queue.ack_and_dequeue_many([finished.lease], "w", 30, 2)
    backend.events.emit_many([b'{"event": "claimed"}'])
    assert [info.lease for info in backend.queue.leases()] == [claimed.lease]
    with backend.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    sql = backend.queue._sql
    for statement in (sql.claim_sql, sql.claim_many_sql, sql.ack_claim_many_sql, sql.emit_many_sql):
        assert "set_config('synchronous_commit', 'off', true)" in statement
