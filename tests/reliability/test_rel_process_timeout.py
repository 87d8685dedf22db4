"""`timeout=` and SIGTERM in worker processes (issue 11, item 5).

`huey consume -k process` runs each task on the main thread of its worker process, so a task's
timeout is enforced by SIGALRM and interrupts a blocking call: a task asleep for 60 s with
`timeout=2` ends as a TaskTimeout after 2 s (before, it slept the whole 60 s, since an exception
sent to a thread waits for the call to return), and its worker process carries on. A single
SIGTERM then stops the consumer within the shutdown timeout, handing the running task back.
"""

from __future__ import annotations

import signal
import time

import pytest

from huey_core.exceptions import TaskException
from tests.reliability.support import KINDS, logs, server_url, wait_for

SHUTDOWN_TIMEOUT = 2.0
# The child's watcher looks every 50 ms; interpreters take a moment to exit, longer on a loaded
# two-core CI machine running tests in parallel. Without the fix a SIGTERM took the whole 60 s sleep.
EXIT_SLACK = 4.0


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_interrupts_a_blocking_call_and_sigterm_stops_in_time(kind, make_app, tmp_path):
    app = make_app(server_url(kind, tmp_path))
    module = app.load()
    huey = module.huey
    consumer = app.start_consumer(
        "-k", "process", "-w", "1", "-n", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT),
        "-s", "0.2", "-d", "0.01", "-m", "0.2",
    )  # fmt: skip
    started = time.monotonic()
    sleeper = module.nap(60, "sleeper")
    with pytest.raises(TaskException, match="TaskTimeout"):
        sleeper.get(blocking=True, timeout=30)
    assert time.monotonic() - started < 15, "the timeout did not interrupt time.sleep(60)"
    assert "sleeper" not in app.executions()  # it never got past the sleep
    assert module.nap(0.1, "quick").get(blocking=True, timeout=30)  # the same worker goes on
    assert "exited with code" not in logs(app)  # no worker process was lost on the way

    huey.enqueue(module.sleepy.s(60, "held"))  # no timeout: only shutdown can end it
    assert wait_for(lambda: app.marker("held.started").exists(), timeout=30), logs(app)
    sent = time.monotonic()
    consumer.send_signal(signal.SIGTERM)
    assert consumer.wait(SHUTDOWN_TIMEOUT + 10) == 0, logs(app)
    took = time.monotonic() - sent
    assert took < SHUTDOWN_TIMEOUT + EXIT_SLACK, f"one SIGTERM took {took:.1f} s:\n{logs(app)}"
    queue = huey.storage.queue
    assert queue.size() == 1 and queue.leases() == [], logs(app)  # handed back, not lost
    assert "held" not in app.executions()
