"""The worker's paths for failures outside the task, on the memory backend: a message whose
processing failed half-way is released and runs again; a lease lost while its task runs is
reported, and the late ack cannot touch the message's next delivery."""

from __future__ import annotations

import logging
import threading
import uuid

from huey_core import Huey
from huey_core.consumer import Consumer
from huey_core.testing.apps import wait_for


def start(consumers: list[Consumer], huey: Huey, **options) -> Consumer:
    options.setdefault("periodic", False)
    consumer = Consumer(huey, initial_delay=0.01, backoff=2.0, max_delay=0.05, **options)
    consumers.append(consumer)
    consumer.start()
    return consumer


def test_a_result_the_store_refuses_releases_the_message_to_run_again(
    huey: Huey, consumers, monkeypatch, caplog
) -> None:
    runs = []
    store = huey.storage.store
    put = store.put
    refusals = [1]

    def put_failing_once(key, value, ttl=None):
        if refusals and key == result.id:
            refusals.pop()
            raise ConnectionError("connection reset by peer")  # the server went away mid-task
        return put(key, value, ttl)

    @huey.task()
    def job() -> int:
        runs.append(1)
        return len(runs)

    result = job()
    monkeypatch.setattr(store, "put", put_failing_once)
    caplog.set_level(logging.WARNING, logger="huey.consumer")
    consumer = start(consumers, huey)
    assert result.get(blocking=True, timeout=5) == 2  # released at once, then ran again
    queue = huey.storage.queue
    assert wait_for(lambda: queue.size() == 0 and queue.leases() == [])
    (worker,) = consumer.worker_list
    assert worker.is_alive() and worker.processed == 2
    assert any("failed outside the task" in r.getMessage() for r in caplog.records)


def test_a_lease_lost_while_the_task_runs_is_reported_and_its_late_ack_is_harmless(
    huey: Huey, consumers, caplog
) -> None:
    started, finish = threading.Event(), threading.Event()

    @huey.task()
    def slow() -> str:
        started.set()
        finish.wait(10)
        return "done"

    slow()
    caplog.set_level(logging.WARNING, logger="huey")
    # Polling: each empty dequeue is followed by a recorded sleep (worker.polls).
    consumer = start(consumers, huey, lease_timeout=1, mode="polling")  # extended every 0.33 s
    assert started.wait(5)
    queue = huey.storage.queue
    (held,) = queue.leases()
    # What recovery does once a lease has expired: the message is ready for someone else.
    queue.release(held.lease)
    assert wait_for(
        lambda: any(  # the warning names the worker
            "Worker-1: the lease of its running task expired" in r.getMessage()
            for r in caplog.records
        )
    )
    second = queue.dequeue("another-consumer", 60)
    assert second is not None and second.deliveries == 2
    (worker,) = consumer.worker_list
    finish.set()
    assert wait_for(lambda: worker.processed == 1)
    polls = len(worker.polls)
    # The worker acks with its next dequeue, which then finds nothing and sleeps: once it has
    # slept again, the ack of the lost lease is behind us.
    assert wait_for(lambda: len(worker.polls) > polls)
    assert [r.lease for r in queue.leases()] == [second.lease]  # the new delivery is intact


def test_a_failure_outside_the_task_after_a_success_is_handled_the_same(
    huey: Huey, consumers, monkeypatch
) -> None:
    store = huey.storage.store
    put = store.put
    refused: list[str] = []

    @huey.task()
    def echo(n: int) -> int:
        return n

    def put_failing_once_for_the_second(key, value, ttl=None):
        if key == second.id and not refused:
            refused.append(key)
            raise ConnectionError("connection reset by peer")
        return put(key, value, ttl)

    first = echo(1)
    second = echo(2)
    monkeypatch.setattr(store, "put", put_failing_once_for_the_second)
    consumer = start(consumers, huey)
    assert first.get(blocking=True, timeout=5) == 1
    assert second.get(blocking=True, timeout=5) == 2  # released, then ran again
    (worker,) = consumer.worker_list
    assert refused and worker.is_alive() and worker.processed == 3


def test_a_finished_task_is_no_longer_kept_leased_by_the_heartbeat(
    huey: Huey, consumers, caplog
) -> None:
    started, finish = threading.Event(), threading.Event()

    @huey.task()
    def quick() -> str:
        return "quick"

    @huey.task()
    def slow() -> str:
        started.set()
        finish.wait(10)
        return "slow"

    caplog.set_level(logging.WARNING, logger="huey")
    consumer = start(consumers, huey, lease_timeout=1)  # a beat every 0.33 s
    assert quick().get(blocking=True, timeout=5) == "quick"
    result = slow()
    assert started.wait(5)
    # While the slow task runs, the heartbeat beats a few times: it extends that task's lease,
    # and never again the lease of the quick task, acknowledged and gone.
    assert wait_for(lambda: consumer.heartbeat.extensions >= 3)
    finish.set()
    assert result.get(blocking=True, timeout=5) == "slow"
    assert not any("lease of its running task expired" in r.getMessage() for r in caplog.records)


def test_a_failure_outside_the_task_logs_its_traceback_once_then_every_tenth_time(
    consumers, caplog
) -> None:
    # Enough deliveries for 12 failures in a row before the message is dead-lettered.
    huey = Huey(f"failing-{uuid.uuid4().hex[:8]}", backend="memory", max_deliveries=20)
    store = huey.storage.store
    put = store.put
    refusals = [1] * 12

    @huey.task()
    def job(n: int) -> int:
        return n

    def put_failing(key, value, ttl=None):
        if key == second.id and refusals:
            refusals.pop()
            raise ConnectionError("connection reset by peer")
        return put(key, value, ttl)

    first = job(1)  # a success first: the count of failures in a row starts from it
    second = job(2)
    store.put = put_failing
    caplog.set_level(logging.WARNING, logger="huey.consumer")
    start(consumers, huey)
    assert first.get(blocking=True, timeout=5) == 1
    assert second.get(blocking=True, timeout=10) == 2
    failures = [r for r in caplog.records if "releasing it to the queue" in r.getMessage()]
    assert len(failures) == 12
    # The traceback with failures 1 and 11; the others name the error on one line.
    assert [i for i, r in enumerate(failures, 1) if r.exc_info] == [1, 11]
    assert all(
        "ConnectionError: connection reset by peer" in r.getMessage()
        for r in failures
        if not r.exc_info
    )
