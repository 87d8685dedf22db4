"""The sql backend on MySQL 8 / MariaDB 10.6+ (PyMySQL): the conformance suite and specifics."""

from __future__ import annotations

import pytest

from huey_core.testing import BackendConformance
from huey_sql.testing import make_factory, malformed_rows


@pytest.fixture(scope="module")
def sql_url(mysql_url: str) -> str:
    return mysql_url


class TestMySQLBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self, sql_url: str, sql_prefix: str):
        yield from make_factory(sql_url, sql_prefix)

    @pytest.fixture
    def malformed_rows(self, sql_url: str):
        return malformed_rows(sql_url)


class TestMySQLSpecifics:
    def test_mysql_polls_and_says_so(self, factory) -> None:
        backend = factory()
        assert backend.queue.blocking is False
        assert "polling" in backend.describe()

    def test_payloads_larger_than_a_blob_fit(self, factory) -> None:
        backend = factory()
        payload = b"\xff" * 300_000  # above BLOB's 64 KB: the column must be LONGBLOB
        backend.store.put("big", payload)
        assert backend.store.peek("big") == payload

    def test_claim_reads_the_claim_index_without_filesort(self, factory) -> None:
        backend = factory()
        backend.queue.enqueue(b"x")
        q = backend._db.tables.queue
        with backend.engine.connect() as conn:
            rows = (
                conn.exec_driver_sql(
                    f"EXPLAIN SELECT id FROM {q.name} FORCE INDEX ({q.name}_claim) "
                    "WHERE name = %(n)s AND lease IS NULL ORDER BY sort_key, id LIMIT 1 "
                    "FOR UPDATE SKIP LOCKED",
                    {"n": backend.name},
                )
                .mappings()
                .all()
            )
        assert rows[0]["type"] == "ref", rows
        assert "filesort" not in (rows[0]["Extra"] or ""), rows
