"""Events: JSON fields (docs/events.md), who emits what, and that events never break tasks."""

from __future__ import annotations

import datetime
import json
import logging
import time

import pytest

from huey_core import Huey
from huey_core.events import encode_event
from tests.core.helpers import collect_events, drain, make_huey

FIELDS = {
    "status",
    "id",
    "task",
    "retries",
    "retry_delay",
    "execute_time",
    "error",
    "traceback",
    "timestamp",
    "consumer",
    "huey",
}


def test_lifecycle_of_a_successful_task(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    events = collect_events(huey, lambda: (add(1, 2), drain(huey)), expected=3)
    assert [e["status"] for e in events] == ["enqueued", "started", "finished"]
    for event in events:
        assert FIELDS <= set(event)
        assert event["task"] == "add" and event["error"] is False and event["traceback"] is None
        assert event["huey"] == huey.name and ":" in event["consumer"]
        assert abs(event["timestamp"] - time.time()) < 60
    assert len({e["id"] for e in events}) == 1
    finished = events[2]
    assert finished["duration"] >= 0 and finished["worker"] == "test-worker"
    assert "worker" not in events[0]  # enqueued by the producer, not a worker


def test_error_retrying_and_final_error(huey: Huey) -> None:
    @huey.task(retries=1, retry_delay=30)
    def bad():
        raise ValueError("nope")

    events = collect_events(huey, lambda: (bad(), drain(huey)), expected=5)
    assert [e["status"] for e in events] == [
        "enqueued",
        "started",
        "error",
        "retrying",
        "scheduled",
    ]
    error = events[2]
    assert error["error"] is True and error["message"] == "ValueError('nope')"
    assert error["traceback"].startswith("Traceback (most recent call last):\n  File ")
    assert error["traceback"].endswith("ValueError: nope\n")
    assert error["duration"] >= 0 and error["retries"] == 1
    scheduled = events[4]
    assert scheduled["retries"] == 0 and scheduled["retry_delay"] == 30
    assert abs(scheduled["execute_time"] - (time.time() + 30)) < 5


def test_finished_and_error_events_say_how_long_the_task_ran(huey: Huey) -> None:
    @huey.task()
    def slow_failure():
        time.sleep(0.05)
        raise ValueError("late")

    @huey.task()
    def slow_success():
        time.sleep(0.05)

    start = time.monotonic()
    events = collect_events(huey, lambda: (slow_failure(), slow_success(), drain(huey)), expected=6)
    elapsed = time.monotonic() - start
    by_status = {e["status"]: e for e in events}
    assert set(by_status) == {"enqueued", "started", "error", "finished"}
    assert 0.05 <= by_status["error"]["duration"] <= elapsed
    assert 0.05 <= by_status["finished"]["duration"] <= elapsed


def test_task_log_records_carry_the_event_fields(
    huey: Huey, caplog: pytest.LogCaptureFixture
) -> None:
    """What `--log-format json` writes as id, task, status and duration (docs/consumer.md)."""

    @huey.task()
    def add(a, b):
        return a + b

    @huey.task(retries=1, retry_delay=30)
    def bad():
        raise ValueError("nope")

    @huey.task()
    def dropped():
        pass

    @huey.task()
    def stale():
        pass

    caplog.set_level(logging.INFO, logger="huey")
    ok, failed = add(1, 2), bad()
    revoked = dropped()
    revoked.revoke()
    expired = stale.s()
    expired.expires = datetime.datetime.now() - datetime.timedelta(minutes=1)
    huey.enqueue(expired)
    drain(huey)
    records = [r for r in caplog.records if hasattr(r, "task_status")]
    assert [(r.task_id, r.task_name, r.task_status) for r in records] == [
        (ok.id, "add", "started"),
        (ok.id, "add", "finished"),
        (failed.id, "bad", "started"),
        (failed.id, "bad", "error"),
        (failed.id, "bad", "retrying"),
        (revoked.id, "dropped", "revoked"),
        (expired.id, "stale", "expired"),
    ]
    timed = {r.task_status: r.task_duration for r in records if hasattr(r, "task_duration")}
    assert set(timed) == {"finished", "error"}
    assert all(isinstance(value, float) and value >= 0 for value in timed.values())


def test_scheduled_task_has_execute_time(huey: Huey) -> None:
    @huey.task()
    def later():
        pass

    eta = datetime.datetime.now() + datetime.timedelta(minutes=5)
    events = collect_events(huey, lambda: (later.schedule(eta=eta), drain(huey)), expected=2)
    assert [e["status"] for e in events] == ["enqueued", "scheduled"]
    assert abs(events[1]["execute_time"] - eta.timestamp()) < 1


def test_revoked_expired_and_locked(huey: Huey) -> None:
    @huey.task()
    def job():
        pass

    @huey.task()
    @huey.lock_task("busy")
    def locked():
        pass

    def scenario() -> None:
        result = job()
        result.revoke()  # producer-side "revoked"
        drain(huey)  # consumer-side "revoked" when it skips the task
        with huey.lock_task("busy"):
            locked()
            drain(huey)

    events = collect_events(huey, scenario, expected=6)
    assert [e["status"] for e in events] == [
        "enqueued",
        "revoked",
        "revoked",
        "enqueued",
        "started",
        "locked",
    ]

    @huey.task(expires=datetime.timedelta(seconds=-1))
    def stale():
        pass

    events = collect_events(huey, lambda: (stale(), drain(huey)), expected=2)
    assert [e["status"] for e in events] == ["enqueued", "expired"]


def test_events_false_disables_them() -> None:
    huey = make_huey(events=False)

    @huey.task()
    def job():
        return 1

    events = collect_events(huey, lambda: (job(), drain(huey)), expected=1, wait=0.3)
    assert events == []


class _BrokenEmitter:
    def emit(self, event: bytes) -> None:
        raise ConnectionError("event channel down")

    def listen(self):  # pragma: no cover - not used
        raise ConnectionError("event channel down")


def test_a_failing_emitter_never_breaks_a_task(huey: Huey) -> None:
    @huey.task()
    def job():
        return "fine"

    huey.storage.events = _BrokenEmitter()
    result = job()
    drain(huey)
    assert result.get() == "fine"
    huey.emit("recovered", None, note="nothing raises")


def test_emit_with_extra_fields_and_no_task(huey: Huey) -> None:
    events = collect_events(
        huey, lambda: huey.emit("recovered", None, count=3, worker="w9"), expected=1
    )
    (event,) = events
    assert event["status"] == "recovered" and event["id"] is None and event["task"] is None
    assert event["count"] == 3 and event["worker"] == "w9"


def test_encode_event_is_compact_json() -> None:
    data = encode_event({"status": "x", "when": datetime.datetime(2024, 1, 1)})
    assert json.loads(data) == {"status": "x", "when": "2024-01-01 00:00:00"}
