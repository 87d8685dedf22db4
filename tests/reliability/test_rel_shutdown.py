"""Graceful shutdown under load: SIGTERM with 4 busy workers lets the running tasks finish,
leaves every message not yet started in the queue (nothing stays leased), and exits 0;
`--shutdown-timeout` bounds the wait and releases the tasks that did not finish."""

from __future__ import annotations

import time

import pytest

from tests.reliability.support import logs, server_url, stop, wait_for

pytestmark = pytest.mark.slow

BUSY = 4
QUEUED = 10


def load(app, seconds: float):
    module = app.load()
    for n in range(BUSY):
        module.sleepy(seconds, f"busy{n}")
    for i in range(QUEUED):
        module.record(i)
    return module


@pytest.mark.parametrize(
    "kind,worker_type",
    [("redis", "thread"), ("postgresql", "thread"), ("mysql", "thread"), ("redis", "process")],
)
def test_sigterm_finishes_running_tasks_and_releases_the_rest(kind, worker_type, make_app,
                                                              tmp_path):  # fmt: skip
    app = make_app(server_url(kind, tmp_path))
    module = load(app, 1.5)
    proc = app.start_consumer("-w", str(BUSY), "-k", worker_type, "-n", "-s", "0.2",
                              "-d", "0.01", "-m", "0.2")  # fmt: skip
    started = [app.marker(f"busy{n}.started") for n in range(BUSY)]
    assert wait_for(lambda: all(m.exists() for m in started)), logs(app)
    assert stop(proc, timeout=30) == 0, logs(app)
    assert all(app.marker(f"busy{n}.done").exists() for n in range(BUSY)), logs(app)
    queue = module.huey.storage.queue
    assert queue.leases() == []  # nothing leased by the stopped consumer
    runs = app.executions()
    # Every message not started is back in (or never left) the queue: none lost, none run.
    assert queue.size() + sum(runs[str(i)] for i in range(QUEUED)) == QUEUED
    assert queue.size() == QUEUED, runs


@pytest.mark.parametrize("kind", ["redis", "postgresql"])
def test_shutdown_timeout_bounds_the_wait_and_releases_unfinished_tasks(kind, make_app, tmp_path):
    app = make_app(server_url(kind, tmp_path))
    module = load(app, 60)
    proc = app.start_consumer("-w", str(BUSY), "-n", "-s", "0.2", "--shutdown-timeout", "1")
    assert wait_for(lambda: all(app.marker(f"busy{n}.started").exists() for n in range(BUSY)))
    t0 = time.monotonic()
    assert stop(proc, timeout=30) == 0, logs(app)
    assert time.monotonic() - t0 < 1 + 5, logs(app)  # the timeout, plus start-to-exit margin
    assert not any(app.marker(f"busy{n}.done").exists() for n in range(BUSY))
    queue = module.huey.storage.queue
    assert queue.leases() == []
    assert queue.size() == BUSY + QUEUED  # the four long tasks are back, ready to run again
    assert logs(app).count("released back to the queue") == BUSY
