"""The blackhole backend cannot run the conformance suite (it keeps nothing by design); these
tests check what it promises instead: huey's BlackHoleStorage semantics."""

from __future__ import annotations

import threading

import pytest

from huey_core.plugins import create_backend
from huey_memory.blackhole import BlackHoleBackend


def test_registered_by_name_and_by_url_scheme() -> None:
    assert isinstance(create_backend("void", "blackhole"), BlackHoleBackend)
    assert isinstance(create_backend("void", url="blackhole://"), BlackHoleBackend)


def test_nothing_written_can_be_read_back() -> None:
    backend = BlackHoleBackend("void")
    backend.queue.enqueue(b"m", priority=5)
    backend.schedule.add(b"s", 0.0)
    backend.store.put("k", b"v")
    assert backend.queue.dequeue("w", 30.0, wait=0.0) is None
    assert backend.queue.size() == backend.schedule.size() == backend.store.size() == 0
    assert backend.schedule.move_due(1e12) == 0 and backend.schedule.pop_due(1e12) == []
    assert backend.store.peek("k") is None and backend.store.pop("k") is None
    assert backend.store.exists("k") is False


def test_locks_are_always_free_and_counters_never_accumulate() -> None:
    store = BlackHoleBackend("void").store
    assert store.put_if_empty("lock", b"1") and store.put_if_empty("lock", b"1")
    assert store.incr("n", 3) == 3 and store.incr("n", 3) == 3


def test_a_listener_gets_no_event_and_stops_when_closed() -> None:
    events = BlackHoleBackend("void").events
    sub = events.listen()
    events.emit(b'{"status": "enqueued"}')
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(sub))
    reader.start()
    sub.close()
    reader.join(5)
    assert not reader.is_alive() and got == []


def test_options_are_refused() -> None:
    with pytest.raises(TypeError, match="takes no options"):
        BlackHoleBackend("void", anything=1)
