"""Helpers for CLI tests: a throw-away app module on disk and real `huey` subprocesses.

A uniquely named module (not conftest.py) so `from cli_support import ...` can never pick up
another directory's conftest when several test directories run in one pytest call.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

from huey_core.testing import require_port

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

APP_SOURCE = '''
import os
import time

from huey_core import Huey, crontab

huey = Huey(os.environ["TEST_HUEY_NAME"], {BACKEND})
MARKERS = os.environ.get("TEST_MARKERS", ".")


def _touch(name):
    with open(os.path.join(MARKERS, name), "w") as f:
        f.write(str(os.getpid()))


@huey.task()
def add(a, b):
    return a + b


@huey.task()
def sleepy(seconds, marker):
    _touch(marker + ".started")
    time.sleep(seconds)
    _touch(marker + ".done")
    return os.getpid()


@huey.task(retries=1)
def fail(message):
    raise ValueError(message)


@huey.periodic_task(crontab(minute="*"))
def tick():
    pass
'''


def require_redis() -> str:
    require_port("Redis", 6379)
    return REDIS_URL


def require_postgres() -> str:
    require_port("PostgreSQL", 5432)
    return POSTGRES_URL


class App:
    """An app module `<module>.py` in its own directory, importable here and by subprocesses."""

    def __init__(self, directory: Path, url: str | None, backend_kwargs: str = "") -> None:
        self.directory = directory
        self.module = f"app_{uuid.uuid4().hex[:10]}"
        self.name = f"cli-{uuid.uuid4().hex[:10]}"
        self.url = url
        path = directory / f"{self.module}.py"
        path.write_text(textwrap.dedent(APP_SOURCE).replace("{BACKEND}", backend_kwargs))
        self.env = dict(os.environ, TEST_HUEY_NAME=self.name, TEST_MARKERS=str(directory))
        self.env.pop("HUEY_BACKEND", None)
        if url:
            self.env["HUEY_URL"] = url
        else:
            self.env.pop("HUEY_URL", None)
        self.env["PYTHONUNBUFFERED"] = "1"
        self._loaded = None

    @property
    def import_path(self) -> str:
        return f"{self.module}.huey"

    def load(self):
        """Import the module in this process (same name and URL as the subprocesses see)."""
        if self._loaded is None:
            saved = {k: os.environ.get(k) for k in ("TEST_HUEY_NAME", "TEST_MARKERS", "HUEY_URL")}
            os.environ.update(TEST_HUEY_NAME=self.name, TEST_MARKERS=str(self.directory))
            if self.url:
                os.environ["HUEY_URL"] = self.url
            try:
                spec = importlib.util.spec_from_file_location(
                    self.module, self.directory / f"{self.module}.py"
                )
                module = importlib.util.module_from_spec(spec)
                sys.modules[self.module] = module
                spec.loader.exec_module(module)
                module.huey.storage  # noqa: B018 - built now, while HUEY_URL is set
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
            self._loaded = module
        return self._loaded

    def marker(self, name: str) -> Path:
        return self.directory / name

    def huey(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "huey_core.cli", *args],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=kwargs.pop("timeout", 60),
            **kwargs,
        )

    def start_consumer(self, *args: str) -> subprocess.Popen:
        log = open(self.directory / f"consumer-{uuid.uuid4().hex[:6]}.log", "w+")
        proc = subprocess.Popen(
            [sys.executable, "-m", "huey_core.cli", "consume", self.import_path, *args],
            cwd=self.directory,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # signals in tests reach only the consumer we address
        )
        proc.log = log  # type: ignore[attr-defined]
        self._procs.append(proc)
        return proc

    def start_events(self, *args: str) -> EventsProcess:
        """`huey events IMPORT_PATH *args` in a subprocess, its stdout lines collected."""
        log = open(self.directory / f"events-{uuid.uuid4().hex[:6]}.err", "w+")
        proc = subprocess.Popen(
            [sys.executable, "-m", "huey_core.cli", "events", self.import_path, *args],
            cwd=self.directory,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        proc.log = log  # type: ignore[attr-defined]
        self._procs.append(proc)
        return EventsProcess(proc)

    _procs: list[subprocess.Popen]


class EventsProcess:
    """A running `huey events`: `lines` grows as it prints; `wait_for_line` waits with a timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for_line(self, predicate, timeout: float = 15.0) -> str | None:
        """The first line (already printed or to come) for which predicate(line) is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cond.wait(min(left, 0.1))

    def stderr(self) -> str:
        log = self.proc.log  # type: ignore[attr-defined]
        log.flush()
        log.seek(0)
        return log.read()


def read_log(proc: subprocess.Popen) -> str:
    proc.log.flush()  # type: ignore[attr-defined]
    proc.log.seek(0)  # type: ignore[attr-defined]
    return proc.log.read()  # type: ignore[attr-defined]


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
