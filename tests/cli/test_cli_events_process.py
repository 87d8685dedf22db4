"""`huey events` in one process shows what a `huey consume` in another does, on every backend.

Each test runs a real consumer subprocess, two `huey events` subprocesses (raw JSON lines, and
--pretty with filters) and enqueues from the test process. Events may arrive a little late (an
emitter may batch), so every check waits for its line with a timeout instead of sleeping.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid

import pytest

from huey_core.testing import require_port
from huey_core.testing.apps import read_log

pytestmark = pytest.mark.slow

# docs/events.md: every event has at least these fields.
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
}
SECRET_IN_TASK_ERROR = "postgresql://bob:hunter2@db.example/x"


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def backend_url(request, tmp_path) -> tuple[str, str | None]:
    """(url, password in it or None) for a backend several processes share."""
    if request.param == "redis":
        require_port("Redis", 6379)
        return "redis://127.0.0.1:6379/0", None
    if request.param == "postgresql":
        # Trust authentication ignores the password, so a URL can carry one we then look for.
        require_port("PostgreSQL", 5432)
        url = "postgresql+psycopg://postgres:s3cretpw@127.0.0.1:5432/test"
        return url, "s3cretpw"
    return f"sqlite:///{tmp_path}/events.db", None


def _json(line: str) -> dict | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _subscribed(huey, *listeners) -> None:
    """Emit probe events until every listener printed one: its subscription is live."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        token = uuid.uuid4().hex
        huey.emit("recovered", None, probe=token)
        if all(
            listener.wait_for_line(lambda line, t=token: t in line, timeout=0.3)
            for listener in listeners
        ):
            return
    raise AssertionError(
        "huey events never printed a probe: " + " | ".join(x.stderr() for x in listeners)
    )


def _event(listener, status: str, task_id: str, nth: int = 1, timeout: float = 20.0) -> dict:
    """The nth event with this status and id that the listener printed (waits for it)."""
    found: list[dict] = []

    def match(line: str) -> bool:
        event = _json(line)
        if event and event.get("status") == status and event.get("id") == task_id:
            found.append(event)
        return len(found) >= nth

    line = listener.wait_for_line(match, timeout=timeout)
    assert line is not None, (status, task_id, listener.lines[-20:], listener.stderr())
    return found[nth - 1]


def test_events_of_a_consumer_in_another_process(make_app, backend_url):
    url, password = backend_url
    app = make_app(url)
    module = app.load()
    huey = module.huey
    raw = app.start_events()
    pretty = app.start_events(
        "--pretty", "--status", "error", "--status", "retrying", "--task", "fail"
    )
    _subscribed(huey, raw)  # the filtered listener is checked by what it prints below
    consumer = app.start_consumer("-n", "-w", "2", "-s", "0.2")
    ok = module.add(1, 2)
    bad = module.fail(f"cannot reach {SECRET_IN_TASK_ERROR}")
    consumer_id = f"{socket.gethostname()}:{consumer.pid}"

    enqueued = _event(raw, "enqueued", ok.id)
    started = _event(raw, "started", ok.id)
    finished = _event(raw, "finished", ok.id)
    for event in (enqueued, started, finished):
        assert FIELDS <= set(event), sorted(event)
        assert event["task"] == "add" and event["error"] is False and event["traceback"] is None
        assert event["execute_time"] is None and event["retries"] == 0
        assert abs(event["timestamp"] - time.time()) < 120
    assert enqueued["consumer"] != consumer_id  # the producer: this test process
    assert started["consumer"] == consumer_id and finished["consumer"] == consumer_id
    assert finished["duration"] >= 0 and finished["timestamp"] >= started["timestamp"]

    first_error = _event(raw, "error", bad.id)
    retrying = _event(raw, "retrying", bad.id)
    last_error = _event(raw, "error", bad.id, nth=2)
    for event in (first_error, last_error):
        assert FIELDS <= set(event) and event["error"] is True
        assert event["consumer"] == consumer_id and event["duration"] >= 0
        assert "ValueError" in event["traceback"] and "cannot reach" in event["traceback"]
    assert first_error["retries"] == 1 and last_error["retries"] == 0
    assert retrying["task"] == "fail"

    # --pretty with filters: only fail's error/retrying events, one readable line each.
    assert pretty.wait_for_line(lambda line: "retrying" in line and bad.id in line)
    assert pretty.wait_for_line(lambda line: "error" in line and "ValueError" in line)
    time.sleep(0.3)  # the raw listener already saw everything; let pretty catch up
    assert pretty.lines and all(
        bad.id in line and ("error" in line or "retrying" in line) for line in pretty.lines
    ), pretty.lines
    assert all(_json(line) is None for line in pretty.lines)

    # Passwords: neither the backend's nor one inside a task's error message is shown.
    output = "\n".join(raw.lines + pretty.lines)
    assert "hunter2" not in output and "bob:***@" in output
    info = app.cli("info", app.import_path)
    assert info.returncode == 0, info.stderr
    if password:
        assert password not in output and password not in info.stdout + info.stderr
        assert password not in read_log(consumer)

    # Ctrl-C or SIGTERM: the listeners stop cleanly.
    raw.proc.send_signal(signal.SIGINT)
    pretty.proc.send_signal(signal.SIGTERM)
    assert raw.proc.wait(10) == 0, raw.stderr()
    assert pretty.proc.wait(10) == 0, pretty.stderr()
    assert "Traceback" not in raw.stderr() + pretty.stderr()
    consumer.send_signal(signal.SIGTERM)
    assert consumer.wait(30) == 0, read_log(consumer)


def test_events_limit_exits_after_n_events(make_app, tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/limit.db")
    module = app.load()
    listener = app.start_events("--limit", "2", "--status", "enqueued")
    deadline = time.monotonic() + 20
    while listener.proc.poll() is None and time.monotonic() < deadline:
        module.add(1, 1)  # keep producing until the listener has seen two
        time.sleep(0.1)
    assert listener.proc.wait(5) == 0, listener.stderr()
    assert len(listener.lines) == 2
    assert all(_json(line)["status"] == "enqueued" for line in listener.lines)
