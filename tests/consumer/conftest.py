"""Fixtures for the in-process consumer tests: a fresh memory-backed Huey, and the consumers a
test started, stopped at the end whatever happened."""

from __future__ import annotations

import signal
import threading
import uuid
from typing import Any

import pytest

from huey_core import Huey
from huey_core.consumer import Consumer


@pytest.fixture(autouse=True)
def default_signal_handlers():
    """Python's own SIGTERM and SIGINT handlers for each test, whatever the runner installed (a
    background job ignores SIGINT; mutmut's fork server exits 0 on SIGTERM): the signal tests
    then see only the handlers the consumer installs, and a signal it failed to handle fails
    the test instead of ending the run quietly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    previous = {signum: signal.signal(signum, handler) for signum, handler in wanted.items()}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


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


@pytest.fixture
def start(huey: Huey, consumers: list[Consumer]):
    """start(**options): a started Consumer of `huey` (scheduler every 0.05 s), stopped at the end."""

    def start(**options: Any) -> Consumer:
        consumer = Consumer(huey, scheduler_interval=0.05, **options)
        consumers.append(consumer)
        consumer.start()
        return consumer

    return start
