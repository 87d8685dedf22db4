"""Fixtures for the core API tests: a Huey on the memory backend and a way to drain it.

The consumer is not under test here: `drain()` plays its part (dequeue with a lease, process,
ack), so every test runs in one thread and needs no timing.
"""

from __future__ import annotations

import logging
import time
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


@pytest.fixture
def kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process on India's clock (UTC+5:30) for one test: a local-for-UTC mix-up shows
    even where CI runs in UTC. (A POSIX zone string: no time-zone database needed.)"""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    assert time.localtime().tm_gmtoff == 5 * 3600 + 1800
    yield
    monkeypatch.undo()
    time.tzset()
