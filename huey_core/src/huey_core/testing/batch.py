"""Conformance tests for the Queue batch methods: enqueue_many, dequeue_many, ack_many and
ack_and_dequeue_many (derived in BaseQueue, overridden by backends for one round trip)."""

from __future__ import annotations

import time

import pytest

from huey_core.protocols import Backend, Delivery
from huey_core.testing.apps import wait_for
from huey_core.testing.base import ConformanceBase, Connect, drain, run_threads

__all__ = ["BatchQueueConformance"]


class BatchQueueConformance(ConformanceBase):
    """Every statement of the batch method docstrings, checked against `backend.queue`."""

    def test_enqueue_many_appends_in_list_order(self, backend: Backend) -> None:
        queue = backend.queue
        queue.enqueue(b"before")
        queue.enqueue_many([(f"m{i}".encode(), 0) for i in range(5)])
        queue.enqueue(b"after")
        assert [d.data for d in drain(queue)] == [
            b"before", b"m0", b"m1", b"m2", b"m3", b"m4", b"after"
        ]  # fmt: skip

    def test_enqueue_many_keeps_each_priority(self, backend: Backend) -> None:
        if not backend.queue.priority:
            pytest.skip("queue.priority is False: the queue is plain FIFO")
        backend.queue.enqueue_many([(b"low", 0), (b"high", 5), (b"mid", 2), (b"high2", 5)])
        assert [d.data for d in drain(backend.queue)] == [b"high", b"high2", b"mid", b"low"]

    def test_enqueue_many_of_nothing_stores_nothing(self, backend: Backend) -> None:
        backend.queue.enqueue_many([])
        assert backend.queue.size() == 0

    def test_enqueue_many_wakes_a_blocked_dequeue(self, backend: Backend, connect: Connect) -> None:
        if not backend.queue.blocking:
            pytest.skip("queue.blocking is False: dequeue(wait=...) returns at once")
        other = connect(backend.name)

        def wait(_: int) -> bytes | None:
            found = backend.queue.dequeue("waiter", 30.0, wait=10.0)
            return None if found is None else found.data

        def produce(_: int) -> None:
            time.sleep(0.3)
            other.queue.enqueue_many([(b"woken", 0), (b"second", 0)])

        started = time.monotonic()
        got = run_threads(lambda i: wait(i) if i == 0 else produce(i), 2)
        assert got[0] == b"woken"
        assert time.monotonic() - started < 5.0

    def test_dequeue_many_claims_up_to_n_in_order_each_under_its_own_lease(
        self, backend: Backend
    ) -> None:
        queue = backend.queue
        for i in range(5):
            queue.enqueue(f"m{i}".encode())
        batch = queue.dequeue_many("w", 30.0, 3)
        assert [d.data for d in batch] == [b"m0", b"m1", b"m2"]
        assert len({d.lease for d in batch}) == 3
        assert all(d.deliveries == 1 for d in batch)
        leases = {info.lease: info for info in queue.leases()}
        assert set(leases) == {d.lease for d in batch}
        assert {info.owner for info in leases.values()} == {"w"}
        assert queue.size() == 2
        rest = queue.dequeue_many("w", 30.0, 10)
        assert [d.data for d in rest] == [b"m3", b"m4"]

    def test_dequeue_many_on_empty_queue_returns_empty_list_at_once(self, backend: Backend) -> None:
        started = time.monotonic()
        assert backend.queue.dequeue_many("w", 30.0, 4) == []
        assert time.monotonic() - started < 1.0

    def test_dequeue_many_waits_for_the_first_message(
        self, backend: Backend, connect: Connect
    ) -> None:
        if not backend.queue.blocking:
            pytest.skip("queue.blocking is False: dequeue(wait=...) returns at once")
        other = connect(backend.name)

        def wait(_: int) -> list[bytes]:
            return [d.data for d in backend.queue.dequeue_many("waiter", 30.0, 4, wait=10.0)]

        def produce(_: int) -> None:
            time.sleep(0.3)
            other.queue.enqueue(b"late")

        got = run_threads(lambda i: wait(i) if i == 0 else produce(i), 2)
        assert got[0] == [b"late"]

    def test_each_lease_of_a_batch_acks_releases_and_extends_alone(self, backend: Backend) -> None:
        queue = backend.queue
        for i in range(3):
            queue.enqueue(f"m{i}".encode())
        first, second, third = queue.dequeue_many("w", 30.0, 3)
        queue.ack(first.lease)
        queue.release(second.lease)
        assert queue.extend(third.lease, 60.0) is True
        assert queue.extend(first.lease, 60.0) is False
        assert [info.lease for info in queue.leases()] == [third.lease]
        again = queue.dequeue("w", 30.0)
        assert again is not None and again.data == b"m1" and again.deliveries == 2

    def test_a_message_handed_out_before_is_claimed_alone(self, backend: Backend) -> None:
        queue = backend.queue
        for data in (b"a", b"b", b"c"):
            queue.enqueue(data)
        first = queue.dequeue("w", 30.0)
        assert first is not None
        queue.release(first.lease)  # as after a crash: it may be what kills workers
        alone = queue.dequeue_many("w", 30.0, 5)
        assert [(d.data, d.deliveries) for d in alone] == [(b"a", 2)]
        assert [d.data for d in queue.dequeue_many("w", 30.0, 5)] == [b"b", b"c"]

    def test_a_batch_ends_by_a_message_handed_out_before(self, backend: Backend) -> None:
        if not backend.queue.priority:
            pytest.skip("queue.priority is False: the queue is plain FIFO")
        queue = backend.queue
        queue.enqueue(b"again")
        held = queue.dequeue("w", 30.0)
        assert held is not None
        queue.release(held.lease)
        queue.enqueue(b"behind")
        queue.enqueue(b"first", priority=5)
        batch = [d.data for d in queue.dequeue_many("w", 30.0, 5)]
        assert batch[0] == b"first"
        assert b"behind" not in batch  # never stranded behind a message that may kill workers

    def test_expired_batch_leases_are_recovered(self, backend: Backend) -> None:
        queue = backend.queue
        for i in range(3):
            queue.enqueue(f"m{i}".encode())
        assert len(queue.dequeue_many("crashed", 0.2, 3)) == 3
        time.sleep(0.5)
        assert queue.recover() == 3
        assert sorted(d.data for d in drain(queue)) == [b"m0", b"m1", b"m2"]

    def test_ack_many_deletes_every_message_and_is_idempotent(self, backend: Backend) -> None:
        queue = backend.queue
        for i in range(4):
            queue.enqueue(f"m{i}".encode())
        batch = queue.dequeue_many("w", 30.0, 3)
        queue.ack_many([d.lease for d in batch])
        queue.ack_many([d.lease for d in batch])
        queue.ack_many([])
        assert queue.leases() == []
        assert [d.data for d in drain(queue)] == [b"m3"]

    def test_ack_and_dequeue_many_acks_then_claims(self, backend: Backend) -> None:
        queue = backend.queue
        for i in range(5):
            queue.enqueue(f"m{i}".encode())
        batch = queue.dequeue_many("w", 30.0, 2)
        nxt = queue.ack_and_dequeue_many([d.lease for d in batch], "w", 30.0, 2)
        assert [d.data for d in nxt] == [b"m2", b"m3"]
        assert {info.lease for info in queue.leases()} == {d.lease for d in nxt}
        last = queue.ack_and_dequeue_many([d.lease for d in nxt], "w", 30.0, 2)
        assert [d.data for d in last] == [b"m4"]
        assert queue.ack_and_dequeue_many([last[0].lease], "w", 30.0, 2) == []
        assert queue.leases() == [] and queue.size() == 0

    def test_concurrent_batch_claims_hand_out_each_message_once(
        self, backend: Backend, connect: Connect
    ) -> None:
        sent = [f"job-{i:03d}".encode() for i in range(300)]
        backend.queue.enqueue_many([(data, 0) for data in sent])
        threads = 6
        conns = [backend if i % 2 == 0 else connect(backend.name) for i in range(threads)]

        def consume(i: int) -> list[bytes]:
            queue = conns[i].queue
            got: list[bytes] = []
            batch = queue.dequeue_many(f"worker-{i}", 30.0, 1 + i)
            while batch:
                got += [d.data for d in batch]
                assert len(got) <= len(sent), "one consumer got more messages than were sent"
                batch = queue.ack_and_dequeue_many(
                    [d.lease for d in batch], f"worker-{i}", 30.0, 1 + i
                )
            return got

        received = [data for part in run_threads(consume, threads) for data in part]
        assert sorted(received) == sent, "a message was handed out twice or lost"
        assert backend.queue.size() == 0
        assert backend.queue.leases() == []

    def test_ack_soon_is_seen_by_other_connections_before_it_is_settled(
        self, backend: Backend, connect: Connect
    ) -> None:
        other = connect(backend.name)
        queue = backend.queue
        queue.enqueue_many([(b"a", 0), (b"b", 0), (b"keep", 0)])
        first, second, kept = queue.dequeue_many("w", 30.0, 3)
        queue.ack_soon(first.lease)
        queue.ack_soon(second.lease)  # both may be in flight (Redis), or the first read here
        # Sent, not settled: another connection sees both acks (within a moment).
        wait_for(lambda: len(other.queue.leases()) <= 1, timeout=5.0)
        assert [info.lease for info in other.queue.leases()] == [kept.lease]
        queue.settle_acks()
        queue.settle_acks()  # nothing left in flight: a no-op
        assert [info.lease for info in queue.leases()] == [kept.lease]

    def test_a_batch_of_acks_in_flight_lands_before_and_after_settling(
        self, backend: Backend, connect: Connect
    ) -> None:
        """A worker acks each task of a batch with ack_soon() and reads the answers at its next
        claim: 40 acks with no settle_acks() between them (more than a backend keeps waiting)
        all land, and settling reads every answer."""
        other = connect(backend.name)
        queue = backend.queue
        queue.enqueue_many([(f"m{i}".encode(), 0) for i in range(41)])
        deliveries: list[Delivery] = []
        for _ in range(41):  # a backend may hand out fewer than asked per call
            deliveries += queue.dequeue_many("w", 30.0, 41 - len(deliveries))
        assert len(deliveries) == 41
        *done, kept = deliveries
        for delivery in done:
            queue.ack_soon(delivery.lease)
        wait_for(lambda: len(other.queue.leases()) <= 1, timeout=5.0)
        assert [info.lease for info in other.queue.leases()] == [kept.lease]
        queue.settle_acks()
        queue.ack(kept.lease)  # the connection is in a clean state after the answers
        assert queue.leases() == [] and queue.size() == 0

    def test_ack_soon_is_idempotent_and_ignores_unknown_leases(self, backend: Backend) -> None:
        queue = backend.queue
        queue.enqueue_many([(b"job", 0), (b"other", 0)])
        delivery = queue.dequeue("w", 30.0)
        assert delivery is not None
        queue.ack_soon(delivery.lease)
        queue.ack_soon(delivery.lease)
        queue.ack_soon("never-issued")
        queue.settle_acks()
        assert queue.leases() == [] and queue.peek() == [b"other"]

    def test_acks_in_flight_on_several_threads_all_land(self, backend: Backend) -> None:
        queue = backend.queue
        queue.enqueue_many([(f"m{i}".encode(), 0) for i in range(8)])
        leases = [d.lease for d in queue.dequeue_many("w", 30.0, 8)]

        def ack_two(i: int) -> None:
            queue.ack_soon(leases[2 * i])
            queue.ack_soon(leases[2 * i + 1])
            queue.settle_acks()

        run_threads(ack_two, 4)
        assert queue.leases() == [] and queue.size() == 0
