"""Fixtures for the core API tests: a Huey on the memory backend and a way to drain it.

The consumer is not under test here: `drain()` plays its part (dequeue with a lease, process,
ack), so every test runs in one thread and needs no timing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from huey_core import Huey
from tests.core.helpers import cleanup, make_huey


@pytest.fixture(autouse=True)
def _quiet_task_logs() -> Iterator[None]:
    # Failing tasks are part of many tests; their tracebacks are noise in the test output.
    logger = logging.getLogger("huey")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture(autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    cleanup()


@pytest.fixture
def huey() -> Huey:
    return make_huey()
