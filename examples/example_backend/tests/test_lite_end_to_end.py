"""huey-lite installed as a distribution: listed, selected by URL, and running tasks."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from huey_core import plugins
from huey_core.exceptions import ConfigurationError
from huey_lite.backend import LiteBackend

HUEY = str(Path(sys.executable).with_name("huey"))  # the console script next to this python


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HUEY_BACKEND", raising=False)
    monkeypatch.delenv("HUEY_URL", raising=False)
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()


def test_the_entry_point_registers_lite_by_name_and_scheme(tmp_path: Path) -> None:
    info = plugins.backends()["lite"]
    assert (info.distribution, info.schemes) == ("huey-lite", ("lite",))
    assert info.factory == "huey_lite.backend:LiteBackend"
    backend = plugins.create_backend(
        "app", url=f"lite:///{tmp_path / 'app.db'}", poll_interval=0.01
    )
    try:
        assert isinstance(backend, LiteBackend)
        backend.queue.enqueue(b"job")
        assert backend.queue.peek() == [b"job"]
        assert (tmp_path / "app.db").exists()
    finally:
        backend.close()
    with pytest.raises(ConfigurationError, match="backend .lite. refused its options"):
        plugins.create_backend("app", url=f"lite:///{tmp_path / 'app.db'}", pol_interval=0.01)


def test_without_a_url_lite_uses_huey_lite_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = plugins.create_backend("app", backend="lite")
    try:
        backend.store.put("k", b"v")
        assert backend.describe() == f"LiteBackend(lite:///{tmp_path / 'huey-lite.db'})"
    finally:
        backend.close()
    assert (tmp_path / "huey-lite.db").exists()


def huey(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUEY, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_a_url_of_another_scheme_is_refused_in_one_line_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as refused:
        plugins.create_backend("app", backend="lite", url="lyte://app:s3cret@host/huey.db")
    message = str(refused.value)
    assert "backend 'lite'" in message and "lite://" in message and "'lyte'" in message
    assert "s3cret" not in message and "\n" not in message


def test_huey_backends_lists_lite_with_its_distribution() -> None:
    listed = huey("backends")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith("lite "))
    assert "huey-lite 0.1.0" in line and "lite://" in line


def test_huey_lite_vacuum_command(tmp_path: Path) -> None:
    db = tmp_path / "huey.db"
    sqlite3.connect(db).close()
    done = huey("lite", "vacuum", str(db))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"vacuumed {db}\n"


APP = """
from huey_core import Huey

huey = Huey("liteapp", url="lite:///{db}")


@huey.task()
def add(a, b):
    return a + b
"""


def test_huey_consume_runs_tasks_on_lite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "app.py").write_text(APP.format(db=tmp_path / "lite.db"))
    monkeypatch.syspath_prepend(str(tmp_path))  # this process plays the producer
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    import app  # type: ignore[import-not-found]

    try:
        result = app.add(2, 3)
        consumer = subprocess.Popen(
            [HUEY, "consume", "app.huey", "-w", "2", "-d", "0.05"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert result.get(blocking=True, timeout=20) == 5
        finally:
            consumer.terminate()
            output = consumer.communicate(timeout=30)[0]
        assert consumer.returncode == 0, output
        assert f"LiteBackend(lite:///{tmp_path / 'lite.db'})" in output
    finally:
        sys.modules.pop("app", None)
