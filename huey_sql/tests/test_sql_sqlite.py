"""The sql backend on SQLite: the shared conformance suite, then SQLite specifics."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from huey_core.exceptions import ConfigurationError
from huey_core.testing import BackendConformance
from huey_sql.backend import SQLBackend
from huey_sql.testing import make_factory, malformed_rows, mixed_load, unique_name


@pytest.fixture(scope="module")
def sql_url(sqlite_url: str) -> str:
    return sqlite_url


class TestSQLiteBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self, sql_url: str, sql_prefix: str):
        yield from make_factory(sql_url, sql_prefix)

    @pytest.fixture
    def malformed_rows(self, sql_url: str):
        return malformed_rows(sql_url)


class TestSQLiteSpecifics:
    def test_wal_mode_and_busy_timeout_on_every_connection(self, factory) -> None:
        backend = factory(busy_timeout=12.5)
        with backend.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 12500

    def test_journal_mode_and_cache_options_on_every_connection(self, tmp_path) -> None:
        # a file of its own: the journal mode is the file's, other tests share theirs in WAL
        url = f"sqlite:///{tmp_path / 'journal.db'}"
        backend = SQLBackend("j", url, sqlite_journal_mode="truncate", sqlite_cache_mb=3)
        try:
            backend.queue.size()
            with backend.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "truncate"
                assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -3000
        finally:
            backend.close()

    def test_a_bad_journal_mode_is_refused_in_one_line(self, tmp_path) -> None:
        with pytest.raises(ConfigurationError, match="sqlite_journal_mode must be one of"):
            SQLBackend("j", f"sqlite:///{tmp_path / 'j.db'}", sqlite_journal_mode="sideways")

    def test_queue_waits_natively_and_wakes_on_another_processs_commit(self, factory) -> None:
        backend = factory()
        assert backend.queue.blocking is True
        other = factory(backend.name)  # its own engine and connections, like another process
        timer = threading.Timer(0.3, other.queue.enqueue, args=(b"wake",))
        timer.start()
        started = time.monotonic()
        delivery = backend.queue.dequeue("w", 30, wait=5)
        assert delivery is not None and delivery.data == b"wake"
        assert time.monotonic() - started < 1.5

    def test_claim_and_ack_use_the_index(self, factory) -> None:
        backend = factory()
        backend.queue.enqueue(b"x")
        q = backend._db.tables.queue
        name = backend.name
        with backend.engine.connect() as conn:
            plans = [
                " ".join(
                    str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", args)
                )
                for sql, args in [
                    (
                        f"SELECT id FROM {q.name} WHERE name = ? AND lease IS NULL "
                        "ORDER BY sort_key, id LIMIT 1",
                        (name,),
                    ),
                    (f"DELETE FROM {q.name} WHERE name = ? AND lease = ?", (name, "x")),
                ]
            ]
        for plan in plans:
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # ORDER BY served by the index

    def test_relative_path_resolves_against_the_working_directory(
        self, tmp_path, monkeypatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        backend = SQLBackend(unique_name(), "sqlite:///rel/huey.db")
        assert backend.engine.url.database == str(tmp_path / "rel" / "huey.db")
        backend.close()

    @pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
    def test_in_memory_sqlite_is_refused_with_a_hint(self, url: str) -> None:
        with pytest.raises(ConfigurationError, match="memory"):
            SQLBackend(unique_name(), url)

    @pytest.mark.parametrize(
        "prefix", ["huey; DROP TABLE x", "Huey_", "1huey", "", "a" * 21, "hu-ey"]
    )
    def test_table_prefix_is_validated(self, prefix: str, sql_url: str) -> None:
        with pytest.raises(ConfigurationError, match="table_prefix"):
            SQLBackend(unique_name(), sql_url, table_prefix=prefix)

    def test_unknown_option_names_the_known_ones(self, sql_url: str) -> None:
        with pytest.raises(TypeError, match="pool_size"):
            SQLBackend(unique_name(), sql_url, pool_sise=3)

    def test_default_url_is_the_embedded_sqlite_file(self, tmp_path, monkeypatch) -> None:
        from huey_core.plugins import create_backend

        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("HUEY_BACKEND", raising=False)
        monkeypatch.delenv("HUEY_URL", raising=False)
        backend = create_backend(unique_name())
        try:
            assert type(backend).__name__ == "SQLBackend"
            backend.queue.enqueue(b"x")
            assert (tmp_path / "huey.db").exists()
        finally:
            backend.close()

    def test_missing_folder_is_a_clear_configuration_error(self, tmp_path) -> None:
        backend = SQLBackend(unique_name(), f"sqlite:///{tmp_path}/nowhere/huey.db")
        with pytest.raises(ConfigurationError, match="does not exist"):
            backend.queue.enqueue(b"x")
        backend.close()

    def test_no_locked_errors_under_four_processes_of_four_writing_threads(
        self, sql_url: str, sql_prefix: str
    ) -> None:
        """Every kind of write at once (queue, schedule, store, events): BEGIN IMMEDIATE and
        busy_timeout make writers take turns, so "database is locked" never reaches a caller."""
        ctx = multiprocessing.get_context("spawn")
        name = unique_name()
        start, out = ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=mixed_load, args=(sql_url, sql_prefix, name, 4, 2.0, start, out))
            for _ in range(4)
        ]
        for p in procs:
            p.start()
        start.set()
        errors = [e for _ in procs for e in out.get(timeout=60)]
        for p in procs:
            p.join(30)
        assert errors == []
