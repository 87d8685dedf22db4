"""db_task closes stale connections around a task; on_commit enqueues only what commits.

Tasks run here through huey.execute(), in this thread, as a consumer worker runs them; each
Django database (SQLite and PostgreSQL) is tried in turn.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connections, transaction

from huey_core import Result
from huey_django import HUEY, OnCommitTask, db_periodic_task, db_task, enqueue_on_commit, task
from huey_django import on_commit_task as on_commit_task_decorator
from huey_sql.testing import postgres_sql


def query(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        return int(cursor.fetchone()[0])


@db_task()
def db_query(alias: str) -> int:
    return query(alias)


@task()
def plain_query(alias: str) -> int:
    return query(alias)


@db_periodic_task(lambda now: True)
def db_periodic_query() -> int:
    return query("default")


@task()
def add(a: int, b: int) -> int:
    return a + b


@on_commit_task_decorator()
def later_add(a: int, b: int) -> int:
    return a + b


@pytest.fixture
def fresh(alias: str) -> Iterator[str]:
    """`alias` with no connection open, closed again afterwards."""
    connections[alias].close()
    yield alias
    connections[alias].close()


def is_open(alias: str) -> bool:
    return connections[alias].connection is not None


def test_a_db_task_leaves_no_connection_past_conn_max_age(fresh: str) -> None:
    query(fresh)  # a connection left open, as a previous task or request may leave it
    assert is_open(fresh)
    assert HUEY.execute(db_query.s(fresh)) == 1
    # CONN_MAX_AGE is 0: like a request, the task ends by closing what it used
    assert not is_open(fresh)


def test_a_plain_task_does_not_touch_connections(fresh: str) -> None:
    # What db_task exists for: without it the connection outlives the task.
    assert HUEY.execute(plain_query.s(fresh)) == 1
    assert is_open(fresh)


def test_a_db_task_replaces_a_connection_the_server_dropped(pg_database: str) -> None:
    alias = pg_database
    connections[alias].close()
    # Persistent connections with health checks, as production settings often have them.
    connections[alias].settings_dict.update(CONN_MAX_AGE=None, CONN_HEALTH_CHECKS=True)
    try:
        assert HUEY.execute(db_query.s(alias)) == 1
        assert is_open(alias)  # persistent: kept for the next task
        dropped = connections[alias].connection.info.backend_pid
        _terminate(dropped)
        assert HUEY.execute(db_query.s(alias)) == 1  # checked first, then replaced
        assert connections[alias].connection.info.backend_pid != dropped
    finally:
        connections[alias].settings_dict.update(CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=False)
        connections[alias].close()


def _terminate(pid: int) -> None:
    """Drop one server connection, as a restart or an idle timeout would."""
    postgres_sql(f"SELECT pg_terminate_backend({int(pid)})")


def test_a_db_task_run_inside_a_transaction_leaves_it_alone(fresh: str) -> None:
    # call_local (or immediate mode) runs the task in the caller: closing the connection there
    # would break the caller's transaction.
    with transaction.atomic(using=fresh):
        query(fresh)
        assert db_query.call_local(fresh) == 1
        assert HUEY.execute(db_query.s(fresh)) == 1
        assert is_open(fresh) and query(fresh) == 1


def test_db_periodic_task_is_periodic_and_closes_connections() -> None:
    assert type(db_periodic_query.s()) in HUEY.registry.periodic
    query("default")
    assert HUEY.execute(db_periodic_query.s()) == 1
    assert not is_open("default")


def test_enqueue_on_commit_waits_for_the_commit(alias: str) -> None:
    with transaction.atomic(using=alias):
        result = enqueue_on_commit(add.s(1, 2), using=alias)
        assert isinstance(result, Result)
        assert HUEY.pending_count() == 0
    assert [t.id for t in HUEY.pending()] == [result.id]


def test_a_rolled_back_transaction_enqueues_nothing(alias: str) -> None:
    with pytest.raises(RuntimeError):
        with transaction.atomic(using=alias):
            enqueue_on_commit(add.s(1, 2), using=alias)
            raise RuntimeError("declined")
    assert HUEY.pending_count() == 0


def test_a_rolled_back_savepoint_drops_only_its_own_tasks(alias: str) -> None:
    with transaction.atomic(using=alias):
        kept = enqueue_on_commit(add.s(1, 1), using=alias)
        try:
            with transaction.atomic(using=alias):
                enqueue_on_commit(add.s(2, 2), using=alias)
                raise RuntimeError("inner failure")
        except RuntimeError:
            pass
    assert [t.id for t in HUEY.pending()] == [kept.id]


def test_outside_a_transaction_it_is_enqueued_at_once() -> None:
    result = enqueue_on_commit(add.s(1, 2))
    assert [t.id for t in HUEY.pending()] == [result.id]


def test_a_pipeline_gets_a_result_per_step() -> None:
    with transaction.atomic():
        results = enqueue_on_commit(add.s(1, 2).then(add, 3))
        assert HUEY.pending_count() == 0
    first, second = results  # a ResultGroup: one Result per step
    assert [t.id for t in HUEY.pending()] == [first.id]
    assert HUEY.execute(HUEY.dequeue()) == 3  # the first step enqueues the next
    assert [t.id for t in HUEY.pending()] == [second.id]


def test_an_on_commit_task_call_waits_for_the_commit(alias: str) -> None:
    later = OnCommitTask(later_add.task, using=alias)
    with transaction.atomic(using=alias):
        result = later(2, 3)
        assert HUEY.pending_count() == 0
    (queued,) = HUEY.pending()
    assert queued.id == result.id and queued.args == (2, 3)
    assert HUEY.execute(queued) == 5
    assert later_add.call_local(2, 3) == 5
    assert later_add.__name__ == "later_add"
