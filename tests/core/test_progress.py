"""Task progress (the contract issue 15's dashboard reads): `task.progress(done, total, note)`
stores the latest report under progress:<id> as JSON with a ttl, emits a `progress` event, is
rate-limited per task, and `Result.progress()` / `huey.progress(id)` read it without consuming
the result."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from huey_core import Huey, TaskException, keys
from huey_core.events import EventStatus
from huey_core.progress import Progress
from tests.core.helpers import collect_events, drain, make_huey


def test_progress_is_stored_as_json_under_its_key(huey: Huey) -> None:
    @huey.task(context=True)
    def crunch(n, task=None):
        for i in range(1, n + 1):
            task.progress(i, n, f"item {i}")
            time.sleep(0.12)  # past the rate limit: every report is written at once
        return n

    result = crunch(3)
    before = time.time()
    drain(huey)
    raw = huey.storage.store.peek(keys.progress(result.id))
    data = json.loads(raw)
    assert set(data) == {"done", "total", "note", "time"}
    assert (data["done"], data["total"], data["note"]) == (3, 3, "item 3")
    assert before <= data["time"] <= time.time()
    assert keys.progress(result.id) == f"progress:{result.id}"
    assert keys.classify(keys.progress(result.id), huey.name) is keys.KeyKind.INTERNAL


def test_result_progress_reads_without_consuming_the_result(huey: Huey) -> None:
    @huey.task(context=True)
    def crunch(task=None):
        task.progress(1, 4)
        return "value"

    result = crunch()
    assert result.progress() is None  # nothing reported yet
    drain(huey)
    progress = result.progress()
    assert isinstance(progress, Progress)
    assert (progress.done, progress.total, progress.note) == (1, 4, None)
    assert progress.fraction == 0.25
    assert huey.progress(result.id) == progress
    assert result.progress() == progress  # read again: still there
    assert result.get() == "value"  # and the result was not consumed by those reads


def test_progress_is_visible_while_the_task_runs(huey: Huey) -> None:
    release = threading.Event()

    @huey.task(context=True)
    def long_job(task=None):
        task.progress(1, 10, "first")
        task.progress(2, 10, "held back, then written by the timer")
        release.wait(10)
        return "done"

    result = long_job()
    worker = threading.Thread(target=drain, args=(huey,))
    worker.start()
    try:
        deadline = time.monotonic() + 5
        progress = None
        while time.monotonic() < deadline:
            progress = result.progress()
            if progress is not None and progress.done == 2:
                break
            time.sleep(0.01)
        assert progress is not None and progress.done == 2
        assert result.get() is None  # still running
    finally:
        release.set()
        worker.join(10)
    assert result.get() == "done"


def test_a_tight_loop_is_rate_limited_and_the_last_report_lands(huey: Huey) -> None:
    @huey.task(context=True)
    def tight(n, task=None):
        start = time.monotonic()
        for i in range(n):
            task.progress(i + 1, n)
        return time.monotonic() - start

    result = tight(20000)
    events = collect_events(huey, lambda: drain(huey), expected=100, wait=1.0)
    elapsed = result.get()
    reports = [e for e in events if e["status"] == "progress"]
    # One write at once, then at most one per 0.1 s, plus the held-back one at the end.
    assert 1 <= len(reports) <= 2 + elapsed / 0.1
    assert reports[-1]["done"] == 20000
    assert huey.progress(result.id).done == 20000


def test_progress_events_carry_the_usual_fields_and_the_report(huey: Huey) -> None:
    @huey.task(context=True)
    def job(task=None):
        task.progress(5, None, "counting")

    result = job()
    events = collect_events(huey, lambda: drain(huey), expected=3)
    assert [e["status"] for e in events] == ["started", "progress", "finished"]
    event = events[1]
    assert event["status"] == EventStatus.PROGRESS.value == "progress"
    assert (event["id"], event["task"]) == (result.id, "job")
    assert (event["done"], event["total"], event["note"]) == (5, None, "counting")
    assert event["worker"] == "test-worker"
    for field in ("retries", "retry_delay", "execute_time", "error", "timestamp", "consumer"):
        assert field in event


def test_the_progress_ttl_is_result_ttl() -> None:
    huey = make_huey(result_ttl=0.3)

    @huey.task(context=True)
    def job(task=None):
        task.progress(1)

    result = job()
    drain(huey)
    assert result.progress() is not None
    time.sleep(0.5)
    assert result.progress() is None


def test_bad_progress_values_fail_the_task_with_a_clear_error(huey: Huey) -> None:
    @huey.task(context=True)
    def job(task=None):
        task.progress("half")

    result = job()
    drain(huey)
    with pytest.raises(TaskException, match="done must be a number"):
        result.get()


def test_long_notes_are_cut(huey: Huey) -> None:
    @huey.task(context=True)
    def job(task=None):
        task.progress(1, 2, "x" * 10_000)

    result = job()
    drain(huey)
    assert len(result.progress().note) == 200


def test_progress_outside_a_run_says_so() -> None:
    huey = make_huey()

    @huey.task(context=True)
    def job(task=None):
        pass

    with pytest.raises(RuntimeError, match="only while a consumer"):
        job.s().progress(1)


def test_progress_after_the_run_says_so(huey: Huey) -> None:
    kept = []

    @huey.task(context=True)
    def job(task=None):
        kept.append(task)

    job()
    drain(huey)
    with pytest.raises(RuntimeError, match="only while a consumer"):
        kept[0].progress(1)


def test_progress_keys_are_not_results(huey: Huey) -> None:
    @huey.task(context=True)
    def job(task=None):
        task.progress(1)

    job()
    drain(huey)
    assert huey.all_results() == {}


def test_immediate_mode_and_async_tasks_report_progress() -> None:
    huey = make_huey(immediate=True)

    @huey.task(context=True)
    async def job(n, task=None):
        for i in range(n):
            await asyncio.sleep(0)
            task.progress(i + 1, n, "async")
        return n

    result = job(3)
    assert result.get() == 3
    assert result.progress()[:3] == (3, 3, "async")
    assert asyncio.run(result.aprogress()) == result.progress()
