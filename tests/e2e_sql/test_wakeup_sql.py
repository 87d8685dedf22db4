"""An idle `huey consume` on PostgreSQL starts a task enqueued by another process at once.

The enqueue NOTIFYs; the consumer's LISTEN thread must wake the waiting worker when the
notification arrives, not at its next periodic look (issue 10: tasks started 0.4-0.85 s late).
This is a correctness bound, not a benchmark: a woken worker starts the task in a few ms, a
worker that waits for a timer takes hundreds.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from huey_sql.testing import POSTGRES_URL, drop_prefix, require_database, unique_prefix

pytestmark = pytest.mark.slow

TASKS = 20
BOUND_MS = 100.0

APP = """
import os
import time
from huey_core import Huey

huey = Huey(os.environ["TEST_HUEY_NAME"], url=os.environ["TEST_URL"],
            table_prefix=os.environ["TEST_PREFIX"])

@huey.task()
def stamp(i, enqueued_at):
    # The delay from enqueue to start, as the task sees it (same machine, same clock).
    with open(os.environ["TEST_RUNS"], "a") as f:
        f.write(f"{i} {(time.time() - enqueued_at) * 1000:.2f}\\n")
"""


def _huey_command() -> list[str]:
    """The `huey` entry point of this interpreter's environment (make dev installs it)."""
    script = Path(sys.executable).with_name("huey")
    return [str(script)] if script.exists() else [sys.executable, "-m", "huey_core.cli"]


def _delays(runs: Path) -> dict[int, float]:
    if not runs.exists():
        return {}
    return {int(i): float(ms) for i, ms in (line.split() for line in runs.read_text().splitlines())}


def _wait_for_run(runs: Path, i: int, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _delays(runs).get(i)
        if found is not None:
            return found
        time.sleep(0.002)
    raise AssertionError(f"task {i} did not run within {timeout}s")


def test_a_task_from_another_process_starts_within_ms_on_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_database(POSTGRES_URL)
    prefix = unique_prefix()
    module = f"wakeapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APP))
    runs = tmp_path / "runs.txt"
    env = dict(
        os.environ,
        TEST_HUEY_NAME=f"wake-{uuid.uuid4().hex[:8]}",
        TEST_URL=POSTGRES_URL,
        TEST_PREFIX=prefix,
        TEST_RUNS=str(runs),
        PYTHONUNBUFFERED="1",
    )
    for key in ("HUEY_BACKEND", "HUEY_URL"):
        env.pop(key, None)
    monkeypatch.syspath_prepend(str(tmp_path))
    for key in ("TEST_HUEY_NAME", "TEST_URL", "TEST_PREFIX", "TEST_RUNS"):
        monkeypatch.setenv(key, env[key])  # the app module reads them when imported here
    log = open(tmp_path / "consumer.log", "w+")
    consumer = subprocess.Popen(
        [*_huey_command(), "consume", f"{module}.huey", "-w", "1", "-n"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        app = __import__(module)  # this process is the producer
        app.stamp(-1, time.time())  # the consumer is up and idle once this one has run
        _wait_for_run(runs, -1, timeout=60)
        delays = []
        for i in range(TASKS):
            time.sleep(random.uniform(0.05, 0.15))  # out of step with any periodic timer
            app.stamp(i, time.time())
            delays.append(_wait_for_run(runs, i))
        median = statistics.median(delays)
        # by name: seeking `log` would move where the consumer writes next
        output = Path(log.name).read_text()
        assert median < BOUND_MS, f"median {median:.1f} ms; delays {delays}\n{output}"
        app.huey.storage.close()
    finally:
        if consumer.poll() is None:
            consumer.send_signal(signal.SIGTERM)
            try:
                consumer.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(consumer.pid, signal.SIGKILL)
                consumer.wait(5)
        log.close()
        sys.modules.pop(module, None)
        drop_prefix(POSTGRES_URL, prefix)
