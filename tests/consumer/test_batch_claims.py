"""Workers claim several messages per round trip while tasks are quick (huey_core.worker):
what that may and may not change for a user, on the memory backend."""

from __future__ import annotations

import threading
import time

from huey_core import Huey, revocation
from huey_core import gate as thread_gate
from huey_core.testing.apps import wait_for
from huey_core.worker import CLAIM_MAX


def record_claims(huey: Huey) -> list[tuple[int, int]]:
    """(asked, got) of every claim the workers make; the memory queue still does the work."""
    queue = huey.storage.queue
    claims: list[tuple[int, int]] = []
    plain, acking = queue.dequeue_many, queue.ack_and_dequeue_many

    def dequeue_many(owner, lease_timeout, n, wait=0.0):
        found = plain(owner, lease_timeout, n, wait)
        claims.append((n, len(found)))
        return found

    def ack_and_dequeue_many(leases, owner, lease_timeout, n, wait=0.0):
        found = acking(leases, owner, lease_timeout, n, wait)
        claims.append((n, len(found)))
        return found

    queue.dequeue_many = dequeue_many  # type: ignore[method-assign]
    queue.ack_and_dequeue_many = ack_and_dequeue_many  # type: ignore[method-assign]
    return claims


def test_quick_tasks_are_claimed_in_bounded_batches_and_each_runs_once(huey, start) -> None:
    ran: list[int] = []

    @huey.task()
    def quick(i):
        ran.append(i)

    claims = record_claims(huey)
    quick.map(range(300))
    start(workers=1)
    assert wait_for(lambda: len(ran) == 300)
    assert sorted(ran) == list(range(300))
    assert max(got for _, got in claims) > 1, "no claim took more than one message"
    assert max(asked for asked, _ in claims) <= CLAIM_MAX
    assert wait_for(lambda: huey.storage.queue.leases() == [])  # every message acked


def test_slow_tasks_are_claimed_one_at_a_time_so_idle_workers_get_the_rest(huey, start) -> None:
    running = threading.Semaphore(0)
    release = threading.Event()

    @huey.task()
    def slow(i):
        running.release()
        release.wait(10)

    claims = record_claims(huey)
    slow.map(range(4))
    start(workers=4)
    # every worker holds one of the four: none was left waiting behind another's task
    for _ in range(4):
        assert running.acquire(timeout=10)
    release.set()
    assert all(got <= 1 for _, got in claims)


def test_busy_workers_claim_batches_while_no_fellow_waits_for_work(
    huey, start, monkeypatch
) -> None:
    """Only a fellow whose last claim found nothing makes a worker claim a single message: four
    workers draining quick tasks still claim batches (one message per claim would cost a round
    trip and a revocation read per task)."""
    # As when tasks leave the CPU room: every parked worker joins at the first trial and stays.
    monkeypatch.setattr(thread_gate, "SPARE", 10.0)
    monkeypatch.setattr(thread_gate, "BUSY", 10.0)
    monkeypatch.setattr(thread_gate, "KEEP", {1: 0.0, -1: 0.97})
    ran: list[int] = []

    @huey.task()
    def quick(i):
        ran.append(i)

    claims = record_claims(huey)
    queue = huey.storage.queue
    plain = queue.ack_and_dequeue_many

    def round_trip(*args, **kwargs):  # as over a network: fellows' claims overlap
        time.sleep(0.002)
        return plain(*args, **kwargs)

    queue.ack_and_dequeue_many = round_trip  # type: ignore[method-assign]
    quick.map(range(4000))
    consumer = start(workers=4)
    assert wait_for(lambda: len(ran) == 4000, timeout=60)
    assert consumer.gate is not None and consumer.gate.parks == 0
    assert sorted(ran) == list(range(4000))
    hits = [got for _, got in claims if got]
    assert len(hits) < 2000, f"{len(hits)} claims for 4000 messages: busy workers claimed singly"


def test_graceful_stop_puts_the_unstarted_rest_of_a_batch_back(huey, start) -> None:
    ran: list[object] = []
    gate = threading.Event()

    @huey.task()
    def quick(i):
        ran.append(i)

    @huey.task()
    def blocker():
        gate.wait(10)
        ran.append("blocker")

    claims = record_claims(huey)
    consumer = start(workers=1)
    quick.map(range(50))  # the worker learns that its tasks are quick: its claims grow
    assert wait_for(lambda: len(ran) == 50)
    huey.enqueue_many([blocker.s(), *(quick.s(i) for i in range(100, 110))])
    assert wait_for(lambda: huey.storage.queue.size() == 0)  # all claimed, in one batch
    assert claims[-1][1] == 11, claims
    stopper = threading.Thread(target=consumer.stop)
    stopper.start()
    assert wait_for(consumer.stopping.is_set)
    gate.set()
    stopper.join(15)
    assert ran[-1] == "blocker" and len(ran) == 51  # the rest never started
    assert huey.storage.queue.size() == 10
    assert huey.storage.queue.leases() == []


def test_a_revocation_made_while_a_batch_waits_is_honoured(huey, start) -> None:
    ran: list[int] = []
    gate = threading.Event()

    @huey.task()
    def quick(i):
        ran.append(i)

    @huey.task()
    def blocker():
        gate.wait(10)

    claims = record_claims(huey)
    start(workers=1)
    quick.map(range(50))
    assert wait_for(lambda: len(ran) == 50)
    results = huey.enqueue_many([blocker.s(), quick.s(100), quick.s(101)])
    assert wait_for(lambda: huey.storage.queue.size() == 0)
    assert claims[-1][1] == 3, claims  # claimed together, revocations read before the blocker ran
    results[1].revoke()
    gate.set()
    assert wait_for(lambda: 101 in ran)
    assert 100 not in ran


def test_each_finished_task_is_acked_before_the_next_starts(huey, start) -> None:
    """So a crash re-runs only the running task, never one that already finished."""
    seen: list[tuple[int, set[int]]] = []

    @huey.task()
    def quick(i):
        held = {huey.deserialize_task(info.data).args[0] for info in huey.storage.queue.leases()}
        seen.append((i, held))

    claims = record_claims(huey)
    quick.map(range(200))
    start(workers=1)
    assert wait_for(lambda: len(seen) == 200)
    assert max(got for _, got in claims) > 1  # batches did happen
    done: set[int] = set()
    for i, held in seen:
        assert not held & done, f"task {i} ran while finished tasks were still leased"
        done.add(i)


def test_an_idle_worker_takes_the_waiting_rest_of_a_fellow_workers_batch(huey, start) -> None:
    """A quick task claimed in a batch behind a long one runs as soon as another worker is free,
    not when the long one ends."""
    ran: list[object] = []
    first, second = threading.Event(), threading.Event()

    @huey.task()
    def quick(i):
        ran.append(i)

    @huey.task()
    def long(gate):
        (first if gate == "first" else second).wait(20)
        ran.append(gate)

    claims = record_claims(huey)
    start(workers=2)
    long("first")  # one worker runs it ...
    assert wait_for(lambda: huey.storage.queue.size() == 0)
    quick.map(range(200))  # ... the other learns that tasks are quick: its claims grow
    assert wait_for(lambda: len(ran) == 200)
    time.sleep(1.2)  # its blocking claim starts again, sized for quick tasks
    huey.enqueue_many([long.s("second"), quick.s("behind")])
    assert wait_for(lambda: huey.storage.queue.size() == 0)
    assert claims[-1][1] == 2, claims  # claimed together by the free worker
    first.set()  # the first worker is free: it takes "behind" while "second" still runs
    assert wait_for(lambda: "behind" in ran, timeout=10), ran[200:]
    assert "second" not in ran
    second.set()
    assert wait_for(lambda: "second" in ran)
    assert wait_for(lambda: huey.storage.queue.leases() == [])


def test_the_first_worker_also_takes_the_waiting_rest_of_a_later_fellows_batch(huey, start) -> None:
    """Whichever worker is free looks at every fellow's batch: here the batch waits behind a
    long task on the second worker, and the first one, once free, runs its quick task."""
    ran: list[object] = []
    gates: dict[str, threading.Event] = {}  # worker thread -> the event its gate task waits on
    second = threading.Event()

    @huey.task()
    def quick(i):
        ran.append(i)

    @huey.task()
    def gate():
        gates[threading.current_thread().name] = event = threading.Event()
        event.wait(20)

    @huey.task()
    def long():
        second.wait(20)
        ran.append("second")

    claims = record_claims(huey)
    start(workers=2)
    gate()
    gate()
    assert wait_for(lambda: len(gates) == 2)  # one on each worker
    gates["huey-Worker-2"].set()
    quick.map(range(20))  # the second worker runs them alone: its tasks are quick again
    assert wait_for(lambda: len(ran) == 20)
    time.sleep(1.2)  # its blocking claim starts again, sized for quick tasks
    huey.enqueue_many([long.s(), quick.s("behind")])
    assert wait_for(lambda: huey.storage.queue.size() == 0)
    assert claims[-1][1] == 2, claims  # claimed together by the second worker
    gates["huey-Worker-1"].set()  # the first worker is free: it takes "behind"
    assert wait_for(lambda: "behind" in ran, timeout=10), ran[20:]
    assert "second" not in ran
    second.set()
    assert wait_for(lambda: "second" in ran)
    assert wait_for(lambda: huey.storage.queue.leases() == [])


def test_a_fellow_checks_a_message_of_another_workers_batch_against_that_batchs_read(
    huey, monkeypatch
) -> None:
    """A message one worker takes from another's batch needs no revocation read of its own
    while the batch's read is fresh; a revocation made in this process still drops that read."""
    monkeypatch.setattr(revocation, "PREFETCH_FRESH", 60.0)  # no clock in this test

    @huey.task()
    def quick(i):
        pass

    tasks = [quick.s(i) for i in range(3)]
    store = huey.storage.store
    reads: list[list[str]] = []
    plain = store.peek_many

    def peek_many(keys):
        reads.append(list(keys))
        return plain(keys)

    store.peek_many = peek_many  # type: ignore[method-assign]
    huey._revocations.prefetch(tasks)  # the batch's read, on the claiming worker's thread
    seen: list[bool] = []

    def fellow() -> None:
        seen.append(huey.is_revoked(tasks[1], peek=False))
        huey.revoke(tasks[2])
        seen.append(huey.is_revoked(tasks[2], peek=False))

    thread = threading.Thread(target=fellow)
    thread.start()
    thread.join()
    assert seen == [False, True]
    assert len(reads) == 2  # the batch's read, then a new one after the revocation
