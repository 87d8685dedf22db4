"""Process workers started in-process (`Consumer(worker_type="process")`) on SQLite: tasks run
in forked children, a child that leaves after max_tasks or is killed is replaced, a graceful
stop lets the running task finish and a short shutdown timeout releases it."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from huey_core import Huey
from huey_core.consumer import Consumer
from huey_core.testing.apps import wait_for


@pytest.fixture
def huey(tmp_path: Path) -> Huey:
    return Huey("procs", url=f"sqlite:///{tmp_path}/huey.db")


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


def start(consumers: list[Consumer], huey: Huey, **options) -> Consumer:
    # No thread of this process may be writing to SQLite when the consumer forks a child (the
    # child would inherit SQLite's record of a lock it does not hold, and hang): no scheduler,
    # the enqueue events sent first, results read without a blocking wait.
    consumer = Consumer(
        huey,
        worker_type="process",
        periodic=False,
        scheduler=False,
        initial_delay=0.01,
        max_delay=0.1,
        **options,
    )
    consumers.append(consumer)
    huey.flush_events(5.0)
    consumer.start()
    return consumer


def value(result, timeout: float = 30.0):
    """The task's result, read without a blocking wait (see start())."""
    assert wait_for(lambda: result.get() is not None, timeout=timeout), result.id
    return result.get()


def touch(path: Path) -> None:
    """Written whole, then renamed: a test that sees the file can read the pid in it."""
    path.with_suffix(".tmp").write_text(str(os.getpid()))
    os.replace(path.with_suffix(".tmp"), path)


def test_tasks_run_in_the_worker_processes_and_a_stop_ends_them(huey, consumers) -> None:
    @huey.task()
    def pid(i):
        return i, os.getpid()

    results = [pid(i) for i in range(6)]
    consumer = start(consumers, huey, workers=2)
    values = [value(r) for r in results]
    assert [i for i, _ in values] == list(range(6))
    pids = {p for _, p in values}
    assert os.getpid() not in pids
    host = socket.gethostname()
    # The events of the worker processes count as this consumer's.
    assert {f"{host}:{p}" for p in pids} <= consumer.identities()
    assert len(consumer.identities()) == 3  # this process and its two workers
    assert wait_for(lambda: huey.storage.queue.leases() == [])
    consumer.stop()
    assert consumer.stopped and not consumer.stopped_at_once
    assert huey.storage.queue.size() == 0


def test_a_worker_process_leaves_after_max_tasks_and_is_replaced(huey, consumers) -> None:
    @huey.task()
    def pid(i):
        return i, os.getpid()

    results = [pid(i) for i in range(7)]
    consumer = start(consumers, huey, workers=1, max_tasks=3, check_worker_health=False)
    values = [value(r) for r in results]
    pids = [p for _, p in values]
    # 7 tasks, 3 per process: three processes in turn, replaced with the health check off.
    assert len(set(pids)) == 3 and max(pids.count(p) for p in set(pids)) == 3
    assert wait_for(lambda: consumer.replaced == 2)
    queue = huey.storage.queue
    assert wait_for(lambda: queue.size() == 0 and queue.leases() == [])
    consumer.stop()


def hang_once(huey, first):
    """A task whose first run marks `first` with its process id and waits to be killed."""

    @huey.task()
    def hang_once():
        if not first.exists():
            touch(first)
            signal.pause()  # until the test kills this process
        return "second run"

    return hang_once


def test_a_killed_worker_process_is_replaced_and_its_task_released_at_once(
    huey, consumers, markers, caplog
) -> None:
    first = markers / "first-run"
    result = hang_once(huey, first)()
    # A 60 s lease: the task runs again this soon only if the dead worker's lease is released.
    consumer = start(consumers, huey, workers=1, lease_timeout=60, health_check_interval=0.2)
    assert wait_for(first.exists)
    child = int(first.read_text())
    caplog.set_level(logging.ERROR, logger="huey.consumer")
    os.kill(child, signal.SIGKILL)
    assert value(result) == "second run"
    assert wait_for(lambda: consumer.replaced == 1)
    consumer.stop()
    logged = [r.getMessage() for r in caplog.records]
    assert f"worker process {child} was killed by signal 9; starting a new one" in logged


def test_with_the_health_check_disabled_a_killed_worker_process_stays_dead(
    huey, consumers, markers
) -> None:
    first = markers / "first-run"
    result = hang_once(huey, first)()
    consumer = start(
        consumers, huey, workers=1, lease_timeout=60, health_check_interval=0.1,
        check_worker_health=False,
    )  # fmt: skip
    assert wait_for(first.exists)
    os.kill(int(first.read_text()), signal.SIGKILL)
    time.sleep(1)  # ten health-check intervals, had it been on
    assert consumer.replaced == 0
    assert result.get() is None and len(huey.storage.queue.leases()) == 1
    consumer.stop()


@pytest.mark.parametrize(("seconds", "timeout"), [(0.5, 10), (0.3, 2)], ids=["long", "short"])
def test_a_graceful_stop_lets_a_worker_process_finish_its_task(
    huey, consumers, markers, seconds, timeout
) -> None:
    """Also with a timeout well under the 5 s the parent adds for the child's exit."""
    started = markers / "started"

    @huey.task()
    def slow():
        touch(started)
        time.sleep(seconds)
        return "finished"

    result = slow()
    consumer = start(consumers, huey, workers=1)
    assert wait_for(started.exists)
    consumer.stop(graceful=True, timeout=timeout)
    assert result.get() == "finished" and not consumer.stopped_at_once
    assert huey.storage.queue.size() == 0 and huey.storage.queue.leases() == []


@pytest.mark.parametrize("graceful", [True, False])
def test_a_stop_releases_a_task_still_running_in_a_worker_process(
    huey, consumers, markers, graceful
) -> None:
    started = markers / "started"

    @huey.task()
    def stuck():
        touch(started)
        signal.pause()

    stuck()
    consumer = start(consumers, huey, workers=1, shutdown_timeout=0.3)
    assert wait_for(started.exists)
    consumer.stop(graceful=graceful)
    assert consumer.stopped_at_once is not graceful
    # Released back to the queue, ready for the next consumer.
    assert huey.storage.queue.size() == 1 and huey.storage.queue.leases() == []


def test_a_worker_process_and_its_replacement_hold_leases_under_the_workers_name(
    huey, consumers
) -> None:
    @huey.task()
    def holders():
        # The lease of this very task, as `huey info` and recovery see it.
        return os.getpid(), [info.owner for info in huey.storage.queue.leases()]

    results = [holders() for _ in range(2)]
    start(consumers, huey, workers=1, max_tasks=1, check_worker_health=False)
    (pid1, owners1), (pid2, owners2) = value(results[0]), value(results[1])
    host = socket.gethostname()
    assert pid1 != pid2  # the second ran in the process that replaced the first
    assert owners1 == [f"{host}:{pid1}:Worker-1"]
    assert owners2 == [f"{host}:{pid2}:Worker-1"]


def test_a_killed_worker_process_behind_a_live_one_is_replaced(huey, consumers, markers) -> None:
    first = markers / "first-run"

    @huey.task()
    def job(n):
        mine = f":{os.getpid()}:Worker-2"
        if not first.exists() and any(i.owner.endswith(mine) for i in huey.storage.queue.leases()):
            touch(first)
            signal.pause()  # Worker-2's process waits here to be killed, once
        time.sleep(0.05)  # slow enough that each process claims one message at a time
        return n

    results = [job(n) for n in range(6)]
    consumer = start(consumers, huey, workers=2, lease_timeout=60, health_check_interval=0.2)
    assert wait_for(first.exists)
    os.kill(int(first.read_text()), signal.SIGKILL)
    # Worker-1's process lives on, first in the list: Worker-2's is replaced all the same, and
    # the message it held runs again long before its 60 s lease expires.
    assert [value(r) for r in results] == list(range(6))
    assert wait_for(lambda: consumer.replaced == 1)
    consumer.stop()
