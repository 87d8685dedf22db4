"""Async tasks and progress under real `huey consume` processes (thread and process workers),
on SQLite and Redis: results, retries, timeouts that cancel the coroutine, one loop per worker
thread kept across tasks, and progress readable while the task runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from huey_core import TaskException
from huey_core.testing import require_port
from huey_core.testing.apps import App, logs, stop, wait_for

pytestmark = pytest.mark.slow

SOURCE = """
import asyncio
import os
import threading

from huey_core import Huey

huey = Huey(os.environ["TEST_HUEY_NAME"], url=os.environ["TEST_URL"])
MARKERS = os.environ["TEST_MARKERS"]
STARTED = {}  # worker thread -> the loop its async on_startup hook ran on


def touch(name):
    with open(os.path.join(MARKERS, name), "w") as f:
        f.write(str(os.getpid()))


@huey.on_startup()
async def open_client():
    STARTED[threading.get_ident()] = asyncio.get_running_loop()


@huey.task()
async def add(a, b):
    await asyncio.sleep(0.01)
    return a + b


@huey.task()
async def where():
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.05)
    return [os.getpid(), threading.get_ident(), id(loop),
            STARTED.get(threading.get_ident()) is loop]


@huey.task(timeout=0.5, retries=1)
async def slow_once(marker):
    first = not os.path.exists(os.path.join(MARKERS, marker + ".cancelled"))
    try:
        await asyncio.sleep(60 if first else 0)
    except asyncio.CancelledError:
        touch(marker + ".cancelled")
        raise
    return "second attempt"


@huey.task(timeout=0.3)
async def always_slow():
    await asyncio.sleep(60)


@huey.task(context=True)
async def report(marker, task=None):
    task.progress(1, 3, "warming up")
    await asyncio.sleep(0.2)
    task.progress(2, 3, "waiting for the marker")
    while not os.path.exists(os.path.join(MARKERS, marker)):
        await asyncio.sleep(0.02)
    task.progress(3, 3, "done")
    return "reported"
"""


@pytest.fixture(params=["sqlite", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    if request.param == "redis":
        require_port("Redis", 6379)
        url = "redis://127.0.0.1:6379/0"
    else:
        url = f"sqlite:///{tmp_path}/huey.db"
    app = App(tmp_path, SOURCE, "aio", TEST_URL=url)
    app.on_close.append(lambda: app.loaded and app.huey.flush())
    yield app
    app.close()


def test_thread_workers_run_async_tasks_each_on_its_own_loop(app: App) -> None:
    module = app.load()
    sums = [module.add(i, i) for i in range(10)]
    places = [module.where() for _ in range(8)]
    consumer = app.start_consumer("-w", "2")
    assert [r.get(blocking=True, timeout=30) for r in sums] == [2 * i for i in range(10)], logs(app)
    seen = [r.get(blocking=True, timeout=30) for r in places]
    loops_by_thread: dict[int, set[int]] = {}
    for pid, thread, loop, started_here in seen:
        assert pid == consumer.pid
        assert started_here, "the async on_startup hook ran on the task's loop"
        loops_by_thread.setdefault(thread, set()).add(loop)
    # Every task a worker thread ran used that thread's one loop; two threads, two loops.
    assert all(len(loops) == 1 for loops in loops_by_thread.values())
    all_loops = set().union(*loops_by_thread.values())
    assert len(all_loops) == len(loops_by_thread)
    assert stop(consumer) == 0


def test_a_timeout_cancels_the_coroutine_and_the_retry_runs(app: App) -> None:
    module = app.load()
    retried = module.slow_once("t1")
    hopeless = module.always_slow()
    consumer = app.start_consumer("-w", "2")
    try:
        assert wait_for(lambda: app.marker("t1.cancelled").exists(), timeout=20), logs(app)
        # The first attempt's timeout error is stored (as in huey); the retry replaces it.
        assert wait_for(lambda: _stored(module, retried.id) == "second attempt", timeout=20), logs(
            app
        )
        with pytest.raises(TaskException, match="TaskTimeout"):
            hopeless.get(blocking=True, timeout=20)
    finally:
        assert stop(consumer) == 0


def _stored(module, task_id: str) -> object:
    """The stored result (left in place), or the error's name when it is an error."""
    try:
        return module.huey.result(task_id, preserve=True)
    except TaskException as exc:
        return exc.metadata["error"]


def test_process_workers_run_async_tasks(app: App) -> None:
    module = app.load()
    places = [module.where() for _ in range(4)]
    consumer = app.start_consumer("-w", "2", "-k", "process")
    seen = [r.get(blocking=True, timeout=30) for r in places]
    assert all(pid != consumer.pid for pid, *_ in seen), "ran in the worker processes"
    assert all(started_here for *_, started_here in seen)
    assert stop(consumer) == 0, logs(app)


def test_progress_is_readable_while_the_task_runs_and_after(app: App) -> None:
    module = app.load()
    result = module.report("go")
    consumer = app.start_consumer("-w", "1")
    try:
        assert wait_for(lambda: (p := result.progress()) is not None and p.done == 2, timeout=20), (
            logs(app)
        )
        progress = result.progress()
        assert (progress.done, progress.total, progress.note) == (2, 3, "waiting for the marker")
        assert result.get() is None  # still running
        app.marker("go").write_text("")
        assert asyncio.run(result.aget(timeout=20)) == "reported"
        assert module.huey.progress(result.id)[:3] == (3, 3, "done")
    finally:
        assert stop(consumer) == 0


def test_awaiting_a_result_from_async_code_while_a_consumer_runs_it(app: App) -> None:
    module = app.load()
    consumer = app.start_consumer("-w", "2")

    async def handler() -> list[int]:
        results = [await module.add.aenqueue(i, 1) for i in range(5)]
        return list(await asyncio.gather(*(r.aget(timeout=30) for r in results)))

    try:
        assert asyncio.run(handler()) == [1, 2, 3, 4, 5], logs(app)
    finally:
        assert stop(consumer) == 0
