"""The consumer's own life, in-process on the memory backend: it starts once, its threads never
keep the interpreter alive, its supervisor keeps replacing workers that die or leave (each one
in its place, under its name), and a stop returns promptly once the workers have left."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid

import pytest

from huey_core import Huey
from huey_core.consumer import Consumer
from huey_core.testing.apps import wait_for
from huey_memory.backend import MemoryBackend
from tests.consumer.test_consumer import start, waits_in_dequeue


class DeadlyQueue:
    """The memory queue, except that a claim by the worker named `victim` takes a message and
    then raises a BaseException, once per `arm()`: that worker thread dies holding a lease."""

    def __init__(self, inner, victim: str = "") -> None:
        self._inner = inner
        self.blocking = inner.blocking
        self.priority = inner.priority
        self.victim = victim
        self.armed = 0

    def arm(self) -> None:
        self.armed += 1

    def dequeue_many(self, owner, lease_timeout, n, wait=0.0):
        batch = self._inner.dequeue_many(owner, lease_timeout, n, wait)
        if batch and self.armed and owner.endswith(f":{self.victim}" if self.victim else ""):
            self.armed -= 1
            raise SystemExit("the worker dies with a message leased")
        return batch

    def ack_and_dequeue_many(self, leases, owner, lease_timeout, n, wait=0.0):
        self._inner.ack_many(leases)
        return self.dequeue_many(owner, lease_timeout, n, wait)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def deadly_huey(victim: str = "") -> tuple[Huey, DeadlyQueue]:
    backend = MemoryBackend("dead-worker")
    queue = DeadlyQueue(backend.queue, victim)
    backend.queue = queue
    return Huey(f"dead-{uuid.uuid4().hex[:8]}", backend=backend, lease_timeout=60), queue


# -- start -----------------------------------------------------------------------------------


def test_a_consumer_starts_once(huey, consumers):
    consumer = start(consumers, huey, periodic=False)
    with pytest.raises(RuntimeError, match="^this consumer has already been started$"):
        consumer.start()
    assert len(consumer.worker_list) == 1


def test_every_thread_of_a_consumer_is_named_and_none_keeps_the_process_alive(huey, consumers):
    before = set(threading.enumerate())
    start(consumers, huey, periodic=False, workers=2)
    mine = [t for t in threading.enumerate() if t not in before]
    # Named for thread dumps; daemons, so a consumer that is never stopped (an app that embeds
    # one) does not keep the interpreter from exiting.
    assert {"huey-supervisor", "huey-scheduler", "huey-heartbeat"} <= {t.name for t in mine}
    assert all(t.name.startswith("huey-") and t.daemon for t in mine), mine


# -- supervision -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_supervisor_replaces_a_worker_that_dies_again_later(consumers):
    huey, queue = deadly_huey()

    @huey.task()
    def ping(n):
        return n

    queue.arm()
    first = ping(1)
    consumer = start(consumers, huey, periodic=False, health_check_interval=0.1)
    assert first.get(blocking=True, timeout=10) == 1
    assert wait_for(lambda: consumer.replaced == 1)
    (worker,) = consumer.worker_list
    assert wait_for(lambda: waits_in_dequeue(worker.thread))
    queue.arm()  # the replacement dies too, long after the first health check
    second = ping(2)
    assert wait_for(lambda: not worker.is_alive())
    assert second.get(blocking=True, timeout=10) == 2  # its lease released, run again
    assert wait_for(lambda: consumer.replaced == 2)
    assert [w.is_alive() for w in consumer.worker_list] == [True]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_health_check_looks_every_interval_not_more_often(consumers):
    huey, queue = deadly_huey()

    @huey.task()
    def ping():
        return "pong"

    queue.arm()
    result = ping()
    consumer = start(consumers, huey, periodic=False, health_check_interval=60)
    (worker,) = consumer.worker_list
    assert wait_for(lambda: not worker.is_alive())
    time.sleep(0.5)  # five looks of the supervisor, none of them a health check yet
    assert consumer.replaced == 0 and result.get() is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_behind_a_live_one_is_replaced_in_its_place(consumers):
    huey, queue = deadly_huey(victim="Worker-2")
    release = threading.Event()

    @huey.task()
    def hold():
        release.wait(10)
        return "held"

    @huey.task()
    def ping(n):
        return n

    queue.arm()
    consumer = start(consumers, huey, periodic=False, workers=2, health_check_interval=0.1)
    one, two = consumer.worker_list
    # While one worker runs `hold`, the other claims the pings: Worker-2 dies on its first claim.
    held = hold()
    results = [ping(n) for n in range(3)]
    try:
        assert wait_for(lambda: not two.is_alive())
        assert wait_for(lambda: consumer.replaced == 1)
        assert [r.get(blocking=True, timeout=10) for r in results] == [0, 1, 2]
    finally:
        release.set()
    assert held.get(blocking=True, timeout=10) == "held"
    first, second = consumer.worker_list
    assert first is one and second is not two  # in its place, under its name
    assert [w.name for w in consumer.worker_list] == ["Worker-1", "Worker-2"]
    assert all(w.is_alive() for w in consumer.worker_list)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_with_the_health_check_off_a_worker_behind_a_dead_one_is_still_recycled(consumers):
    huey, queue = deadly_huey(victim="Worker-1")

    @huey.task()
    def ping(n):
        return n

    queue.arm()
    consumer = start(
        consumers, huey, workers=2, max_tasks=2, check_worker_health=False,
        health_check_interval=0.1,
    )  # fmt: skip
    one, _ = consumer.worker_list
    results = [ping(n) for n in range(7)]
    # Worker-1 dies holding one message (leased for 60 s); Worker-2 leaves after every two
    # tasks. With the dead Worker-1 before it in the list, a fresh Worker-2 still takes over
    # each time, or the rest would never run.
    assert wait_for(lambda: sum(r.get() is not None for r in results) == 6)
    assert not one.is_alive() and consumer.worker_list[0] is one  # no health check: stays dead
    assert wait_for(lambda: consumer.replaced == 3)  # Worker-2 after tasks 2, 4 and 6
    assert len(huey.storage.queue.leases()) == 1


# -- stop ------------------------------------------------------------------------------------


def test_a_graceful_stop_of_an_idle_polling_consumer_returns_promptly(huey, consumers):
    consumer = start(
        consumers, huey, periodic=False, mode="polling", initial_delay=0.01, max_delay=0.05
    )
    (worker,) = consumer.worker_list
    assert wait_for(lambda: len(worker.polls) >= 3)
    t0 = time.monotonic()
    consumer.stop()
    # The worker leaves within one polling sleep (50 ms at most); the stop notices soon after.
    assert time.monotonic() - t0 < 0.5
    assert not worker.is_alive()


def test_a_stop_out_of_time_still_waits_for_idle_workers_to_leave(huey, consumers):
    closed: list[str] = []
    huey.on_shutdown()(lambda: closed.append(threading.current_thread().name))
    consumer = start(consumers, huey, periodic=False, workers=2, mode="blocking")
    assert wait_for(lambda: all(waits_in_dequeue(w.thread) for w in consumer.worker_list))
    # No time for running tasks (there are none): idle workers still leave their blocking wait
    # (a second at most) and run their shutdown hooks before stop() returns.
    consumer.stop(graceful=True, timeout=0)
    assert sorted(closed) == ["huey-Worker-1", "huey-Worker-2"]
    assert not any(w.is_alive() for w in consumer.worker_list)


@pytest.mark.timeout(30)  # a handler that waits for its own thread's lock never returns
def test_a_signal_that_lands_inside_the_stops_own_lock_still_stops_the_consumer(huey, consumers):
    # Python runs a signal handler on the main thread between two of its steps: a second
    # SIGTERM can land while that thread is inside `stopping.set()`, holding the event's lock,
    # which is not reentrant. The handler must not need it.
    consumer = start(consumers, huey, periodic=False, mode="blocking")
    restore = consumer.handle_signals((signal.SIGTERM,))
    try:
        with consumer.stopping._cond:  # where stopping.set() and stopping.wait() hold it
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, on this thread
            for _ in range(100):  # a few steps of Python for it to run in (it runs at once)
                time.sleep(0.001)
        assert consumer.stopping.wait(5) and not consumer.hard_stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)  # the second one stops at once
        assert wait_for(consumer.hard_stop.is_set)
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is not consumer._on_signal


# -- options ---------------------------------------------------------------------------------


class NonBlockingQueue:
    """The memory queue, as a backend whose dequeue cannot wait for a message."""

    blocking = False  # the consumer polls

    def __init__(self, inner) -> None:
        self._inner = inner
        self.priority = inner.priority

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_blocking_mode_on_a_queue_that_cannot_wait_polls_and_says_so_once(huey, caplog):
    backend = MemoryBackend("polling-only")
    backend.queue = NonBlockingQueue(backend.queue)
    polling_only = Huey(f"polls-{uuid.uuid4().hex[:8]}", backend=backend)
    caplog.set_level(logging.WARNING, logger="huey")
    # Thread workers on a queue that waits, or the consumer's own choice: nothing to warn of.
    assert Consumer(huey, mode="blocking").blocking
    assert not Consumer(polling_only, mode="auto").blocking
    assert not Consumer(polling_only, mode="polling").blocking
    assert caplog.records == []
    consumer = Consumer(polling_only, mode="blocking")
    assert not consumer.blocking
    (record,) = caplog.records
    assert record.getMessage().endswith("queue cannot wait for messages; polling instead")


def test_greenlet_workers_without_gevents_patching_are_warned_about(huey, caplog):
    pytest.importorskip("gevent")
    caplog.set_level(logging.WARNING, logger="huey")
    Consumer(huey, worker_type="greenlet")  # this test process has not called patch_all()
    (record,) = caplog.records
    assert "greenlet workers without gevent's monkey-patching run as OS threads" in (
        record.getMessage()
    )
