"""Helpers for the reliability suite: a throw-away app module on disk, `huey` CLI subprocesses,
the backends under test (shared loopback servers under unique names, private servers on spare
ports) and the execution log every task writes.

Executions are counted outside the backend under test: each task appends one line
("<id> <pid>") to a file with a single O_APPEND write, which concurrent processes never
interleave on a local filesystem.
"""

from __future__ import annotations

import collections
import glob
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from huey_sql.testing import MYSQL_URL, POSTGRES_URL, drop_prefix, require_database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "backends"))
from redis_support import (  # noqa: E402
    REDIS_URL,
    RedisServer,
    delete_instance_keys,
    free_ports,
    port_free,
    require_binaries,
    require_server,
    unavailable,
)

KINDS = ("redis", "postgresql", "mysql", "sqlite")

APP_SOURCE = """
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


@huey.task()
def die():
    os._exit(3)  # takes the worker process with it, before any ack


if _env.get("TEST_CLOCK_EPOCH"):
    # A test clock for the consumer: one real second is SPEED seconds, from a shared epoch, so
    # every consumer process agrees on the minute and a minute passes in 60/SPEED real seconds.
    import huey_core.consumer as _consumer

    _EPOCH = float(_env["TEST_CLOCK_EPOCH"])
    _SPEED = float(_env["TEST_CLOCK_SPEED"])

    def fake_time():
        return _EPOCH + (time.time() - _EPOCH) * _SPEED

    class _Clock:
        def __getattr__(self, name):
            return getattr(time, name)

        def time(self):
            return fake_time()

    _consumer.time = _Clock()

    @huey.periodic_task(crontab(minute="*"))
    def tick():
        _append(f"tick-ran {os.getpid()}\\n")

    @huey.signal("enqueued")
    def _on_enqueued(signal, task, *args):
        # The scheduler enqueues a minute's periodic tasks at the start of that minute, far
        # from the next boundary, so the clock read here names the minute.
        if task.name == "tick":
            _append(f"tick-enqueued {int(fake_time() // 60)} {os.getpid()}\\n")
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


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a spare loopback port (run as the postgres user when
    the tests run as root, as PostgreSQL refuses root)."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins or (os.geteuid() == 0 and shutil.which("runuser") is None):
            unavailable("needs PostgreSQL server binaries (and runuser when run as root)")
        self.bindir = os.path.dirname(bins[-1])
        self.port = free_ports(1)[0]
        # Outside pytest's 0700 temp root, so the postgres user can reach its data directory.
        self.base = Path(tempfile.mkdtemp(prefix="huey-rel-pg-"))
        os.chmod(self.base, 0o755)
        self.data = self.base / "data"
        self.log = self.base / "server.log"

    def url(self, password: str = "") -> str:
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*runas, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
        self._run(f"{self.bindir}/initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200")  # fmt: skip
        self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.log),
                  "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.base, ignore_errors=True)


# -- the app ------------------------------------------------------------------------------------


class App:
    """An app module in its own directory, importable here and by `huey` subprocesses.

    `env` holds what the module reads; `load()` imports it in this process with the same
    environment, so `app.load().record(1)` enqueues exactly what the consumers will see.
    """

    def __init__(self, directory: Path, url: str, **env: str) -> None:
        self.directory = directory
        self.module = f"relapp_{uuid.uuid4().hex[:10]}"
        self.name = f"rel-{uuid.uuid4().hex[:10]}"
        self.url = url
        self.sql_server = not url.startswith(("redis", "sqlite"))
        self.prefix = f"hr{uuid.uuid4().hex[:8]}_" if url.startswith(("postgres", "mysql")) else ""
        self.runs = directory / "runs.txt"
        (directory / f"{self.module}.py").write_text(textwrap.dedent(APP_SOURCE))
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", TEST_HUEY_NAME=self.name, TEST_URL=url,
                        TEST_RUNS=str(self.runs), TEST_MARKERS=str(directory),
                        TEST_PREFIX=self.prefix)  # fmt: skip
        for key in ("HUEY_BACKEND", "HUEY_URL", "HUEY_DEBUG"):
            self.env.pop(key, None)
        self.env.update(env)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._loaded: Any = None

    @property
    def import_path(self) -> str:
        return f"{self.module}.huey"

    def load(self) -> Any:
        if self._loaded is None:
            keys = [k for k in self.env if k.startswith("TEST_")]
            saved = {k: os.environ.get(k) for k in keys}
            os.environ.update({k: self.env[k] for k in keys})
            try:
                spec = importlib.util.spec_from_file_location(
                    self.module, self.directory / f"{self.module}.py"
                )
                module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                sys.modules[self.module] = module
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
            self._loaded = module
        return self._loaded

    @property
    def huey(self) -> Any:
        return self.load().huey

    def start_consumer(self, *args: str) -> subprocess.Popen[bytes]:
        """`huey consume IMPORT_PATH *args`, as an operator runs it, in its own session."""
        log = open(self.directory / f"consumer-{len(self.procs)}.log", "w+")
        proc = subprocess.Popen(
            [sys.executable, "-m", "huey_core.cli", "consume", self.import_path, *args],
            cwd=self.directory,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def cli(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "huey_core.cli", *args],
            cwd=self.directory,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def marker(self, name: str) -> Path:
        return self.directory / name

    def executions(self) -> collections.Counter[str]:
        """How many times each id was executed, from the execution log."""
        if not self.runs.exists():
            return collections.Counter()
        return collections.Counter(line.split()[0] for line in self.runs.read_text().splitlines())

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
            proc.log.close()  # type: ignore[attr-defined]
        if self._loaded is not None:
            try:
                self._loaded.huey.storage.close()
            except Exception:  # noqa: BLE001 - cleanup after a failed test
                pass
            sys.modules.pop(self.module, None)
        try:
            if self.url.startswith("redis"):
                import redis

                client = redis.Redis.from_url(self.url, socket_connect_timeout=2)
                try:
                    delete_instance_keys(client, self.name)
                finally:
                    client.close()
            elif self.prefix:
                drop_prefix(self.url, self.prefix)
        except Exception:  # noqa: BLE001 - a private server may be gone already
            pass


def read_log(proc: subprocess.Popen[bytes]) -> str:
    proc.log.flush()  # type: ignore[attr-defined]
    proc.log.seek(0)  # type: ignore[attr-defined]
    return proc.log.read()  # type: ignore[attr-defined]


def logs(app: App) -> str:
    return "\n".join(f"--- consumer {p.pid} ---\n{read_log(p)}" for p in app.procs)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def enqueue_records(app: App, ids: range, threads: int = 4) -> None:
    """Enqueue record(i) for every i, from a few threads (the backends are thread-safe)."""
    from concurrent.futures import ThreadPoolExecutor

    module = app.load()
    chunks = [ids[n::threads] for n in range(threads)]

    def put(chunk: range) -> None:
        for i in chunk:
            module.record(i)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, chunks))


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM and wait: the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


@pytest.fixture
def make_app(tmp_path: Path):
    """make_app(url, **env) -> App; its consumers are killed and its data removed afterwards."""
    apps: list[App] = []

    def make(url: str, **env: str) -> App:
        directory = tmp_path / f"app{len(apps)}"
        directory.mkdir()
        app = App(directory, url, **env)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


__all__ = [
    "KINDS", "App", "PrivatePostgres", "PrivateRedis", "enqueue_records", "logs", "make_app",
    "port_free", "read_log", "require_redis", "server_url", "stop", "unavailable", "wait_for",
]  # fmt: skip
