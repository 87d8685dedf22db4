"""Real `huey consume` processes competing for one SQL queue: every task runs exactly once.

Two consumers, each with two forked worker processes, on SQLite (a shared file), PostgreSQL
(blocking mode: LISTEN/NOTIFY in forked workers) and MariaDB/MySQL (polling mode).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from huey_sql.testing import MYSQL_URL, POSTGRES_URL, drop_prefix, require_database

pytestmark = pytest.mark.slow

TASKS = 120

APP = """
import os
from huey_core import Huey

huey = Huey(os.environ["TEST_HUEY_NAME"], url=os.environ["TEST_URL"],
            table_prefix=os.environ["TEST_PREFIX"])

@huey.task()
def record(i):
    # One short O_APPEND write per run: lines from concurrent processes never interleave.
    with open(os.environ["TEST_RUNS"], "a") as f:
        f.write(f"{i} {os.getpid()}\\n")
    return i
"""


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/huey.db"
    server = POSTGRES_URL if request.param == "postgresql" else MYSQL_URL
    require_database(server)
    return server


def test_two_consumers_with_process_workers_run_each_task_once(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"he{uuid.uuid4().hex[:8]}_"
    module = f"sqlapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APP))
    runs = tmp_path / "runs.txt"
    env = dict(
        os.environ,
        TEST_HUEY_NAME=f"e2e-{uuid.uuid4().hex[:8]}",
        TEST_URL=url,
        TEST_PREFIX=prefix,
        TEST_RUNS=str(runs),
        PYTHONUNBUFFERED="1",
    )
    env.pop("HUEY_BACKEND", None)
    env.pop("HUEY_URL", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    for key in ("TEST_HUEY_NAME", "TEST_URL", "TEST_PREFIX", "TEST_RUNS"):
        monkeypatch.setenv(key, env[key])  # the app module reads them when imported here
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        app = __import__(module)
        for i in range(TASKS):
            app.record(i)
        command = [sys.executable, "-m", "huey_core.cli", "consume", f"{module}.huey", "-k",
                   "process", "-w", "2", "-n", "-s", "0.2", "-d", "0.05", "-m", "0.5"]  # fmt: skip
        for n in range(2):
            log = open(tmp_path / f"consumer{n}.log", "w+")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=tmp_path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

        def lines() -> list[str]:
            return runs.read_text().splitlines() if runs.exists() else []

        deadline = time.monotonic() + 60
        while len(lines()) < TASKS and time.monotonic() < deadline:
            time.sleep(0.1)
        # Every message acknowledged (nothing queued, nothing leased): from here on no
        # duplicate can run, and one that ran already is in the file.
        storage = app.huey.storage
        while (storage.queue.size() or storage.queue.leases()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(30) for proc in procs]
        output = "\n".join(log.seek(0) or log.read() for log in logs)
        assert codes == [0, 0], output
        ran = [int(line.split()[0]) for line in lines()]
        assert sorted(ran) == list(range(TASKS)), output  # each task once: none lost, none twice
        pids = {line.split()[1] for line in lines()}
        assert len(pids) >= 2  # the work really was shared between worker processes
        assert storage.queue.size() == 0 and storage.queue.leases() == []
        assert "database is locked" not in output
        storage.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for log in logs:
            log.close()
        sys.modules.pop(module, None)
        if not url.startswith("sqlite"):
            drop_prefix(url, prefix)
