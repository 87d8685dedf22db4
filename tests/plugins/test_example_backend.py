"""The example backend of docs/writing-backends.md passes the conformance suite: the doc is proven."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from huey_core.testing import BackendConformance
from huey_lite import plugin
from huey_lite.backend import LiteBackend

from huey_core import plugins
from huey_core.exceptions import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SRC = ROOT / "examples" / "example_backend" / "src"


class TestLiteBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path):
        url = f"lite:///{tmp_path / 'huey.db'}"
        yield lambda name: LiteBackend(name, url)


def test_example_plugin_registers_the_lite_backend(tmp_path: Path) -> None:
    plugins.register_plugin(plugin, name="huey-lite")
    assert plugins.backends()["lite"].schemes == ("lite",)
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
    with pytest.raises(ConfigurationError, match="backend 'lite' refused its options"):
        plugins.create_backend("app", url=f"lite:///{tmp_path / 'app.db'}", pol_interval=0.01)


def test_example_plugin_adds_its_commands(tmp_path: Path) -> None:
    db = tmp_path / "huey.db"
    sqlite3.connect(db).close()
    plugins.register_plugin(plugin, name="huey-lite")
    group = click.Group("huey")
    plugins.add_commands(group)
    result = CliRunner().invoke(group, ["lite", "vacuum", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output == f"vacuumed {db}\n"


def _quoted_blocks(doc: str) -> list[tuple[str, list[str]]]:
    """Code blocks whose first line is `# from <path>`: (path, remaining non-blank lines)."""
    found = []
    for body in re.findall(r"```[a-z]*\n(.*?)```", doc, flags=re.S):
        first, _, rest = body.partition("\n")
        if first.startswith("# from "):
            found.append(
                (
                    first[len("# from ") :].strip(),
                    [s.strip() for s in rest.splitlines() if s.strip()],
                )
            )
    return found


def test_code_quoted_in_writing_backends_matches_the_files() -> None:
    doc = (ROOT / "docs" / "writing-backends.md").read_text(encoding="utf-8")
    blocks = _quoted_blocks(doc)
    assert len(blocks) >= 10
    for path, lines in blocks:
        source = [s.strip() for s in (ROOT / path).read_text(encoding="utf-8").splitlines()]
        position = 0
        for line in lines:  # every quoted line appears in the file, in the same order
            try:
                position = source.index(line, position) + 1
            except ValueError:
                raise AssertionError(
                    f"docs/writing-backends.md quotes {path} wrongly: {line!r}"
                ) from None


APP = """
from huey_core import Huey

huey = Huey("liteapp", url="lite:///{db}")


@huey.task()
def add(a, b):
    return a + b
"""


def test_installed_example_runs_tasks_under_huey_consume(tmp_path: Path) -> None:
    """Installed as a distribution (dist-info + entry point), `huey consume` runs on it."""
    site = tmp_path / "site"
    info = site / "huey_lite-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: huey-lite\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[huey]\nlite = huey_lite.plugin\n")
    (tmp_path / "app.py").write_text(APP.format(db=tmp_path / "lite.db"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(EXAMPLE_SRC), str(tmp_path)]),
    }
    env.pop("HUEY_BACKEND", None)
    env.pop("HUEY_URL", None)
    listed = subprocess.run(
        [sys.executable, "-m", "huey_core.cli", "backends"], env=env, capture_output=True, text=True
    )
    assert "huey-lite 0.1.0" in listed.stdout, listed.stdout + listed.stderr

    plugins.register_plugin(plugin, name="huey-lite")  # this process plays the producer
    sys.path.insert(0, str(tmp_path))
    try:
        import app  # type: ignore[import-not-found]

        result = app.add(2, 3)
        consumer = subprocess.Popen(
            [sys.executable, "-m", "huey_core.cli", "consume", "app.huey", "-w", "2", "-d", "0.05"],
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
        assert "LiteBackend(liteapp" in output
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("app", None)
