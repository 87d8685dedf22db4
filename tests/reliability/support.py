"""Helpers for the reliability suite: the app every test runs under real `huey consume`
processes (huey_core.testing.apps.App), the backends under test (shared loopback servers under
unique names, private servers on spare ports) and the execution log every task writes.

Executions are counted outside the backend under test: each task appends one line
("<id> <pid>") to a file with a single O_APPEND write, which concurrent processes never
interleave on a local filesystem.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from huey_core.testing import apps
from huey_core.testing.apps import logs, read_log, stop
from huey_redis.testing import (
    REDIS_URL,
    RedisServer,
    delete_instance_keys,
    free_ports,
    port_free,
    require_binaries,
    require_server,
    unavailable,
)
from huey_sql.testing import MYSQL_URL, POSTGRES_URL, PrivatePostgres, drop_prefix, require_database

__all__ = [
    "KINDS", "App", "PrivatePostgres", "PrivateRedis", "enqueue_records", "logs", "make_app",
    "port_free", "read_log", "require_redis", "server_url", "stop", "unavailable", "wait_for",
]  # fmt: skip

KINDS = ("redis", "postgresql", "mysql", "sqlite")

APP_SOURCE = """
import calendar
import os
import time

from huey_core import Huey, crontab

_env = os.environ
_options = {}
if _env.get("TEST_PREFIX"):
    _options["table_prefix"] = _env["TEST_PREFIX"]
if _env.get("TEST_SECRET"):
    _options["secret"] = _env["TEST_SECRET"]
if _env.get("TEST_LEASE"):
    _options["lease_timeout"] = float(_env["TEST_LEASE"])
if _env.get("TEST_MAX_DELIVERIES"):
    _options["max_deliveries"] = int(_env["TEST_MAX_DELIVERIES"])
if _env.get("TEST_CLUSTER"):
    _options["cluster"] = True
if _env.get("TEST_LEAN"):  # the drain tests count executions in a file, not in results
    _options.update(results=False, events=False)

huey = Huey(_env["TEST_HUEY_NAME"], url=_env["TEST_URL"], **_options)
RUNS = _env["TEST_RUNS"]
MARKERS = _env["TEST_MARKERS"]


def _append(line):
    # One write with O_APPEND: lines from concurrent processes never interleave.
    fd = os.open(RUNS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _touch(name):
    with open(os.path.join(MARKERS, name), "w") as f:
        f.write(str(os.getpid()))


@huey.task()
def record(i):
    _append(f"{i} {os.getpid()}\\n")
    return i


@huey.task()
def sleepy(seconds, marker):
    _touch(marker + ".started")
    time.sleep(seconds)
    _touch(marker + ".done")
    _append(f"{marker} {os.getpid()}\\n")
    return os.getpid()


@huey.task(timeout=2)
def nap(seconds, marker):
    _touch(marker + ".started")
    time.sleep(seconds)  # one blocking call: only a signal can cut it short
    _append(f"{marker} {os.getpid()}\\n")
    return os.getpid()


@huey.task()
def blob(size):
    return b"x" * size


@huey.task()
def die():
    os._exit(3)  # takes the worker process with it, before any ack


class Doom(BaseException):  # a BaseException subclass of the application's own
    pass


def _explode(kind):
    import builtins

    raise (Doom if kind == "Doom" else getattr(builtins, kind))(f"{kind} while unpickling")


class Bomb:  # an argument whose unpickling raises `kind` (KeyboardInterrupt, ...)
    def __init__(self, kind):
        self.kind = kind

    def __reduce__(self):
        return (_explode, (self.kind,))


@huey.task(retries=1)
def raises(kind, marker):
    _append(f"{marker} {os.getpid()}\\n")
    _explode(kind)


@huey.task()
def hooked(marker):
    _append(f"{marker} {os.getpid()}\\n")
    return marker


@huey.pre_execute()
def _exit_before(task):
    if task.name == "hooked":
        raise SystemExit("a pre-execute hook called sys.exit()")


@huey.post_execute()
def _interrupt_after(task, value, exc):
    if task.name == "hooked":
        raise KeyboardInterrupt("raised by a post-execute hook")


@huey.signal("complete")
def _doom_on_complete(signal, task, *args):
    if task.name == "hooked":
        raise Doom("raised by a signal receiver")


if _env.get("TEST_CLOCK_EPOCH"):
    # A test clock for the consumer: one real second is SPEED seconds, from a shared epoch, so
    # every consumer process agrees on the minute and a minute passes in 60/SPEED real seconds.
    import huey_core.scheduler as _scheduler

    _EPOCH = float(_env["TEST_CLOCK_EPOCH"])
    _SPEED = float(_env["TEST_CLOCK_SPEED"])

    def fake_time():
        return _EPOCH + (time.time() - _EPOCH) * _SPEED

    class _Clock:
        def __getattr__(self, name):
            return getattr(time, name)

        def time(self):
            return fake_time()

    _scheduler.time = _Clock()

    @huey.periodic_task(crontab(minute="*"))
    def tick():
        _append(f"tick-ran {os.getpid()}\\n")

    _minute = [None]
    _enqueue_periodic = huey.enqueue_periodic

    def _enqueue_periodic_logged(now=None):
        # The minute the consumer enqueues for (the one its dedup key names): on a loaded
        # machine the clock may have moved on to the next minute by the time the signal runs.
        _minute[0] = calendar.timegm(now.utctimetuple()) // 60 if now is not None else None
        try:
            return _enqueue_periodic(now)
        finally:
            _minute[0] = None

    huey.enqueue_periodic = _enqueue_periodic_logged

    @huey.signal("enqueued")
    def _on_enqueued(signal, task, *args):
        if task.name == "tick":
            minute = _minute[0] if _minute[0] is not None else int(fake_time() // 60)
            _append(f"tick-enqueued {minute} {os.getpid()}\\n")
"""


# -- servers ------------------------------------------------------------------------------------


def require_redis(url: str = REDIS_URL) -> str:
    return require_server(url)


def server_url(kind: str, directory: Path) -> str:
    """The URL of a shared backend of `kind`; skips (or fails in CI) when it is down."""
    if kind == "redis":
        return require_redis()
    if kind == "postgresql":
        require_database(POSTGRES_URL)
        return POSTGRES_URL
    if kind == "mysql":
        require_database(MYSQL_URL)
        return MYSQL_URL
    if kind == "sqlite":
        return f"sqlite:///{directory}/huey.db"
    raise ValueError(kind)


class PrivateRedis(RedisServer):
    """A private redis-server on a spare loopback port, append-only with fsync always, so a
    restart keeps everything it acknowledged."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        require_binaries()
        super().__init__(free_ports(1)[0], workdir, "--appendonly", "yes",
                         "--appendfsync", "always", *extra)  # fmt: skip


# -- the app ------------------------------------------------------------------------------------


class App(apps.App):
    """The reliability app on `url`; `executions()` counts what its tasks recorded.

    On a shared SQL server it gets tables of its own (a unique table prefix); its data is
    removed when the test ends.
    """

    def __init__(self, directory: Path, url: str, **env: str) -> None:
        self.url = url
        self.prefix = f"hr{uuid.uuid4().hex[:8]}_" if url.startswith(("postgres", "mysql")) else ""
        self.runs = directory / "runs.txt"
        super().__init__(directory, APP_SOURCE, "relapp", TEST_URL=url, TEST_RUNS=str(self.runs),
                         TEST_PREFIX=self.prefix, **env)  # fmt: skip
        self.on_close.append(self._remove_data)

    def executions(self) -> collections.Counter[str]:
        """How many times each id was executed, from the execution log."""
        if not self.runs.exists():
            return collections.Counter()
        return collections.Counter(line.split()[0] for line in self.runs.read_text().splitlines())

    def _remove_data(self) -> None:
        if self.url.startswith("redis"):
            import redis

            client = redis.Redis.from_url(self.url, socket_connect_timeout=2)
            try:
                delete_instance_keys(client, self.name)
            finally:
                client.close()
        elif self.prefix:
            drop_prefix(self.url, self.prefix)


def wait_for(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05
) -> bool:
    return apps.wait_for(predicate, timeout, interval)


def enqueue_records(app: App, ids: range, threads: int = 4) -> None:
    """Enqueue record(i) for every i, from a few threads (the backends are thread-safe)."""
    module = app.load()
    chunks = [ids[n::threads] for n in range(threads)]

    def put(chunk: range) -> None:
        for i in chunk:
            module.record(i)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, chunks))


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """make_app(url, **env) -> App; its consumers are killed and its data removed afterwards."""
    made: list[App] = []

    def make(url: str, **env: str) -> App:
        directory = tmp_path / f"app{len(made)}"
        directory.mkdir()
        app = App(directory, url, **env)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()
