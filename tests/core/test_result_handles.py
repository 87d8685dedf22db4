"""Result handles, groups and chords beyond test_tasks.py: reschedule keeps what it should,
chords of pipelines and of chords, results in completion order."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from huey_core import Huey, ResultTimeout, TaskException, chord, group
from huey_core import results as results_module
from huey_core.results import EmptyData
from huey_core.serializer import Error
from tests.core.helpers import drain, make_huey, run_due


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


def test_reschedule_keeps_per_call_options_keyword_arguments_and_error_handler(huey: Huey) -> None:
    seen = []

    @huey.task(retries=0, retry_delay=0, timeout=None, priority=1, expires=None)
    def job(x: int, *, scale: int) -> int:
        if x < 0:
            raise ValueError(x)
        return x * scale

    @huey.task()
    def report(exc: Exception) -> None:
        seen.append(repr(exc))

    options = {"retries": 2, "retry_delay": 7, "retry_backoff": 1.5, "timeout": 30}
    call = job.s(5, scale=3, priority=4, expires=3600, **options)
    result = huey.enqueue(call.error(report))
    new = result.reschedule()
    copy = new.task
    assert copy.kwargs == {"scale": 3}
    assert (copy.retries, copy.retry_delay, copy.retry_backoff, copy.timeout) == (2, 7, 1.5, 30)
    assert (copy.priority, copy.expires) == (4, 3600)
    assert copy.on_error is not None and copy.on_error.name == "report"
    drain(huey)
    assert new.get() == 15 and result.get() is None  # the original was revoked
    failing = huey.enqueue(job.s(-1, scale=1).error(report))
    bare = failing.reschedule(preserve_pipeline=False)  # the error handler goes too
    assert bare.task.on_error is None
    drain(huey)
    assert seen == []
    with pytest.raises(TaskException):
        bare.get()


@pytest.mark.usefixtures("kolkata")
@pytest.mark.parametrize("utc", [True, False])
def test_reschedule_with_a_delay_uses_the_instance_s_clock(utc: bool) -> None:
    instance = make_huey(utc=utc)  # local time is 5:30 ahead of UTC here

    @instance.task()
    def job() -> None:
        pass

    new = job().reschedule(delay=120)
    now = _utcnow() if utc else datetime.datetime.now()
    assert 110 < (new.task.eta - now).total_seconds() <= 120


def test_a_chord_member_rescheduled_to_run_now_reports_to_its_chord(huey: Huey) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    @huey.task()
    def collect(values: list[int]) -> list[int]:
        return values

    result = huey.enqueue(chord([ident.s(1, delay=3600), ident.s(2)], collect.s()))
    later, _ = result.results
    later.reschedule()  # the member due in an hour runs now; the chord need not wait
    drain(huey)
    assert result.get() == [1, 2]


def test_a_queued_chord_member_rescheduled_reports_once_through_its_copy(huey: Huey) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    @huey.task()
    def collect(values: list[int]) -> list[int]:
        return values

    result = huey.enqueue(chord([ident.s(1), ident.s(2)], collect.s()))
    first, _ = result.results
    first.reschedule()  # still queued: the original is skipped, its copy runs
    drain(huey)
    assert result.get() == [1, 2]  # not [SKIPPED, 2] from the skipped original
    assert huey.storage.store.items("chord:") == {}


def test_a_scheduled_chord_member_brought_forward_reports_once(huey: Huey) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    @huey.task()
    def collect(values: list[int]) -> list[int]:
        return values

    result = huey.enqueue(chord([ident.s(1, delay=3600), ident.s(2)], collect.s()))
    later, _ = result.results
    later.reschedule()  # the copy runs now; the original comes due in an hour
    drain(huey)
    assert result.get() == [1, 2]
    assert run_due(huey, time.time() + 7200) == 1  # the original: revoked, skipped
    assert huey.storage.store.items("chord:") == {}


def test_two_chords_in_flight_keep_their_results_apart(huey: Huey) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    @huey.task()
    def collect(values: list[int]) -> list[int]:
        return values

    small = huey.enqueue(chord([ident.s(1), ident.s(2)], collect.s()))
    large = huey.enqueue(chord([ident.s(10), ident.s(20)], collect.s()))
    queue = huey.storage.queue
    deliveries = [queue.dequeue("w", 60) for _ in range(4)]
    by_arg = {huey.deserialize_task(d.data).args[0]: d for d in deliveries if d is not None}
    for arg in (1, 10, 2, 20):  # the members of both chords finish interleaved
        huey.process(by_arg[arg])
        queue.ack(by_arg[arg].lease)
    drain(huey)
    assert small.get() == [1, 2] and large.get() == [10, 20]
    assert small.pipeline_results is None  # the callback has no pipeline of its own


def test_reset_reads_a_preserved_result_again(huey: Huey) -> None:
    @huey.task()
    def job() -> str:
        return "value"

    result = job()
    drain(huey)
    assert result.get(preserve=True) == "value"
    result.reset()
    assert result.get() == "value"  # read from the store again
    result.reset()
    assert result.get() is None and not result.is_ready()  # the second read consumed it


def test_handles_pass_their_options_to_get(huey: Huey) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    @huey.task()
    def total(values: list[int]) -> int:
        return sum(values)

    waiting = ident(1)
    group_result = huey.enqueue(group([ident.s(2)]))
    chord_result = huey.enqueue(chord([ident.s(3)], total.s()))
    for handle in (waiting, group_result, chord_result):
        with pytest.raises(ResultTimeout):
            handle(True, 0.01)  # blocking, timeout
        with pytest.raises(ResultTimeout):
            handle.get(blocking=True, timeout=0.01)
    assert not waiting.is_revoked()  # a timed-out wait revokes only when asked
    drain(huey)
    assert waiting(preserve=True) == 1 and huey.result(waiting.id, preserve=True) == 1
    assert group_result(preserve=True) == [2]
    (member,) = group_result
    assert huey.result(member.id) == 2
    assert chord_result(preserve=True) == 3
    assert huey.result(chord_result.callback.id) == 3


def test_awaiting_groups_and_chords_passes_the_options(huey: Huey) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    @huey.task()
    def total(values: list[int]) -> int:
        return sum(values)

    group_result = huey.enqueue(group([ident.s(2)]))
    chord_result = huey.enqueue(chord([ident.s(3)], total.s()))

    async def timeouts() -> int:
        raised = 0
        for handle in (group_result, chord_result):
            for wait in (handle.aget(0.01), handle.aget(timeout=0.01)):
                try:  # a handle that dropped the timeout would wait for ever
                    await asyncio.wait_for(wait, 10)
                except ResultTimeout:
                    raised += 1
        return raised

    assert asyncio.run(timeouts()) == 4
    drain(huey)
    assert asyncio.run(group_result.aget(preserve=True)) == [2]
    assert asyncio.run(chord_result.aget(preserve=True)) == 3

    async def awaited() -> int:
        value: int = await chord_result
        return value

    assert asyncio.run(awaited()) == 3
    (member,) = group_result
    assert huey.result(member.id) == 2 and huey.result(chord_result.callback.id) == 3


def test_indexing_a_group_waits_for_that_result(huey: Huey) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    results = huey.enqueue(group([ident.s(7)]))
    threading.Timer(0.2, drain, args=(huey,)).start()
    assert results[0] == 7


def test_as_completed_yields_finished_results_at_once_and_backs_off_while_waiting(
    huey: Huey, monkeypatch: pytest.MonkeyPatch
) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    results = huey.enqueue(group([ident.s(1), ident.s(2)]))
    queue = huey.storage.queue
    deliveries = [queue.dequeue("w", 60) for _ in range(2)]
    by_arg = {huey.deserialize_task(d.data).args[0]: d for d in deliveries if d is not None}
    huey.process(by_arg[1])
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the waits as_completed asks for, without waiting
        sleeps.append(seconds)
        if len(sleeps) == 6:
            huey.process(by_arg[2])

    monkeypatch.setattr(results_module, "time", SimpleNamespace(sleep=sleep))
    assert list(results.as_completed(backoff=2, max_delay=0.5)) == [1, 2]
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.5])


def test_as_completed_waits_longer_each_time_up_to_a_second_by_default(
    huey: Huey, monkeypatch: pytest.MonkeyPatch
) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    results = huey.enqueue(group([ident.s(1)]))
    delivery = huey.storage.queue.dequeue("w", 60)
    assert delivery is not None
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 30:
            huey.process(delivery)

    monkeypatch.setattr(results_module, "time", SimpleNamespace(sleep=sleep))
    assert list(results.as_completed()) == [1]
    assert sleeps[0] == pytest.approx(0.05 * 1.15)
    assert sleeps[1:] == pytest.approx([min(s * 1.15, 1.0) for s in sleeps[:-1]])
    assert sleeps[-1] == 1.0


def test_group_and_chord_handlers_take_extra_arguments(huey: Huey) -> None:
    seen = []

    @huey.task()
    def ident(x: int) -> int:
        return x

    @huey.task()
    def fail(x: int) -> None:
        raise KeyError(x)

    @huey.task()
    def scale(factor: int, values: list[int], offset: int = 0) -> list[int]:
        return [factor * v + offset for v in values]

    @huey.task()
    def label(tag: str, value: Any, suffix: str = "") -> str:
        return f"{tag}{value}{suffix}"

    @huey.task()
    def report(tag: str, exc: Exception, suffix: str = "") -> None:
        seen.append(f"{tag}{exc!r}{suffix}")

    scaled = huey.enqueue(group([ident.s(1), ident.s(2)]).then(scale, 10, offset=1))
    labelled = huey.enqueue(chord([ident.s(3)], ident.s()).then(label, "<", suffix=">"))
    huey.enqueue(group([fail.s(1)]).error(report, "group:", suffix="!"))
    huey.enqueue(chord([ident.s(4)], fail.s()).error(report, "chord:", suffix="?"))
    drain(huey)
    assert scaled.get() == [11, 21]
    assert labelled.pipeline_results is not None
    assert labelled.pipeline_results.get() == [[3], "<[3]>"]
    assert sorted(seen) == ["chord:KeyError([4])?", "group:KeyError(1)!"]


def test_a_group_member_in_a_chord_is_refused_with_what_to_do(huey: Huey) -> None:
    @huey.task()
    def ident(x: int) -> int:
        return x

    with pytest.raises(ValueError) as info:
        huey.enqueue(chord([group([ident.s(1)])], ident.s()))
    assert str(info.value) == (
        "a group cannot be a chord member; turn it into a chord with .then()"
    )


def test_a_chord_member_whose_pipeline_fails_early_still_completes_the_chord(huey: Huey) -> None:
    @huey.task()
    def fail(x: int) -> int:
        raise ValueError(x)

    @huey.task()
    def ident(x: int) -> int:
        return x

    @huey.task()
    def collect(values: list[Any]) -> list[Any]:
        return ["error" if isinstance(v, Error) else v for v in values]

    result = huey.enqueue(chord([fail.s(1).then(ident), ident.s(2)], collect.s()))
    drain(huey)
    assert result.get() == ["error", 2]  # the failed pipeline's place holds its error
    with pytest.raises(TaskException):
        result.results.get()


def test_get_raw_result_hands_back_a_failure_and_waits_only_when_asked(huey: Huey) -> None:
    @huey.task()
    def boom() -> None:
        raise ValueError("bad")

    failed, pending = boom(), boom.s()
    drain(huey)
    raw = failed.get_raw_result()
    assert isinstance(raw, Error) and "ValueError" in raw.metadata["error"]
    failed.reset()
    assert failed.get_raw_result() is None  # the first read consumed it
    waiting = huey.enqueue(pending)
    assert waiting.get_raw_result(timeout=0.01) is None  # a timeout alone does not block
    with pytest.raises(ResultTimeout):
        waiting.get_raw_result(blocking=True, timeout=0.01)
    assert not waiting.is_revoked()


def test_aget_waits_longer_between_reads_up_to_max_delay(
    huey: Huey, monkeypatch: pytest.MonkeyPatch
) -> None:
    @huey.task()
    def job() -> str:
        return "done"

    sleeps: list[float] = []
    finish_after = 0

    async def sleep(seconds: float) -> None:  # the waits aget asks for, without waiting
        sleeps.append(seconds)
        if len(sleeps) == finish_after:
            drain(huey)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    finish_after = 5
    assert asyncio.run(job().aget(backoff=2, max_delay=0.05)) == "done"
    assert sleeps == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05])
    sleeps.clear()
    finish_after = 14
    result = job()
    assert asyncio.run(result.aget()) == "done"
    assert sleeps[:3] == pytest.approx([0.01, 0.015, 0.0225])
    assert sleeps[-1] == 0.5 and max(sleeps) == 0.5  # by default: from 10 ms by 1.5x to 0.5 s
    assert huey.result(result.id) is None  # read and consumed, as get() does


def test_aget_timeout_says_which_task_and_revokes_only_when_asked(huey: Huey) -> None:
    @huey.task()
    def job() -> int:
        return 1

    result = job()
    with pytest.raises(ResultTimeout, match=f"^timed out after 0.01s waiting for .*{result.id}$"):
        asyncio.run(result.aget(timeout=0.01))
    assert not result.is_revoked()
    drain(huey)
    assert asyncio.run(result.aget(blocking=False, preserve=True)) == 1
    assert huey.result(result.id) == 1  # left stored for other readers


def test_is_ready_reads_the_result_into_the_handle(huey: Huey) -> None:
    @huey.task()
    def job() -> str:
        return "value"

    result = job()
    assert not result.is_ready()
    drain(huey)
    assert result.is_ready()
    assert huey.result(result.id) is None  # read off the store, as get() would
    assert result.get() == "value"


def test_a_blocking_get_with_preserve_leaves_a_result_that_arrives_while_it_waits(
    huey: Huey,
) -> None:
    @huey.task()
    def job() -> str:
        return "value"

    result = job()
    threading.Timer(0.2, drain, args=(huey,)).start()
    assert result.get(blocking=True, timeout=30, preserve=True) == "value"
    assert huey.result(result.id) == "value"  # still stored for other readers


def test_a_revoked_result_names_the_key_of_its_revocation(huey: Huey) -> None:
    @huey.task()
    def job() -> None:
        pass

    result = job()
    result.revoke()
    assert huey.get(result.revoke_id, peek=True) is not None  # huey's Result.revoke_id
    result.restore()
    assert huey.get(result.revoke_id, peek=True) is None
