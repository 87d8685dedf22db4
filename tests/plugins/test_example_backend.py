"""The example backend of docs/writing-backends.md passes the conformance suite: the doc is proven."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "example_backend" / "src"
sys.path.insert(0, str(EXAMPLE))  # the example is not installed in the project's venv

from huey_lite import plugin  # noqa: E402
from huey_lite.backend import LiteBackend  # noqa: E402

from huey_core import plugins  # noqa: E402
from huey_core.testing import BackendConformance  # noqa: E402


class TestLiteBackend(BackendConformance):  # the ten lines docs/writing-backends.md shows
    @pytest.fixture
    def backend_factory(self, tmp_path):
        url = f"lite:///{tmp_path / 'huey.db'}"
        yield lambda name: LiteBackend(name, url)


def test_example_plugin_registers_the_lite_backend(tmp_path: Path) -> None:
    plugins.register_plugin(plugin, name="huey-lite")
    info = plugins.backends()["lite"]
    assert info.schemes == ("lite",)
    backend = plugins.create_backend("app", url=f"lite:///{tmp_path / 'app.db'}", poll_interval=0.01)
    try:
        assert isinstance(backend, LiteBackend)
        backend.queue.enqueue(b"job")
        assert backend.queue.peek() == [b"job"]
        assert (tmp_path / "app.db").exists()
    finally:
        backend.close()
