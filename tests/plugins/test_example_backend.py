"""The example backend of docs/writing-backends.md passes the conformance suite: the doc is proven."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from huey_core.testing import BackendConformance
from huey_lite import plugin
from huey_lite.backend import LiteBackend

from huey_core import plugins

ROOT = Path(__file__).resolve().parents[2]


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
    with pytest.raises(TypeError):
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
