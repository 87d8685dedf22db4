"""A malformed storage row never stops an instance (issue 11, item 3).

Rows that something other than huey wrote are planted next to good tasks, then real
`huey consume` processes drain the queue. Each bad row must end in the dead-letter store with its
reason, every good task must run once, and `huey dead-letters` and `huey info` must show it all:

- SQLite: a payload stored as an INTEGER, a payload stored as TEXT (what a producer writing JSON
  does), a schedule row with a text priority;
- SQLite, PostgreSQL and MariaDB: a delivery count of 2147483647 (PostgreSQL failed every claim
  with "integer out of range"), a leased row without a deadline (never recovered before);
- Redis: a schedule member that is not "<id>|<priority>|<payload>" (the Lua script failed on
  every move), a delivery count that is not a number.

And the scheduler's parts run independently: with a schedule the backend cannot move at all,
a dead consumer's leases are still recovered and periodic tasks still enqueued.
"""

from __future__ import annotations

import json
import time

import pytest

from huey_redis.testing import malformed_rows as redis_rows
from huey_sql.testing import malformed_rows as sql_rows
from tests.reliability.support import KINDS, logs, server_url, stop, wait_for

PLANTED = {
    "sqlite": ("queue", "schedule", "text", "deliveries", "deadline"),
    "postgresql": ("deliveries", "deadline"),
    "mysql": ("deliveries", "deadline"),
    "redis": ("queue", "schedule", "deliveries"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_rows_are_dead_lettered_and_the_rest_flows(kind, make_app, tmp_path):
    app = make_app(server_url(kind, tmp_path))
    module = app.load()
    huey = module.huey
    plants = redis_rows() if kind == "redis" else sql_rows(app.url)
    for i in range(5):
        module.record(i)
    payloads = {name: plants[name](huey.storage) for name in PLANTED[kind]}
    module.record.schedule((5,), delay=0.5)
    for i in range(6, 10):
        module.record(i)
    consumer = app.start_consumer("-w", "2", "-n", "-s", "0.2", "-d", "0.01", "-m", "0.2")
    good = {str(i) for i in range(10)}
    assert wait_for(lambda: good <= set(app.executions()), timeout=60), logs(app)
    assert wait_for(lambda: len(huey.dead_letters()) == len(payloads), timeout=30), (
        huey.dead_letters(), logs(app))  # fmt: skip
    assert all(app.executions()[i] == 1 for i in good)
    letters = {bytes(d["payload"]): d["reason"] for d in huey.dead_letters()}
    for name, payload in payloads.items():
        assert letters.get(payload), (name, payload, letters)
    queue = huey.storage.queue
    assert wait_for(lambda: queue.size() == 0 and queue.leases() == [], timeout=15)
    assert huey.storage.schedule.size() == 0
    listed = app.cli("dead-letters", app.import_path, "--json")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == len(payloads), listed
    shown = app.cli("info", app.import_path)
    assert shown.returncode == 0 and f"dead letters: {len(payloads)}" in shown.stdout, shown
    assert consumer.poll() is None and "Traceback" not in logs(app), logs(app)
    assert stop(consumer) == 0, logs(app)


def _break_the_schedule(kind: str, module) -> None:
    """Make every move_due fail from now on, as a schedule the backend cannot change would."""
    storage = module.huey.storage
    if kind == "redis":
        storage.client.set(storage.key("schedule"), "not a sorted set")  # WRONGTYPE
        return
    import sqlalchemy as sa

    module.huey.add_schedule(module.record.s("stuck"))  # due at once, and never movable
    table = storage._db.tables.schedule.name
    with storage.engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TRIGGER {table}_stuck BEFORE DELETE ON {table} "
                             "BEGIN SELECT RAISE(ABORT, 'the schedule is read-only'); END"))  # fmt: skip


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_a_failing_move_due_holds_back_neither_recovery_nor_periodic_tasks(
    kind, make_app, tmp_path
):
    epoch = time.time()
    # A fast clock (a minute every 1.5 s) so that periodic minutes come quickly.
    app = make_app(server_url(kind, tmp_path), TEST_CLOCK_EPOCH=repr(epoch),
                   TEST_CLOCK_SPEED="40")  # fmt: skip
    module = app.load()
    huey = module.huey
    module.record("orphan")
    # A consumer that leased it and died: its lease ends in 1 s and nobody extends it.
    assert huey.storage.queue.dequeue("dead-host:1:Worker-1", 1.0) is not None
    _break_the_schedule(kind, module)
    consumer = app.start_consumer("-p", "-w", "1", "-s", "0.2")
    assert wait_for(lambda: "orphan" in app.executions(), timeout=30), logs(app)
    assert wait_for(lambda: "tick-ran" in app.executions(), timeout=30), logs(app)
    assert "moving due tasks failed" in logs(app)  # it is failing all along, and says so
    assert "stuck" not in app.executions()
    assert stop(consumer) == 0, logs(app)


def test_the_dead_letter_records_of_malformed_rows_are_in_the_documented_format(make_app, tmp_path):
    app = make_app(server_url("sqlite", tmp_path))
    huey = app.load().huey
    sql_rows(app.url)["schedule"](huey.storage)
    huey.storage.schedule.move_due(time.time())
    [raw] = huey.storage.store.items("dead-letter:").values()
    record = json.loads(raw)
    assert set(record) == {"id", "reason", "time", "task", "task_id", "deliveries", "payload"}
    assert "priority" in record["reason"] and record["task"] is None
    [letter] = huey.dead_letters()
    assert letter["payload"] == b"bad priority" and letter["id"] == record["id"]
    assert huey.requeue_dead_letter(record["id"])  # an operator can put it back on the queue
    assert huey.storage.queue.peek() == [b"bad priority"]
