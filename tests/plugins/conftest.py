"""Plugin state is process-wide: every test here starts from, and leaves, freshly loaded plugins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from huey_core import plugins


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HUEY_BACKEND", raising=False)
    monkeypatch.delenv("HUEY_URL", raising=False)
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()
