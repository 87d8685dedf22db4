"""Conformance tests for the Queue protocol: ordering, leases, recovery, waits, concurrency."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from huey_core.protocols import Backend, Queue
from huey_core.testing.base import ConformanceBase, Connect, drain, run_threads

__all__ = ["QueueConformance"]


def _skip_unless_blocking(backend: Backend) -> None:
    if not backend.queue.blocking:
        pytest.skip(
            "queue.blocking is False: dequeue(wait=...) returns at once, the consumer polls"
        )


def _skip_unless_priority(backend: Backend) -> None:
    if not backend.queue.priority:
        pytest.skip("queue.priority is False: the queue is plain FIFO")


def _check_order(message: Any, still_ready: list[Any]) -> None:
    """The model's claimed message was the highest priority, and FIFO within it."""
    top = max(m.priority for m in (*still_ready, message))
    assert message.priority == top, "a lower priority came first"
    fresh = [m.seq for m in (*still_ready, message) if m.priority == top and not m.released]
    assert message.released or message.seq == min(fresh), "FIFO broken"


def _check_leases(queue: Queue, held: dict[str, Any]) -> None:
    """queue.leases() lists exactly the model's held messages, with their delivery counts."""
    leases = {i.lease: i for i in queue.leases()}
    assert set(leases) == set(held)
    for lease, info in leases.items():
        assert info.data == held[lease].data
        assert info.deliveries == held[lease].deliveries


class QueueConformance(ConformanceBase):
    """Every statement of the Queue docstrings, checked against `backend.queue`."""

    # -- shape -----------------------------------------------------------------------------

    def test_queue_satisfies_protocol(self, backend: Backend) -> None:
        assert isinstance(backend.queue, Queue)
        assert isinstance(backend.queue.blocking, bool)
        assert isinstance(backend.queue.priority, bool)

    # -- enqueue / dequeue -----------------------------------------------------------------

    def test_enqueue_then_dequeue_returns_message_under_lease(self, backend: Backend) -> None:
        backend.queue.enqueue(b"hello")
        delivery = backend.queue.dequeue("worker-1", 30.0)
        assert delivery is not None
        assert delivery.data == b"hello"
        assert isinstance(delivery.lease, str) and delivery.lease
        assert delivery.deliveries == 1

    def test_dequeue_on_empty_queue_returns_none_at_once(self, backend: Backend) -> None:
        started = time.monotonic()
        assert backend.queue.dequeue("worker-1", 30.0) is None
        assert backend.queue.dequeue("worker-1", 30.0, wait=0.0) is None
        assert time.monotonic() - started < 1.0

    def test_ack_and_dequeue_acks_then_claims(self, backend: Backend) -> None:
        queue = backend.queue
        for payload in (b"one", b"two"):
            queue.enqueue(payload)
        first = queue.dequeue("w", 30)
        assert first is not None and first.data == b"one"
        second = queue.ack_and_dequeue(first.lease, "w", 30)
        assert second is not None and second.data == b"two" and second.lease != first.lease
        assert [info.lease for info in queue.leases()] == [second.lease]  # the first is gone
        assert queue.ack_and_dequeue(second.lease, "w", 30) is None  # acked; nothing left to claim
        assert queue.leases() == [] and queue.size() == 0
        queue.enqueue(b"three")
        third = queue.ack_and_dequeue("unknown-lease", "w", 30)  # an unknown lease is a no-op ack
        assert third is not None and third.data == b"three" and third.deliveries == 1

    def test_ack_and_dequeue_acks_even_when_the_queue_is_empty(
        self, backend: Backend, other: Backend
    ) -> None:
        queue = backend.queue
        queue.enqueue(b"last")
        delivery = queue.dequeue("w", self.short_ttl)
        assert delivery is not None
        done: list[object] = []
        # A blocking backend waits here; the ack must not wait with it: another connection sees
        # the message gone while the claim is still looking for a next one.
        waiter = threading.Thread(
            target=lambda: done.append(queue.ack_and_dequeue(delivery.lease, "w", 30, wait=1.0))
        )
        waiter.start()
        try:
            deadline = time.monotonic() + 0.5
            while other.queue.leases() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert other.queue.leases() == [], "the ack waited for the dequeue"
        finally:
            waiter.join(10)
        assert done == [None]
        self.expire()
        assert queue.recover() == 0  # deleted, not merely leased past its deadline
        assert other.queue.dequeue("w2", 30) is None

    def test_fifo_within_one_priority(self, backend: Backend) -> None:
        sent = [f"message-{i}".encode() for i in range(50)]
        for data in sent:
            backend.queue.enqueue(data)
        assert [d.data for d in drain(backend.queue)] == sent

    def test_identical_payloads_are_distinct_messages(self, backend: Backend) -> None:
        for _ in range(3):
            backend.queue.enqueue(b"same")
        assert backend.queue.size() == 3
        deliveries = drain(backend.queue)
        assert [d.data for d in deliveries] == [b"same"] * 3
        assert len({d.lease for d in deliveries}) == 3

    def test_higher_priority_first_then_fifo(self, backend: Backend) -> None:
        _skip_unless_priority(backend)
        for data, priority in [(b"p0", 0), (b"p5-a", 5), (b"neg", -1), (b"p10", 10), (b"p5-b", 5)]:
            backend.queue.enqueue(data, priority=priority)
        assert backend.queue.peek() == [b"p10", b"p5-a", b"p5-b", b"p0", b"neg"]
        assert [d.data for d in drain(backend.queue)] == [b"p10", b"p5-a", b"p5-b", b"p0", b"neg"]

    def test_released_and_recovered_messages_keep_their_priority(self, backend: Backend) -> None:
        _skip_unless_priority(backend)
        backend.queue.enqueue(b"urgent", priority=9)
        backend.queue.enqueue(b"crashed", priority=5)
        released = backend.queue.dequeue("worker-1", 30.0)
        crashed = backend.queue.dequeue("worker-1", self.short_ttl)
        assert released is not None and crashed is not None
        backend.queue.enqueue(b"normal", priority=0)
        backend.queue.release(released.lease)
        self.expire()
        assert backend.queue.recover() == 1
        assert [d.data for d in drain(backend.queue)] == [b"urgent", b"crashed", b"normal"]

    def test_priority_argument_accepted_by_every_backend(self, backend: Backend) -> None:
        sent = [(b"a", 3), (b"b", 0), (b"c", 7)]
        for data, priority in sent:
            backend.queue.enqueue(data, priority=priority)
        got = [d.data for d in drain(backend.queue)]
        assert sorted(got) == [b"a", b"b", b"c"]
        if not backend.queue.priority:
            assert got == [b"a", b"b", b"c"]  # no priority support means plain FIFO

    def test_binary_payload_with_every_byte_value(self, backend: Backend) -> None:
        payload = bytes(range(256)) * 4
        backend.queue.enqueue(payload)
        backend.queue.enqueue(b"\x00")
        assert backend.queue.peek() == [payload, b"\x00"]
        assert [d.data for d in drain(backend.queue)] == [payload, b"\x00"]

    def test_empty_payload(self, backend: Backend) -> None:
        backend.queue.enqueue(b"")
        delivery = backend.queue.dequeue("worker-1", 30.0)
        assert delivery is not None and delivery.data == b""

    def test_one_megabyte_payload(self, backend: Backend) -> None:
        payload = bytes(range(256)) * 4096  # 1 MiB
        backend.queue.enqueue(payload)
        delivery = backend.queue.dequeue("worker-1", 30.0)
        assert delivery is not None and delivery.data == payload

    # -- waiting -----------------------------------------------------------------------------

    def test_blocking_dequeue_wakes_when_another_connection_enqueues(
        self, backend: Backend, other: Backend
    ) -> None:
        _skip_unless_blocking(backend)
        delivery = self.dequeue_woken_by(backend, lambda: other.queue.enqueue(b"wake"))
        assert delivery is not None and delivery.data == b"wake"

    def test_blocking_dequeue_returns_none_when_wait_expires(self, backend: Backend) -> None:
        _skip_unless_blocking(backend)
        started = time.monotonic()
        assert backend.queue.dequeue("worker-1", 30.0, wait=0.3) is None
        elapsed = time.monotonic() - started
        assert 0.2 <= elapsed < self.wake_within, f"returned after {elapsed:.2f} s"

    def test_blocked_waiters_share_messages_without_duplicates(
        self, backend: Backend, connect: Connect
    ) -> None:
        _skip_unless_blocking(backend)
        waiters = 4
        conns = [backend if i % 2 == 0 else connect(backend.name) for i in range(waiters)]
        producer = connect(backend.name)

        def send() -> None:
            producer.queue.enqueue(b"one")
            producer.queue.enqueue(b"two")

        timer = threading.Timer(0.3, send)
        timer.start()
        try:
            got = run_threads(lambda i: conns[i].queue.dequeue(f"w-{i}", 30.0, wait=1.0), waiters)
        finally:
            timer.cancel()
        data = sorted(d.data for d in got if d is not None)
        assert data == [b"one", b"two"], f"waiters received {data}"
        assert backend.queue.size() == 0

    def test_non_blocking_dequeue_ignores_wait(self, backend: Backend) -> None:
        if backend.queue.blocking:
            pytest.skip("queue.blocking is True: covered by the blocking-wait tests")
        started = time.monotonic()
        assert backend.queue.dequeue("worker-1", 30.0, wait=3.0) is None
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"a non-blocking dequeue slept {elapsed:.2f} s; the consumer polls"

    # -- leases ------------------------------------------------------------------------------

    def test_leased_message_is_invisible_to_other_consumers(
        self, backend: Backend, other: Backend
    ) -> None:
        backend.queue.enqueue(b"only")
        assert backend.queue.dequeue("worker-1", 30.0) is not None
        assert backend.queue.dequeue("worker-2", 30.0) is None
        assert other.queue.dequeue("worker-3", 30.0) is None
        assert backend.queue.size() == 0
        assert backend.queue.peek() == []

    def test_leases_list_owner_deadline_deliveries_and_data(self, backend: Backend) -> None:
        assert backend.queue.leases() == []
        backend.queue.enqueue(b"job")
        before = time.time()
        delivery = backend.queue.dequeue("worker-7", 30.0)
        assert delivery is not None
        (info,) = backend.queue.leases()
        assert info.lease == delivery.lease
        assert info.owner == "worker-7"
        assert info.deadline is not None  # a lease taken by dequeue always has one
        assert before + 30.0 - 5.0 <= info.deadline <= time.time() + 30.0 + 5.0
        assert info.deliveries == 1
        assert info.data == b"job"

    def test_ack_removes_message_for_good(self, backend: Backend) -> None:
        backend.queue.enqueue(b"job")
        delivery = backend.queue.dequeue("worker-1", self.short_ttl)
        assert delivery is not None
        backend.queue.ack(delivery.lease)
        assert backend.queue.leases() == []
        assert backend.queue.size() == 0
        self.expire()
        assert backend.queue.recover() == 0
        assert backend.queue.dequeue("worker-1", 30.0) is None

    def test_ack_is_idempotent(self, backend: Backend) -> None:
        backend.queue.enqueue(b"job")
        backend.queue.enqueue(b"other")
        delivery = backend.queue.dequeue("worker-1", 30.0)
        assert delivery is not None
        backend.queue.ack(delivery.lease)
        backend.queue.ack(delivery.lease)
        backend.queue.ack(uuid.uuid4().hex)  # never issued: a no-op, not an error
        assert backend.queue.peek() == [b"other"]

    def test_release_makes_message_ready_again_keeping_delivery_count(
        self, backend: Backend
    ) -> None:
        backend.queue.enqueue(b"job")
        first = backend.queue.dequeue("worker-1", 30.0)
        assert first is not None
        backend.queue.release(first.lease)
        assert backend.queue.size() == 1
        assert backend.queue.leases() == []
        second = backend.queue.dequeue("worker-2", 30.0)
        assert second is not None
        assert second.data == b"job"
        assert second.deliveries == 2
        assert second.lease != first.lease
        assert [i.deliveries for i in backend.queue.leases()] == [2]

    def test_release_of_unknown_or_spent_lease_is_a_no_op(self, backend: Backend) -> None:
        backend.queue.enqueue(b"job")
        delivery = backend.queue.dequeue("worker-1", 30.0)
        assert delivery is not None
        backend.queue.release(delivery.lease)
        backend.queue.release(delivery.lease)  # a second release must not duplicate it
        assert backend.queue.size() == 1
        again = backend.queue.dequeue("worker-1", 30.0)
        assert again is not None
        backend.queue.ack(again.lease)
        backend.queue.release(again.lease)  # acked: must not come back
        backend.queue.release(uuid.uuid4().hex)
        assert backend.queue.size() == 0
        assert backend.queue.leases() == []

    def test_deliveries_count_every_dequeue(self, backend: Backend) -> None:
        backend.queue.enqueue(b"job")
        counts = []
        for _ in range(4):
            delivery = backend.queue.dequeue("worker-1", 30.0)
            assert delivery is not None
            counts.append(delivery.deliveries)
            backend.queue.release(delivery.lease)
        assert counts == [1, 2, 3, 4]

    def test_extend_pushes_deadline_until_lease_is_gone(self, backend: Backend) -> None:
        backend.queue.enqueue(b"a")
        backend.queue.enqueue(b"b")
        a = backend.queue.dequeue("worker-1", 10.0)
        b = backend.queue.dequeue("worker-1", 10.0)
        assert a is not None and b is not None
        (before,) = [i.deadline for i in backend.queue.leases() if i.lease == a.lease]
        assert backend.queue.extend(a.lease, 100.0) is True
        (after,) = [i.deadline for i in backend.queue.leases() if i.lease == a.lease]
        assert after is not None and before is not None and after >= before + 80.0
        backend.queue.ack(a.lease)
        assert backend.queue.extend(a.lease, 100.0) is False
        backend.queue.release(b.lease)
        assert backend.queue.extend(b.lease, 100.0) is False
        assert backend.queue.extend(uuid.uuid4().hex, 100.0) is False

    def test_extend_sets_deadline_from_now_even_when_shorter(self, backend: Backend) -> None:
        backend.queue.enqueue(b"job")
        delivery = backend.queue.dequeue("worker-1", 30.0)
        assert delivery is not None
        assert backend.queue.extend(delivery.lease, self.short_ttl) is True
        self.expire()
        assert backend.queue.recover() == 1

    def test_extended_lease_is_not_recovered(self, backend: Backend) -> None:
        backend.queue.enqueue(b"long task")
        # Half a second, not short_ttl: extend() must run while the first lease is surely live.
        delivery = backend.queue.dequeue("worker-1", 0.5)
        assert delivery is not None
        assert backend.queue.extend(delivery.lease, 30.0) is True
        time.sleep(0.5 + self.expiry_slack)
        assert backend.queue.recover() == 0
        assert len(backend.queue.leases()) == 1
        assert backend.queue.size() == 0

    # -- recovery ----------------------------------------------------------------------------

    def test_recover_returns_expired_leases_to_the_queue(self, backend: Backend) -> None:
        backend.queue.enqueue(b"crashed")
        backend.queue.enqueue(b"alive")
        crashed = backend.queue.dequeue("worker-1", self.short_ttl)
        alive = backend.queue.dequeue("worker-2", 30.0)
        assert crashed is not None and alive is not None
        self.expire()
        assert backend.queue.recover() == 1
        assert backend.queue.recover() == 0
        assert [i.lease for i in backend.queue.leases()] == [alive.lease]
        again = backend.queue.dequeue("worker-3", 30.0)
        assert again is not None
        assert again.data == b"crashed"
        assert again.deliveries == 2

    def test_recover_leaves_a_live_lease_alone_until_its_deadline(self, backend: Backend) -> None:
        """However close its deadline: half a second left means half a second more."""
        for _ in range(3):
            backend.queue.flush()
            backend.queue.enqueue(b"job")
            started = time.monotonic()
            delivery = backend.queue.dequeue("worker-1", 0.5)
            claimed = time.monotonic()  # the deadline is at most half a second after this
            recovered = backend.queue.recover()
            if time.monotonic() - started < 0.4:
                break  # else the machine stalled close to the deadline: that proves nothing
        assert delivery is not None
        assert recovered == 0, "recover() took a lease that had 0.5 s left"
        assert [i.lease for i in backend.queue.leases()] == [delivery.lease]
        time.sleep(max(0.0, claimed + 0.5 - time.monotonic()) + self.expiry_slack)
        assert backend.queue.recover() == 1, "recover() left a lease past its deadline"
        assert backend.queue.leases() == []
        assert backend.queue.peek() == [delivery.data]

    def test_expired_lease_still_belongs_to_its_owner_until_recovered(
        self, backend: Backend
    ) -> None:
        backend.queue.enqueue(b"slow")
        backend.queue.enqueue(b"slower")
        slow = backend.queue.dequeue("worker-1", self.short_ttl)
        slower = backend.queue.dequeue("worker-1", self.short_ttl)
        assert slow is not None and slower is not None
        self.expire()
        # The worker finished after its deadline but before anyone ran recover(): its ack
        # counts (no needless re-run) and a late heartbeat revives the lease.
        backend.queue.ack(slow.lease)
        assert backend.queue.extend(slower.lease, 30.0) is True
        assert backend.queue.recover() == 0
        assert [i.data for i in backend.queue.leases()] == [b"slower"]
        assert backend.queue.size() == 0

    def test_stale_lease_cannot_touch_recovered_message(self, backend: Backend) -> None:
        backend.queue.enqueue(b"job")
        stale = backend.queue.dequeue("worker-1", self.short_ttl)
        assert stale is not None
        self.expire()
        assert backend.queue.recover() == 1
        fresh = backend.queue.dequeue("worker-2", 30.0)
        assert fresh is not None
        # The slow first worker wakes up: none of its calls may affect the new owner's claim.
        assert backend.queue.extend(stale.lease, 30.0) is False
        backend.queue.ack(stale.lease)
        backend.queue.release(stale.lease)
        assert [i.lease for i in backend.queue.leases()] == [fresh.lease]
        assert backend.queue.size() == 0
        assert backend.queue.extend(fresh.lease, 30.0) is True

    def test_recover_from_another_connection(self, backend: Backend, other: Backend) -> None:
        backend.queue.enqueue(b"job")
        delivery = backend.queue.dequeue("dead-consumer", self.short_ttl)
        assert delivery is not None
        self.expire()
        assert other.queue.recover() == 1
        again = other.queue.dequeue("live-consumer", 30.0)
        assert again is not None
        assert again.data == b"job" and again.deliveries == 2

    def test_concurrent_recover_returns_each_message_once(
        self, backend: Backend, connect: Connect
    ) -> None:
        for i in range(20):
            backend.queue.enqueue(f"job-{i}".encode())
        assert len(drain(backend.queue, lease_timeout=self.short_ttl)) == 20
        self.expire()
        conns = [backend if i % 2 == 0 else connect(backend.name) for i in range(4)]
        recovered = run_threads(lambda i: conns[i].queue.recover(), 4)
        assert sum(recovered) == 20
        assert backend.queue.size() == 20
        assert sorted(d.data for d in drain(backend.queue)) == sorted(
            f"job-{i}".encode() for i in range(20)
        )

    # -- concurrency -------------------------------------------------------------------------

    def test_concurrent_dequeue_hands_out_each_message_once(
        self, backend: Backend, connect: Connect
    ) -> None:
        sent = {f"job-{i}".encode() for i in range(200)}
        for data in sorted(sent):
            backend.queue.enqueue(data)
        threads = 8
        conns = [backend if i % 2 == 0 else connect(backend.name) for i in range(threads)]

        def consume(i: int) -> list[bytes]:
            got = []
            queue = conns[i].queue
            while (delivery := queue.dequeue(f"worker-{i}", 30.0)) is not None:
                got.append(delivery.data)
                queue.ack(delivery.lease)
                assert len(got) <= len(sent), "one consumer got more messages than were sent"
            return got

        received = [data for part in run_threads(consume, threads) for data in part]
        assert len(received) == len(sent), "a message was handed out twice or lost"
        assert set(received) == sent
        assert backend.queue.size() == 0
        assert backend.queue.leases() == []

    # -- size / peek / flush -----------------------------------------------------------------

    def test_size_counts_ready_messages_only(self, backend: Backend) -> None:
        assert backend.queue.size() == 0
        for i in range(3):
            backend.queue.enqueue(f"job-{i}".encode())
        assert backend.queue.size() == 3
        assert backend.queue.dequeue("worker-1", 30.0) is not None
        assert backend.queue.size() == 2

    def test_peek_shows_dequeue_order_without_claiming(self, backend: Backend) -> None:
        assert backend.queue.peek() == []
        sent = [f"job-{i}".encode() for i in range(5)]
        for data in sent:
            backend.queue.enqueue(data)
        assert backend.queue.peek(2) == sent[:2]
        assert backend.queue.peek() == sent
        assert backend.queue.size() == 5
        assert backend.queue.leases() == []
        assert [d.data for d in drain(backend.queue)] == sent

    def test_flush_removes_ready_and_leased_messages(self, backend: Backend) -> None:
        for i in range(3):
            backend.queue.enqueue(f"job-{i}".encode())
        leased = backend.queue.dequeue("worker-1", self.short_ttl)
        assert leased is not None
        backend.queue.flush()
        assert backend.queue.size() == 0
        assert backend.queue.peek() == []
        assert backend.queue.leases() == []
        assert backend.queue.extend(leased.lease, 30.0) is False
        backend.queue.release(leased.lease)
        self.expire()
        assert backend.queue.recover() == 0
        assert backend.queue.dequeue("worker-1", 30.0) is None
        backend.queue.flush()  # flushing an empty queue is fine

    # -- isolation ---------------------------------------------------------------------------

    def test_queues_of_different_instances_are_isolated(
        self, backend: Backend, connect: Connect
    ) -> None:
        stranger = connect(f"conformance-{uuid.uuid4().hex[:12]}")
        backend.queue.enqueue(b"mine")
        stranger.queue.enqueue(b"theirs")
        assert backend.queue.peek() == [b"mine"]
        assert stranger.queue.dequeue("worker-1", 30.0).data == b"theirs"  # type: ignore[union-attr]
        stranger.queue.flush()
        assert backend.queue.size() == 1
        assert stranger.queue.size() == 0

    # -- model -------------------------------------------------------------------------------

    def test_queue_matches_a_reference_model(self, backend: Backend) -> None:
        """Random enqueue/dequeue/ack/release/extend sequences against a plain-Python model."""
        pytest.importorskip("hypothesis", reason="needs huey-core[testing]")
        from hypothesis import stateful
        from hypothesis import strategies as st

        queue = backend.queue
        ranked = queue.priority

        class Message:
            def __init__(self, data: bytes, priority: int, seq: int) -> None:
                self.data, self.priority, self.seq = data, priority, seq
                self.deliveries = 0
                self.released = False  # where a released message re-enters the line is open

        class QueueModel(stateful.RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                queue.flush()
                self.seq = 0
                self.ready: dict[bytes, Message] = {}
                self.held: dict[str, Message] = {}
                self.spent: list[str] = []

            @stateful.rule(priority=st.integers(-2, 2))
            def enqueue(self, priority: int) -> None:
                self.seq += 1
                message = Message(f"m{self.seq}".encode(), priority if ranked else 0, self.seq)
                queue.enqueue(message.data, priority=priority)
                self.ready[message.data] = message

            @stateful.rule()
            def dequeue(self) -> None:
                delivery = queue.dequeue("model", 60.0)
                if not self.ready:
                    assert delivery is None
                    return
                assert delivery is not None, "dequeue returned None with messages ready"
                message = self.ready.pop(delivery.data, None)
                assert message is not None, f"{delivery.data!r} was not ready"
                _check_order(message, list(self.ready.values()))
                message.deliveries += 1
                assert delivery.deliveries == message.deliveries
                assert delivery.lease not in self.held
                self.held[delivery.lease] = message

            @stateful.precondition(lambda self: bool(self.held))
            @stateful.rule(data=st.data())
            def ack(self, data: st.DataObject) -> None:
                lease = data.draw(st.sampled_from(sorted(self.held)))
                queue.ack(lease)
                del self.held[lease]
                self.spent.append(lease)

            @stateful.precondition(lambda self: bool(self.held))
            @stateful.rule(data=st.data())
            def release(self, data: st.DataObject) -> None:
                lease = data.draw(st.sampled_from(sorted(self.held)))
                queue.release(lease)
                message = self.held.pop(lease)
                message.released = True
                self.ready[message.data] = message
                self.spent.append(lease)

            @stateful.rule(data=st.data())
            def extend(self, data: st.DataObject) -> None:
                leases = sorted(self.held) + self.spent[-3:]
                if not leases:
                    return
                lease = data.draw(st.sampled_from(leases))
                assert queue.extend(lease, 60.0) is (lease in self.held)

            @stateful.precondition(lambda self: bool(self.spent))
            @stateful.rule(data=st.data())
            def spent_lease_is_inert(self, data: st.DataObject) -> None:
                lease = data.draw(st.sampled_from(self.spent[-5:]))
                queue.ack(lease)
                queue.release(lease)

            @stateful.invariant()
            def counts_agree(self) -> None:
                assert queue.size() == len(self.ready)
                assert sorted(queue.peek(1000)) == sorted(self.ready)
                _check_leases(queue, self.held)

        self.run_model(QueueModel)
