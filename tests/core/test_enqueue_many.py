"""The bulk path: `task.map(...)` and `huey.enqueue_many(...)` store every message with one
`queue.enqueue_many` call (one round trip on the built-in backends), in order, with the same
results, priorities and `enqueued` events as one enqueue per task."""

from __future__ import annotations

import pytest

from huey_core import Huey, group
from huey_core.exceptions import ConfigurationError
from tests.core.helpers import collect_events, drain, make_huey


def _count_bulk_writes(huey: Huey) -> list[int]:
    """Record the size of every queue.enqueue_many call (the backend's own method still runs)."""
    queue = huey.storage.queue
    sizes: list[int] = []
    original = queue.enqueue_many

    def counting(items: list[tuple[bytes, int]]) -> None:
        sizes.append(len(items))
        original(items)

    queue.enqueue_many = counting  # type: ignore[method-assign]
    return sizes


def test_map_stores_every_message_in_one_bulk_write_in_order(huey: Huey) -> None:
    @huey.task()
    def square(x):
        return x * x

    sizes = _count_bulk_writes(huey)
    results = square.map(range(50))
    assert sizes == [50]
    assert len(huey) == 50
    assert drain(huey) == 50
    assert results.get() == [x * x for x in range(50)]


def test_enqueue_many_keeps_priorities_and_returns_results_in_order(huey: Huey) -> None:
    @huey.task()
    def echo(x):
        return x

    tasks = [echo.s(1), echo.s(2, priority=9), echo.s(3)]
    results = huey.enqueue_many(tasks)
    assert results is not None and len(results) == 3
    queue = huey.storage.queue
    if queue.priority:
        first = queue.dequeue("w", 30.0)
        assert first is not None and huey.deserialize_task(first.data).id == tasks[1].id
        queue.release(first.lease)
    drain(huey)
    assert [r.get() for r in results] == [1, 2, 3]


def test_enqueue_many_emits_one_enqueued_event_per_task(huey: Huey) -> None:
    @huey.task()
    def noop(x):
        return None

    tasks = [noop.s(i) for i in range(3)]
    events = collect_events(huey, lambda: huey.enqueue_many(tasks), expected=3)
    assert [e["status"] for e in events] == ["enqueued"] * 3
    assert [e["id"] for e in events] == [t.id for t in tasks]


def test_a_bulk_enqueue_larger_than_the_event_queue_still_emits_every_event(huey: Huey) -> None:
    # Redis and SQL send events from a publisher thread that holds at most max_pending of them
    # (memory hands them over inline): a map() of more tasks than that waits for room.
    huey._publisher.max_pending = 50

    @huey.task()
    def noop(i):
        return i

    results: list = []
    events = collect_events(huey, lambda: results.extend(noop.map(range(300))), expected=300)
    assert [e["status"] for e in events] == ["enqueued"] * 300
    assert [e["id"] for e in events] == [r.id for r in results]
    assert huey._publisher.dropped == 0


def test_map_without_results_returns_none_and_still_runs_everything() -> None:
    huey = make_huey(results=False)
    ran = []

    @huey.task()
    def record(x):
        ran.append(x)

    assert record.map(range(5)) is None
    drain(huey)
    assert ran == [0, 1, 2, 3, 4]


def test_a_bad_task_in_a_bulk_enqueue_stores_none_of_them(huey: Huey) -> None:
    @huey.task()
    def echo(x):
        return x

    good = echo.s(1)
    bad = echo.s(2)
    bad.retries = -1  # refused by the option limits before anything is written
    with pytest.raises(ConfigurationError):
        huey.enqueue_many([good, bad])
    assert len(huey) == 0


def test_groups_in_a_bulk_enqueue_go_one_by_one(huey: Huey) -> None:
    @huey.task()
    def echo(x):
        return x

    results = huey.enqueue_many([group([echo.s(1), echo.s(2)]), echo.s(3)])
    drain(huey)
    assert results is not None
    assert results[0].get() == [1, 2] and results[1].get() == 3


def test_map_in_immediate_mode_runs_each_task_at_once() -> None:
    huey = make_huey(immediate=True)

    @huey.task()
    def square(x):
        return x * x

    assert square.map(range(4)).get() == [0, 1, 4, 9]
