"""What the sql backend promises on every database beyond the conformance suite: claims and
schema creation across processes, events between processes, instances sharing tables, literal
key prefixes, retention, and no password in any message.

Each test runs on SQLite, PostgreSQL and MariaDB/MySQL in turn (the `sql_url` fixture).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from huey_core.exceptions import ConfigurationError
from huey_core.protocols import EVENT_RETENTION
from huey_sql.backend import SQLBackend
from huey_sql.testing import (
    claim_worker,
    create_and_enqueue,
    drop_prefix,
    emit_events,
    unique_name,
    unique_prefix,
)

EXACTLY_ONCE_MESSAGES = 5000
PROCESSES = 4
THREADS = 4

_ctx = multiprocessing.get_context("spawn")  # children build their own engines from scratch


class TestEveryDatabase:
    def test_every_message_is_claimed_exactly_once_by_competing_processes(
        self, factory: Callable[..., Any], sql_url: str, sql_prefix: str
    ) -> None:
        """4 processes x 4 threads claim and ack one queue of 5,000: none lost, none twice."""
        backend = factory()
        sent = [f"m{i:05d}".encode() for i in range(EXACTLY_ONCE_MESSAGES)]
        # Set-up in one statement (enqueue itself is covered by the conformance suite).
        backend._db.ensure_schema()
        q = backend._db.tables.queue
        rows = [
            {"name": backend.name, "sort_key": -(i % 3), "data": d, "deliveries": 0}
            for i, d in enumerate(sent)
        ]
        with backend.engine.begin() as conn:
            conn.execute(q.insert(), rows)
        start = _ctx.Event()
        out = _ctx.Queue()
        procs = [
            _ctx.Process(
                target=claim_worker,
                args=(sql_url, sql_prefix, backend.name, THREADS, start, out),
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

    def test_processes_creating_the_schema_at_once_all_succeed(self, sql_url: str) -> None:
        prefix = unique_prefix()
        name = unique_name()
        start = _ctx.Event()
        out = _ctx.Queue()
        procs = [
            _ctx.Process(target=create_and_enqueue, args=(sql_url, prefix, name, start, out))
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
            backend = SQLBackend(name, sql_url, table_prefix=prefix)
            assert backend.queue.size() == 6
            meta = backend._db.tables.meta
            with backend.engine.connect() as conn:
                rows = conn.execute(meta.select()).all()
            assert [(r.key, r.value) for r in rows] == [("schema_version", "1")]
            backend.close()
        finally:
            drop_prefix(sql_url, prefix)

    def test_events_flow_between_processes(
        self, factory: Callable[..., Any], sql_url: str, sql_prefix: str
    ) -> None:
        backend = factory()
        sub = backend.events.listen()
        child = _ctx.Process(target=emit_events, args=(sql_url, sql_prefix, backend.name, 20))
        child.start()
        got = []
        for event in sub:
            got.append(event)
            if len(got) == 20:
                break
        sub.close()
        child.join(30)
        assert got == [f'{{"status": "finished", "n": {i}}}'.encode() for i in range(20)]

    def test_instances_sharing_tables_never_see_each_other(
        self, factory: Callable[..., Any]
    ) -> None:
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

    def test_keys_are_case_sensitive_and_prefixes_are_literal(
        self, factory: Callable[..., Any]
    ) -> None:
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

    def test_a_foreign_table_under_our_name_is_refused_with_a_hint(self, sql_url: str) -> None:
        """huey's own PostgresHuey creates huey_kv(queue, key, value): we must not write into it."""
        prefix = unique_prefix()
        engine = sa.create_engine(sql_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {prefix}kv (queue VARCHAR(50), value INTEGER)")
        backend = SQLBackend(unique_name(), sql_url, table_prefix=prefix)
        try:
            with pytest.raises(ConfigurationError, match="choose another table_prefix"):
                backend.store.put("k", b"v")
        finally:
            backend.close()
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP TABLE {prefix}kv")
            engine.dispose()
            drop_prefix(sql_url, prefix)

    def test_describe_and_errors_never_show_the_password(self, sql_url: str) -> None:
        if sql_url.startswith("sqlite"):
            pytest.skip("SQLite URLs carry no password")
        scheme, rest = sql_url.split("://", 1)
        host = rest.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
        url = f"{scheme}://huey:s3cret-pw@{host}:1/test"  # nothing listens on port 1
        backend = SQLBackend(unique_name(), url)
        try:
            assert "s3cret-pw" not in backend.describe() and "***" in backend.describe()
            with pytest.raises(sa.exc.OperationalError) as info:  # connection refused
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
        ev = backend._db.tables.events

        def stored() -> list[bytes]:
            with backend.engine.connect() as conn:
                rows = conn.execute(
                    ev.select().where(ev.c.name == backend.name).order_by(ev.c.id)
                ).all()
            return [bytes(r.data) for r in rows]

        backend.events.trim()
        # Beyond events_keep, but younger than EVENT_RETENTION: a slow listener may still read them.
        assert stored() == [str(i).encode() for i in range(12)]
        with backend.engine.begin() as conn:  # let them age past the retention
            conn.execute(
                ev.update()
                .where(ev.c.name == backend.name)
                .values(created=time.time() - EVENT_RETENTION - 1)
            )
        backend.events.trim()
        assert stored() == [str(i).encode() for i in range(7, 12)]

    def test_emitting_trims_old_events_at_most_once_a_second(
        self, factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A busy emitter trims by itself, after TRIM_EVERY emits but not more often than every
        TRIM_SECONDS (a trim reads past the newest `events_keep` rows: not on every batch)."""
        backend = factory(events_keep=5)
        events, ev = backend.events, backend._db.tables.events

        def count() -> int:
            with backend.engine.connect() as conn:
                rows = conn.execute(ev.select().where(ev.c.name == backend.name)).all()
            return len(rows)

        events.emit_many([b"old"] * 20)
        with backend.engine.begin() as conn:  # past the retention: the next trim takes them
            conn.execute(
                ev.update()
                .where(ev.c.name == backend.name)
                .values(created=time.time() - EVENT_RETENTION - 1)
            )
        events.emit_many([b"x"] * events.TRIM_EVERY)  # TRIM_EVERY emits, within the second
        assert count() == 20 + events.TRIM_EVERY
        monkeypatch.setattr(events, "TRIM_SECONDS", 0.0)  # as if a second had passed
        events.emit_many([b"y"] * events.TRIM_EVERY)
        assert count() == 2 * events.TRIM_EVERY  # the old ones went; the young ones stay

    def test_move_due_by_concurrent_movers_moves_each_row_once(
        self, factory: Callable[..., Any]
    ) -> None:
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
