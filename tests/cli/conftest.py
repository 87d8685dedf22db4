"""Fixtures for CLI tests; the helpers they use live in cli_support.py."""

from __future__ import annotations

import os
import signal
import sys

import pytest
from cli_support import App, require_redis


@pytest.fixture
def make_app(tmp_path):
    """make_app(url) -> App; consumers it started are killed and its storage flushed afterwards."""
    apps: list[App] = []

    def make(url: str | None = None, backend_kwargs: str = "") -> App:
        directory = tmp_path / f"app{len(apps)}"
        directory.mkdir()
        app = App(directory, url, backend_kwargs)
        app._procs = []
        apps.append(app)
        return app

    yield make
    for app in apps:
        for proc in app._procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            proc.log.close()  # type: ignore[attr-defined]
        if app._loaded is not None:
            try:
                app._loaded.huey.flush()
                app._loaded.huey.storage.close()
            except Exception:  # noqa: BLE001 - cleanup of a test that already failed
                pass
            sys.modules.pop(app.module, None)


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request, tmp_path) -> str:
    """A URL several processes share: SQLite in tmp_path, or the loopback Redis."""
    if request.param == "redis":
        return require_redis()
    return f"sqlite:///{tmp_path}/huey.db"
