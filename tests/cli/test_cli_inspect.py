"""`huey enqueue`, `huey info`, `huey flush` and `huey events` driven through click's CliRunner.

The app uses the memory backend, imported in this process, so the commands (run in-process by
CliRunner) and the test see the same storage. `--watch` runs as a real process on SQLite.
"""

from __future__ import annotations

import datetime
import json
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from huey_core.cli import cli
from huey_core.protocols import Delivery
from tests.core.helpers import cli_runner

OWNER = "host-a:4242:Worker-3"


@pytest.fixture
def app(make_app, monkeypatch):
    app = make_app(None, "backend='memory'")
    app.load()
    monkeypatch.chdir(app.directory)
    return app


def run(*args: str, input: str | None = None):
    return cli_runner().invoke(cli, list(args), input=input)


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


# -- enqueue ------------------------------------------------------------------------------------


def test_enqueue_json_args_kwargs_delay_and_priority(app):
    huey = app.load().huey
    result = run("enqueue", app.import_path, "add", "1", "[2, 3]", "hello", '{"k": null}')
    assert result.exit_code == 0, result.output
    task_id = result.output.strip()
    (task,) = huey.pending()
    assert task.id == task_id and task.name == "add"
    assert task.args == (1, [2, 3], "hello", {"k": None}) and task.kwargs == {}
    huey.storage.queue.flush()

    result = run(
        "enqueue",
        app.import_path,
        f"{app.module}.add",
        "1",
        "--kwargs",
        '{"b": 2}',
        "--delay",
        "60",
        "--priority",
        "7",
    )
    assert result.exit_code == 0, result.output
    (task,) = huey.pending()
    assert task.args == (1,) and task.kwargs == {"b": 2} and task.priority == 7
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert 50 < (task.eta - now).total_seconds() <= 60


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["nosuchtask"], "no task named 'nosuchtask'"),
        (["add", "--kwargs", "{oops"], "--kwargs"),
        (["add", "--kwargs", "[1, 2]"], "must be a JSON object"),
        (["add", "--delay", "-1"], "--delay"),
        (["add", "--priority", "high"], "--priority"),
    ],
)
def test_enqueue_mistakes_are_one_line(app, args, fragment):
    one_line_error(run("enqueue", app.import_path, *args), fragment)
    assert app.load().huey.pending_count() == 0


def test_enqueued_task_runs_with_its_kwargs(app):
    from huey_core.consumer import Consumer

    huey = app.load().huey
    task_id = run("enqueue", app.import_path, "add", "--kwargs", '{"a": 40, "b": 2}').output
    consumer = Consumer(huey, workers=1, periodic=False)
    consumer.start()
    try:
        assert huey.result(task_id.strip(), blocking=True, timeout=10) == 42
    finally:
        consumer.stop()


# -- info ---------------------------------------------------------------------------------------


def test_info_shows_every_part(app):
    module = app.load()
    huey = module.huey
    module.add(1, 2)
    module.add(3, 4)
    huey.add_schedule(module.add.s(5, 6))
    delivery = huey.storage.queue.dequeue(OWNER, 30)  # in flight: leased by a "consumer"
    huey.process(Delivery(b"not a message", "x", 1))  # a dead letter
    huey.put_result("some-task-id", 42)  # a stored result
    huey.revoke_by_id("revoked-id")
    with huey.lock_task("nightly-report"):
        data = json.loads(run("info", app.import_path, "--json").output)
        text = run("info", app.import_path).output
    assert data["name"] == app.name and data["backend"]
    assert data["queued"] == 1 and data["scheduled"] == 1 and data["in_flight"] == 1
    assert data["dead_letters"] == 1 and data["results"] == 1 and data["revoked"] == 1
    assert data["locks"] == ["nightly-report"]
    (lease,) = data["leases"]
    assert lease["owner"] == OWNER and lease["task"] == "add" and lease["deliveries"] == 1
    assert lease["id"] == huey.deserialize_task(delivery.data).id
    assert 25 < lease["expires_in"] <= 30
    assert sorted(data["tasks"]) == sorted(
        f"{app.module}.{n}" for n in ("add", "fail", "sleepy", "tick")
    )
    (tick,) = data["periodic_tasks"]
    assert tick["task"] == "tick" and tick["schedule"] == "* * * * *"
    assert 0 < tick["next_run"] - time.time() <= 61

    for line in (
        "queued: 1",
        "scheduled: 1",
        "in flight: 1",
        "dead letters: 1",
        "results: 1",
        "revoked: 1",
        "locks: nightly-report",
    ):
        assert line in text, (line, text)
    assert lease["age"] is None  # no consumer heartbeat has recorded when it started
    assert (
        f"add {lease['id']} leased by {OWNER} (just started, delivery 1, lease expires in" in text
    )
    assert "tick  * * * * *  next: " in text
    assert f"{app.module}.sleepy" in text


def test_info_watch_refreshes_until_interrupted(make_app, tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/watch.db")
    module = app.load()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "huey_core.cli",
            "info",
            app.import_path,
            "--watch",
            "--json",
            "--interval",
            "0.2",
        ],
        cwd=app.directory,
        env=app.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = json.loads(proc.stdout.readline())
        module.add(1, 2)
        later = first
        deadline = time.monotonic() + 15
        while later["queued"] == 0 and time.monotonic() < deadline:
            later = json.loads(proc.stdout.readline())
        assert first["queued"] == 0 and later["queued"] == 1
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_info_shows_how_long_a_task_has_been_running(app):
    from huey_core.consumer import Consumer

    module = app.load()
    huey = module.huey
    release = threading.Event()

    @huey.task()
    def hang():
        release.wait(30)

    hang()
    # The shortest lease: the heartbeat (every lease_timeout / 3) records the start in 0.33 s.
    consumer = Consumer(huey, workers=1, periodic=False, lease_timeout=1.0)
    consumer.start()
    try:
        deadline = time.monotonic() + 10
        lease = None
        while time.monotonic() < deadline:
            leases = json.loads(run("info", app.import_path, "--json").output)["leases"]
            if leases and leases[0]["age"] is not None and leases[0]["age"] >= 0.3:
                lease = leases[0]
                break
            time.sleep(0.05)
        assert lease is not None, "huey info never showed the running task's age"
        assert lease["task"] == "hang" and lease["owner"].endswith(":Worker-1")
        assert lease["age"] < 30 and abs(lease["started"] + lease["age"] - time.time()) < 5
        assert "hang" in run("info", app.import_path).output
        assert huey.result_count() == 0  # the record is bookkeeping, not a result
        text = run("info", app.import_path).output
        assert re.search(r"hang \S+ leased by \S+:Worker-1 \(running \d+ s, delivery 1", text), text
    finally:
        release.set()
        consumer.stop()


# -- flush --------------------------------------------------------------------------------------


def _fill(module):
    huey = module.huey
    module.add(1, 2)
    huey.add_schedule(module.add.s(5, 6))
    huey.process(Delivery(b"not a message", "x", 1))
    huey.put_result("some-task-id", 42)
    huey.revoke_by_id("revoked-id")
    huey.lock_task("report").acquire()
    return huey


def _counts(huey):
    store = huey.storage.store
    return {
        "queue": huey.storage.queue.size(),
        "schedule": huey.storage.schedule.size(),
        "results": int(store.exists("some-task-id")),
        "dead_letters": len(huey.dead_letters()),
        "revoked": int(store.exists("r:revoked-id")),
        "locks": int(huey.is_locked("report")),
    }


def test_flush_asks_first_and_no_keeps_everything(app):
    huey = _fill(app.load())
    result = run("flush", app.import_path, input="n\n")
    assert result.exit_code == 1 and "Delete everything stored" in result.output
    assert app.name in result.output
    assert set(_counts(huey).values()) == {1}
    result = run("flush", app.import_path, input="y\n")
    assert result.exit_code == 0, result.output
    assert set(_counts(huey).values()) == {0}


@pytest.mark.parametrize(
    "part", ["queue", "schedule", "results", "dead-letters", "locks", "revoked"]
)
def test_flush_one_part_keeps_the_others(app, part):
    huey = _fill(app.load())
    result = run("flush", app.import_path, f"--{part}", "--yes")
    assert result.exit_code == 0, result.output
    key = part.replace("-", "_")
    assert f"{part.replace('-', ' ')}: 1 deleted" in result.output
    counts = _counts(huey)
    assert counts.pop(key) == 0
    assert set(counts.values()) == {1}, counts


def test_flush_several_parts_with_a_prompt(app):
    huey = _fill(app.load())
    result = run("flush", app.import_path, "--results", "--dead-letters", input="y\n")
    assert result.exit_code == 0
    assert "Delete results, dead letters of" in result.output
    counts = _counts(huey)
    assert counts["results"] == counts["dead_letters"] == 0 and counts["queue"] == 1


# -- events (in-process: a thread emits while the command listens) -------------------------------


def _events_while_emitting(app, *args: str):
    """Run `huey events` (which must stop by itself via --limit) while a thread emits a mix."""
    module = app.load()
    huey = module.huey
    stop = threading.Event()

    def produce():
        while not stop.is_set():
            task = module.add.s(1, 2)
            huey.emit("enqueued", task)
            huey.emit("started", task)
            huey.emit("finished", task, duration=0.25)
            huey.emit(
                "error",
                module.fail.s("x"),
                error=True,
                traceback="Traceback ...\nValueError: x",
                duration=0.5,
                message="ValueError('x')",
            )
            huey.storage.events.emit(b"not json")
            time.sleep(0.02)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        return run("events", app.import_path, *args)
    finally:
        stop.set()
        thread.join(5)


def test_events_prints_json_lines(app):
    result = _events_while_emitting(app, "--limit", "12")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 12
    assert "consumers elsewhere are not shown" in result.stderr  # the memory backend's limit
    events = [json.loads(line) for line in lines if line != "not json"]
    assert {e["status"] for e in events} <= {"enqueued", "started", "finished", "error"}
    assert all({"status", "id", "task", "timestamp", "consumer"} <= set(e) for e in events)


def test_events_status_and_task_filters(app):
    result = _events_while_emitting(
        app, "--status", "FINISHED", "--status", "error", "--task", "add", "--limit", "3"
    )
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 3 and all(
        e["status"] == "finished" and e["task"] == "add" for e in events
    )
    result = _events_while_emitting(app, "--task", f"{app.module}.fail", "--limit", "2")
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["error"] * 2


def test_events_pretty(app):
    result = _events_while_emitting(
        app, "--pretty", "--status", "finished", "--status", "error", "--limit", "4"
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    finished = next(line for line in lines if "finished" in line)
    error = next(line for line in lines if " error " in line)
    assert " add " in finished and "0.250s" in finished and "{" not in finished
    assert " fail " in error and "message=ValueError('x')" in error and "0.500s" in error


def test_events_rejects_an_unknown_status(app):
    one_line_error(run("events", app.import_path, "--status", "done"), "--status")


def test_url_option_points_every_command_at_another_backend(app, tmp_path):
    url = f"sqlite:///{tmp_path}/other.db"
    result = run("enqueue", app.import_path, "add", "1", "2", "--url", url)
    assert result.exit_code == 0, result.stderr
    data = json.loads(run("info", app.import_path, "--url", url, "--json").output)
    assert "other.db" in data["backend"] and data["queued"] == 1
    assert run("flush", app.import_path, "--queue", "-y", "--url", url).exit_code == 0
    assert json.loads(run("info", app.import_path, "--url", url, "--json").output)["queued"] == 0
    bad = run("info", app.import_path, "--backend", "nosuch")
    one_line_error(bad, "unknown backend 'nosuch'")
