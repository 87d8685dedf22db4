"""The backend conformance suite: every protocol docstring turned into tests.

A backend adopts the whole suite in about ten lines (it needs pytest, `huey-core[testing]`):

    import pytest
    from huey_core.testing import BackendConformance
    from my_backend import MyBackend

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend_factory(self):
            def make(name):                     # same name -> same stored data
                return MyBackend(name, "myscheme://localhost")
            yield make

Fixture contract: `backend_factory` returns a callable `factory(name: str) -> Backend`. Calling it
twice with the same name must return backends that see the same stored data, as a second consumer
process connecting to the same server would (an in-process backend may return the very same
object). The suite builds `backend` from it under a unique name per test and flushes and closes
every backend it opened afterwards.

The base classes are not named Test*, so importing them collects nothing. Adopt piece by piece
with QueueConformance, BatchQueueConformance, ScheduleConformance, DataStoreConformance and
EventEmitterConformance.
Capability flags (`queue.blocking`, `queue.priority`, `process_safe`) turn the tests that need them
into explicit skips, and so does a `malformed_rows` fixture that names no rows of a kind
(MalformedRowsConformance: rows something other than huey wrote). Redefining a standard test
raises TypeError when the class is created unless it is listed with a reason:
`overrides = {"test_name": "why this backend differs"}`.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from typing import Any

try:
    import pytest
except ImportError as exc:  # pragma: no cover - only without the [testing] extra
    raise ImportError(
        'huey_core.testing is a pytest suite; install it with: pip install "huey-core[testing]"'
    ) from exc

from huey_core.protocols import Backend
from huey_core.testing.base import (
    BackendFactory,
    ConformanceBase,
    Connect,
    drain,
    run_rounds,
    run_threads,
)
from huey_core.testing.batch import BatchQueueConformance
from huey_core.testing.events import EventEmitterConformance, collect, take
from huey_core.testing.malformed import MalformedRowsConformance, Plant
from huey_core.testing.queue import QueueConformance
from huey_core.testing.schedule import ScheduleConformance
from huey_core.testing.servers import in_ci, require_port, require_server
from huey_core.testing.store import DataStoreConformance

__all__ = [
    "BackendConformance",
    "BackendFactory",
    "BatchQueueConformance",
    "ConformanceBase",
    "Connect",
    "DataStoreConformance",
    "EventEmitterConformance",
    "MalformedRowsConformance",
    "Plant",
    "QueueConformance",
    "ScheduleConformance",
    "collect",
    "drain",
    "in_ci",
    "require_port",
    "require_server",
    "run_rounds",
    "run_threads",
    "take",
]


def _consume_in_child(factory: BackendFactory, name: str, results: Any) -> None:
    backend = factory(name)  # a fresh connection, as a consumer process on another machine
    got = []
    try:
        while (delivery := backend.queue.dequeue(f"pid-{os.getpid()}", 30.0)) is not None:
            got.append(delivery.data)
            backend.queue.ack(delivery.lease)
    finally:
        results.put(got)
        backend.close()


def _enqueue_after_fork(backend: Backend) -> None:
    backend.after_fork()
    backend.queue.enqueue(b"from the child")
    backend.store.put("child", b"was here")


class BackendConformance(
    QueueConformance,
    BatchQueueConformance,
    ScheduleConformance,
    DataStoreConformance,
    EventEmitterConformance,
    MalformedRowsConformance,
):
    """The whole suite: the four protocols plus what the Backend itself promises."""

    def test_backend_satisfies_protocol(self, backend: Backend) -> None:
        assert isinstance(backend, Backend)
        assert isinstance(backend.name, str) and backend.name

    def test_describe_is_one_line(self, backend: Backend) -> None:
        text = backend.describe()
        assert isinstance(text, str) and text
        assert "\n" not in text

    def test_backend_works_in_a_forked_worker_after_after_fork(self, backend: Backend) -> None:
        if not getattr(backend, "process_safe", True):
            pytest.skip("process_safe is False: forked workers would not share this backend")
        if "fork" not in multiprocessing.get_all_start_methods():
            pytest.skip("this platform cannot fork")
        backend.store.put("parent", b"first")  # make sure the parent holds live connections
        child = multiprocessing.get_context("fork").Process(
            target=_enqueue_after_fork, args=(backend,)
        )
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert backend.queue.dequeue("worker-1", 30.0).data == b"from the child"  # type: ignore[union-attr]
        assert backend.store.peek("child") == b"was here"
        assert backend.store.peek("parent") == b"first"  # the parent's connections still work

    def test_consumer_processes_receive_each_message_exactly_once(
        self, backend: Backend, backend_factory: BackendFactory
    ) -> None:
        if not getattr(backend, "process_safe", True):
            pytest.skip("process_safe is False: separate processes would not share this backend")
        if "fork" not in multiprocessing.get_all_start_methods():
            pytest.skip("this platform cannot fork")
        sent = {f"job-{i}".encode() for i in range(150)}
        for data in sorted(sent):
            backend.queue.enqueue(data)
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        children = [
            context.Process(target=_consume_in_child, args=(backend_factory, backend.name, results))
            for _ in range(3)
        ]
        for child in children:
            child.start()
        received = [data for _ in children for data in results.get(timeout=60)]
        for child in children:
            child.join(30)
            assert child.exitcode == 0
        assert len(received) == len(sent), "a message reached two processes or none"
        assert set(received) == sent
        assert backend.queue.size() == 0 and backend.queue.leases() == []

    def test_close_after_use(self, backend: Backend, backend_factory: BackendFactory) -> None:
        extra = backend_factory(backend.name)
        extra.queue.enqueue(b"kept")
        if extra is not backend:  # an in-process factory may share one object: do not close it
            extra.close()
        deadline = time.monotonic() + 5
        while backend.queue.size() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert backend.queue.peek() == [b"kept"]  # closing a connection keeps the data

    def test_close_releases_threads(self, backend_factory: BackendFactory) -> None:
        before = threading.active_count()
        extra = backend_factory(f"conformance-{uuid.uuid4().hex[:12]}")
        try:
            subscription = extra.events.listen()
            extra.events.emit(b'{"status": "started"}')
            assert collect(subscription, 1) == [b'{"status": "started"}']
            extra.queue.enqueue(b"job")
            delivery = extra.queue.dequeue("worker-1", 30.0, wait=0.1)
            assert delivery is not None
            extra.queue.ack(delivery.lease)
            assert extra.store.wait("missing", 0.1) is False
        finally:
            extra.queue.flush()
            extra.schedule.flush()
            extra.store.flush()
            extra.close()
        deadline = time.monotonic() + 5
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        leftover = [t.name for t in threading.enumerate()][before:]
        assert threading.active_count() <= before, f"threads left running after close(): {leftover}"
