"""asyncio: `async def` tasks run like any task, results can be awaited, enqueueing from async
code never waits on the event loop (docs/asyncio.md)."""

from __future__ import annotations

import asyncio
import functools
import threading
import time

import pytest

from huey_core import ConfigurationError, Huey, ResultTimeout, TaskException
from huey_core import signals as S
from tests.core.helpers import collect_events, drain, make_huey


def run(coro):
    return asyncio.run(coro)


def test_an_async_task_runs_and_stores_its_result(huey: Huey) -> None:
    @huey.task()
    async def add(a, b):
        await asyncio.sleep(0.01)
        return a + b

    result = add(2, 3)
    assert drain(huey) == 1
    assert result.get() == 5


def test_an_async_context_task_gets_its_task(huey: Huey) -> None:
    @huey.task(context=True)
    async def whoami(task=None):
        return task.id

    result = whoami()
    drain(huey)
    assert result.get() == result.id


def test_an_async_task_is_retried_after_an_error(huey: Huey) -> None:
    attempts = []

    @huey.task(retries=2)
    async def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError("not yet")
        return "ok"

    result = flaky()
    drain(huey)
    assert len(attempts) == 3
    assert result.get() == "ok"


def test_a_failing_async_task_stores_its_error(huey: Huey) -> None:
    @huey.task()
    async def boom():
        raise KeyError("missing")

    result = boom()
    drain(huey)
    with pytest.raises(TaskException) as info:
        result.get()
    assert "KeyError" in info.value.metadata["error"]


def test_a_timeout_cancels_the_coroutine_and_reports_a_timeout(huey: Huey) -> None:
    seen = []
    signals = []
    huey.signal(S.SIGNAL_TIMEOUT)(lambda signal, task, *a: signals.append(signal))

    @huey.task(timeout=0.2)
    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("cleaned up")

    result = slow()
    start = time.monotonic()
    drain(huey)
    assert time.monotonic() - start < 5
    assert seen == ["cancelled", "cleaned up"]
    assert signals == [S.SIGNAL_TIMEOUT]
    with pytest.raises(TaskException) as info:
        result.get()
    assert "TaskTimeout" in info.value.metadata["error"]


def test_a_timed_out_async_task_is_retried(huey: Huey) -> None:
    runs = []

    @huey.task(timeout=0.1, retries=1)
    async def sometimes_slow():
        runs.append(1)
        await asyncio.sleep(30 if len(runs) == 1 else 0)
        return len(runs)

    result = sometimes_slow()
    drain(huey)
    assert runs == [1, 1]
    assert result.get() == 2


def test_an_async_timeout_of_its_own_is_an_error_not_a_task_timeout(huey: Huey) -> None:
    signals = []
    huey.signal(S.SIGNAL_TIMEOUT, S.SIGNAL_ERROR)(lambda signal, task, *a: signals.append(signal))

    @huey.task(timeout=10)
    async def waits_for_a_slow_peer():
        await asyncio.wait_for(asyncio.sleep(5), 0.01)

    waits_for_a_slow_peer()
    drain(huey)
    assert signals == [S.SIGNAL_ERROR]


def test_tasks_of_one_worker_thread_share_its_loop(huey: Huey) -> None:
    """Loop-bound clients opened by an async on_startup hook serve every later task."""
    state = {}

    @huey.on_startup()
    async def open_client():
        state["loop"] = asyncio.get_running_loop()
        state["client"] = asyncio.Lock()  # stands for a loop-bound pool

    @huey.task()
    async def use_client():
        async with state["client"]:
            return asyncio.get_running_loop() is state["loop"]

    huey.run_startup_hooks()
    results = [use_client() for _ in range(3)]
    drain(huey)
    assert [r.get() for r in results] == [True, True, True]


def test_each_worker_thread_has_its_own_loop(huey: Huey) -> None:
    loops = {}

    @huey.task()
    async def loop_id():
        return id(asyncio.get_running_loop())

    def worker(name: str) -> None:
        r1, r2 = loop_id(), loop_id()
        drain(huey)
        loops[name] = (r1.get(), r2.get())

    for name in ("a", "b"):
        thread = threading.Thread(target=worker, args=(name,))
        thread.start()
        thread.join()
    assert loops["a"][0] == loops["a"][1]
    assert loops["b"][0] == loops["b"][1]
    assert loops["a"][0] != loops["b"][0]


def test_a_consumer_worker_closes_its_loop_after_its_async_shutdown_hook(huey: Huey) -> None:
    seen: dict[str, object] = {}

    @huey.on_startup()
    async def opened():
        seen["startup"] = asyncio.get_running_loop()

    @huey.on_shutdown()
    async def closing():
        seen["shutdown"] = asyncio.get_running_loop()

    @huey.task()
    async def on_which_loop():
        return asyncio.get_running_loop() is seen["startup"]

    consumer = huey.create_consumer(workers=1)
    consumer.start()
    try:
        assert on_which_loop().get(blocking=True, timeout=10) is True
    finally:
        consumer.stop()
    loop = seen["startup"]
    assert seen["shutdown"] is loop
    assert loop.is_closed()


def test_pipelines_mix_sync_and_async_steps(huey: Huey) -> None:
    @huey.task()
    async def double(x):
        return x * 2

    @huey.task()
    def inc(x):
        return x + 1

    results = huey.enqueue(double.s(5).then(inc).then(double))
    while drain(huey):
        pass
    assert results.get() == [10, 11, 22]


def test_an_async_function_behind_a_plain_decorator_is_awaited(huey: Huey) -> None:
    """A decorator that is not async-aware hides the coroutine function; its coroutine still
    runs on the worker's loop, under the task's timeout."""

    def logged(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

        return wrapper

    @huey.task()
    @logged
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    @huey.task(timeout=0.2)
    @logged
    async def slow():
        await asyncio.sleep(30)

    ok, late = add(1, 2), slow()
    start = time.monotonic()
    drain(huey)
    assert time.monotonic() - start < 5
    assert ok.get() == 3
    with pytest.raises(TaskException, match="TaskTimeout"):
        late.get()


def test_context_task_refuses_async_functions(huey: Huey) -> None:
    with pytest.raises(ConfigurationError, match="use `async with` inside it"):

        @huey.context_task(threading.Lock())
        async def locked():
            pass


def test_call_local_returns_the_coroutine_to_await(huey: Huey) -> None:
    @huey.task()
    async def add(a, b):
        return a + b

    assert run(add.call_local(1, 2)) == 3


# -- awaiting results -------------------------------------------------------------------------


def test_await_result_returns_the_value(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    async def main():
        result = add(1, 2)
        threading.Timer(0.2, drain, args=(huey,)).start()
        return await result

    assert run(main()) == 3


def test_aget_times_out_and_can_revoke(huey: Huey) -> None:
    @huey.task()
    def never_run():
        return 1

    async def main():
        result = never_run()
        start = time.monotonic()
        with pytest.raises(ResultTimeout):
            await result.aget(timeout=0.3, revoke_on_timeout=True)
        return result, time.monotonic() - start

    result, waited = run(main())
    assert 0.3 <= waited < 2
    assert result.is_revoked()


def test_aget_raises_the_task_error(huey: Huey) -> None:
    @huey.task()
    def boom():
        raise ValueError("bad")

    result = boom()
    drain(huey)

    async def main():
        with pytest.raises(TaskException) as info:
            await result.aget(timeout=5)
        return info.value.metadata["error"]

    assert "ValueError" in run(main())


def test_aget_without_blocking_reads_once(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    result = add(1, 2)

    async def main():
        before = await result.aget(blocking=False)
        drain(huey)
        after = await result.aget(blocking=False)
        return before, after

    assert run(main()) == (None, 3)


def test_aget_with_preserve_leaves_the_result_for_others(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    result = add(1, 2)
    drain(huey)
    assert run(result.aget(timeout=5, preserve=True)) == 3
    assert huey.result(result.id) == 3  # still stored, read by id


def test_groups_and_huey_aresult_are_awaitable(huey: Huey) -> None:
    @huey.task()
    def square(x):
        return x * x

    group_result = square.map(range(4))
    drain(huey)
    assert run(group_result.aget(timeout=5)) == [0, 1, 4, 9]
    single = square(7)
    drain(huey)
    assert run(huey.aresult(single.id, timeout=5)) == 49


def test_waiting_for_a_result_never_blocks_the_loop(huey: Huey) -> None:
    """A ticker coroutine keeps its pace while a handler awaits a slow task's result."""

    @huey.task()
    def slow():
        time.sleep(0.5)
        return "done"

    async def main():
        gaps = []

        async def ticker():
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        result = slow()
        threading.Thread(target=drain, args=(huey,)).start()
        value = await result.aget(timeout=10)
        tick.cancel()
        return value, gaps

    value, gaps = run(main())
    assert value == "done"
    assert len(gaps) > 20
    assert max(gaps) < 0.2, f"the loop stalled for {max(gaps):.3f}s"


# -- enqueueing from async code -----------------------------------------------------------------


def test_aenqueue_runs_the_backend_round_trip_off_the_loop(huey: Huey) -> None:
    """A slow enqueue path (here a slow signal handler, standing for a slow backend) leaves the
    loop free: the ticker keeps ticking, and the enqueue ran in another thread."""
    enqueue_threads = []

    @huey.signal(S.SIGNAL_ENQUEUED)
    def slow_backend(signal, task):
        enqueue_threads.append(threading.get_ident())
        time.sleep(0.3)

    @huey.task()
    def add(a, b):
        return a + b

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        result = await add.aenqueue(1, 2)
        scheduled = await add.aschedule((3, 4), delay=60)
        tick.cancel()
        return threading.get_ident(), ticks, result, scheduled

    loop_thread, ticks, result, scheduled = run(main())
    assert ticks >= 20  # 0.6 s of slow enqueue paths, the loop ticking every 10 ms
    assert enqueue_threads and loop_thread not in enqueue_threads
    assert huey.pending_count() == 2  # a worker moves the one with an eta to the schedule
    drain(huey)
    assert result.get() == 3
    assert [t.id for t in huey.scheduled()] == [scheduled.id]


def test_huey_aenqueue_takes_pipelines(huey: Huey) -> None:
    @huey.task()
    async def inc(x):
        return x + 1

    results = run(huey.aenqueue(inc.s(1).then(inc)))
    while drain(huey):
        pass
    assert results.get() == [2, 3]


# -- immediate mode ------------------------------------------------------------------------------


def test_immediate_mode_runs_async_tasks_at_once() -> None:
    huey = make_huey(immediate=True)

    @huey.task()
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    assert add(1, 2).get() == 3


def test_immediate_mode_inside_a_running_loop() -> None:
    """An async web handler in immediate mode (tests, development): both the plain call and
    aenqueue work, though the handler's own loop is running."""
    huey = make_huey(immediate=True)

    @huey.task()
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    async def handler():
        plain = add(1, 2).get()
        awaited = await (await add.aenqueue(3, 4))
        return plain, awaited

    assert run(handler()) == (3, 7)


def test_immediate_mode_timeout_cancels_too() -> None:
    huey = make_huey(immediate=True)

    @huey.task(timeout=0.1)
    async def slow():
        await asyncio.sleep(30)

    with pytest.raises(TaskException, match="TaskTimeout"):
        slow().get()


def test_async_task_events_are_the_usual_ones(huey: Huey) -> None:
    @huey.task()
    async def add(a, b):
        return a + b

    add(1, 2)
    events = collect_events(huey, lambda: drain(huey), expected=2)
    assert [e["status"] for e in events] == ["started", "finished"]
