"""Fixtures for the CLI tests: an app module on disk (huey_core.testing.apps) run by real
`huey` subprocesses, and the loopback servers they share."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from huey_core.testing import require_port
from huey_core.testing.apps import App


@pytest.fixture(scope="session", autouse=True)
def _children_get_the_default_sigint() -> Iterator[None]:
    """The tests Ctrl-C their `huey` children with SIGINT. A shell starts a background job with
    SIGINT ignored, and an ignored signal stays ignored across exec, so under `make test &` the
    children would never see it. A signal this process *handles* is reset to the default in
    every program it starts: handling SIGINT here gives the children SIG_DFL back."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


APP_SOURCE = """
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


@huey.task(retries=1)
def fail(message):
    raise ValueError(message)


@huey.periodic_task(crontab(minute="*"))
def tick():
    pass
"""


@pytest.fixture
def redis_url() -> str:
    require_port("Redis", 6379)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture
def postgres_url() -> str:
    require_port("PostgreSQL", 5432)
    return "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """make_app(url, backend_kwargs) -> App whose module builds `Huey(name, <backend_kwargs>)`.

    The URL reaches the app as HUEY_URL. Consumers it started are killed, and what it stored is
    flushed, afterwards.
    """
    apps: list[App] = []

    def make(url: str | None = None, backend_kwargs: str = "") -> App:
        directory = tmp_path / f"app{len(apps)}"
        directory.mkdir()
        env = {"HUEY_URL": url} if url else {}
        app = App(directory, APP_SOURCE.replace("{BACKEND}", backend_kwargs), "cli", **env)
        app.on_close.append(lambda: app.loaded and app.huey.flush())
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL several processes share: SQLite in tmp_path, or the loopback Redis."""
    if request.param == "redis":
        require_port("Redis", 6379)
        return "redis://127.0.0.1:6379/0"
    return f"sqlite:///{tmp_path}/huey.db"
