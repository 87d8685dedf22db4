"""`huey dashboard` as a user runs it: added by the plugin's entry point, safe options checked
before anything starts, and a read-only dashboard served by uvicorn."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from huey_core.testing.apps import App, read_log, stop, wait_for

SOURCE = """
import os
from huey_core import Huey

huey = Huey(os.environ["TEST_HUEY_NAME"], url=os.environ["TEST_URL"])


@huey.task()
def add(a, b):
    return a + b
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = App(tmp_path, SOURCE, "dashcli", TEST_URL=f"sqlite:///{tmp_path}/huey.db")
    yield app
    app.close()


def test_the_command_comes_from_the_plugin_entry_point(app: App) -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="huey")}
    assert plugins["dashboard"] == "huey_dashboard.plugin"
    out = app.cli("--help")
    assert out.returncode == 0 and re.search(r"^\s+dashboard\s", out.stdout, re.M)


def test_another_host_without_a_token_is_refused_in_one_line(app: App) -> None:
    out = app.cli("dashboard", app.import_path, "--host", "0.0.0.0")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "huey dashboard: error: --host 0.0.0.0" in out.stderr and "--token" in out.stderr


def test_a_read_only_dashboard_serves_pages_without_actions(app: App) -> None:
    app.load().add(1, 2)
    log = open(app.directory / "dashboard.log", "w+")  # noqa: SIM115 - closed by app.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "huey_core.cli", "dashboard", app.import_path, "--port", "0",
         "--read-only"],
        cwd=app.directory, env=app.env, stdout=log, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    proc.log = log  # type: ignore[attr-defined]
    app.procs.append(proc)
    assert wait_for(lambda: "(read-only)" in read_log(proc), 30), read_log(proc)
    url = re.findall(r"on (http://127\.0\.0\.1:\d+/)", read_log(proc))[0]
    with urllib.request.urlopen(url + "queue", timeout=10) as response:
        page = response.read().decode()
    assert "add" in page and "(1, 2)" in page  # the queued task and its arguments
    assert "data-action" not in page
    assert stop(proc, 15) == 0, read_log(proc)
