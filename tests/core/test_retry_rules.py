"""The retry rules of huey_core.retries, one exception at a time.

RetryTask and a rate limit with retry=True run the task again without using up a retry;
CancelExecution(retry=True) runs it once more at least, retry=False never, retry=None as an error
would; the times they ask for are on the instance's clock (UTC or local).
"""

from __future__ import annotations

import datetime
import time

import pytest

from huey_core import CancelExecution, Huey, RetryTask, TaskException
from tests.core.helpers import drain, make_huey, run_due


def _run_one(huey: Huey) -> None:
    """Process the next message, as one consumer worker step."""
    delivery = huey.storage.queue.dequeue("w", 60)
    assert delivery is not None
    huey.process(delivery)
    huey.storage.queue.ack(delivery.lease)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def test_retry_task_keeps_every_retry_the_task_had(huey: Huey) -> None:
    @huey.task(retries=3)
    def polls() -> None:
        raise RetryTask()

    polls()
    _run_one(huey)
    (again,) = huey.pending()
    assert again.retries == 3


def test_retry_task_with_an_eta_runs_at_that_time(huey: Huey) -> None:
    calls = []
    eta = datetime.datetime.now() + datetime.timedelta(minutes=10)  # naive: local time

    @huey.task()
    def polls() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RetryTask(eta=eta)
        return len(calls)

    result = polls()
    drain(huey)
    ((when, _),) = huey.storage.schedule.peek()
    assert abs(when - eta.timestamp()) < 1
    run_due(huey, now=eta.timestamp() - 30)
    assert result.get() is None
    run_due(huey, now=eta.timestamp() + 1)
    assert result.get() == 2


@pytest.mark.usefixtures("kolkata")
@pytest.mark.parametrize("utc", [True, False], ids=["utc", "localtime"])
def test_retry_task_delay_is_on_the_instance_clock(utc: bool) -> None:
    huey = make_huey(utc=utc)

    @huey.task()
    def polls() -> None:
        raise RetryTask(delay=120)

    polls()
    drain(huey)
    (parked,) = huey.scheduled()
    now = _utcnow() if utc else datetime.datetime.now()
    assert 110 < (parked.eta - now).total_seconds() <= 120
    ((when, _),) = huey.storage.schedule.peek()
    assert abs(when - (time.time() + 120)) < 10


@pytest.mark.usefixtures("kolkata")
@pytest.mark.parametrize("utc", [True, False], ids=["utc", "localtime"])
def test_a_failed_task_s_retry_delay_is_on_the_instance_clock(utc: bool) -> None:
    huey = make_huey(utc=utc)

    @huey.task(retries=1, retry_delay=60)
    def flaky() -> None:
        raise ValueError("down")

    flaky()
    drain(huey)
    (parked,) = huey.scheduled()
    now = _utcnow() if utc else datetime.datetime.now()
    assert 50 < (parked.eta - now).total_seconds() <= 60


@pytest.mark.usefixtures("kolkata")
@pytest.mark.parametrize("utc", [True, False], ids=["utc", "localtime"])
def test_a_rate_limited_task_parks_on_the_instance_clock_keeping_its_retries(utc: bool) -> None:
    huey = make_huey(utc=utc)

    @huey.task(retries=3, retry_delay=90)
    @huey.rate_limit("send", limit=1, per=3600)
    def send(x: int) -> int:
        return x

    send(1)
    send(2)
    drain(huey)
    (parked,) = huey.scheduled()
    assert parked.retries == 3  # waiting for the window uses up no retry
    now = _utcnow() if utc else datetime.datetime.now()
    assert 80 < (parked.eta - now).total_seconds() <= 90  # the task's retry_delay wins


def test_cancel_execution_without_retry_is_final_whatever_retries_remain(huey: Huey) -> None:
    runs = []

    @huey.task(retries=3)
    def job() -> None:
        runs.append(1)
        raise CancelExecution(retry=False)

    result = job()
    drain(huey)
    assert runs == [1] and huey.scheduled_count() == 0
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["retries"] == 0


def test_cancel_execution_with_retry_runs_once_more_when_no_retries_are_left(
    huey: Huey,
) -> None:
    runs = []

    @huey.task()
    def job() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise CancelExecution(retry=True)
        return "second run"

    result = job()
    _run_one(huey)
    (again,) = huey.pending()
    assert again.retries == 0  # the extra run used the one retry it was given
    drain(huey)
    assert len(runs) == 2 and result.get() == "second run"


def test_cancel_execution_unspecified_retries_as_an_error_would(huey: Huey) -> None:
    runs = []

    @huey.task(retries=2)
    def counted() -> None:
        runs.append("counted")
        raise CancelExecution()

    @huey.task()
    def single() -> None:
        runs.append("single")
        raise CancelExecution()

    counted()
    single()
    drain(huey)
    assert runs.count("counted") == 3 and runs.count("single") == 1
