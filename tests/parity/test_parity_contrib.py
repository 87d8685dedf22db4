"""huey.contrib-style helpers: the semaphore and lock_task_semaphore on every backend, and
aget_result / aget_result_group for asyncio callers.

The semaphore's guarantee is checked where it matters: many threads, and separate processes,
contend for the slots of one semaphore on memory, Redis and SQLite, each recording when it held
a slot; at no instant do more than `value` holders overlap. Where Redis is up the same sequence
of calls is also run against huey 3.5.4's RedisSemaphore.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from huey_core import Huey
from huey_core.contrib.asyncio import aget_result, aget_result_group
from huey_core.contrib.helpers import RedisSemaphore, Semaphore, lock_task_semaphore
from huey_core.exceptions import ResultTimeout, TaskException, TaskLockedException
from huey_core.testing.apps import wait_for
from huey_redis.testing import REDIS_URL, require_server
from tests.core.helpers import drain

BACKENDS = ["memory", "redis", "sqlite"]


def _url(kind, tmp_path):
    if kind == "memory":
        return "memory://"
    if kind == "redis":
        return require_server(REDIS_URL)
    return f"sqlite:///{tmp_path}/huey.db"


@pytest.fixture(params=BACKENDS)
def kind(request):
    return request.param


@pytest.fixture
def huey(kind, tmp_path):
    h = Huey(f"sem-{uuid.uuid4().hex[:10]}", url=_url(kind, tmp_path))
    yield h
    if h.storage_built:
        h.storage.store.flush()
        h.storage.close()


def max_overlap(intervals):
    """The largest number of (start, end) intervals that hold at one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = current = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start: not an overlap
        current += step
        most = max(most, current)
    return most


def test_threads_never_hold_more_slots_than_the_value(huey):
    sem = Semaphore(huey, "crawl", value=3, timeout=30)
    intervals, refused = [], []
    record = threading.Lock()

    def worker():
        for _ in range(15):
            holder = sem.acquire()
            if holder is None:
                refused.append(1)
                time.sleep(0.001)
                continue
            start = time.monotonic()
            time.sleep(0.005)
            end = time.monotonic()
            assert sem.release(holder)
            with record:
                intervals.append((start, end))

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max_overlap(intervals) == 3  # full use of the slots, never more
    assert refused  # ten threads on three slots: some were turned away
    assert sem.holders() == 0


CONTENDER = """
import json, sys, time
from huey_core import Huey
from huey_core.contrib.helpers import Semaphore
huey = Huey(sys.argv[1], url=sys.argv[2])
sem = Semaphore(huey, "shared", value=2, timeout=30)
sem.holders()  # connected (and tables made) before the start line
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # every process starts together
held = []
deadline = time.time() + 3
while time.time() < deadline:
    holder = sem.acquire()
    if holder is None:
        time.sleep(0.02)  # refused: try again a little later, as a retried task would
        continue
    start = time.time()
    time.sleep(0.1)
    held.append((start, time.time()))
    sem.release(holder)
    time.sleep(0.02)  # between two tasks: the others get their chance
print(json.dumps(held))
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_processes_never_hold_more_slots_than_the_value(huey, kind, tmp_path):
    import json

    url = _url(kind, tmp_path)
    script = tmp_path / "contender.py"
    script.write_text(textwrap.dedent(CONTENDER))
    huey.storage.store.size()  # the tables exist before four processes race to make them
    start = time.time() + 3  # after every process has imported and connected
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), huey.name, url, str(start)], stdout=subprocess.PIPE
        )
        for _ in range(4)
    ]
    intervals = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        intervals += json.loads(out)
    assert len(intervals) > 20  # the slots were in use for most of the three seconds
    assert max_overlap(intervals) == 2


def test_a_dead_holders_slot_frees_itself(huey):
    sem = Semaphore(huey, "expiring", value=1, timeout=1)
    assert sem.acquire("crashed") == "crashed"  # never released: its process died
    assert sem.acquire() is None
    time.sleep(1.3)
    assert sem.acquire("next") == "next"
    assert sem.renew("crashed") is False and sem.release("crashed") is False


def test_acquire_renew_release_like_hueys_semaphore(huey):
    sem = Semaphore(huey, "api", value=2, timeout=2)
    assert sem.acquire("a") == "a"
    assert sem.acquire("a") == "a"  # the same holder again: still one slot
    assert sem.holders() == 1
    assert sem.acquire("b") == "b" and sem.acquire("c") is None
    time.sleep(1.2)
    assert sem.renew("a")  # a keeps its slot past the first timeout; b does not
    time.sleep(1.2)
    assert sem.acquire("c") == "c"  # b's slot expired
    assert sem.acquire("d") is None
    assert sem.release("a") and not sem.release("a")
    assert sem.acquire("d") == "d"
    assert RedisSemaphore is Semaphore


def test_flush_locks_frees_the_slots(huey):
    sem = Semaphore(huey, "flushed", value=2)
    sem.acquire()
    sem.acquire()
    assert sem.acquire() is None
    assert "flushed.slot0" in huey.flush_locks()
    assert sem.holders() == 0


def test_bad_values_are_refused():
    huey = Huey("sem-bad", backend="memory")
    for value in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="value must be an int"):
            Semaphore(huey, "x", value=value)
    with pytest.raises(ValueError, match="timeout"):
        Semaphore(huey, "x", timeout=-5)


def test_lock_task_semaphore_limits_a_task_and_renews_while_it_runs(huey):
    @huey.task()
    @lock_task_semaphore(huey, "limited", value=1, timeout=1.2)
    def slow(seconds):
        time.sleep(seconds)
        finished.set()  # the slot is released after this, as the call returns
        return seconds

    finished = threading.Event()
    sem = Semaphore(huey, "limited", value=1, timeout=1.2)
    result = slow(3.0)  # runs longer than the timeout: the renewer must keep the slot
    worker = threading.Thread(target=drain, args=(huey,))
    worker.start()
    # From the moment the task holds its slot (not after a guessed sleep: a busy machine may
    # take longer to start it) until it ends, the slot stays held.
    assert wait_for(lambda: sem.holders() == 1 or not worker.is_alive())
    seen_free = False
    while worker.is_alive():
        free = sem.holders() == 0
        seen_free |= free and not finished.is_set()  # read after: the release comes later
        time.sleep(0.05)
    worker.join()
    assert result.get() == 3.0
    assert not seen_free  # held from start to end, renewed past 1.2 s
    assert sem.holders() == 0  # released when the task ended


def test_lock_task_semaphore_refuses_when_full(huey):
    calls = []

    @lock_task_semaphore(huey, "full", value=2)
    def work():
        calls.append(1)
        return "ran"

    sem = Semaphore(huey, "full", value=2)
    first, second = sem.acquire(), sem.acquire()
    with pytest.raises(TaskLockedException, match="full"):
        work()
    sem.release(first)
    assert work() == "ran" and calls == [1]
    assert sem.holders() == 1  # only `second`: the call released its own slot
    assert work.__name__ == "work"
    sem.release(second)


def test_same_calls_same_answers_as_hueys_redis_semaphore():
    helpers = pytest.importorskip("huey.contrib.helpers")
    huey_api = pytest.importorskip("huey.api")
    require_server(REDIS_URL)
    name = f"sem-{uuid.uuid4().hex[:10]}"
    theirs = huey_api.RedisHuey(name + "-huey", host="127.0.0.1", port=6379)
    ours = Huey(name, url=REDIS_URL)
    try:
        answers = []
        for sem in (helpers.RedisSemaphore(theirs, "s", 2), Semaphore(ours, "s", 2)):
            answers.append([
                sem.acquire("a"), sem.acquire("a"), sem.acquire("b"), sem.acquire("c"),
                bool(sem.release("a")), sem.acquire("c"), sem.renew("b"), sem.renew("zz"),
            ])  # fmt: skip
        assert answers[0] == answers[1] == ["a", "a", "b", None, True, "c", True, False]
    finally:
        theirs.storage.conn.delete(f"{name}-huey.lock.s")
        ours.storage.store.flush()
        ours.storage.close()


# -- asyncio ----------------------------------------------------------------------------------


def _memory_huey():
    huey = Huey(f"aio-{uuid.uuid4().hex[:8]}", backend="memory")

    @huey.task()
    def add(a, b):
        return a + b

    @huey.task()
    def fail():
        raise ValueError("nope")

    return huey, add, fail


def test_aget_result_waits_without_blocking_the_loop():
    huey, add, _ = _memory_huey()
    result = add(1, 2)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.ensure_future(ticker())
        threading.Timer(0.3, drain, args=(huey,)).start()
        value = await aget_result(result, timeout=10)
        tick.cancel()
        return value, ticks

    value, ticks = asyncio.run(main())
    assert value == 3
    assert ticks > 10  # the loop ran other work while it waited


def test_aget_result_timeout_preserve_and_errors():
    huey, add, fail = _memory_huey()
    late, failing = add(2, 2), fail()
    with pytest.raises(ResultTimeout):
        asyncio.run(aget_result(late, timeout=0.2))
    drain(huey)
    assert asyncio.run(aget_result(late, preserve=True)) == 4
    assert late.get() == 4  # preserved: still readable
    with pytest.raises(TaskException, match="nope"):
        asyncio.run(aget_result(failing, timeout=5))


def test_aget_result_group_in_order_and_cancels_on_error():
    huey, add, fail = _memory_huey()
    group = add.map([(i, i) for i in range(5)])
    drain(huey)
    assert asyncio.run(aget_result_group(group, timeout=5)) == [0, 2, 4, 6, 8]

    failing = fail()
    drain(huey)
    never = add(1, 1)  # never runs: nothing drains the queue again

    async def both():
        start = time.monotonic()
        with pytest.raises(TaskException):
            await aget_result_group([never, failing], timeout=30)
        return time.monotonic() - start

    assert asyncio.run(both()) < 5  # the failure ends the wait on `never` at once
