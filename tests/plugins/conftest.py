"""Plugin state is process-wide: every test here starts from, and leaves, freshly loaded plugins."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from huey_core import plugins

# The example backend of docs/writing-backends.md is not installed in the project's venv.
EXAMPLE_SRC = Path(__file__).resolve().parents[2] / "examples" / "example_backend" / "src"
if str(EXAMPLE_SRC) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_SRC))


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HUEY_BACKEND", raising=False)
    monkeypatch.delenv("HUEY_URL", raising=False)
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()
