"""Real `huey consume` processes on backends several processes share (SQLite file, Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from huey_core.testing.apps import read_log, wait_for

pytestmark = pytest.mark.slow


def test_sigterm_with_a_task_in_flight_finishes_it_and_exits_0(make_app, shared_url):
    app = make_app(shared_url)
    huey = app.load().huey
    result = app.load().sleepy(1.0, "job")
    proc = app.start_consumer("-n", "-w", "1", "-s", "0.2")
    assert wait_for(lambda: app.marker("job.started").exists()), read_log(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, read_log(proc)
    assert app.marker("job.done").exists()  # the running task was allowed to finish
    assert result.get(blocking=True, timeout=5) == proc.pid
    assert huey.storage.queue.size() == 0 and huey.storage.queue.leases() == []
    log = read_log(proc)
    assert "SIGTERM received" in log and "consumer stopped" in log


def test_second_signal_stops_at_once_and_releases_the_running_task(make_app, shared_url):
    app = make_app(shared_url)
    module = app.load()
    huey = module.huey
    module.sleepy(60, "stuck")
    proc = app.start_consumer("-n", "-s", "0.2")
    assert wait_for(lambda: app.marker("stuck.started").exists()), read_log(proc)
    proc.send_signal(signal.SIGTERM)
    assert wait_for(lambda: "SIGTERM received" in read_log(proc)), read_log(proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0, read_log(proc)
    assert time.monotonic() - t0 < 5
    assert not app.marker("stuck.done").exists()
    # Nothing lost: the message is ready again for the next consumer, not leased by a dead one.
    assert huey.storage.queue.size() == 1 and huey.storage.queue.leases() == []
    assert "received again" in read_log(proc)


def test_shutdown_timeout_releases_a_long_task_and_exits_0(make_app, shared_url):
    app = make_app(shared_url)
    module = app.load()
    module.sleepy(60, "long")
    proc = app.start_consumer("-n", "--shutdown-timeout", "0.5", "-s", "0.2")
    assert wait_for(lambda: app.marker("long.started").exists()), read_log(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, read_log(proc)
    assert module.huey.storage.queue.size() == 1
    assert "released back to the queue" in read_log(proc)


def test_process_workers(make_app, shared_url):
    app = make_app(shared_url)
    module = app.load()
    results = [module.sleepy(0.3, f"p{i}") for i in range(6)]
    proc = app.start_consumer("-n", "-k", "process", "-w", "2", "-s", "0.2")
    pids = {r.get(blocking=True, timeout=30) for r in results}
    # Two forked workers shared the six tasks; neither is the parent.
    assert len(pids) == 2 and proc.pid not in pids, read_log(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, read_log(proc)
    for pid in pids:
        assert not _alive(pid)
    assert module.huey.storage.queue.leases() == []


def test_process_worker_finishes_its_task_on_sigterm(make_app, redis_url):
    app = make_app(redis_url)
    module = app.load()
    result = module.sleepy(1.0, "pjob")
    proc = app.start_consumer("-n", "-k", "process", "-w", "1", "-s", "0.2")
    assert wait_for(lambda: app.marker("pjob.started").exists()), read_log(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, read_log(proc)
    assert app.marker("pjob.done").exists()
    assert result.get(blocking=True, timeout=5) != proc.pid


def test_killed_worker_process_is_replaced(make_app, redis_url):
    app = make_app(redis_url)
    module = app.load()
    proc = app.start_consumer("-n", "-k", "process", "-w", "1", "-s", "0.2")
    first = module.add(1, 2)
    assert first.get(blocking=True, timeout=30) == 3
    child = int(_child_pids(proc.pid)[0])
    os.kill(child, signal.SIGKILL)
    assert wait_for(lambda: "starting a new one" in read_log(proc), timeout=10), read_log(proc)
    assert module.add(2, 3).get(blocking=True, timeout=30) == 5
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_consumer_survives_an_unreachable_server_and_never_logs_the_password(make_app):
    app = make_app(None, "backend='memory'")
    proc = app.start_consumer(
        "-v", "--url", "redis://:hunter2@127.0.0.1:1/0", "-d", "0.05", "-m", "0.2", "-s", "0.1"
    )
    assert wait_for(lambda: read_log(proc).count("dequeue failed") >= 3, timeout=20), read_log(proc)
    assert proc.poll() is None  # still running, backing off
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    log = read_log(proc)
    assert "hunter2" not in log
    assert "***" in log  # the banner names the URL, masked


def test_logfile_option_writes_the_log_there(make_app, tmp_path):
    app = make_app(None, "backend='memory'")
    logfile = tmp_path / "consumer.log"
    proc = app.start_consumer("-n", "-l", str(logfile), "-v")
    assert wait_for(lambda: logfile.exists() and "consumer ready" in logfile.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert "DEBUG" in logfile.read_text() or "INFO" in logfile.read_text()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waits for its parent to reap it; the parent has exited, so init will.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _child_pids(pid: int) -> list[str]:
    assert wait_for(lambda: os.path.exists(f"/proc/{pid}/task/{pid}/children"))
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = f.read().split()
    return children


# `huey events` against real consumers: test_cli_events_process.py.


def test_task_of_a_killed_consumer_runs_again_on_another(make_app, shared_url):
    app = make_app(shared_url)
    module = app.load()
    result = module.sleepy(2.0, "orphan")
    first = app.start_consumer("-n", "--lease-timeout", "1", "-s", "0.2")
    assert wait_for(lambda: app.marker("orphan.started").exists()), read_log(first)
    os.killpg(first.pid, signal.SIGKILL)  # no shutdown, no release: only the lease expires
    first.wait(5)
    app.marker("orphan.started").unlink()
    second = app.start_consumer("-n", "--lease-timeout", "1", "-s", "0.2")
    assert result.get(blocking=True, timeout=30) == second.pid, read_log(second)
    assert "recovered 1 task" in read_log(second)
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0


def test_localtime_option_reaches_the_consumer(make_app, tmp_path):
    app = make_app(None, "backend='memory'")
    logfile = tmp_path / "local.log"
    proc = app.start_consumer("--localtime", "-l", str(logfile))
    assert wait_for(lambda: logfile.exists() and "consumer ready" in logfile.read_text())
    assert "periodic tasks (local time)" in logfile.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    # -q: see test_cli_logging.py.


@pytest.mark.parametrize("command", ["huey consume", "huey_consumer"])
def test_sigterm_while_the_consumer_starts_exits_0(tmp_path, command):
    # An app whose import takes a while (a big project, a slow disk): a stop that arrives before
    # the consumer is running is a clean stop, not a death by signal.
    (tmp_path / "slowapp.py").write_text(
        "import pathlib, time\n"
        "pathlib.Path('importing').touch()\n"
        "time.sleep(3)\n"
        "from huey_core import Huey\n"
        f"huey = Huey('slow', url='sqlite:///{tmp_path}/slow.db')\n"
    )
    bindir = os.path.dirname(sys.executable)
    argv = [os.path.join(bindir, command.split()[0]), *command.split()[1:], "slowapp.huey"]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    assert wait_for(lambda: (tmp_path / "importing").exists(), timeout=30)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "Traceback" not in output
