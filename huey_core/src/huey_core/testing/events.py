"""Conformance tests for the EventEmitter protocol: fan-out, order, and stopping a listener."""

from __future__ import annotations

import json
import threading
import time
import uuid

from huey_core.protocols import (
    EVENT_RETENTION,
    SUBSCRIPTION_CLOSE_WITHIN,
    Backend,
    EventEmitter,
    Subscription,
)
from huey_core.testing.base import ConformanceBase, Connect

__all__ = ["EventEmitterConformance", "collect", "take"]


def collect(subscription: Subscription, count: int, timeout: float = 5.0) -> list[bytes]:
    """Read up to `count` events from `subscription` in a thread; stop after `timeout` seconds.

    The subscription is closed before returning, whatever happened.
    """
    got: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        try:
            for event in subscription:
                got.append(event)
                if len(got) >= count:
                    break
        finally:
            done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    done.wait(timeout)
    subscription.close()
    thread.join(5.0)
    return list(got)


def take(subscription: Subscription, count: int, timeout: float = 5.0) -> list[bytes]:
    """The next `count` events of `subscription`, read by a loop that then breaks; left open.

    Taking again carries on where this loop stopped, since a subscription is an iterator. Fails
    (and closes the subscription, to stop the reader) when they do not all arrive within
    `timeout` seconds.
    """
    got: list[bytes] = []

    def read() -> None:
        for event in subscription:
            got.append(event)
            if len(got) >= count:
                break

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive() or len(got) < count:
        subscription.close()
        reader.join(5.0)
        raise AssertionError(f"{len(got)} of {count} events arrived within {timeout} s")
    return got


def _event(i: int) -> bytes:
    return json.dumps({"status": "enqueued", "id": f"task-{i}", "seq": i}).encode()


class EventEmitterConformance(ConformanceBase):
    """Every statement of the EventEmitter and Subscription docstrings."""

    def test_events_satisfy_protocol(self, backend: Backend) -> None:
        assert isinstance(backend.events, EventEmitter)
        subscription = backend.events.listen()
        try:
            assert isinstance(subscription, Subscription)
            assert iter(subscription) is subscription  # an iterator, not a fresh one per loop
        finally:
            subscription.close()

    def test_emit_without_listeners_does_not_raise(self, backend: Backend) -> None:
        backend.events.emit(_event(0))
        subscription = backend.events.listen()
        subscription.close()
        backend.events.emit(_event(1))  # a closed listener counts as nobody

    def test_listener_gets_events_emitted_after_subscribing_in_order(
        self, backend: Backend
    ) -> None:
        backend.events.emit(b'{"status": "before"}')
        subscription = backend.events.listen()
        sent = [_event(i) for i in range(20)]
        for event in sent:
            backend.events.emit(event)
        assert collect(subscription, len(sent)) == sent

    def test_listener_gets_events_from_another_connection(
        self, backend: Backend, other: Backend
    ) -> None:
        subscription = backend.events.listen()
        sent = [_event(i) for i in range(5)]
        for event in sent:
            other.events.emit(event)
        assert collect(subscription, len(sent)) == sent

    def test_every_listener_gets_every_event(self, backend: Backend, other: Backend) -> None:
        first = backend.events.listen()
        second = other.events.listen()
        sent = [_event(i) for i in range(5)]
        for event in sent:
            backend.events.emit(event)
        assert collect(first, len(sent)) == sent
        assert collect(second, len(sent)) == sent

    def test_event_bytes_survive_unchanged(self, backend: Backend) -> None:
        subscription = backend.events.listen()
        event = json.dumps({"status": "error", "traceback": "line 1\nline 2\t'x' \"y\" ü"}).encode()
        backend.events.emit(event)
        assert collect(subscription, 1) == [event]

    def test_emit_many_keeps_order_and_mixes_with_emit(
        self, backend: Backend, other: Backend
    ) -> None:
        subscription = other.events.listen()
        sent = [_event(i) for i in range(12)]
        backend.events.emit_many(sent[:5])
        backend.events.emit_many([])
        backend.events.emit(sent[5])
        backend.events.emit_many(sent[6:])
        assert collect(subscription, len(sent)) == sent

    def test_a_loop_that_breaks_and_loops_again_carries_on_where_it_stopped(
        self, backend: Backend
    ) -> None:
        subscription = backend.events.listen()
        sent = [_event(i) for i in range(5)]
        for event in sent:
            backend.events.emit(event)
        try:
            assert take(subscription, 2) == sent[:2]
            assert take(subscription, 1) == sent[2:3]
            assert take(subscription, 2) == sent[3:]
        finally:
            subscription.close()

    def test_a_slow_listener_gets_events_emitted_up_to_event_retention_ago(
        self, backend: Backend, other: Backend
    ) -> None:
        """A backend that stores events keeps each readable for EVENT_RETENTION seconds."""
        subscription = backend.events.listen()
        try:
            other.events.emit(_event(0))
            emitted = time.monotonic()
            # Nobody reads for most of the retention time: a polling listener that fell behind.
            time.sleep(max(0.0, emitted + EVENT_RETENTION - 1.0 - time.monotonic()))
            assert take(subscription, 1) == [_event(0)]
            # A burst larger than a "keep the last N" trim would keep, read only afterwards.
            burst = [_event(i) for i in range(1, 12001)]
            for start in range(0, len(burst), 500):
                other.events.emit_many(burst[start : start + 500])
            assert take(subscription, len(burst), timeout=30.0) == burst
        finally:
            subscription.close()

    def test_close_stops_a_blocked_iterator(self, backend: Backend) -> None:
        subscription = backend.events.listen()
        finished = threading.Event()

        def reader() -> None:
            for _ in subscription:
                pass
            finished.set()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        time.sleep(0.2)  # let the reader block waiting for an event
        started = time.monotonic()
        subscription.close()
        assert finished.wait(5.0), "close() did not stop the blocked iterator"
        elapsed = time.monotonic() - started
        assert elapsed <= SUBSCRIPTION_CLOSE_WITHIN, (
            f"the iterator stopped {elapsed:.2f} s after close(); "
            f"SUBSCRIPTION_CLOSE_WITHIN is {SUBSCRIPTION_CLOSE_WITHIN} s"
        )
        thread.join(1.0)

    def test_closed_listener_gets_nothing_more(self, backend: Backend) -> None:
        kept = backend.events.listen()
        dropped = backend.events.listen()
        dropped.close()
        backend.events.emit(_event(1))
        assert collect(kept, 1) == [_event(1)]
        assert list(dropped) == []  # iterating a closed subscription ends at once

    def test_events_of_different_instances_are_isolated(
        self, backend: Backend, connect: Connect
    ) -> None:
        stranger = connect(f"conformance-{uuid.uuid4().hex[:12]}")
        mine = backend.events.listen()
        theirs = stranger.events.listen()
        stranger.events.emit(b'{"status": "theirs"}')
        backend.events.emit(b'{"status": "mine"}')
        # A last event on each side bounds the wait: anything leaked would arrive before it.
        stranger.events.emit(b'{"status": "theirs-end"}')
        backend.events.emit(b'{"status": "mine-end"}')
        assert collect(mine, 2) == [b'{"status": "mine"}', b'{"status": "mine-end"}']
        assert collect(theirs, 2) == [b'{"status": "theirs"}', b'{"status": "theirs-end"}']
