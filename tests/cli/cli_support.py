"""Helpers for CLI tests: a throw-away app module on disk and real `huey` subprocesses.

A uniquely named module (not conftest.py) so `from cli_support import ...` can never pick up
another directory's conftest when several test directories run in one pytest call.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"

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


@huey.periodic_task(crontab(minute="*"))
def tick():
    pass
'''


def require_redis() -> str:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("Redis is not running on 127.0.0.1:6379 (CI=true: these tests must run)")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return REDIS_URL


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

    _procs: list[subprocess.Popen]


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
