"""End-to-end helpers: an application module on disk and real `huey` processes running it.

For tests that must see what users see: a consumer started as `huey consume`, killed, signalled,
restarted; `huey info` or `huey events` run as commands. A backend author can run their backend
under real consumers the same way:

    from huey_core.testing.apps import App, stop

    SOURCE = '''
    import os
    from huey_core import Huey
    huey = Huey(os.environ["TEST_HUEY_NAME"], url=os.environ["TEST_URL"])

    @huey.task()
    def add(a, b):
        return a + b
    '''

    def test_a_real_consumer_runs_tasks(tmp_path):
        app = App(tmp_path, SOURCE, TEST_URL="myscheme://localhost")
        try:
            result = app.load().add(1, 2)     # enqueued from this process
            app.start_consumer("-w", "2")     # run by `huey consume` in another one
            assert result.get(blocking=True, timeout=10) == 3
            assert stop(app.procs[0]) == 0    # SIGTERM: a clean stop
        finally:
            app.close()

The module gets a unique name in its own directory; `TEST_HUEY_NAME` holds a unique instance
name and `TEST_MARKERS` the directory, for tasks that leave marker files. Every process started
runs in its own session, so a signal a test sends reaches only the process it addresses, and
`close()` kills what is left.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import IO, Any

__all__ = ["App", "EventsProcess", "logs", "read_log", "stop", "wait_for"]

# What a test must not inherit from the shell that runs it: it would pick another backend.
_CLEARED = ("HUEY_BACKEND", "HUEY_URL", "HUEY_DEBUG")


class App:
    """An app module `<prefix>_<hex>.py` holding `source`, importable here and by subprocesses.

    `env` is what the module reads (besides TEST_HUEY_NAME and TEST_MARKERS); `load()` imports it
    in this process with that same environment, so `app.load().task(1)` enqueues exactly what
    the consumers see. `on_close` callables run at `close()`, after the processes are gone (to
    delete what the test stored on a shared server).
    """

    def __init__(self, directory: Path, source: str, prefix: str = "app", **env: str) -> None:
        self.directory = Path(directory)
        self.module = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        (self.directory / f"{self.module}.py").write_text(textwrap.dedent(source))
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", TEST_HUEY_NAME=self.name,
                        TEST_MARKERS=str(self.directory))  # fmt: skip
        for key in _CLEARED:
            self.env.pop(key, None)
        self.env.update(env)
        self.procs: list[subprocess.Popen[Any]] = []
        self.on_close: list[Callable[[], object]] = []
        self._loaded: ModuleType | None = None

    @property
    def import_path(self) -> str:
        return f"{self.module}.huey"

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> Any:
        """The module, imported in this process under the app's environment (once)."""
        if self._loaded is None:
            keys = [k for k in self.env if k.startswith("TEST_") or k in _CLEARED]
            saved = {k: os.environ.get(k) for k in (*keys, *_CLEARED)}
            for key in _CLEARED:
                os.environ.pop(key, None)
            os.environ.update({k: self.env[k] for k in keys})
            try:
                path = self.directory / f"{self.module}.py"
                spec = importlib.util.spec_from_file_location(self.module, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[self.module] = module
                spec.loader.exec_module(module)
                module.huey.storage  # noqa: B018 - built now, while the environment is set
            finally:
                _restore(saved)
            self._loaded = module
        return self._loaded

    @property
    def huey(self) -> Any:
        return self.load().huey

    def marker(self, name: str) -> Path:
        return self.directory / name

    def _popen(self, args: Iterable[str], **options: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "huey_core.cli", *args],
            cwd=self.directory,
            env=self.env,
            start_new_session=True,  # signals in tests reach only the process they address
            **options,
        )
        self.procs.append(proc)
        return proc

    def start_consumer(self, *args: str) -> subprocess.Popen[Any]:
        """`huey consume IMPORT_PATH *args`, as an operator runs it; output in `read_log(proc)`."""
        log = open(self.directory / f"consumer-{len(self.procs)}.log", "w+")  # noqa: SIM115
        proc = self._popen(["consume", self.import_path, *args], stdout=log,
                           stderr=subprocess.STDOUT)  # fmt: skip
        proc.log = log  # type: ignore[attr-defined]
        return proc

    def start_events(self, *args: str) -> EventsProcess:
        """`huey events IMPORT_PATH *args` in a subprocess, its stdout lines collected."""
        log = open(self.directory / f"events-{len(self.procs)}.err", "w+")  # noqa: SIM115
        proc = self._popen(["events", self.import_path, *args], stdout=subprocess.PIPE,
                           stderr=log, text=True)  # fmt: skip
        proc.log = log  # type: ignore[attr-defined]
        return EventsProcess(proc)

    def cli(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """Run `huey *args` to completion (extra environment in `env`)."""
        return subprocess.run(
            [sys.executable, "-m", "huey_core.cli", *args],
            cwd=self.directory,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def close(self) -> None:
        """Kill the processes still running, run `on_close`, close the app's storage."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
            log: IO[str] | None = getattr(proc, "log", None)
            if log is not None:
                log.close()
        for cleanup in self.on_close:
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - a private server may be gone already
                pass
        if self._loaded is not None:
            try:
                self._loaded.huey.storage.close()
            except Exception:  # noqa: BLE001 - cleanup after a failed test
                pass
            sys.modules.pop(self.module, None)


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class EventsProcess:
    """A running `huey events`: `lines` grows as it prints; `wait_for_line` waits with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
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

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str | None:
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
        return read_log(self.proc)


def read_log(proc: subprocess.Popen[Any]) -> str:
    """Everything a process started by App wrote to its log so far.

    Read through a file of its own: the process writes through a copy of `proc.log`'s file
    description, so moving that one's offset (seek) would move where the process writes next.
    """
    log: IO[str] = proc.log  # type: ignore[attr-defined]
    return Path(log.name).read_text(errors="replace")


def logs(app: App) -> str:
    """Every consumer log of `app`, for an assertion message."""
    return "\n".join(
        f"--- consumer {p.pid} ---\n{read_log(p)}" for p in app.procs if hasattr(p, "log")
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stop(proc: subprocess.Popen[Any], timeout: float = 30.0) -> int:
    """SIGTERM and wait: the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)
