"""Periodic tasks: three consumers with `-p` on one backend enqueue each periodic task once per
minute between them.

A test clock keeps it fast: the app module (imported by every consumer) makes the consumer's
clock run 40 times faster from a shared epoch, so all three agree on the minute and a minute
passes every 1.5 real seconds. An `enqueued` signal handler logs the minute each tick is
enqueued in, and the task logs that it ran.
"""

from __future__ import annotations

import collections
import time

import pytest

from tests.reliability.support import logs, server_url, stop, wait_for

pytestmark = pytest.mark.slow

SPEED = 40.0  # one minute every 1.5 s
MINUTES = 4


@pytest.mark.parametrize("kind", ["redis", "postgresql"])
def test_three_consumers_enqueue_each_periodic_task_once_per_minute(kind, make_app, tmp_path):
    epoch = time.time()
    app = make_app(server_url(kind, tmp_path), TEST_CLOCK_EPOCH=repr(epoch),
                   TEST_CLOCK_SPEED=repr(SPEED))  # fmt: skip
    app.load()
    for _ in range(3):
        app.start_consumer("-p", "-w", "2", "-s", "0.05")
    # Count minutes from the first enqueue: on a loaded machine three consumers can take seconds
    # to import and connect, which would otherwise eat the minutes the test watches.
    assert wait_for(lambda: "tick-enqueued" in (app.runs.read_text() if app.runs.exists() else ""),
                    timeout=60), logs(app)  # fmt: skip
    time.sleep(MINUTES * 60 / SPEED + 0.5)
    for proc in app.procs:
        assert stop(proc) == 0, logs(app)
    lines = [line.split() for line in app.runs.read_text().splitlines()]
    enqueued = [(int(minute), pid) for kind_, minute, pid in
                (line for line in lines if line[0] == "tick-enqueued")]  # fmt: skip
    per_minute = collections.Counter(minute for minute, _ in enqueued)
    assert per_minute, logs(app)
    twice = {m: n for m, n in per_minute.items() if n > 1}
    assert not twice, f"minutes enqueued more than once: {twice}"
    first, last = min(per_minute), max(per_minute)
    assert sorted(per_minute) == list(range(first, last + 1)), f"a minute was missed: {per_minute}"
    assert len(per_minute) >= MINUTES - 1
    ran = sum(1 for line in lines if line[0] == "tick-ran")
    assert len(enqueued) - 1 <= ran <= len(enqueued)  # the last may still wait in the queue
    # All three took part in the race; which one wins a minute does not matter.
    assert "enqueued periodic task" in logs(app)
