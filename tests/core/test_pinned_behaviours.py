"""Behaviours whose one-line bugs once survived the whole suite (issue 16's mutation run).

Each test here fails with the bug named in its docstring. They run on the memory backend and,
through HUEY_CORE_TEST_BACKEND / HUEY_CORE_TEST_URL (tests/core/helpers.py), on Redis and SQLite
in `make test` as well (the Makefile's test-core-backends target).
"""

from __future__ import annotations

import datetime
import time

import pytest

from huey_core import Huey, RateLimitExceeded, TaskException, chord
from huey_core.consumer import Consumer
from tests.core.helpers import drain, make_huey, run_due

# -- locks -------------------------------------------------------------------------------------


def test_a_lock_is_released_when_the_task_raises(huey: Huey) -> None:
    """Bug: the lock is released only when the block returns, so one failure wedges the task."""
    ran = []

    @huey.task()
    @huey.lock_task("nightly")
    def nightly(fail: bool) -> str:
        ran.append(fail)
        if fail:
            raise ValueError("disk full")
        return "done"

    failed = nightly(True)
    drain(huey)
    with pytest.raises(TaskException, match="disk full"):
        failed.get()
    assert not huey.is_locked("nightly")
    again = nightly(False)
    drain(huey)
    assert again.get() == "done" and ran == [True, False]

    with pytest.raises(KeyError):
        with huey.lock_task("inline"):
            raise KeyError("x")
    assert not huey.is_locked("inline")


# -- rate limits -------------------------------------------------------------------------------


def _window_not_half_gone(now: float) -> float:
    """A window length whose current window is far from its midpoint, where the time left
    equals the time gone and a swap of the two would go unnoticed."""
    for per in (60.0, 97.0, 131.0, 173.0):
        if abs(now % per - per / 2) > 10:
            return per
    raise AssertionError("unreachable: the four windows cannot all be near their midpoints")


def test_a_rate_limit_reports_the_time_left_in_the_window(huey: Huey) -> None:
    """Bug: RateLimitExceeded carries the seconds gone since the window opened."""
    per = _window_not_half_gone(time.time())
    limit = huey.rate_limit("api", limit=1, per=per, retry=False)
    with limit:
        pass
    before = time.time()
    with pytest.raises(RateLimitExceeded) as info:
        with limit:
            pass
    after = time.time()
    window_end = (before // per + 1) * per
    assert window_end - after - 0.01 <= info.value.delay <= window_end - before + 0.01


def test_a_rate_limited_task_waits_until_the_window_reopens(huey: Huey) -> None:
    """Bug: the task is rescheduled after the elapsed, not the remaining, part of the window."""
    per = _window_not_half_gone(time.time())

    @huey.task()
    @huey.rate_limit("send", limit=1, per=per)
    def send(x: int) -> int:
        return x

    send(1)
    send(2)
    before = time.time()
    drain(huey)
    after = time.time()
    ((when, _),) = huey.storage.schedule.peek()
    window_end = (before // per + 1) * per
    # The eta is stored at microsecond precision; the window may end between before and after.
    assert window_end - 0.01 <= when <= window_end + (after - before) + 0.01


# -- pipelines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, "", [], 0.0, False], ids=repr)
def test_a_falsy_result_is_passed_to_the_next_pipeline_step(huey: Huey, value: object) -> None:
    """Bug: `if not data: return` in extend_data drops 0, "", [] between steps."""

    @huey.task()
    def produce() -> object:
        return value

    @huey.task()
    def receive(*args: object) -> list[object]:
        return list(args)

    results = huey.enqueue(produce.s().then(receive, "first"))
    drain(huey)
    assert results.get() == [value, ["first", value]]


def test_a_none_result_adds_no_argument_to_the_next_step_as_in_huey(huey: Huey) -> None:
    """None (a task with no return) is not passed on: the next step runs with its own args."""

    @huey.task()
    def produce() -> None:
        return None

    @huey.task()
    def receive(*args: object) -> list[object]:
        return list(args)

    results = huey.enqueue(produce.s().then(receive, "first"))
    drain(huey)
    assert results.get() == [None, ["first"]]


# -- chords ------------------------------------------------------------------------------------


def test_a_chord_callback_waits_for_every_member_whatever_order_they_finish_in(
    huey: Huey,
) -> None:
    """Bug: the callback is enqueued when the last-indexed member finishes, not the last one."""
    calls = []

    @huey.task()
    def square(x: int) -> int:
        return x * x

    @huey.task()
    def total(values: list[int]) -> list[int]:
        calls.append(values)
        return values

    result = huey.enqueue(chord([square.s(i) for i in (1, 2, 3)], total.s()))
    queue = huey.storage.queue
    deliveries = [queue.dequeue("w", 60) for _ in range(3)]
    assert all(d is not None for d in deliveries) and queue.dequeue("w", 60) is None
    for done, delivery in enumerate(reversed(deliveries), start=1):
        assert huey.process(delivery) is True
        queue.ack(delivery.lease)
        if done < 3:  # members still running: no callback yet
            assert queue.dequeue("w", 60) is None, f"callback enqueued after {done} of 3"
    drain(huey)
    assert calls == [[1, 4, 9]] and result.get() == [1, 4, 9]


# -- consumer shutdown -------------------------------------------------------------------------


def test_a_message_claimed_while_the_consumer_stops_goes_back_to_the_queue(
    huey: Huey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug: the worker leaves without releasing it, so it waits out its lease unseen."""
    ran = []

    @huey.task()
    def job() -> str:
        ran.append(1)
        return "ran"

    consumer = Consumer(huey, workers=1, periodic=False, scheduler=False, mode="polling")
    queue = huey.storage.queue
    dequeue_many = queue.dequeue_many
    claimed = []

    def dequeue_then_stop(*args: object, **kwargs: object) -> object:
        # The stop request lands while the claim is on its way back: the race the worker
        # guards against, made to happen every time.
        batch = dequeue_many(*args, **kwargs)  # type: ignore[arg-type]
        if batch:
            claimed.extend(batch)
            consumer.stopping.set()
        return batch

    result = job()
    monkeypatch.setattr(queue, "dequeue_many", dequeue_then_stop)
    consumer.start()
    try:
        (worker,) = consumer.worker_list
        assert worker.thread is not None
        worker.thread.join(10)
        assert not worker.thread.is_alive() and len(claimed) == 1
    finally:
        consumer.stop(graceful=False)
    monkeypatch.undo()
    assert ran == []  # handed back untouched
    again = queue.dequeue("w", 60)  # at once: its lease was released, not left to expire
    assert again is not None and again.data == claimed[0].data
    assert huey.process(again) is True
    assert result.get() == "ran"


# -- time zones --------------------------------------------------------------------------------


@pytest.mark.usefixtures("kolkata")
def test_delay_under_utc_counts_from_utc_now_whatever_the_local_zone() -> None:
    """Bug: `delay=` added to local time under utc=True: 5 h 30 late in India, early west."""
    huey = make_huey(utc=True)

    @huey.task()
    def job() -> str:
        return "ran"

    result = job.schedule(delay=60)
    utc_now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs((result.task.eta - utc_now).total_seconds() - 60) < 5
    drain(huey)  # not due: it moves to the schedule
    ((when, _),) = huey.storage.schedule.peek()
    assert abs(when - (time.time() + 60)) < 5  # the schedule holds true unix time
    run_due(huey, now=time.time() + 30)
    assert result.get() is None
    run_due(huey, now=time.time() + 65)
    assert result.get() == "ran"
