"""The worker's paths for failures outside the task, on the memory backend: a message whose
processing failed half-way is released and runs again; a lease lost while its task runs is
reported, and the late ack cannot touch the message's next delivery."""

from __future__ import annotations

import logging
import threading

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
        lambda: any("lease of its running task expired" in r.getMessage() for r in caplog.records)
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
