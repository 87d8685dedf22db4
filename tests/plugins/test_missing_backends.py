"""A backend that is not installed: one line at Huey(...) naming the huey-core extra to install,
the same line (once) at first use, and immediate mode that needs no backend at all.

The wheels test (tests/packaging) shows the same from a bare `pip install huey-core`; here the
installed backends are narrowed in process so every combination is quick to check.
"""

from __future__ import annotations

import logging
from importlib.metadata import distribution
from typing import Any

import pytest
from packaging.requirements import Requirement

from huey_core import Huey, plugins
from huey_core.exceptions import UnknownBackend


@pytest.fixture
def only_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """As after `pip install huey-core`: the memory backend (a dependency) and nothing else."""
    installed = plugins.backends()
    monkeypatch.setattr(plugins, "backends", lambda: {"memory": installed["memory"]})


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_the_default_without_huey_sql_is_one_line_at_construction(
    only_memory: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="huey"):
        huey = Huey("my-app")
    (line,) = _warnings(caplog)
    assert line.startswith("Huey('my-app'): the default storage, SQLite in ./huey.db, needs")
    assert 'pip install "huey-core[sql]"' in line and "\n" not in line
    assert "installed backends: memory" in line

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="huey"):
        with pytest.raises(UnknownBackend, match=r'pip install "huey-core\[sql\]"'):
            add(1, 2)
    # No second report of the same problem (it used to come again as "could not emit").
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("kwargs", "extra"),
    [
        ({"backend": "redis"}, "redis"),
        ({"url": "redis://127.0.0.1:6379/0"}, "redis"),
        ({"url": "unix:///run/redis.sock"}, "redis"),
        ({"backend": "sql"}, "sql"),
        ({"url": "postgresql://app:hunter2@db/app"}, "postgres"),
        ({"url": "postgres://app@db/app"}, "postgres"),
        ({"url": "mysql://app@db/app"}, "mysql"),
        ({"url": "mariadb+pymysql://app@db/app"}, "mysql"),
    ],
)
def test_a_missing_backend_names_its_extra(
    only_memory: None, caplog: pytest.LogCaptureFixture, kwargs: dict[str, Any], extra: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="huey"):
        Huey("app", **kwargs)
    (line,) = _warnings(caplog)
    assert f'pip install "huey-core[{extra}]"' in line
    assert "hunter2" not in line


def test_immediate_mode_needs_no_backend(
    only_memory: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="huey"):
        huey = Huey("tests", immediate=True)

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2)() == 3
    assert _warnings(caplog) == []


def test_immediate_mode_switched_on_after_construction_still_runs(only_memory: None) -> None:
    huey = Huey("tests")  # warns: no sql; the test switches to immediate mode anyway
    huey.immediate = True

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3)() == 5


def test_an_installed_backend_gives_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="huey"):
        Huey("app")
        Huey("app", url="redis://127.0.0.1:6379/0")  # nothing connects at construction
    assert _warnings(caplog) == []


def _requirements_of_extra(extra: str) -> set[str]:
    """The distributions huey-core's `extra` brings in (as its metadata declares them)."""
    names = set()
    for raw in distribution("huey-core").requires or []:
        req = Requirement(raw)
        if req.marker is not None and req.marker.evaluate({"extra": extra}):
            names.add(req.name)
    return names


def test_the_extras_table_covers_every_scheme_the_builtins_register() -> None:
    builtins = {
        name: info
        for name, info in plugins.backends().items()
        if info.distribution in {"huey-memory", "huey-redis", "huey-sql"}
    }
    assert set(builtins) == set(plugins.BUILTIN_EXTRAS)
    for name, info in builtins.items():
        assert info.distribution in _requirements_of_extra(plugins.BUILTIN_EXTRAS[name])
        for scheme in info.schemes:
            extra = plugins.BUILTIN_SCHEME_EXTRAS[scheme]
            assert info.distribution in _requirements_of_extra(extra), (scheme, extra)
    registered = {s for info in builtins.values() for s in info.schemes}
    assert set(plugins.BUILTIN_SCHEME_EXTRAS) == registered
