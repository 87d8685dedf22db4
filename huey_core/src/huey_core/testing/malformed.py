"""Conformance tests for rows something other than huey wrote: none of them may stop a queue.

A backend's storage can be written by another program (a producer in another language, an
operator, an old release). The protocols (see "Malformed rows" in huey_core.protocols) ask that
such a row never fails every dequeue or every move_due: it is handed out as is where it can be,
and set aside as a dead letter, with its reason and a `dead-lettered` event, where it cannot.

Which malformed rows a backend can hold at all depends on how it stores them, so the backend
says how to write each kind: override the `malformed_rows` fixture to return
`{kind: plant}`, where `plant(backend) -> bytes` writes one such row for `backend` and returns
the payload the test should then find (in the dead letter, or in the delivery). Kinds a backend
leaves out are skipped, with the reason:

    queue       a ready message the backend cannot hand out (a payload or delivery count of the
                wrong type); dequeue sets it aside, and it is a dead letter by the time the
                next move_due() returns
    schedule    a due entry move_due cannot move (a priority that is not an integer, an entry of
                the wrong shape); move_due sets it aside as a dead letter
    text        a ready message stored as text instead of bytes; handed out as its UTF-8 bytes
    deliveries  a ready message whose delivery count is at the top of the 32-bit range
    deadline    a leased message with no deadline; recover() takes it back
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import pytest

from huey_core import keys
from huey_core.protocols import Backend
from huey_core.testing.base import ConformanceBase, drain
from huey_core.testing.events import collect

__all__ = ["MalformedRowsConformance", "Plant"]

Plant = Callable[[Backend], bytes]
TOP = 2**31 - 1


def _plant(rows: dict[str, Plant], kind: str) -> Plant:
    if kind not in rows:
        pytest.skip(f"the backend writes no {kind!r} malformed row (see `malformed_rows`)")
    return rows[kind]


def _dead_letters(backend: Backend) -> list[dict[str, object]]:
    letters = [json.loads(raw) for raw in backend.store.items(keys.DEAD_LETTER).values()]
    for letter in letters:
        assert isinstance(letter["reason"], str) and letter["reason"], letter
        assert str(letter["id"]) and isinstance(letter["time"], (int, float)), letter
        letter["payload"] = base64.b64decode(str(letter["payload"]))
    return letters


class MalformedRowsConformance(ConformanceBase):
    """A malformed row is handed out or set aside; the messages around it flow."""

    @pytest.fixture
    def malformed_rows(self) -> dict[str, Plant]:
        """Override me: {kind: plant(backend) -> payload}; see the module docstring."""
        return {}

    def test_a_malformed_queue_row_is_dead_lettered_and_the_rest_flows(
        self, backend: Backend, malformed_rows: dict[str, Plant]
    ) -> None:
        plant = _plant(malformed_rows, "queue")
        subscription = backend.events.listen()
        backend.queue.enqueue(b"before")
        payload = plant(backend)
        backend.queue.enqueue(b"after")
        assert backend.queue.size() >= 2 and len(backend.queue.peek()) >= 2  # readable
        got = drain(backend.queue)
        assert [d.data for d in got] == [b"before", b"after"]
        for delivery in got:
            backend.queue.ack(delivery.lease)
        assert backend.queue.size() == 0 and backend.queue.leases() == []
        backend.schedule.move_due(time.time())  # the latest point it may become a dead letter
        [letter] = _dead_letters(backend)
        assert letter["payload"] == payload
        events = [json.loads(e) for e in collect(subscription, 1)]
        assert [e["status"] for e in events] == ["dead-lettered"]
        assert events[0]["dead_letter_id"] == letter["id"] and events[0]["reason"]

    def test_a_malformed_schedule_row_is_dead_lettered_and_the_rest_moves(
        self, backend: Backend, malformed_rows: dict[str, Plant]
    ) -> None:
        plant = _plant(malformed_rows, "schedule")
        now = time.time()
        backend.schedule.add(b"early", now - 20)
        payload = plant(backend)  # due: scheduled in the past
        backend.schedule.add(b"late", now - 5)
        assert len(backend.schedule.peek()) == 3  # readable before it moves
        backend.schedule.move_due(now)
        assert backend.schedule.move_due(now) == 0  # nothing left that fails the next call
        assert backend.schedule.size() == 0
        assert backend.queue.peek() == [b"early", b"late"]
        [letter] = _dead_letters(backend)
        assert letter["payload"] == payload

    def test_a_text_payload_is_handed_out_as_its_utf8_bytes(
        self, backend: Backend, malformed_rows: dict[str, Plant]
    ) -> None:
        payload = _plant(malformed_rows, "text")(backend)
        assert backend.queue.peek() == [payload]
        delivery = backend.queue.dequeue("worker-1", 30.0)
        assert delivery is not None and delivery.data == payload
        assert _dead_letters(backend) == []

    def test_a_delivery_count_at_the_top_of_its_range_stops_there(
        self, backend: Backend, malformed_rows: dict[str, Plant]
    ) -> None:
        payload = _plant(malformed_rows, "deliveries")(backend)
        for _ in range(2):  # claimed twice: the count must neither overflow nor fail the claim
            delivery = backend.queue.dequeue("worker-1", 30.0)
            assert delivery is not None and delivery.data == payload
            assert delivery.deliveries == TOP
            backend.queue.release(delivery.lease)

    def test_a_lease_without_a_deadline_is_listed_and_recovered(
        self, backend: Backend, malformed_rows: dict[str, Plant]
    ) -> None:
        payload = _plant(malformed_rows, "deadline")(backend)
        [info] = backend.queue.leases()
        assert info.deadline is None and info.data == payload
        assert backend.queue.recover() == 1
        delivery = backend.queue.dequeue("worker-1", 30.0)
        assert delivery is not None and delivery.data == payload
