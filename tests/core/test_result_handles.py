"""Result handles, groups and chords beyond test_tasks.py: reschedule keeps what it should,
chords of pipelines and of chords, results in completion order."""

from __future__ import annotations

import datetime
import time

import pytest

from huey_core import Huey, ResultTimeout, TaskException, chord, group
from huey_core.results import EmptyData
from tests.core.helpers import drain, run_due


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def test_reschedule_keeps_the_task_options_and_its_pipeline(huey: Huey) -> None:
    ran = []

    @huey.task(retries=2, retry_delay=7, retry_backoff=1.5, expires=3600, timeout=30, priority=4)
    def job(x: int) -> int:
        ran.append(x)
        return x

    @huey.task()
    def after(x: int) -> int:
        return x + 100

    (head, tail) = huey.enqueue(job.s(5).then(after))
    new, new_tail = head.reschedule(delay=120)  # a pipeline: one result per step, as huey
    assert head.is_revoked() and new.id != head.id
    copy = new.task
    assert (copy.args, copy.retries, copy.retry_delay, copy.retry_backoff) == ((5,), 2, 7, 1.5)
    assert (copy.priority, copy.expires, copy.timeout) == (4, 3600, 30)
    assert 110 < (copy.eta - _utcnow()).total_seconds() <= 120
    assert copy.on_complete is not None and copy.on_complete.name == "after"
    drain(huey)
    assert ran == []  # the original was revoked, the copy is not due
    run_due(huey, now=time.time() + 125)
    assert ran == [5] and new.get() == 5
    drain(huey)
    assert new_tail.get() == 105


def test_reschedule_can_change_priority_and_expiry_and_drop_the_pipeline(huey: Huey) -> None:
    @huey.task(priority=1, expires=60)
    def job() -> str:
        return "ran"

    @huey.task()
    def after(value: str) -> str:
        return value

    result, _ = huey.enqueue(job.s().then(after))
    eta = datetime.datetime.now() + datetime.timedelta(minutes=5)  # naive: local time
    new = result.reschedule(eta=eta, priority=9, expires=600, preserve_pipeline=False)
    assert (new.task.priority, new.task.expires) == (9, 600)
    assert new.task.on_complete is None
    assert (
        abs(
            (
                new.task.eta - eta.astimezone(datetime.timezone.utc).replace(tzinfo=None)
            ).total_seconds()
        )
        < 1
    )
    now, _ = result.reschedule()  # no time: runs as soon as a worker takes it
    assert now.task.eta is None and now.task.priority == 1 and now.task.expires == 60


def test_results_of_a_group_in_order_by_index_and_by_call(huey: Huey) -> None:
    @huey.task()
    def square(x: int) -> int:
        return x * x

    results = huey.enqueue(group([square.s(i) for i in (2, 3)]))
    drain(huey)
    assert results[1] == 9 and results[0] == 4  # indexing waits for and reads one result
    again = huey.enqueue(group([square.s(4)]))
    drain(huey)
    assert again() == [16]  # calling the group is get()


def test_as_completed_yields_results_as_they_arrive(huey: Huey) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    results = huey.enqueue(group([ident.s(i) for i in (1, 2, 3)]))
    queue = huey.storage.queue
    first, second, third = (queue.dequeue("w", 60) for _ in range(3))
    for delivery in (third, first):  # the last and the first finish; the middle one later
        huey.process(delivery)
    seen = []
    for value in results.as_completed(backoff=2, max_delay=0.05):
        seen.append(value)
        if len(seen) == 2:
            huey.process(second)
    assert sorted(seen[:2]) == [1, 3] and seen[2] == 2


def test_a_result_handle_reads_once_and_resets(huey: Huey) -> None:
    @huey.task()
    def job() -> str:
        return "value"

    result = job()
    assert repr(EmptyData) == "EmptyData"
    assert result() is None  # calling is get(): not ready yet
    drain(huey)
    assert result() == "value" and result.get() == "value"  # the handle keeps what it read
    result.reset()
    assert result.get() is None  # the stored value was consumed by the first read
    assert not result.is_revoked()


def test_a_blocking_get_that_times_out_can_revoke_the_task(huey: Huey) -> None:
    ran = []

    @huey.task()
    def job() -> None:
        ran.append(1)

    result = job()
    with pytest.raises(ResultTimeout, match=f"timed out after 0.05s waiting for .*{result.id}"):
        result.get(blocking=True, timeout=0.05, revoke_on_timeout=True)
    assert result.is_revoked()
    drain(huey)
    assert ran == []


def test_a_chord_of_pipelines_gets_each_pipeline_s_last_value(huey: Huey) -> None:
    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    @huey.task()
    def collect(values: list[int]) -> list[int]:
        return values

    members = [add.s(1, 1).then(add, 10), add.s(2, 2).then(add, 20)]
    result = huey.enqueue(chord(members, collect.s()))
    drain(huey)
    assert result.get() == [12, 24]
    assert result.results.get() == [12, 24]  # the members' results are their last steps'


def test_chord_then_and_error_chain_onto_the_callback(huey: Huey) -> None:
    seen = []

    @huey.task()
    def ident(x: int) -> int:
        return x

    @huey.task()
    def total(values: list[int]) -> int:
        return sum(values)

    @huey.task()
    def double(x: int) -> int:
        return 2 * x

    @huey.task()
    def fail(x: int) -> None:
        raise ValueError(x)

    @huey.task()
    def report(exc: Exception) -> None:
        seen.append(repr(exc))

    ok = huey.enqueue(group([ident.s(1), ident.s(2)]).then(total).then(double))
    bad = huey.enqueue(chord([ident.s(3)], fail.s()).error(report))
    drain(huey)
    assert ok.get() == 3 and ok.pipeline_results is not None
    assert ok.pipeline_results.get() == [3, 6]
    with pytest.raises(TaskException):
        bad.get()
    assert seen == ["ValueError([3])"]


def test_a_chord_member_can_be_a_chord_but_not_a_group(huey: Huey) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    @huey.task()
    def total(values: list[int]) -> int:
        return sum(values)

    inner = chord([ident.s(1), ident.s(2)], total.s())
    outer = huey.enqueue(chord([inner, ident.s(10)], total.s()))
    drain(huey)
    assert outer.get() == 13
    with pytest.raises(ValueError, match="a group cannot be a chord member"):
        huey.enqueue(chord([group([ident.s(1)])], total.s()))


def test_group_error_handler_reaches_every_member(huey: Huey) -> None:
    seen = []

    @huey.task()
    def fail(x: int) -> None:
        raise KeyError(x)

    @huey.task()
    def report(exc: Exception) -> None:
        seen.append(repr(exc))

    huey.enqueue(group([fail.s(1), fail.s(2)]).error(report))
    drain(huey)
    assert sorted(seen) == ["KeyError(1)", "KeyError(2)"]
