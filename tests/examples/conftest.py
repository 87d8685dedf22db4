"""Fixtures for the web examples' tests: examples/ importable, a fresh SQLite file per test, and
real `huey consume` processes for the example's tasks (stopped by the fixture)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.examples.support import EXAMPLES


@pytest.fixture
def huey_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """HUEY_URL for this test and the processes it starts: SQLite in tmp_path."""
    url = f"sqlite:///{tmp_path}/huey.db"
    monkeypatch.setenv("HUEY_URL", url)
    monkeypatch.delenv("HUEY_BACKEND", raising=False)
    return url


@pytest.fixture
def example(huey_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], object]]:
    """example("flask_app.app") imports that module of examples/ afresh (under HUEY_URL)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    imported: list[object] = []

    def load(module: str) -> object:
        package = module.split(".")[0]
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
        mod = __import__(module, fromlist=["*"])
        imported.append(mod)
        return mod

    yield load
    for mod in imported:
        huey = getattr(mod, "huey", None)
        if huey is not None and huey.storage_built:
            huey.storage.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """start(*argv) runs `python *argv` in examples/ with the test's environment; logs in
    tmp_path. Whatever is still running afterwards is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(*argv: str) -> subprocess.Popen[str]:
        log = open(tmp_path / f"proc-{len(started)}.log", "w+")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, *argv], cwd=EXAMPLES, stdout=log,
                                stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)  # fmt: skip
        proc.log = log  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.log.close()  # type: ignore[attr-defined]
