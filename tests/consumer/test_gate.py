"""Worker threads beyond the first park while quick tasks keep the CPU busy (huey_core.gate):
what that may and may not change for a user, on the memory backend; and the decisions of the
trials, from given measurements."""

from __future__ import annotations

import threading
import time

import pytest

from huey_core import gate
from huey_core.gate import BUSY, KEEP, PERIOD, PROBE_MAX, PROBE_MIN, SPARE, Trials
from huey_core.testing.apps import wait_for


@pytest.fixture
def no_trials_for_more(monkeypatch):
    """Whatever the CPU of a busy test machine shows, no trial wakes a parked worker: the
    parked ones run again only for a slow task, an empty queue or a stop."""
    monkeypatch.setattr(gate, "SPARE", 0.0)


# -- the consumer ------------------------------------------------------------------------------


def test_quick_tasks_run_on_one_worker_while_it_keeps_up_and_an_empty_queue_wakes_the_rest(
    huey, start, no_trials_for_more
) -> None:
    threads: list[str] = []

    @huey.task()
    def quick(i):
        threads.append(threading.current_thread().name)

    quick.map(range(500))
    consumer = start(workers=4)
    assert wait_for(lambda: len(threads) == 500)
    assert set(threads) == {"huey-Worker-1"}  # the other three were parked
    assert consumer.gate is not None
    assert wait_for(lambda: consumer.gate.parked == 0)  # the queue ran empty: all wait for work


def test_trials_of_fewer_park_running_workers_and_an_empty_queue_wakes_them_again(
    huey, start, monkeypatch
) -> None:
    monkeypatch.setattr(gate, "BUSY", 0.0)  # any CPU use counts as full: each trial is of fewer
    monkeypatch.setattr(gate, "SPARE", 0.0)  # none is of more
    monkeypatch.setattr(gate, "KEEP", {1: 0.9, -1: 0.0})  # and each stays
    done: list[int] = []

    @huey.task()
    def quick(i):
        done.append(i)

    consumer = start(workers=4)
    assert consumer.gate is not None
    assert wait_for(lambda: consumer.gate.parked == 0)  # an empty queue: all four wait for work
    quick.map(range(30000))
    assert wait_for(lambda: consumer.gate.parked == 3, timeout=20), consumer.gate.parked
    assert wait_for(lambda: len(done) == 30000, timeout=60)
    assert wait_for(lambda: consumer.gate.parked == 0)  # the queue ran empty: all four again
    assert consumer.gate.parks >= 3
    assert sorted(done) == list(range(30000))  # each ran once
    assert wait_for(lambda: huey.storage.queue.leases() == [])


def test_quick_tasks_queued_behind_a_slow_one_start_while_it_runs(
    huey, start, no_trials_for_more
) -> None:
    release = threading.Event()
    ran: list[int] = []

    @huey.task()
    def slow():
        release.wait(20)

    @huey.task()
    def quick(i):
        ran.append(i)

    slow()
    quick.map(range(50))
    start(workers=4)
    try:
        assert wait_for(lambda: len(ran) == 50, timeout=5), ran
    finally:
        release.set()


def test_four_tasks_that_wait_for_each_other_all_run_at_once(
    huey, start, no_trials_for_more
) -> None:
    """-w 4 still runs four tasks at once when they take long enough to need it."""
    barrier = threading.Barrier(4, timeout=10)
    passed: list[int] = []

    @huey.task()
    def meet(i):
        barrier.wait()  # BrokenBarrierError (a failed task) unless all four run together
        passed.append(i)

    meet.map(range(4))
    start(workers=4)
    assert wait_for(lambda: len(passed) == 4, timeout=15), passed


def test_tasks_that_wait_on_io_run_on_several_threads(huey, start) -> None:
    threads: list[str] = []

    @huey.task()
    def call_a_service(i):
        threads.append(threading.current_thread().name)
        time.sleep(0.002)  # the process's CPU has room: more threads overlap the waits

    call_a_service.map(range(400))
    start(workers=4)
    assert wait_for(lambda: len(threads) == 400, timeout=30)
    assert len(set(threads[-100:])) == 4, sorted(set(threads[-100:]))


def test_a_consumer_stops_promptly_while_workers_are_parked(
    huey, start, no_trials_for_more
) -> None:
    ran: list[int] = []

    @huey.task()
    def quick(i):
        ran.append(i)

    quick.map(range(20000))
    consumer = start(workers=4)
    assert wait_for(lambda: len(ran) > 100)
    assert consumer.gate is not None and consumer.gate.parked == 3
    began = time.monotonic()
    consumer.stop()
    assert time.monotonic() - began < 0.5  # parked workers leave at once (the others: 0.05 s)
    assert not any(worker.is_alive() for worker in consumer.worker_list)
    assert huey.storage.queue.leases() == []  # nothing claimed was left behind


# -- the trials --------------------------------------------------------------------------------


def test_while_the_cpu_is_full_with_quick_tasks_one_worker_fewer_is_tried_and_kept_if_as_fast():
    trials = Trials(0.0)
    t = PROBE_MIN
    assert trials.step(t, rate=5000, load=BUSY, running=4, parked=0, quick=True) == -1
    t += PERIOD
    assert trials.step(t, rate=5000 * KEEP[-1], load=BUSY, running=3, parked=1, quick=True) == 0
    t += PERIOD  # kept: the next step the same way follows at once
    assert trials.step(t, rate=5200, load=1.0, running=3, parked=1, quick=True) == -1


def test_a_trial_that_slows_the_drain_is_undone_and_the_next_waits_twice_as_long():
    trials = Trials(0.0)
    t = PROBE_MIN
    waits = []
    assert trials.step(t, rate=5000, load=1.0, running=2, parked=0, quick=True) == -1
    for _ in range(8):
        t += PERIOD
        assert trials.step(t, rate=4000, load=1.0, running=1, parked=1, quick=True) == 1  # undone
        undone = t
        t += PERIOD
        while trials.step(t, rate=5000, load=1.0, running=2, parked=0, quick=True) == 0:
            t += PERIOD  # until the next trial of one worker fewer
        waits.append(t - undone)
    expected = [min(PROBE_MIN * 2 ** (n + 1), PROBE_MAX) for n in range(8)]  # 0.2 ... 5.0
    assert all(abs(w - e) <= PERIOD + 1e-9 for w, e in zip(waits, expected, strict=True)), waits


def test_while_the_cpu_has_room_as_many_workers_wake_as_would_fill_it_to_spare():
    trials = Trials(0.0)
    # one worker at 0.2 CPU: three more would bring it to about SPARE
    assert trials.step(PROBE_MIN, rate=400, load=0.2, running=1, parked=7, quick=True) == 3
    # never more than are parked
    trials = Trials(0.0)
    assert trials.step(PROBE_MIN, rate=400, load=0.05, running=1, parked=3, quick=True) == 3
    # a trial that makes it clearly slower is undone
    assert (
        trials.step(PROBE_MIN + PERIOD, rate=300, load=0.3, running=4, parked=0, quick=True) == -3
    )


def test_no_trial_before_the_first_wait_nor_between_spare_and_busy():
    trials = Trials(0.0)
    assert trials.step(PROBE_MIN / 2, rate=400, load=0.1, running=1, parked=3, quick=True) == 0
    middle = (SPARE + BUSY) / 2
    assert trials.step(PROBE_MIN, rate=400, load=middle, running=2, parked=2, quick=True) == 0


def test_a_worker_in_a_slow_task_is_never_tried_away():
    trials = Trials(0.0)
    assert trials.step(PROBE_MIN, rate=50, load=1.0, running=4, parked=0, quick=False) == 0
