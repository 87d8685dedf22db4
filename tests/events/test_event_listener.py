"""huey_core.events.EventListener, what the dashboard and the metrics exporters stand on: it
hands over every event, skips garbage, and carries on after the backend restarts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from huey_core import Huey
from huey_core.events import EventListener
from huey_core.testing.apps import wait_for
from huey_redis.testing import RedisServer, free_ports, require_binaries


def listen(huey: Huey) -> tuple[EventListener, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    listener = EventListener(huey, seen.append)
    listener.RETRY_FIRST = 0.1  # a test need not wait half a second to resubscribe
    listener.start()
    assert listener.ready.wait(10)
    return listener, seen


def test_events_are_handed_over_and_garbage_is_skipped() -> None:
    huey = Huey(f"listen-{uuid.uuid4().hex[:8]}", backend="memory")
    listener, seen = listen(huey)
    try:
        huey.storage.events.emit(b"not json")
        huey.storage.events.emit(b"[1, 2]")  # JSON, but not an event object
        huey.emit("enqueued", None, id="a")
        assert wait_for(lambda: [e.get("id") for e in seen] == ["a"])
    finally:
        listener.stop()
    assert listener.received == 1


def test_a_handler_that_raises_does_not_end_the_stream() -> None:
    huey = Huey(f"listen-{uuid.uuid4().hex[:8]}", backend="memory")
    seen: list[str] = []

    def handle(event: dict[str, Any]) -> None:
        seen.append(event["id"])
        if event["id"] == "bad":
            raise RuntimeError("a bug in the subscriber")

    listener = EventListener(huey, handle)
    listener.start()
    assert listener.ready.wait(10)
    try:
        huey.emit("enqueued", None, id="bad")
        huey.emit("enqueued", None, id="good")
        assert wait_for(lambda: seen == ["bad", "good"])
    finally:
        listener.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    require_binaries()
    server = RedisServer(free_ports(1)[0], tmp_path)
    server.start()
    yield server
    server.stop()


def test_the_listener_resubscribes_after_a_redis_restart(private_redis: RedisServer) -> None:
    huey = Huey("restart", url=private_redis.url)
    listener, seen = listen(huey)
    try:
        huey.emit("enqueued", None, id="before")
        assert wait_for(lambda: [e["id"] for e in seen] == ["before"])
        private_redis.stop()
        time.sleep(0.3)
        private_redis.start()

        def resumed() -> bool:
            huey.emit("enqueued", None, id="after")  # until the new subscription sees one
            huey.flush_events(2)
            return any(e["id"] == "after" for e in seen)

        assert wait_for(resumed, 30, 0.3)
    finally:
        listener.stop()
        huey.storage.close()
