"""Conformance tests for the Schedule protocol: due times, atomic moves, concurrent schedulers."""

from __future__ import annotations

import time
import uuid

import pytest

from huey_core.protocols import Backend, Schedule
from huey_core.testing.base import ConformanceBase, Connect, drain, run_threads

__all__ = ["ScheduleConformance"]


class ScheduleConformance(ConformanceBase):
    """Every statement of the Schedule docstrings, checked against `backend.schedule`."""

    def test_schedule_satisfies_protocol(self, backend: Backend) -> None:
        assert isinstance(backend.schedule, Schedule)

    def test_add_size_and_peek_earliest_first(self, backend: Backend) -> None:
        now = time.time()
        assert backend.schedule.size() == 0
        assert backend.schedule.peek() == []
        backend.schedule.add(b"later", now + 20)
        backend.schedule.add(b"soon", now + 10)
        backend.schedule.add(b"last", now + 30)
        assert backend.schedule.size() == 3
        peeked = backend.schedule.peek()
        assert [data for _, data in peeked] == [b"soon", b"later", b"last"]
        assert [ts for ts, _ in peeked] == pytest.approx([now + 10, now + 20, now + 30], abs=1e-3)
        assert [data for _, data in backend.schedule.peek(2)] == [b"soon", b"later"]
        backend.schedule.add(b"ms-2", now + 1.002)
        backend.schedule.add(b"ms-1", now + 1.001)  # millisecond precision keeps the order
        assert [data for _, data in backend.schedule.peek(2)] == [b"ms-1", b"ms-2"]
        backend.schedule.pop_due(now + 1.5)
        assert backend.schedule.size() == 3  # peek removes nothing
        assert backend.queue.size() == 0  # and adding does not touch the queue

    def test_identical_payloads_are_distinct_entries(self, backend: Backend) -> None:
        now = time.time()
        backend.schedule.add(b"same", now - 1)
        backend.schedule.add(b"same", now - 1)
        assert backend.schedule.size() == 2
        assert backend.schedule.move_due(now) == 2
        assert backend.queue.size() == 2

    def test_move_due_moves_only_due_messages(self, backend: Backend) -> None:
        now = time.time()
        backend.schedule.add(b"past", now - 10)
        backend.schedule.add(b"exactly-now", now)
        backend.schedule.add(b"future", now + 100)
        assert backend.schedule.move_due(now) == 2
        assert [data for _, data in backend.schedule.peek()] == [b"future"]
        assert backend.schedule.size() == 1
        assert sorted(d.data for d in drain(backend.queue)) == [b"exactly-now", b"past"]
        assert backend.schedule.move_due(now) == 0

    def test_move_due_respects_limit_taking_earliest_first(self, backend: Backend) -> None:
        now = time.time()
        for i in range(5):
            backend.schedule.add(f"due-{i}".encode(), now - 50 + i)
        assert backend.schedule.move_due(now, limit=2) == 2
        assert sorted(backend.queue.peek()) == [b"due-0", b"due-1"]
        assert [data for _, data in backend.schedule.peek()] == [b"due-2", b"due-3", b"due-4"]
        assert backend.schedule.move_due(now, limit=10) == 3
        assert backend.schedule.size() == 0

    def test_move_due_keeps_priority(self, backend: Backend) -> None:
        if not backend.queue.priority:
            pytest.skip("queue.priority is False: the queue is plain FIFO")
        now = time.time()
        backend.schedule.add(b"low", now - 20, priority=0)
        backend.schedule.add(b"high", now - 10, priority=9)
        backend.queue.enqueue(b"middle", priority=5)
        assert backend.schedule.move_due(now) == 2
        assert [d.data for d in drain(backend.queue)] == [b"high", b"middle", b"low"]

    def test_moved_message_is_a_normal_queue_message(self, backend: Backend) -> None:
        backend.schedule.add(b"job", time.time() - 1)
        assert backend.schedule.move_due(time.time()) == 1
        delivery = backend.queue.dequeue("worker-1", 30.0)
        assert delivery is not None
        assert delivery.data == b"job" and delivery.deliveries == 1
        backend.queue.ack(delivery.lease)
        assert backend.queue.size() == 0 and backend.queue.leases() == []

    def test_pop_due_removes_and_returns_oldest_first(self, backend: Backend) -> None:
        now = time.time()
        backend.schedule.add(b"second", now - 5)
        backend.schedule.add(b"first", now - 10)
        backend.schedule.add(b"third", now - 1)
        backend.schedule.add(b"future", now + 100)
        assert backend.schedule.pop_due(now, limit=2) == [b"first", b"second"]
        assert backend.schedule.pop_due(now) == [b"third"]
        assert backend.schedule.pop_due(now) == []
        assert [data for _, data in backend.schedule.peek()] == [b"future"]
        assert backend.queue.size() == 0  # pop_due leaves enqueueing to the caller

    def test_flush_removes_every_scheduled_message(self, backend: Backend) -> None:
        now = time.time()
        backend.schedule.add(b"a", now - 1)
        backend.schedule.add(b"b", now + 100)
        backend.queue.enqueue(b"ready")
        backend.schedule.flush()
        assert backend.schedule.size() == 0
        assert backend.schedule.peek() == []
        assert backend.schedule.move_due(now + 1000) == 0
        assert backend.queue.peek() == [b"ready"]  # the queue is a separate store

    def test_schedule_binary_and_large_payloads(self, backend: Backend) -> None:
        now = time.time()
        small = bytes(range(256))
        large = bytes(range(256)) * 4096  # 1 MiB
        backend.schedule.add(small, now - 2)
        backend.schedule.add(large, now - 1)
        assert [data for _, data in backend.schedule.peek()] == [small, large]
        assert backend.schedule.move_due(now) == 2
        assert sorted(d.data for d in drain(backend.queue)) == sorted([small, large])

    def test_concurrent_move_due_moves_each_message_once(
        self, backend: Backend, connect: Connect
    ) -> None:
        now = time.time()
        sent = {f"job-{i}".encode() for i in range(200)}
        for i, data in enumerate(sorted(sent)):
            backend.schedule.add(data, now - 100 + i * 0.01)
        threads = 8
        conns = [backend if i % 2 == 0 else connect(backend.name) for i in range(threads)]

        def scheduler(i: int) -> int:
            moved = 0
            while (n := conns[i].schedule.move_due(now, limit=7)) > 0:
                moved += n
                assert moved <= len(sent), "one scheduler moved more messages than were added"
            return moved

        assert sum(run_threads(scheduler, threads)) == 200
        assert backend.schedule.size() == 0
        received = [d.data for d in drain(backend.queue)]
        assert len(received) == 200, "a message was moved twice or lost"
        assert set(received) == sent

    def test_blocking_dequeue_wakes_when_move_due_enqueues(
        self, backend: Backend, other: Backend
    ) -> None:
        if not backend.queue.blocking:
            pytest.skip("queue.blocking is False: dequeue(wait=...) returns at once")
        other.schedule.add(b"scheduled", time.time() - 1)
        delivery = self.dequeue_woken_by(backend, lambda: other.schedule.move_due(time.time() + 1))
        assert delivery is not None and delivery.data == b"scheduled"

    def test_schedules_of_different_instances_are_isolated(
        self, backend: Backend, connect: Connect
    ) -> None:
        stranger = connect(f"conformance-{uuid.uuid4().hex[:12]}")
        now = time.time()
        backend.schedule.add(b"mine", now - 1)
        stranger.schedule.add(b"theirs", now - 1)
        assert stranger.schedule.move_due(now) == 1
        assert backend.schedule.size() == 1
        assert backend.queue.size() == 0
        assert stranger.queue.peek() == [b"theirs"]
        stranger.schedule.flush()
        assert backend.schedule.peek()[0][1] == b"mine"
