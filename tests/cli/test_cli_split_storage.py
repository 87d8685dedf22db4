"""A consumer pointed elsewhere than its app (issue 12): `huey consume app.huey --url X` while
code importing the app enqueues to the app's own storage would wait on an empty queue. The
consumer says so at start-up; HUEY_URL, read by both sides, needs no warning."""

from __future__ import annotations

import pytest

from huey_core.testing.apps import read_log, stop, wait_for

pytestmark = pytest.mark.slow

WARNING = "warning: --backend/--url point this process at"


def test_overriding_the_apps_storage_warns_once_at_start(make_app, tmp_path):
    app = make_app()  # the app names no storage: the SQLite default in its directory
    other = f"sqlite:///{tmp_path}/elsewhere.db"
    proc = app.start_consumer("-n", "--url", other)
    assert wait_for(lambda: "consumer ready" in read_log(proc) or proc.poll() is not None)
    assert stop(proc) == 0
    lines = [line for line in read_log(proc).splitlines() if WARNING in line]
    assert len(lines) == 1, read_log(proc)
    assert f"sql ({other})" in lines[0] and "sql (sqlite:///huey.db)" in lines[0]
    assert "HUEY_URL" in lines[0]


def test_the_apps_own_url_on_the_command_line_is_no_override(make_app, tmp_path):
    url = f"sqlite:///{tmp_path}/same.db"
    app = make_app(backend_kwargs=f"url={url!r}")
    proc = app.start_consumer("-n", "--url", url)
    assert wait_for(lambda: "consumer ready" in read_log(proc) or proc.poll() is not None)
    assert stop(proc) == 0
    assert WARNING not in read_log(proc)


def test_huey_url_shared_by_producer_and_consumer_runs_tasks(make_app, tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/shared.db")  # HUEY_URL for the app and its consumer
    result = app.load().add(1, 2)
    proc = app.start_consumer("-n")
    assert result.get(blocking=True, timeout=20) == 3
    assert stop(proc) == 0
    assert WARNING not in read_log(proc)
