"""Fixtures for the in-process consumer tests: a fresh memory-backed Huey, and the consumers a
test started, stopped at the end whatever happened."""

from __future__ import annotations

import uuid

import pytest

from huey_core import Huey
from huey_core.consumer import Consumer


@pytest.fixture
def huey() -> Huey:
    return Huey(f"consumer-{uuid.uuid4().hex[:8]}", backend="memory")


@pytest.fixture
def consumers():
    """Consumers to stop at the end of the test, whatever happened."""
    started: list[Consumer] = []
    yield started
    for consumer in started:
        if not consumer.stopped:
            consumer.stop(graceful=False)
