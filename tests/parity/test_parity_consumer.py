"""huey parity, the consumer: huey's consumer options on `huey consume`, `huey_consumer` and
`huey.create_consumer(...)`, run through real consumer processes (huey_core.testing.apps)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from huey_core import ConfigurationError, Huey, TaskException
from huey_core.testing.apps import App, logs, stop, wait_for
from huey_memory.backend import MemoryBackend
from huey_redis.testing import REDIS_URL, delete_instance_keys, require_server

SOURCE = """
import os
import threading
import time
import uuid

from gevent import monkey
from huey_core import Huey

# What a module imported by `huey consume -k greenlet` sees: gevent has patched socket already.
PATCHED_AT_IMPORT = monkey.is_module_patched("socket")

huey = Huey(os.environ["TEST_HUEY_NAME"], url=os.environ["TEST_URL"])
MARKERS = os.environ["TEST_MARKERS"]
_local = threading.local()


def _touch(name):
    # Written whole, then renamed: a test that sees the file can read the pid in it.
    path = os.path.join(MARKERS, name)
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)


@huey.task()
def whoami(i):
    # One token per worker thread (a replaced worker is a new thread) and process.
    if not hasattr(_local, "token"):
        _local.token = uuid.uuid4().hex
    return i, f"{os.getpid()}:{_local.token}"


@huey.task()
def hang_once(seconds):
    if not os.path.exists(os.path.join(MARKERS, "first-run")):
        _touch("first-run")
        time.sleep(seconds)
        return "slept"
    return "second run"


@huey.task()
def sleepy(seconds, marker):
    _touch(marker + ".started")
    time.sleep(seconds)
    _touch(marker + ".done")
    return seconds


@huey.task()
@huey.lock_task("nightly-report")
def report():
    return "report"


@huey.task(timeout=1)
def stuck():
    time.sleep(30)
    _touch("stuck.done")


@huey.task()
def nap(i):
    import gevent

    time.sleep(1)
    current = gevent.getcurrent()
    return i, isinstance(current, gevent.Greenlet), PATCHED_AT_IMPORT
"""


def sqlite_app(tmp_path: Path) -> App:
    return App(tmp_path, SOURCE, prefix="pcons", TEST_URL=f"sqlite:///{tmp_path}/huey.db")


def redis_app(tmp_path: Path) -> App:
    require_server(REDIS_URL)
    app = App(tmp_path, SOURCE, prefix="pcons", TEST_URL=REDIS_URL)
    app.on_close.append(lambda: delete_instance_keys(app.huey.storage.client, app.name))
    return app


@pytest.fixture
def app(tmp_path):
    app = sqlite_app(tmp_path)
    yield app
    app.close()


def huey_consumer(app: App, *args: str) -> subprocess.Popen:
    """The `huey_consumer` command a huey user runs, from the same environment."""
    script = Path(sys.executable).parent / "huey_consumer"
    log = open(app.directory / f"consumer-{len(app.procs)}.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen([str(script), app.import_path, *args], cwd=app.directory,
                            env=app.env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    proc.log = log  # type: ignore[attr-defined]
    app.procs.append(proc)
    return proc


# -- the options, as huey spells them ----------------------------------------------------------

HUEY_OPTIONS = {
    # huey's option -> the default `--help` shows right after its text
    "-f, --flush-locks": "[default: keep them]",
    "-L, --extra-locks NAMES": "[default: none]",
    "-M, --max-tasks COUNT": "[default: never]",
    "-t, --shutdown-timeout": "[default: 30.0",
    "-g, --graceful-signal [INT|TERM]": "[default: both stop gracefully]",
    "-c, --health-check-interval SECONDS": "[default: 1.0",
    "-C, --disable-health-check": "[default: replace them]",
    "-s, --scheduler-interval": "[default: 1.0",
    "-S, --simple": None,
    "-k, --worker-type [thread|process|greenlet]": "[default: thread]",
}


@pytest.mark.parametrize("command", ["huey consume", "huey_consumer"])
def test_help_lists_each_huey_option_with_its_default(command):
    script = Path(sys.executable).parent / command.split()[0]
    args = ["consume", "--help"] if command == "huey consume" else ["--help"]
    out = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for option, default in HUEY_OPTIONS.items():
        assert option in text, option
        after = text.split(option, 1)[1]
        if default:  # the first default shown after the option is its own
            assert after.find(default) == after.find("[default:") >= 0, (option, after[:300])


@pytest.mark.parametrize(
    "args,says",
    [
        (["-g", "HUP"], "--graceful-signal"),
        (["-M", "0"], "--max-tasks"),
        (["-s", "61"], "--scheduler-interval"),
        (["-s", "0"], "--scheduler-interval"),
        (["-c", "0"], "--health-check-interval"),
        (["-t", "-1"], "--shutdown-timeout"),
        (["-k", "fiber"], "--worker-type"),
    ],
)
def test_bad_consumer_options_fail_in_one_line_with_exit_2(app, args, says):
    out = app.cli("consume", app.import_path, *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], out.stderr


def test_create_consumer_takes_the_options_huey_passes(app):
    huey = app.huey
    # huey_consumer builds its consumer with exactly these keywords (ConsumerConfig.values).
    consumer = huey.create_consumer(workers=2, worker_type="thread", initial_delay=0.1,
                                    backoff=1.15, max_delay=10.0, check_worker_health=True,
                                    health_check_interval=10, scheduler_interval=1,
                                    periodic=True, flush_locks=False, extra_locks=None,
                                    max_tasks=None, shutdown_timeout=None,
                                    graceful_signal="INT")  # fmt: skip
    assert consumer.health_check_interval == 10.0
    assert consumer.shutdown_timeout == float("inf")  # huey's None: wait as long as it takes
    assert consumer.stops_at_once(signal.SIGTERM) and not consumer.stops_at_once(signal.SIGINT)
    term = huey.create_consumer(graceful_signal="TERM", extra_locks="a, b")
    assert term.stops_at_once(signal.SIGINT) and not term.stops_at_once(signal.SIGTERM)
    assert term.flush_locks and term.extra_locks == ("a", "b")
    default = huey.create_consumer()
    assert not default.stops_at_once(signal.SIGINT) and not default.stops_at_once(signal.SIGTERM)


@pytest.mark.parametrize(
    "options",
    [
        {"max_tasks": 0},
        {"graceful_signal": "HUP"},
        {"scheduler_interval": 61},
        {"health_check_interval": 0},
        {"worker_type": "fiber"},
    ],
)
def test_create_consumer_refuses_what_huey_refuses(options):
    with pytest.raises(ConfigurationError) as info:
        Huey("pcons-refuse", url="memory://").create_consumer(**options)
    assert "\n" not in str(info.value)


# -- flush locks --------------------------------------------------------------------------------


def test_flush_locks_releases_stale_locks_at_start_and_only_when_asked(app):
    huey = app.huey
    huey.lock_task("nightly-report").acquire()  # left behind by a consumer that was killed
    huey.lock_task("other").acquire()
    kept = app.start_consumer("-n")
    assert wait_for(lambda: "consumer ready" in logs(app)), logs(app)
    assert huey.is_locked("nightly-report") and huey.is_locked("other")
    assert stop(kept) == 0

    flushing = app.start_consumer("-n", "-f", "-L", "other")
    # the consumer logs the names once it has released them all (in no set order)
    assert wait_for(lambda: "released stale locks: nightly-report, other" in logs(app)), logs(app)
    assert not huey.is_locked("nightly-report") and not huey.is_locked("other")
    assert app.load().report().get(blocking=True, timeout=15) == "report"
    assert stop(flushing) == 0


# -- max tasks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "worker_type,extra",
    [("thread", ()), ("process", ()), ("process", ("-C",))],  # -C: replacing is not health
)
def test_max_tasks_replaces_the_worker_and_loses_nothing(app, worker_type, extra):
    module = app.load()
    results = [module.whoami(i) for i in range(10)]
    proc = app.start_consumer("-n", "-w", "1", "-k", worker_type, "-M", "3", *extra,
                              "-d", "0.01", "-m", "0.1")  # fmt: skip
    values = [r.get(blocking=True, timeout=30) for r in results]
    assert [i for i, _ in values] == list(range(10)), logs(app)
    workers = [token for _, token in values]
    # 10 tasks, 3 per worker: four workers in turn, none running more than 3.
    assert len(set(workers)) == 4, logs(app)
    assert max(workers.count(w) for w in set(workers)) == 3
    if worker_type == "process":
        assert len({w.split(":")[0] for w in workers}) == 4  # four processes
    queue = module.huey.storage.queue
    # The last task's ack may follow its result by a moment (it goes with the worker's next
    # claim, or as the worker leaves): nothing stays queued or leased.
    assert wait_for(lambda: queue.size() == 0 and queue.leases() == []), queue.leases()
    assert stop(proc) == 0, logs(app)


# -- shutdown: -t and -g -------------------------------------------------------------------------


def test_short_shutdown_timeout_releases_unfinished_tasks(app):
    module = app.load()
    module.sleepy(60, "stuck")
    proc = app.start_consumer("-n", "-t", "1", "-d", "0.01", "-m", "0.1")
    assert wait_for(lambda: app.marker("stuck.started").exists()), logs(app)
    t0 = time.monotonic()
    assert stop(proc) == 0
    assert time.monotonic() - t0 < 1 + 5, logs(app)
    assert module.huey.storage.queue.size() == 1  # released, runs again on the next consumer


@pytest.mark.parametrize("graceful,other", [("INT", signal.SIGTERM), ("TERM", signal.SIGINT)])
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_graceful_signal_finishes_tasks_and_the_other_signal_stops_at_once(
    app, graceful, other, worker_type
):
    module = app.load()
    finished = module.sleepy(1.5, "graceful")
    proc = app.start_consumer("-n", "-g", graceful, "-k", worker_type, "-d", "0.01", "-m", "0.1")
    assert wait_for(lambda: app.marker("graceful.started").exists()), logs(app)
    proc.send_signal(getattr(signal, f"SIG{graceful}"))
    assert proc.wait(30) == 0, logs(app)
    assert finished.get(blocking=True, timeout=5) == 1.5  # the running task finished

    module.sleepy(60, "cut")
    proc = app.start_consumer("-n", "-g", graceful, "-k", worker_type, "-d", "0.01", "-m", "0.1")
    assert wait_for(lambda: app.marker("cut.started").exists()), logs(app)
    t0 = time.monotonic()
    proc.send_signal(other)
    assert proc.wait(30) == 0, logs(app)
    assert time.monotonic() - t0 < 10, logs(app)  # not the 30 s shutdown timeout
    assert not app.marker("cut.done").exists()
    queue = module.huey.storage.queue
    assert queue.size() == 1 and queue.leases() == []  # released at once, not lost


# -- health check --------------------------------------------------------------------------------


def test_a_killed_worker_process_is_replaced_and_its_task_released_at_once(app):
    module = app.load()
    result = module.hang_once(60)
    # A 60 s lease: the task can only run again this soon if the dead worker's lease is released.
    proc = app.start_consumer("-n", "-k", "process", "-c", "0.2", "--lease-timeout", "60",
                              "-d", "0.01", "-m", "0.1")  # fmt: skip
    assert wait_for(lambda: app.marker("first-run").exists()), logs(app)
    child = int(app.marker("first-run").read_text())
    assert child != proc.pid
    os.kill(child, signal.SIGKILL)
    assert result.get(blocking=True, timeout=20) == "second run", logs(app)
    assert f"worker process {child} was killed by signal 9" in logs(app)
    assert stop(proc) == 0, logs(app)


def test_disabled_health_check_leaves_a_killed_worker_dead(app):
    module = app.load()
    result = module.hang_once(60)
    proc = app.start_consumer("-n", "-k", "process", "-C", "-c", "0.2", "--lease-timeout", "60",
                              "-d", "0.01", "-m", "0.1")  # fmt: skip
    assert wait_for(lambda: app.marker("first-run").exists()), logs(app)
    os.kill(int(app.marker("first-run").read_text()), signal.SIGKILL)
    time.sleep(3)  # fifteen health-check intervals, had it been on
    assert result.get() is None and "starting a new one" not in logs(app)
    assert stop(proc) == 0, logs(app)


class DeadlyQueue:
    """The memory queue, except that the first dequeue claims a message and then raises a
    BaseException: the worker thread dies holding a lease (as a greenlet killed mid-read does)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.blocking = inner.blocking
        self.priority = inner.priority
        self.armed = True

    def dequeue(self, owner, lease_timeout, wait=0.0):
        delivery = self._inner.dequeue(owner, lease_timeout, wait)
        if delivery is not None and self.armed:
            self.armed = False
            raise SystemExit("the worker dies with a message leased")
        return delivery

    def dequeue_many(self, owner, lease_timeout, n, wait=0.0):  # workers claim in batches
        batch = self._inner.dequeue_many(owner, lease_timeout, n, wait)
        if batch and self.armed:
            self.armed = False
            raise SystemExit("the worker dies with a message leased")
        return batch

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("health_check", [True, False])
def test_a_worker_thread_that_died_is_replaced_and_its_lease_released(health_check):
    backend = MemoryBackend("pcons-dead-thread")
    backend.queue = DeadlyQueue(backend.queue)
    huey = Huey("pcons-dead-thread", backend=backend, lease_timeout=60)

    @huey.task()
    def ping():
        return "pong"

    result = ping()
    consumer = huey.create_consumer(workers=1, health_check_interval=0.1, initial_delay=0.01,
                                    max_delay=0.1, check_worker_health=health_check)  # fmt: skip
    consumer.start()
    try:
        if health_check:
            # Long before the 60 s lease expires: the dead worker's lease was released.
            assert result.get(blocking=True, timeout=10) == "pong"
            # The supervisor counts the replacement just after releasing the lease.
            assert wait_for(lambda: consumer.replaced == 1), consumer.replaced
        else:
            time.sleep(1)
            assert result.get() is None and consumer.replaced == 0
            assert not consumer.worker_list[0].is_alive()
    finally:
        consumer.stop(timeout=5)


# -- greenlets ------------------------------------------------------------------------------------


# Redis only: on SQLite a greenlet waiting for the database lock blocks the others (docs/consumer.md).
@pytest.mark.parametrize("kind", ["redis"])
@pytest.mark.parametrize("command", ["huey consume", "huey_consumer"])
def test_greenlet_workers_run_sleeping_tasks_concurrently(tmp_path, kind, command):
    app = sqlite_app(tmp_path) if kind == "sqlite" else redis_app(tmp_path)
    # Not measured by `make test`'s coverage: its tracer is not told about gevent, and a patched
    # consumer under it was once seen not to stop within 30 s on a loaded CI machine.
    for key in [k for k in app.env if k.startswith("COVERAGE")]:
        del app.env[key]
    try:
        module = app.load()
        results = [module.nap(i) for i in range(20)]
        args = ("-n", "-k", "greenlet", "-w", "20", "-d", "0.05", "-m", "0.2")
        t0 = time.monotonic()
        proc = app.start_consumer(*args) if command == "huey consume" else huey_consumer(app, *args)
        values = [r.get(blocking=True, timeout=30) for r in results]
        elapsed = time.monotonic() - t0
        # 20 one-second naps on 20 greenlets: concurrent, so far less than 20 s (a generous
        # bound: this checks that greenlets yield, it is not a benchmark).
        assert elapsed < 12, (elapsed, logs(app))
        assert [v[0] for v in values] == list(range(20))
        assert all(in_greenlet for _, in_greenlet, _ in values)  # workers are greenlets
        assert all(patched for _, _, patched in values)  # patched before the app was imported
        assert "monkey-patching" not in logs(app)  # no warning: it was done right
        assert stop(proc) == 0, logs(app)
    finally:
        app.close()


def test_greenlet_workers_without_gevent_fail_in_one_line(app, tmp_path):
    hidden = tmp_path / "no-gevent" / "gevent"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('No module named gevent')\n")
    plain = App(tmp_path, "from huey_core import Huey\nhuey = Huey('x', url='memory://')\n")
    out = plain.cli("consume", plain.import_path, "-k", "greenlet",
                    PYTHONPATH=str(hidden.parent))  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "huey-core[gevent]"' in lines[0], out.stderr


def test_a_greenlet_task_timeout_interrupts_the_task(app):
    module = app.load()
    result = module.stuck()
    proc = app.start_consumer("-n", "-k", "greenlet", "-w", "2", "-d", "0.05", "-m", "0.2")
    t0 = time.monotonic()
    with pytest.raises(TaskException, match="TaskTimeout"):
        result.get(blocking=True, timeout=30)
    assert time.monotonic() - t0 < 15, "timeout=1 did not interrupt time.sleep(30)"
    assert not app.marker("stuck.done").exists()
    assert module.nap(1).get(blocking=True, timeout=15)[0] == 1  # the workers go on
    assert stop(proc) == 0, logs(app)
