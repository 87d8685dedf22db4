"""Shared pieces of the SQL backend tests: server URLs, table cleanup, and the checks that every
dialect (SQLite, PostgreSQL, MariaDB/MySQL) must pass beyond the conformance suite.

The PostgreSQL and MariaDB servers are shared with other suites running at the same time: every
test module works under its own random table prefix and drops only those tables afterwards.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from huey_core.testing import require_server

POSTGRES_URL = os.environ.get(
    "HUEY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("HUEY_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

EXACTLY_ONCE_MESSAGES = 5000
PROCESSES = 4
THREADS = 4


def unique_prefix() -> str:
    return f"ht{uuid.uuid4().hex[:8]}_"


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def require_database(url: str) -> None:
    """Skip (or fail under CI=true) when the server behind `url` is not reachable."""
    import sqlalchemy as sa

    def ping() -> bool:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        finally:
            engine.dispose()

    require_server(f"database at {url}", ping)


def drop_prefix(url: str, prefix: str) -> None:
    """Drop the tables this test run created under `prefix`, and nothing else."""
    from huey_sql.backend import SQLBackend

    backend = SQLBackend("cleanup", url, table_prefix=prefix)
    try:
        backend._db.tables.metadata.drop_all(backend.engine, checkfirst=True)
    finally:
        backend.close()


def prefix_fixture(server_url: str | None) -> Any:
    """A module-scoped fixture: a fresh table prefix, dropped afterwards from `server_url`.

    None (SQLite) skips the server check and the drop: the database file is temporary.
    """

    @pytest.fixture(scope="module")
    def sql_prefix() -> Iterator[str]:
        if server_url:
            require_database(server_url)
        prefix = unique_prefix()
        yield prefix
        if server_url:
            drop_prefix(server_url, prefix)

    return sql_prefix


def make_factory(url: str, prefix: str, **options: Any) -> Iterator[Callable[..., Any]]:
    """Yield factory(name=None, **extra) -> SQLBackend; same name and prefix share data."""
    from huey_sql.backend import SQLBackend

    made: list[SQLBackend] = []

    def factory(name: str | None = None, **extra: Any) -> SQLBackend:
        opts = {"table_prefix": prefix, **options, **extra}
        backend = SQLBackend(name or unique_name(), url, **opts)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close()


# -- helpers that run in child processes (module level, so they pickle) -------------------------


def _claim_worker(url: str, prefix: str, name: str, threads: int, start: Any, out: Any) -> None:
    """Claim and ack until the queue stays empty; report the payloads this process acked."""
    import threading

    from huey_sql.backend import SQLBackend

    backend = SQLBackend(name, url, table_prefix=prefix, pool_size=threads)
    got: list[bytes] = []
    errors: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        mine: list[bytes] = []
        misses = 0
        try:
            while misses < 3:
                delivery = backend.queue.dequeue(f"{os.getpid()}-{i}", 60)
                if delivery is None:
                    misses += 1
                    time.sleep(0.05)
                    continue
                misses = 0
                mine.append(delivery.data)
                backend.queue.ack(delivery.lease)
        except Exception as exc:  # reported to the parent, which fails the test with it
            errors.append(f"{type(exc).__name__}: {exc}")
        with lock:
            got.extend(mine)

    start.wait(30)
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    backend.close()
    out.put((got, errors))


def _mixed_load(url: str, prefix: str, name: str, seconds: float, start: Any, out: Any) -> None:
    """Every kind of write from 4 threads for `seconds`; report the errors seen."""
    import threading

    from huey_sql.backend import SQLBackend

    backend = SQLBackend(name, url, table_prefix=prefix)
    errors: list[str] = []

    def work(i: int) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                backend.queue.enqueue(b"x", priority=i)
                delivery = backend.queue.dequeue(f"{os.getpid()}-{i}", 30, wait=0.01)
                if delivery is not None:
                    backend.queue.ack(delivery.lease)
                backend.events.emit(b"{}")
                backend.store.put(f"k{i}", b"v", ttl=1)
                backend.store.put_if_empty("lock", b"1", ttl=0.01)
                backend.store.incr("n")
                backend.schedule.add(b"s", time.time())
                backend.schedule.move_due(time.time())
                backend.queue.recover()
            except Exception as exc:  # reported to the parent, which fails the test with it
                errors.append(f"{type(exc).__name__}: {exc}")

    start.wait(30)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    backend.close()
    out.put(errors[:5])


def _create_and_enqueue(url: str, prefix: str, name: str, start: Any, out: Any) -> None:
    from huey_sql.backend import SQLBackend

    try:
        start.wait(30)
        backend = SQLBackend(name, url, table_prefix=prefix)
        backend.queue.enqueue(str(os.getpid()).encode())
        backend.close()
        out.put("ok")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def _emit_events(url: str, prefix: str, name: str, count: int) -> None:
    from huey_sql.backend import SQLBackend

    backend = SQLBackend(name, url, table_prefix=prefix)
    for i in range(count):
        backend.events.emit(f'{{"status": "finished", "n": {i}}}'.encode())
    backend.close()


def _enqueue_later(url: str, prefix: str, name: str, delay: float) -> None:
    from huey_sql.backend import SQLBackend

    backend = SQLBackend(name, url, table_prefix=prefix)
    time.sleep(delay)
    backend.queue.enqueue(b"from another process")
    backend.close()


_ctx = multiprocessing.get_context("spawn")  # children build their own engines from scratch


class SQLBackendChecks:
    """What every SQL dialect promises beyond the conformance suite.

    A test module sets `url` and provides the module-scoped `sql_prefix` fixture
    (see prefix_fixture()).
    """

    url: str = ""

    @pytest.fixture
    def factory(self, sql_prefix: str) -> Iterator[Callable[..., Any]]:
        # The module's tables are dropped afterwards, so instances need no flushing here.
        yield from make_factory(self.url, sql_prefix)

    def test_every_message_is_claimed_exactly_once_by_competing_processes(
        self, factory: Callable[..., Any], sql_prefix: str
    ) -> None:
        """4 processes x 4 threads claim and ack one queue of 5,000: none lost, none twice."""
        backend = factory()
        sent = [f"m{i:05d}".encode() for i in range(EXACTLY_ONCE_MESSAGES)]
        # Set-up in one statement (enqueue itself is covered by the conformance suite).
        q = backend._db.tables.queue
        rows = [{"name": backend.name, "sort_key": -(i % 3), "data": d, "deliveries": 0}
                for i, d in enumerate(sent)]
        with backend.engine.begin() as conn:
            conn.execute(q.insert(), rows)
        start = _ctx.Event()
        out = _ctx.Queue()
        procs = [
            _ctx.Process(
                target=_claim_worker,
                args=(self.url, sql_prefix, backend.name, THREADS, start, out),
            )
            for _ in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        start.set()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
        errors = [e for _, errs in results for e in errs]
        assert errors == []  # no "database is locked", no deadlock surfaced
        got = [data for acked, _ in results for data in acked]
        assert len(got) == len(sent)  # nothing delivered twice...
        assert sorted(got) == sent  # ...and nothing lost
        assert backend.queue.size() == 0 and backend.queue.leases() == []

    def test_processes_creating_the_schema_at_once_all_succeed(self) -> None:
        prefix = unique_prefix()
        name = unique_name()
        start = _ctx.Event()
        out = _ctx.Queue()
        procs = [
            _ctx.Process(target=_create_and_enqueue, args=(self.url, prefix, name, start, out))
            for _ in range(6)
        ]
        try:
            for p in procs:
                p.start()
            time.sleep(0.5)  # let every child import SQLAlchemy, so they really start together
            start.set()
            results = [out.get(timeout=60) for _ in procs]
            for p in procs:
                p.join(30)
            assert results == ["ok"] * 6
            from huey_sql.backend import SQLBackend

            backend = SQLBackend(name, self.url, table_prefix=prefix)
            assert backend.queue.size() == 6
            meta = backend._db.tables.meta
            with backend.engine.connect() as conn:
                rows = conn.execute(meta.select()).all()
            assert [(r.key, r.value) for r in rows] == [("schema_version", "1")]
            backend.close()
        finally:
            drop_prefix(self.url, prefix)

    def test_events_flow_between_processes(self, factory: Callable[..., Any], sql_prefix: str) -> None:
        backend = factory()
        sub = backend.events.listen()
        child = _ctx.Process(target=_emit_events, args=(self.url, sql_prefix, backend.name, 20))
        child.start()
        got = []
        for event in sub:
            got.append(event)
            if len(got) == 20:
                break
        sub.close()
        child.join(30)
        assert got == [f'{{"status": "finished", "n": {i}}}'.encode() for i in range(20)]

    def test_instances_sharing_tables_never_see_each_other(self, factory: Callable[..., Any]) -> None:
        a, b = factory(), factory()
        a.queue.enqueue(b"for a")
        a.schedule.add(b"later a", time.time() - 1)
        a.store.put("k", b"a")
        sub_b = b.events.listen()
        a.events.emit(b"{}")
        assert b.queue.dequeue("w", 30) is None
        assert b.schedule.move_due(time.time()) == 0
        assert b.store.peek("k") is None and b.store.items() == {}
        b.queue.flush()
        b.store.flush()
        assert a.queue.size() == 1 and a.store.peek("k") == b"a"
        sub_b.close()
        assert list(sub_b) == []

    def test_keys_are_case_sensitive_and_prefixes_are_literal(self, factory: Callable[..., Any]) -> None:
        store = factory().store
        store.put("Lock", b"1")
        assert store.put_if_empty("lock", b"2")
        store.put("a_b", b"x")
        store.put("axb", b"y")
        store.put("a%c", b"z")
        store.put("A_b", b"w")
        assert store.items("a_") == {"a_b": b"x"}
        assert store.items("a%") == {"a%c": b"z"}
        store.flush("a_")
        assert sorted(store.items()) == ["A_b", "Lock", "a%c", "axb", "lock"]

    def test_a_foreign_table_under_our_name_is_refused_with_a_hint(self) -> None:
        """huey's own PostgresHuey creates huey_kv(queue, key, value): we must not write into it."""
        import sqlalchemy as sa
        from huey_core.exceptions import ConfigurationError
        from huey_sql.backend import SQLBackend

        prefix = unique_prefix()
        engine = sa.create_engine(self.url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {prefix}kv (queue VARCHAR(50), value INTEGER)")
        backend = SQLBackend(unique_name(), self.url, table_prefix=prefix)
        try:
            with pytest.raises(ConfigurationError, match="choose another table_prefix"):
                backend.store.put("k", b"v")
        finally:
            backend.close()
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP TABLE {prefix}kv")
            engine.dispose()
            drop_prefix(self.url, prefix)

    def test_describe_and_errors_never_show_the_password(self) -> None:
        from huey_sql.backend import SQLBackend

        if self.url.startswith("sqlite"):
            pytest.skip("SQLite URLs carry no password")
        scheme, rest = self.url.split("://", 1)
        host = rest.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
        url = f"{scheme}://huey:s3cret-pw@{host}:1/test"  # nothing listens on port 1
        backend = SQLBackend(unique_name(), url)
        try:
            assert "s3cret-pw" not in backend.describe() and "***" in backend.describe()
            with pytest.raises(Exception) as info:
                backend.queue.enqueue(b"x")
            assert "s3cret-pw" not in str(info.value)
            assert "s3cret-pw" not in repr(info.value)
        finally:
            backend.close()

    def test_expired_keys_are_swept_in_bounded_batches(self, factory: Callable[..., Any]) -> None:
        backend = factory()
        store = backend.store
        for i in range(20):
            store.put(f"r{i}", b"x", ttl=0.05)
        time.sleep(0.1)
        store._next_cleanup = 0.0
        store.put("trigger", b"x")
        kv = backend._db.tables.kv
        with backend.engine.connect() as conn:
            left = conn.execute(kv.select().where(kv.c.name == backend.name)).all()
        assert [r.key for r in left] == ["trigger"]

    def test_events_are_trimmed_to_the_retention_bound(self, factory: Callable[..., Any]) -> None:
        backend = factory(events_keep=5)
        for i in range(12):
            backend.events.emit(str(i).encode())
        backend.events.trim()
        ev = backend._db.tables.events
        with backend.engine.connect() as conn:
            rows = conn.execute(
                ev.select().where(ev.c.name == backend.name).order_by(ev.c.id)
            ).all()
        assert [bytes(r.data) for r in rows] == [str(i).encode() for i in range(7, 12)]

    def test_move_due_by_concurrent_movers_moves_each_row_once(
        self, factory: Callable[..., Any]
    ) -> None:
        import threading

        backend = factory()
        now = time.time()
        for i in range(300):
            backend.schedule.add(f"s{i}".encode(), now - 1)
        movers = [factory(backend.name) for _ in range(4)]
        moved: list[int] = []

        def move(b: Any) -> None:
            total = 0
            while (n := b.schedule.move_due(time.time(), limit=25)) > 0:
                total += n
            moved.append(total)

        threads = [threading.Thread(target=move, args=(b,)) for b in movers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(moved) == 300
        assert backend.schedule.size() == 0
        assert sorted(backend.queue.peek(1000)) == sorted(f"s{i}".encode() for i in range(300))
