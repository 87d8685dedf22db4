"""Tasks, results, retries, revocation, scheduling, pipelines, groups and chords.

Driven through the memory backend: `drain()` is the consumer loop (dequeue, process, ack).
"""

from __future__ import annotations

import datetime
import threading
import time

import pytest

from huey_core import (
    CancelExecution,
    Huey,
    RateLimitExceeded,
    Result,
    ResultTimeout,
    RetryTask,
    TaskException,
    TaskLockedException,
    chord,
    group,
)
from huey_core import signals as S
from tests.core.helpers import drain, make_huey, run_due


def test_call_enqueues_and_result_comes_back(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    result = add(1, 2)
    assert isinstance(result, Result)
    assert len(huey) == 1 and result.get() is None  # not run yet
    assert drain(huey) == 1
    assert result.get() == 3
    assert result.get() == 3  # the handle remembers what it read
    assert huey.result_count() == 0  # reading consumed the stored value


def test_result_preserve_and_huey_result_by_id(huey: Huey) -> None:
    @huey.task()
    def echo(x):
        return x

    result = echo("v")
    drain(huey)
    assert huey.result(result.id, preserve=True) == "v"
    assert huey.result(result.id) == "v"
    assert huey.result(result.id) is None


def test_store_none(huey: Huey) -> None:
    @huey.task()
    def nothing():
        return None

    nothing()
    drain(huey)
    assert huey.result_count() == 0

    keeper = make_huey(store_none=True)

    @keeper.task()
    def nothing2():
        return None

    result = nothing2()
    drain(keeper)
    assert keeper.result_count() == 1 and result.is_ready() and result.get() is None


def test_results_false_returns_no_handle() -> None:
    huey = make_huey(results=False)

    @huey.task()
    def add(a, b):
        return a + b

    assert add(1, 2) is None
    drain(huey)
    assert huey.result_count() == 0


def test_task_exception_carries_error_and_traceback(huey: Huey) -> None:
    @huey.task()
    def fail(msg):
        raise ValueError(msg)

    result = fail("broken")
    drain(huey)
    with pytest.raises(TaskException) as info:
        result.get()
    meta = info.value.metadata
    assert meta["error"] == "ValueError('broken')"
    assert "Traceback" in meta["traceback"] and "in fail" in meta["traceback"]
    assert meta["retries"] == 0 and meta["task_id"] == result.id
    assert str(info.value) == "ValueError('broken')"


def test_retries_run_again_until_success(huey: Huey) -> None:
    calls = []

    @huey.task(retries=2)
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("try again")
        return "ok"

    result = flaky()
    drain(huey)
    assert len(calls) == 3
    assert result.get() == "ok"


def test_retries_exhausted_store_the_error(huey: Huey) -> None:
    @huey.task(retries=1)
    def always():
        raise OSError("no")

    result = always()
    drain(huey)
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["retries"] == 0


def test_retry_delay_goes_to_the_schedule(huey: Huey) -> None:
    calls = []

    @huey.task(retries=1, retry_delay=60)
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("later")
        return "done"

    result = flaky()
    drain(huey)
    assert len(calls) == 1 and huey.scheduled_count() == 1 and len(huey) == 0
    (scheduled,) = huey.scheduled()
    assert scheduled.id == result.id and scheduled.retries == 0
    wait = (
        scheduled.eta - datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    ).total_seconds()
    assert 50 < wait <= 60
    run_due(huey)  # not due yet
    assert len(calls) == 1
    run_due(huey, now=time.time() + 61)
    assert len(calls) == 2 and result.get() == "done"


def test_retry_backoff_multiplies_the_delay(huey: Huey) -> None:
    @huey.task(retries=2, retry_delay=10, retry_backoff=2)
    def always():
        raise OSError("no")

    always()
    drain(huey)
    (first,) = huey.scheduled()
    assert first.retry_delay == 20  # the next retry waits twice as long
    run_due(huey, now=time.time() + 15)
    (second,) = huey.scheduled()
    assert second.retry_delay == 40


def test_retry_task_exception(huey: Huey) -> None:
    calls = []

    @huey.task()
    def polls():
        calls.append(1)
        if len(calls) < 2:
            raise RetryTask(delay=30)
        return len(calls)

    result = polls()
    drain(huey)
    assert huey.scheduled_count() == 1 and result.get() is None  # no error surfaced
    run_due(huey, now=time.time() + 31)
    assert result.get() == 2


def test_schedule_delay_and_eta(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    r1 = add.schedule((1, 2), delay=3600)
    r2 = add.schedule(args=(3, 4), eta=datetime.datetime.now() + datetime.timedelta(hours=2))
    assert len(huey) == 2  # huey puts scheduled tasks on the queue; processing parks them
    drain(huey)
    assert huey.scheduled_count() == 2 and r1.get() is None
    assert [t.id for t in huey.scheduled()] == [r1.id, r2.id]
    run_due(huey, now=time.time() + 3700)
    assert r1.get() == 3 and r2.get() is None
    run_due(huey, now=time.time() + 7300)
    assert r2.get() == 7


def test_schedule_requires_eta_or_delay(huey: Huey) -> None:
    @huey.task()
    def noop():
        pass

    with pytest.raises(ValueError):
        noop.schedule(())


def test_priority_order(huey: Huey) -> None:
    order = []

    @huey.task()
    def record(name):
        order.append(name)

    @huey.task(priority=10)
    def urgent(name):
        order.append(name)

    record("low")
    urgent("high")
    record.schedule(("mid",), delay=0, priority=5)
    record("low2")
    drain(huey)
    assert order[:2] == ["high", "mid"] or order[0] == "high"
    assert order.index("high") < order.index("mid") < order.index("low") < order.index("low2")


def test_expired_task_is_skipped(huey: Huey) -> None:
    ran = []

    @huey.task(expires=60)
    def job():
        ran.append(1)

    job()
    job.s()  # a signature alone enqueues nothing
    queue = huey.storage.queue
    delivery = queue.dequeue("w", 30)
    task = huey.deserialize_task(delivery.data)
    assert task.expires_resolved is not None  # resolved when enqueued
    assert huey.execute(task, timestamp=task.expires_resolved) is None
    assert ran == [1]  # at its expiry time it may still run: it expires after it
    expired = []
    huey.signal(S.SIGNAL_EXPIRED)(lambda sig, task: expired.append(task.id))
    later = task.expires_resolved + datetime.timedelta(seconds=1)
    assert huey.execute(task, timestamp=later) is None
    assert ran == [1] and expired == [task.id]
    queue.ack(delivery.lease)
    job()
    drain(huey)
    assert ran == [1, 1]


def test_executor_outcome_of_a_skipped_task_says_it_did_not_run(huey: Huey) -> None:
    """Executor.execute's Outcome is what the worker and settle() act on (module docstring)."""

    @huey.task()
    def job():
        return 1

    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    not_due, revoked, expired, canceled, runs = (job.s() for _ in range(5))
    not_due.eta = now + datetime.timedelta(hours=1)
    huey.revoke(revoked)
    expired.expires_resolved = now - datetime.timedelta(minutes=1)
    huey.pre_execute()(lambda task: _cancel_if(task is canceled))
    for task in (not_due, revoked, expired, canceled):
        outcome = huey.executor.execute(task)
        assert outcome.task is task and outcome.ran is False and not outcome.succeeded
    outcome = huey.executor.execute(runs)
    assert outcome.task is runs and outcome.ran is True and outcome.value == 1


def test_executor_outcome_of_an_interrupted_task_says_so(huey: Huey) -> None:
    @huey.task()
    def stopped():
        time.sleep(0.05)
        raise KeyboardInterrupt

    task = stopped.s()
    start = time.monotonic()
    outcome = huey.executor.execute(task)
    elapsed = time.monotonic() - start
    assert outcome.task is task and outcome.interrupted is True and not outcome.succeeded
    assert 0.05 <= outcome.duration <= elapsed


def test_a_task_that_swallows_its_timeout_still_times_out(huey: Huey) -> None:
    from huey_core.exceptions import TaskTimeout

    @huey.task(timeout=0.05)
    def stubborn():
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # short sleeps: interruptible on any thread
                time.sleep(0.01)
        except TaskTimeout:
            pass
        return "late"

    result = stubborn()
    drain(huey)
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["error"].startswith("TaskTimeout('timeout 0.05s (ran 0.")


def _cancel_if(condition: bool) -> None:
    if condition:
        raise CancelExecution()


def test_revoke_result_once_and_restore(huey: Huey) -> None:
    ran = []

    @huey.task()
    def job(x):
        ran.append(x)

    r1 = job(1)
    r2 = job(2)
    r1.revoke()
    assert r1.is_revoked() and not r2.is_revoked()
    drain(huey)
    assert ran == [2]
    assert not r1.is_revoked()  # revoke_once is spent by the skipped run

    r3 = job(3)
    r3.revoke(revoke_once=False)
    assert r3.restore() is True and not r3.is_revoked()
    drain(huey)
    assert ran == [2, 3]


def test_revoke_by_id(huey: Huey) -> None:
    ran = []

    @huey.task()
    def job(x):
        ran.append(x)

    result = job(1)
    huey.revoke_by_id(result.id)
    assert huey.is_revoked(result.id)
    drain(huey)
    assert ran == []
    assert huey.restore_by_id(result.id) is True


def test_revoke_all_tasks_of_a_kind_until(huey: Huey) -> None:
    ran = []

    @huey.task()
    def job(x):
        ran.append(x)

    job.revoke(revoke_until=datetime.datetime.now() + datetime.timedelta(hours=1))
    assert job.is_revoked()
    job(1)
    drain(huey)
    assert ran == []
    job(2)
    queued = huey.dequeue()
    late = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(
        hours=2
    )
    huey.execute(queued, timestamp=late)
    assert ran == [2] and not job.is_revoked()


def test_revoke_all_once_and_restore(huey: Huey) -> None:
    ran = []

    @huey.task()
    def job(x):
        ran.append(x)

    job.revoke(revoke_once=True)
    job(1)
    job(2)
    drain(huey)
    assert ran == [2]
    job.revoke()
    assert job.restore() is True
    job(3)
    drain(huey)
    assert ran == [2, 3]


def test_reschedule(huey: Huey) -> None:
    ran = []

    @huey.task()
    def job(x):
        ran.append(x)
        return x

    result = job(1)
    new = result.reschedule(delay=60)
    assert new.id != result.id and result.is_revoked()
    drain(huey)
    assert ran == [] and huey.scheduled_count() == 1
    run_due(huey, now=time.time() + 61)
    assert ran == [1] and new.get() == 1


def test_pipeline_then_passes_results(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    pipe = add.s(1, 2).then(add, 10).then(add, 100)
    results = huey.enqueue(pipe)
    drain(huey)
    assert results.get() == [3, 13, 113]


def test_pipeline_error_handler_gets_the_exception(huey: Huey) -> None:
    seen = []

    @huey.task()
    def fail():
        raise KeyError("k")

    @huey.task()
    def handler(exc):
        seen.append(repr(exc))

    @huey.task()
    def never(value):
        seen.append("never")

    results = huey.enqueue(fail.s().then(never).error(handler))
    drain(huey)
    assert seen == ["KeyError('k')"]
    for result in results:  # the whole failed pipeline reports the error
        with pytest.raises(TaskException):
            result.get()


def test_a_pipeline_step_that_will_retry_fails_only_its_own_result(huey: Huey) -> None:
    attempts = []

    @huey.task(retries=1)
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first attempt")
        return 1

    @huey.task()
    def after(value):
        return value + 1

    first, second = huey.enqueue(flaky.s().then(after))
    delivery = huey.storage.queue.dequeue("w", 30)
    huey.process(delivery)
    huey.storage.queue.ack(delivery.lease)
    with pytest.raises(TaskException):  # the intermediate error (store_intermediate_errors)
        first.get()
    assert second.get() is None  # not failed: the pipeline goes on when the retry succeeds
    drain(huey)
    assert second.get() == 2


def test_a_task_raising_a_bare_task_exception_reports_it(huey: Huey) -> None:
    @huey.task()
    def bare():
        raise TaskException()

    result = bare()
    drain(huey)
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["error"] == "TaskException()"


def test_map(huey: Huey) -> None:
    @huey.task()
    def square(x):
        return x * x

    @huey.task()
    def add(a, b):
        return a + b

    squares = square.map(range(4))
    sums = add.map([(1, 2), (3, 4)])
    drain(huey)
    assert squares.get() == [0, 1, 4, 9]
    assert sums.get() == [3, 7]
    assert len(squares) == 4


def test_group_and_chord(huey: Huey) -> None:
    @huey.task()
    def square(x):
        return x * x

    @huey.task()
    def total(values):
        return sum(values)

    group_results = huey.enqueue(group([square.s(i) for i in range(3)]))
    chord_result = huey.enqueue(group([square.s(i) for i in range(4)]).then(total))
    drain(huey)
    assert group_results.get() == [0, 1, 4]
    assert chord_result.get() == 14
    assert chord_result.results.get() == [0, 1, 4, 9]
    assert not [k for k in huey.storage.store.items() if k.startswith("chord:")]  # cleaned up


def test_chord_callback_gets_skipped_members(huey: Huey) -> None:
    from huey_core.serializer import SKIPPED

    @huey.task()
    def ident(x):
        return x

    @huey.task()
    def collect(values):
        return values

    members = [ident.s(1), ident.s(2)]
    result = huey.enqueue(chord(members, collect.s()))
    huey.revoke(members[1])
    drain(huey)
    assert result.get() == [1, SKIPPED]


def test_empty_chord_runs_callback(huey: Huey) -> None:
    @huey.task()
    def count(values):
        return len(values)

    result = huey.enqueue(group([]).then(count))
    drain(huey)
    assert result.get() == 0


def test_lock_task_contended(huey: Huey) -> None:
    ran = []

    @huey.task()
    @huey.lock_task("report")
    def report():
        ran.append(1)

    with huey.lock_task("report"):
        assert huey.is_locked("report")
        result = report()
        drain(huey)
        with pytest.raises(TaskException) as info:
            result.get()
        assert "TaskLockedException" in info.value.metadata["error"]
        with pytest.raises(TaskLockedException):
            with huey.lock_task("report"):
                pass
    assert not huey.is_locked("report") and ran == []
    report()
    drain(huey)
    assert ran == [1]


def test_lock_is_exclusive_across_threads(huey: Huey) -> None:
    lock = huey.lock_task("shared")
    winners = []
    barrier = threading.Barrier(8)

    def contend():
        barrier.wait()
        try:
            lock.acquire()
            winners.append(1)
        except TaskLockedException:
            pass

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert winners == [1]
    assert huey.flush_locks() == {"shared"}
    assert not lock.is_locked()


def test_flush_locks_by_name(huey: Huey) -> None:
    other = Huey(huey.name, backend=huey.storage)
    other.lock_task("x").acquire()  # taken by another process
    assert huey.flush_locks("x") == {"x"}
    assert huey.flush_locks("x") == set()


def test_rate_limit_context_and_decorator(huey: Huey) -> None:
    limit = huey.rate_limit("api", limit=2, per=60, retry=False)
    with limit:
        pass
    with limit:
        pass
    with pytest.raises(RateLimitExceeded) as info:
        with limit:
            pass
    assert info.value.key == "api" and 0 < info.value.delay <= 60 and info.value.retry is False
    assert limit.current_usage() == 3
    limit.reset()
    assert limit.current_usage() == 0

    @huey.rate_limit("fn", limit=1, per=60)
    def call():
        return "ok"

    assert call() == "ok"
    with pytest.raises(RateLimitExceeded):
        call()


def test_rate_limited_task_is_rescheduled_for_the_next_window(huey: Huey) -> None:
    fired = []
    huey.signal(S.SIGNAL_RATE_LIMITED)(lambda sig, task, *a: fired.append(task.id))

    @huey.task()
    @huey.rate_limit("send", limit=1, per=60)
    def send(x):
        return x

    r1, r2 = send(1), send(2)
    drain(huey)
    assert r1.get() == 1 and r2.get() is None
    assert fired == [r2.id] and huey.scheduled_count() == 1
    (parked,) = huey.scheduled()
    assert parked.retries == 0  # waiting for the window did not consume a retry


def test_signals_in_order(huey: Huey) -> None:
    seen = []

    @huey.signal()
    def everything(signal, task, *args):
        seen.append(signal)

    @huey.task()
    def ok():
        return 1

    @huey.task(retries=1)
    def bad():
        raise ValueError("x")

    ok()
    drain(huey)
    assert seen == [S.SIGNAL_ENQUEUED, S.SIGNAL_EXECUTING, S.SIGNAL_COMPLETE]
    seen.clear()
    bad()
    drain(huey)
    assert seen == [
        S.SIGNAL_ENQUEUED,
        S.SIGNAL_EXECUTING,
        S.SIGNAL_ERROR,
        S.SIGNAL_RETRYING,
        S.SIGNAL_ENQUEUED,
        S.SIGNAL_EXECUTING,
        S.SIGNAL_ERROR,
    ]
    seen.clear()
    ok.schedule(delay=60)
    drain(huey)
    assert seen == [S.SIGNAL_ENQUEUED, S.SIGNAL_SCHEDULED]
    seen.clear()
    r = ok()
    r.revoke()
    drain(huey)
    assert seen == [S.SIGNAL_ENQUEUED, S.SIGNAL_REVOKED]
    huey.disconnect_signal(everything)
    seen.clear()
    ok()
    assert seen == []


def test_signal_receiver_filters_and_gets_exception(huey: Huey) -> None:
    errors = []

    @huey.signal(S.SIGNAL_ERROR)
    def on_error(signal, task, exc):
        errors.append((signal, task.name, type(exc)))

    @huey.signal(S.SIGNAL_COMPLETE)
    def broken_receiver(signal, task):
        raise RuntimeError("receivers never break tasks")

    @huey.task()
    def bad():
        raise ZeroDivisionError

    @huey.task()
    def good():
        return 5

    bad()
    r = good()
    drain(huey)
    assert errors == [(S.SIGNAL_ERROR, "bad", ZeroDivisionError)]
    assert r.get() == 5


def test_pre_and_post_execute_hooks_and_cancel(huey: Huey) -> None:
    calls = []
    canceled = []

    @huey.pre_execute()
    def check(task):
        calls.append(("pre", task.name))
        if task.args == ("skip",):
            raise CancelExecution()

    @huey.post_execute()
    def after(task, value, exc):
        calls.append(("post", task.name, value, exc))

    huey.signal(S.SIGNAL_CANCELED)(lambda sig, task: canceled.append(task.args))

    @huey.task()
    def job(x):
        return x * 2

    job(4)
    job("skip")
    drain(huey)
    assert calls == [("pre", "job"), ("post", "job", 8, None), ("pre", "job")]
    assert canceled == [("skip",)]
    assert huey.unregister_pre_execute("check") and huey.unregister_post_execute(after)
    calls.clear()
    job("skip")
    drain(huey)
    assert calls == []


def test_a_post_execute_hook_sees_each_failure_and_retrying_names_the_task(huey: Huey) -> None:
    seen = []
    retrying = []

    @huey.post_execute()
    def after(task, value, exc):
        seen.append((task.name, value, repr(exc)))

    @huey.signal(S.SIGNAL_RETRYING)
    def on_retry(signal, task):
        retrying.append(task.id)

    @huey.task(retries=1)
    def bad():
        raise ValueError("x")

    result = bad()
    drain(huey)
    assert seen == [("bad", None, "ValueError('x')")] * 2
    assert retrying == [result.id]
    with pytest.raises(TaskException) as info:
        result.get()
    trace = info.value.metadata["traceback"]
    assert trace.startswith("Traceback (most recent call last):\n  File ")
    assert trace.endswith("ValueError: x\n")
    assert not huey.unregister_post_execute("never_registered")


def test_cancel_execution_inside_a_task_with_retry(huey: Huey) -> None:
    runs = []

    @huey.task()
    def job():
        runs.append(1)
        if len(runs) == 1:
            raise CancelExecution(retry=True)
        return "second time"

    result = job()
    drain(huey)
    assert len(runs) == 2 and result.get() == "second time"


def test_startup_and_shutdown_hooks(huey: Huey) -> None:
    calls = []
    huey.on_startup()(lambda: calls.append("start"))

    @huey.on_startup("broken")
    def broken():
        raise RuntimeError("logged, not raised")

    huey.on_shutdown()(lambda: calls.append("stop"))
    huey.run_startup_hooks()
    huey.run_shutdown_hooks()
    assert calls == ["start", "stop"]


@pytest.fixture
def ctrl_c():
    """Ctrl-C handled as Python does by default, where it can arrive: on the main thread."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Ctrl-C reaches the main thread only")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_in_a_startup_hook_stops_the_program(huey: Huey) -> None:
    calls = []

    @huey.on_startup()
    def interrupted():
        raise KeyboardInterrupt

    huey.on_startup()(lambda: calls.append("never"))
    with pytest.raises(KeyboardInterrupt):
        huey.run_startup_hooks()
    assert calls == []


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_in_a_pre_execute_hook_stops_the_program(huey: Huey) -> None:
    ran = []

    @huey.task()
    def job():
        ran.append(1)

    @huey.pre_execute()
    def interrupted(task):
        raise KeyboardInterrupt

    job()
    with pytest.raises(KeyboardInterrupt):
        drain(huey)
    assert ran == []


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_in_a_post_execute_hook_stops_the_program(huey: Huey) -> None:
    calls = []

    @huey.task()
    def job():
        return 1

    @huey.post_execute()
    def interrupted(task, value, exc):
        raise KeyboardInterrupt

    huey.post_execute()(lambda task, value, exc: calls.append("never"))
    job()
    with pytest.raises(KeyboardInterrupt):
        drain(huey)
    assert calls == []


def test_context_true_passes_the_task(huey: Huey) -> None:
    @huey.task(context=True, retries=1)
    def job(x, task=None):
        if task.retries:
            raise ValueError("once more")
        return (x, task.id, task.retries)

    result = job(7)
    drain(huey)
    assert result.get() == (7, result.id, 0)


def test_named_task_and_defaults(huey: Huey) -> None:
    @huey.task(name="custom", retries=3, retry_delay=5, priority=2, timeout=9)
    def job():
        return 1

    task = job.s()
    assert task.name == "custom" and task.retries == 3 and task.retry_delay == 5
    assert task.priority == 2 and task.timeout == 9
    assert job.retries == 3 and job.retry_delay == 5
    assert job.call_local() == 1


def test_timeout_reports_an_error(huey: Huey) -> None:
    @huey.task(timeout=0.2)
    def slow():
        end = time.monotonic() + 5
        while time.monotonic() < end:
            pass
        return "too late"

    fired = []
    huey.signal(S.SIGNAL_TIMEOUT)(lambda sig, task: fired.append(task.id))
    result = slow()
    started = time.monotonic()
    drain(huey)
    assert time.monotonic() - started < 3  # interrupted, not run to completion
    with pytest.raises(TaskException) as info:
        result.get()
    assert "TaskTimeout" in info.value.metadata["error"]
    assert fired == [result.id]


def test_timeout_in_a_worker_thread(huey: Huey) -> None:
    @huey.task(timeout=0.2)
    def spin():
        end = time.monotonic() + 5
        while time.monotonic() < end:
            pass

    result = spin()
    started = time.monotonic()
    worker = threading.Thread(target=drain, args=(huey,))
    worker.start()
    worker.join(10)
    assert time.monotonic() - started < 3
    with pytest.raises(TaskException) as info:
        result.get()
    assert "TaskTimeout" in info.value.metadata["error"]


def test_blocking_get_wakes_when_the_result_arrives(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    result = add(2, 3)
    timer = threading.Timer(0.2, drain, args=(huey,))
    started = time.monotonic()
    timer.start()
    assert result.get(blocking=True, timeout=10) == 5
    assert time.monotonic() - started < 2  # woken by the write, not by the 10 s timeout
    timer.join()


def test_blocking_get_times_out(huey: Huey) -> None:
    @huey.task()
    def never_run():
        return 1

    result = never_run()
    started = time.monotonic()
    with pytest.raises(ResultTimeout):
        result.get(blocking=True, timeout=0.2)
    assert 0.15 < time.monotonic() - started < 2
    with pytest.raises(ResultTimeout):
        result.get(blocking=True, timeout=0.05, revoke_on_timeout=True)
    assert result.is_revoked()


def test_immediate_mode_runs_in_the_caller() -> None:
    huey = make_huey(backend="redis", url="redis://127.0.0.1:1/0", immediate=True)  # never used

    @huey.task()
    def add(a, b):
        return a + b

    @huey.task()
    def fail():
        raise ValueError("immediate")

    assert add(1, 2).get() == 3
    with pytest.raises(TaskException):
        fail().get()
    pipe = huey.enqueue(add.s(1, 1).then(add, 1))
    assert pipe.get() == [2, 3]
    assert type(huey.storage).__name__ == "MemoryBackend"


def test_immediate_toggle(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    huey.immediate = True
    assert add(1, 2).get() == 3
    huey.immediate = False
    result = add(3, 4)
    assert result.get() is None and len(huey) == 1
    drain(huey)
    assert result.get() == 7


def test_lower_level_api(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    add(1, 2)
    add.schedule((3, 4), delay=60)
    assert huey.pending_count() == 2 and [t.args for t in huey.pending()] == [(1, 2), (3, 4)]
    assert [t.args for t in huey.pending(limit=1)] == [(1, 2)]
    task = huey.dequeue()
    assert task.args == (1, 2) and huey.execute(task) == 3
    parked = huey.dequeue()
    assert not huey.ready_to_run(parked)
    huey.execute(parked)
    assert huey.scheduled_count() == 1
    assert huey.read_schedule() == []
    later = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(
        minutes=2
    )
    assert huey.ready_to_run(parked, later)
    assert [t.id for t in huey.read_schedule(later)] == [parked.id]
    assert huey.dequeue() is None

    huey.put("k", {"a": 1})
    assert huey.get("k", peek=True) == {"a": 1}
    assert huey.get("k") == {"a": 1} and huey.get("k") is None
    assert huey.put_if_empty("once", 1) and not huey.put_if_empty("once", 2)
    assert huey.get("once") == 1
    huey.put("gone", 1)
    assert huey.delete("gone") and not huey.delete("gone")
    assert "k" not in huey.all_results()
    add(5, 6)
    huey.flush()
    assert len(huey) == 0 and huey.scheduled_count() == 0 and huey.result_count() == 0


def test_unregister(huey: Huey) -> None:
    @huey.task()
    def job():
        return 1

    job()
    assert job.unregister()
    drain(huey)  # an unknown task is dead-lettered, not run
    assert len(huey.dead_letters()) == 1


def _add(a, b):
    return a + b


def test_two_huey_objects_share_one_backend(huey: Huey) -> None:
    producer = Huey(huey.name, backend=huey.storage)
    remote_add = producer.task()(_add)
    huey.task()(_add)  # the same task, registered in the "consumer" process
    result = remote_add(1, 2)
    drain(huey)
    assert result.get() == 3


def test_sys_exit_in_a_task_is_a_task_error(huey: Huey) -> None:
    import sys

    @huey.task()
    def quits():
        sys.exit(3)

    result = quits()
    drain(huey)
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["error"] == "SystemExit(3)"
    assert "sys.exit(3)" in info.value.metadata["traceback"]


def test_interrupted_task_is_not_acknowledged(huey: Huey) -> None:
    fired = []
    huey.signal(S.SIGNAL_INTERRUPTED)(lambda sig, task: fired.append(task.id))

    @huey.task()
    def stopped():
        raise KeyboardInterrupt

    result = stopped()
    delivery = huey.storage.queue.dequeue("w", 30)
    assert huey.process(delivery) is False  # not done: the caller must not acknowledge it
    huey.storage.queue.release(delivery.lease)  # what a consumer's shutdown does
    assert fired == [result.id] and len(huey) == 1


def test_an_interrupted_task_is_neither_complete_nor_continued(huey: Huey) -> None:
    fired = []
    huey.signal()(lambda sig, task, *extra: fired.append(sig))
    after = []
    huey.post_execute()(lambda task, value, exc: after.append(task.id))

    @huey.task()
    def stopped():
        raise KeyboardInterrupt

    @huey.task()
    def next_step(value):
        return value

    huey.enqueue(stopped.s().then(next_step))
    fired.clear()
    delivery = huey.storage.queue.dequeue("w", 30)
    assert huey.process(delivery) is False
    assert fired == [S.SIGNAL_EXECUTING, S.SIGNAL_INTERRUPTED]
    assert after == []  # it did not finish: it runs again, and its hooks run then
    huey.storage.queue.release(delivery.lease)
    assert len(huey) == 1  # the released message only: the next step was not enqueued


def test_a_consumer_stopping_mid_task_reports_the_running_task_interrupted(huey: Huey) -> None:
    fired = []
    huey.signal(S.SIGNAL_INTERRUPTED)(lambda sig, task: fired.append(task.id))
    started, release = threading.Event(), threading.Event()

    @huey.task()
    def long_job():
        started.set()
        release.wait(30)

    @huey.task()
    def quick_job():
        return 1

    quick_job()
    drain(huey)  # finished: not running any more
    result = long_job()
    runner = threading.Thread(target=drain, args=(huey,))
    runner.start()
    try:
        assert started.wait(30)
        huey.notify_interrupted_tasks()  # what the consumer does when it cannot wait
        assert fired == [result.id]
    finally:
        release.set()
        runner.join(30)


def test_local_time_instance_schedules_and_runs() -> None:
    huey = make_huey(utc=False)

    @huey.task()
    def job():
        return "ran"

    result = job.schedule(delay=120)
    assert abs((result.task.eta - datetime.datetime.now()).total_seconds() - 120) < 5
    drain(huey)
    ((when, _),) = huey.storage.schedule.peek()
    assert abs(when - (time.time() + 120)) < 5  # the schedule holds true unix time
    run_due(huey, now=time.time() + 60)
    assert result.get() is None
    run_due(huey, now=time.time() + 125)
    assert result.get() == "ran"


def test_concurrent_workers_run_each_task_once(huey: Huey) -> None:
    runs: list[int] = []
    lock = threading.Lock()

    @huey.task()
    def job(n):
        with lock:
            runs.append(n)
        return n * 2

    results = [job(i) for i in range(200)]
    workers = [threading.Thread(target=drain, args=(huey,)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert sorted(runs) == list(range(200))
    assert [r.get() for r in results] == [i * 2 for i in range(200)]


def test_huey_storage_class_names() -> None:
    from huey_core import MemoryHuey, RedisHuey, SqliteHuey

    memory = MemoryHuey("m")
    assert type(memory.storage).__name__ == "MemoryBackend"
    redis = RedisHuey("r", host="10.0.0.9", port=6380, db=2, password="p@ss")
    assert redis.backend_spec[:2] == ("redis", "redis://:p%40ss@10.0.0.9:6380/2")
    assert RedisHuey("r2", url="redis://h:1/0").backend_spec[:2] == ("redis", "redis://h:1/0")
    assert SqliteHuey("s", filename="/tmp/app.db").backend_spec[:2] == (
        "sql",
        "sqlite:////tmp/app.db",
    )


def test_a_module_run_as_a_script_names_its_tasks_as_the_consumer_imports_them(tmp_path):
    """`python my_app.py` enqueues tasks that `huey consume my_app.huey` knows (issue 12): the
    script's tasks are not `__main__.add` but `my_app.add`, in both ways of running it."""
    import subprocess
    import sys

    (tmp_path / "my_app.py").write_text(
        "from huey_core import Huey\n"
        "huey = Huey('script', backend='memory')\n"
        "@huey.task()\n"
        "def add(a, b):\n"
        "    return a + b\n"
        "if __name__ == '__main__':\n"
        "    print(add.task_class.registry_name, sorted(huey.registry.tasks))\n"
    )
    for args in (["my_app.py"], ["-m", "my_app"]):
        out = subprocess.run(
            [sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        assert out.stdout.split()[0] == "my_app.add", (args, out.stdout, out.stderr)
