"""A real huey 3.5 application, run under huey 3.5.4 and, with only its imports rewritten, here.

The application is three things a huey user has: a tasks module (plain tasks, a pipeline, a
map, retries, a task lock, a context task, a periodic task, signal handlers), its own pytest
tests (immediate mode, as huey's docs recommend), and its consumer command line,
`huey_consumer tasks.huey -w 2 -k thread`. The port is a text substitution of `from huey` by
`from huey_core` and nothing else; the test checks that this is the whole diff, then runs the
same scenario against a consumer of each kind and asserts the same results, the same signals,
and the same verdict from the app's own tests.

Storage is SqliteHuey(filename=...) and RedisHuey(host=..., port=...), huey's own classes.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from huey_core.testing.apps import App, stop, wait_for
from huey_redis.testing import REDIS_URL, require_server

pytest.importorskip("huey", minversion="3.5")

pytestmark = pytest.mark.slow

TASKS = '''
"""tasks.py of a small huey 3.5 application."""
import os
from pathlib import Path

from huey import RedisHuey, SqliteHuey, crontab
from huey.signals import SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_LOCKED, SIGNAL_RETRYING

MARKERS = Path(os.environ["TEST_MARKERS"])
if os.environ.get("TEST_APP_STORAGE") == "redis":
    huey = RedisHuey(os.environ["TEST_HUEY_NAME"], host="127.0.0.1", port=6379)
else:
    huey = SqliteHuey(os.environ["TEST_HUEY_NAME"], filename=str(MARKERS / "app.db"))


def note(filename, line):
    with open(MARKERS / filename, "a") as f:
        f.write(line + "\\n")


@huey.task()
def add(a, b):
    return a + b


@huey.task()
def multiply(a, b):
    return a * b


@huey.task(retries=2)
def flaky(key):
    path = MARKERS / ("attempts-" + key)
    attempts = len(path.read_text().splitlines()) if path.exists() else 0
    note("attempts-" + key, "x")
    if attempts < 2:
        raise ValueError("attempt %d failed" % (attempts + 1))
    return "ok after %d" % (attempts + 1)


@huey.task(retries=1)
def broken():
    raise KeyError("always")


@huey.task()
@huey.lock_task("report")
def report(n):
    return "report %s" % n


@huey.task(context=True)
def whoami(task=None):
    return (task.name, task.retries)


@huey.periodic_task(crontab(minute="*"))
def heartbeat():
    note("heartbeat", "beat")


@huey.signal(SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_RETRYING, SIGNAL_LOCKED)
def record_signal(signal, task, exc=None):
    if task.name != "heartbeat":
        note("signals", "%s %s" % (signal, task.name))
'''

APP_TESTS = '''
"""test_app.py: the application's own tests, in immediate mode."""
import datetime

import pytest
from huey.exceptions import TaskException

import TASKS_MODULE as tasks


@pytest.fixture(autouse=True)
def immediate():
    tasks.huey.immediate = True
    yield
    tasks.huey.immediate = False


def test_add():
    assert tasks.add(1, 2)() == 3


def test_pipeline():
    pipe = tasks.add.s(1, 2).then(tasks.multiply, 3).then(tasks.add, 4)
    assert tasks.huey.enqueue(pipe).get() == [3, 9, 13]


def test_map():
    assert tasks.add.map([(1, 1), (2, 2)]).get() == [2, 4]


def test_retries_until_it_works():
    assert tasks.flaky("immediate")() == "ok after 3"


def test_failure_is_a_task_exception():
    with pytest.raises(TaskException) as info:
        tasks.broken().get()
    assert "KeyError" in info.value.metadata["error"]


def test_lock_task():
    with tasks.huey.lock_task("report"):
        with pytest.raises(TaskException) as info:
            tasks.report(1).get()
    assert "TaskLockedException" in info.value.metadata["error"]
    assert tasks.report(2).get() == "report 2"


def test_context_task():
    assert tasks.whoami()() == ("whoami", 0)


def test_heartbeat_schedule():
    check = tasks.heartbeat.task_class().validate_datetime
    assert check(datetime.datetime(2024, 1, 1, 3, 7))
    tasks.heartbeat.call_local()
'''


def port(source: str) -> str:
    """The port: `from huey...` becomes `from huey_core...`; nothing else changes."""
    return re.sub(r"^(\s*)from huey(?=[. ])", r"\1from huey_core", source, flags=re.MULTILINE)


def test_the_port_changes_only_import_lines():
    for source in (TASKS, APP_TESTS):
        before, after = source.splitlines(), port(source).splitlines()
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert changed and all(b.lstrip().startswith("from huey_core") for _, b in changed)
        assert "import huey" not in source.replace("from huey", "")  # no other way in


def _consumer_command(flavour: str, import_path: str) -> list[str]:
    args = [import_path, "-w", "2", "-k", "thread"]
    if flavour == "huey":  # this venv's huey_consumer script is ours; huey's is its module
        return [sys.executable, "-m", "huey.bin.huey_consumer", *args]
    return [str(Path(sys.executable).with_name("huey_consumer")), *args]


def _make_app(tmp_path: Path, flavour: str, storage: str) -> App:
    directory = tmp_path / flavour
    directory.mkdir()
    tasks = TASKS if flavour == "huey" else port(TASKS)
    app = App(directory, tasks, prefix="tasks", TEST_APP_STORAGE=storage)
    tests = APP_TESTS if flavour == "huey" else port(APP_TESTS)
    (directory / "test_app.py").write_text(tests.replace("TASKS_MODULE", app.module))
    return app


def _error(result) -> str:
    try:
        result.get(blocking=True, timeout=30)
    except Exception as exc:  # noqa: BLE001 - huey's and ours differ in class, not in metadata
        return exc.metadata["error"]
    raise AssertionError("the task did not fail")


def run_scenario(app: App, flavour: str) -> dict:
    """Enqueue the app's tasks from this process, run its consumer, collect what happened."""
    tasks = app.load()
    before_start = [tasks.add(1, 2), tasks.flaky("consumer"), tasks.broken()]
    log = open(app.directory / "consumer.log", "w+")  # noqa: SIM115 - closed by the OS at exit
    proc = subprocess.Popen(_consumer_command(flavour, app.import_path), cwd=app.directory,
                            env=app.env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    app.procs.append(proc)
    add, flaky, broken = before_start
    # A failed attempt stores its error until the retry's result replaces it (huey's
    # store_intermediate_errors): read flaky's result once its last attempt has completed.
    assert wait_for(lambda: "complete flaky" in _signals(app), timeout=30)
    outcome = {
        "add": add.get(blocking=True, timeout=30),
        "flaky": flaky.get(blocking=True, timeout=30),
        "broken": _error(broken),
        "pipeline": tasks.huey.enqueue(
            tasks.add.s(1, 2).then(tasks.multiply, 3).then(tasks.add, 4)
        ).get(blocking=True, timeout=30),
        "map": tasks.add.map([(1, 1), (2, 2), (3, 3)]).get(blocking=True, timeout=30),
        "scheduled": tasks.add.schedule((5, 5), delay=1).get(blocking=True, timeout=30),
        "context": tasks.whoami().get(blocking=True, timeout=30),
    }
    with tasks.huey.lock_task("report"):  # held by this process: the consumer cannot take it
        outcome["locked"] = _error(tasks.report(1))
    outcome["report"] = tasks.report(2).get(blocking=True, timeout=30)
    outcome["heartbeat"] = wait_for(lambda: app.marker("heartbeat").exists(), timeout=30)
    time.sleep(0.5)  # signal handlers run after results are stored
    outcome["exit"] = stop(proc)
    outcome["signals"] = collections.Counter(_signals(app).splitlines())
    return outcome


def _signals(app: App) -> str:
    path = app.marker("signals")
    return path.read_text() if path.exists() else ""


def _app_tests(app: App) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_app.py"],
        cwd=app.directory, env={**app.env, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


EXPECTED = {
    "add": 3,
    "flaky": "ok after 3",
    "broken": "KeyError('always')",
    "pipeline": [3, 9, 13],
    "map": [2, 4, 6],
    "scheduled": 10,
    "context": ("whoami", 0),
    "locked": "TaskLockedException('unable to acquire lock report')",
    "report": "report 2",
    "heartbeat": True,
    "exit": 0,
}


@pytest.mark.parametrize("storage", ["sqlite", "redis"])
def test_a_huey_app_runs_the_same_after_changing_only_its_imports(storage, tmp_path):
    if storage == "redis":
        require_server(REDIS_URL)
    outcomes, verdicts = {}, {}
    for flavour in ("huey", "ported"):
        app = _make_app(tmp_path, flavour, storage)
        try:
            outcomes[flavour] = run_scenario(app, flavour)
            verdicts[flavour] = _app_tests(app)
        finally:
            app.close()
            if storage == "redis":
                _delete_redis_keys(app.name)
    huey_run, ported_run = outcomes["huey"], outcomes["ported"]
    assert {k: huey_run[k] for k in EXPECTED} == EXPECTED
    assert ported_run == huey_run
    for flavour, verdict in verdicts.items():
        assert verdict.returncode == 0, f"{flavour}: {verdict.stdout}{verdict.stderr}"
        assert "8 passed" in verdict.stdout


def _delete_redis_keys(name: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"*{name}*", count=1000):
        client.delete(key)
    client.close()
