"""The event publisher: events go out from a thread of their own, in batches, never blocking a
task; a full queue drops events (counted, with a warning) instead of growing without bound."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from huey_core.events import EventPublisher


class GatedEmitter:
    """Records each batch; the first one waits until the test opens the gate."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def emit_many(self, events: list[bytes]) -> None:
        self.waiting.set()
        self.gate.wait(10)
        self.batches.append(events)


def _event(i: int) -> dict[str, Any]:
    return {"status": "finished", "id": str(i)}


def test_a_backlog_goes_out_in_full_batches_without_lingering() -> None:
    """Lingering gathers a trickle into one write; a backlog of full batches goes out at once
    (else a busy consumer's events fall behind and are dropped)."""
    publisher = EventPublisher()
    publisher.LINGER = 5.0  # type: ignore[misc] - a linger per batch would miss the flush below
    emitter = GatedEmitter()
    publisher.submit(emitter, _event(-1))  # the thread takes this one and waits at the gate
    assert emitter.waiting.wait(5)
    for i in range(3 * publisher.MAX_BATCH):
        assert publisher.submit(emitter, _event(i))
    emitter.gate.set()
    assert publisher.flush(timeout=3.0), f"{publisher.pending} events still pending"
    assert [len(b) for b in emitter.batches] == [1] + [publisher.MAX_BATCH] * 3
    sent = [e for batch in emitter.batches for e in batch]
    assert [e for e in sent if b'"id":"-1"' not in e] == [
        f'{{"status":"finished","id":"{i}"}}'.encode() for i in range(3 * publisher.MAX_BATCH)
    ]  # in order


def test_a_full_queue_drops_events_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    publisher = EventPublisher(max_pending=10)
    emitter = GatedEmitter()
    publisher.submit(emitter, _event(-1))
    assert emitter.waiting.wait(5)
    with caplog.at_level(logging.WARNING, logger="huey"):
        accepted = [publisher.submit(emitter, _event(i)) for i in range(15)]
    assert accepted == [True] * 10 + [False] * 5  # -1 is in the thread's hands, not queued
    assert publisher.dropped == 5
    warnings = [r.getMessage() for r in caplog.records if "event queue full" in r.getMessage()]
    assert warnings == ["event queue full (10 pending): dropped 1 event(s) so far; the event "
                        "backend is slower than the task rate or unreachable"]  # fmt: skip
    emitter.gate.set()
    assert publisher.flush(timeout=3.0)
    assert sum(len(b) for b in emitter.batches) == 11


def test_a_batch_larger_than_the_room_left_waits_for_room_instead_of_dropping() -> None:
    """A bulk enqueue of more tasks than max_pending: every `enqueued` event goes out, in order."""
    publisher = EventPublisher(max_pending=100)
    emitter = GatedEmitter()
    events = [_event(i) for i in range(1000)]
    opener = threading.Timer(0.2, emitter.gate.set)  # the thread is stuck on its first batch
    opener.start()
    assert publisher.submit_many(emitter, events, wait=10.0) == 1000
    assert publisher.dropped == 0
    assert publisher.flush(timeout=5.0)
    sent = [e for batch in emitter.batches for e in batch]
    assert sent == [f'{{"status":"finished","id":"{i}"}}'.encode() for i in range(1000)]


def test_without_a_wait_a_batch_keeps_what_fits_and_drops_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = EventPublisher(max_pending=100)
    emitter = GatedEmitter()
    with caplog.at_level(logging.WARNING, logger="huey"):
        assert publisher.submit_many(emitter, [_event(i) for i in range(250)]) == 100
    assert publisher.dropped == 150
    assert any("dropped 150 event(s)" in r.getMessage() for r in caplog.records)
    emitter.gate.set()
    assert publisher.flush(timeout=5.0)
    assert [e for batch in emitter.batches for e in batch][-1] == b'{"status":"finished","id":"99"}'
