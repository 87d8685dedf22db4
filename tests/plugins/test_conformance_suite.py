"""The conformance suite's own promises: abstract fixture, explicit skips, no silent overrides.

It also proves two things about the suite itself: a backend that writes only the required
methods on top of the base classes passes all of it (so the derived defaults are right), and
deliberately broken backends fail it, every time (so the suite catches what it claims to).
"""

from __future__ import annotations

import ast
import bisect
import collections
import inspect
import itertools
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from huey_core.protocols import (
    EVENT_RETENTION,
    BaseBackend,
    BaseDataStore,
    BaseEventEmitter,
    BaseQueue,
    BaseSchedule,
    Delivery,
    LeaseInfo,
)
from huey_core.testing import (
    BackendConformance,
    BackendFactory,
    QueueConformance,
    require_port,
    require_server,
)
from huey_lite.backend import LiteBackend, LiteStore


def test_redefining_a_standard_test_fails_at_class_creation() -> None:
    with pytest.raises(TypeError, match="test_ack_is_idempotent redefines a standard"):

        class TestWeakened(BackendConformance):
            def test_ack_is_idempotent(self) -> None:
                pass


def test_override_with_a_reason_is_allowed() -> None:
    class TestDeviates(QueueConformance):
        overrides = {"test_ack_is_idempotent": "acks are counted by this broker"}

        def test_ack_is_idempotent(self) -> None:
            pass

    assert TestDeviates.overrides


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"test_ack_is_idempotent": ""}, "needs a reason"),
        ({"test_no_such_test": "why"}, "not a standard test"),
        (["test_ack_is_idempotent"], "must be a dict"),
    ],
)
def test_bad_overrides_are_refused(overrides: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        type("TestBadOverrides", (QueueConformance,), {"overrides": overrides})


def test_overriding_through_an_intermediate_class_is_caught() -> None:
    class Helpers(QueueConformance):
        overrides = {"test_fifo_within_one_priority": "helpers relax it"}

        def test_fifo_within_one_priority(self) -> None:
            pass

    with pytest.raises(TypeError, match="test_peek_shows_dequeue_order"):

        class TestMine(Helpers):
            def test_peek_shows_dequeue_order_without_claiming(self) -> None:
                pass


SUITE_FILES = {
    "test_imports_only.py": """
        from huey_core.testing import (BackendConformance, DataStoreConformance,
            EventEmitterConformance, QueueConformance, ScheduleConformance)
    """,
    "test_no_factory.py": """
        from huey_core.testing import QueueConformance

        class TestNoFactory(QueueConformance):
            pass
    """,
    "test_fifo_polling.py": """
        import pytest
        from huey_core.testing import QueueConformance
        from huey_memory.backend import MemoryBackend, MemoryQueue

        class FifoPollingQueue(MemoryQueue):
            blocking = False  # dequeue() returns at once
            priority = False  # plain FIFO

            def enqueue(self, data, priority=0):
                super().enqueue(data, 0)

            def dequeue(self, owner, lease_timeout, wait=0.0):
                return super().dequeue(owner, lease_timeout, 0.0)

        class TestFifoPolling(QueueConformance):
            @pytest.fixture
            def backend_factory(self):
                shared = {}

                def make(name):
                    if name not in shared:
                        shared[name] = MemoryBackend(name)
                        shared[name].queue = FifoPollingQueue(shared[name].queue._cond)
                    return shared[name]

                yield make
    """,
}


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("adopters")
    for name, source in SUITE_FILES.items():
        (folder / name).write_text(textwrap.dedent(source))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(folder),
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-k",
            "not model and not wait_expires and not concurrent",
        ],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
    )
    return run.stdout + run.stderr


def test_importing_the_suite_collects_nothing(suite_run: str) -> None:
    assert "test_imports_only.py" not in suite_run


def test_abstract_fixture_errors_until_overridden(suite_run: str) -> None:
    assert "ERROR" in suite_run and "TestNoFactory" in suite_run
    assert "must override the `backend_factory` fixture" in suite_run


def test_capability_flags_turn_tests_into_explicit_skips(suite_run: str) -> None:
    assert "queue.blocking is False" in suite_run
    assert "queue.priority is False" in suite_run
    assert "FAILED" not in suite_run.replace("TestNoFactory", ""), suite_run


def test_require_server_returns_what_the_check_returns() -> None:
    assert require_server("thing", lambda: "client") == "client"


def test_require_server_skips_when_down_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)

    def down() -> None:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(pytest.skip.Exception, match="redis at 127.0.0.1:1 is not available"):
        require_server("redis at 127.0.0.1:1", down)
    with pytest.raises(pytest.skip.Exception, match="returned False"):
        require_server("postgres", lambda: False)


def test_require_server_fails_when_down_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")

    def down() -> None:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_server("redis at 127.0.0.1:1", down)


def test_require_port_fails_in_ci_and_skips_elsewhere_when_nothing_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Redis at 127.0.0.1:1 is not available"):
        require_port("Redis", 1)  # nothing listens on port 1
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="Redis at 127.0.0.1:1"):
        require_port("Redis", 1)


def test_suite_module_layout_is_importable_piece_by_piece() -> None:
    import huey_core.testing as testing

    for name in testing.__all__:
        assert hasattr(testing, name), name
    assert Path(testing.__file__).parent.name == "testing"


# -- a minimal backend: only the required methods, on top of the base classes ------------------


class DictQueue(BaseQueue):
    """Plain FIFO (`priority` is accepted and ignored); every call under the backend's lock."""

    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self.ready: list[list[Any]] = []  # [arrival, data, deliveries], in arrival order
        self.leased: dict[str, tuple[str, float, list[Any]]] = {}  # lease: owner, deadline, msg
        self.arrivals = itertools.count()

    def enqueue(self, data: bytes, priority: int = 0) -> None:
        with self.lock:
            self.ready.append([next(self.arrivals), data, 0])

    def dequeue(self, owner: str, lease_timeout: float, wait: float = 0.0) -> Delivery | None:
        with self.lock:
            if not self.ready:
                return None
            message = self.ready.pop(0)
            message[2] += 1
            lease = uuid.uuid4().hex
            self.leased[lease] = (owner, time.time() + lease_timeout, message)
            return Delivery(message[1], lease, message[2])

    def ack(self, lease: str) -> None:
        with self.lock:
            self.leased.pop(lease, None)

    def release(self, lease: str) -> None:
        with self.lock:
            if lease in self.leased:
                bisect.insort(self.ready, self.leased.pop(lease)[2])

    def extend(self, lease: str, lease_timeout: float) -> bool:
        with self.lock:
            if lease not in self.leased:
                return False
            owner, _, message = self.leased[lease]
            self.leased[lease] = (owner, time.time() + lease_timeout, message)
            return True

    def recover(self) -> int:
        with self.lock:
            now = time.time()
            expired = [lease for lease, (_, deadline, _) in self.leased.items() if deadline < now]
            for lease in expired:
                bisect.insort(self.ready, self.leased.pop(lease)[2])
            return len(expired)

    def peek(self, n: int = 100) -> list[bytes]:
        with self.lock:
            return [message[1] for message in self.ready[:n]]

    def leases(self) -> list[LeaseInfo]:
        with self.lock:
            return [
                LeaseInfo(lease, owner, deadline, message[2], message[1])
                for lease, (owner, deadline, message) in self.leased.items()
            ]

    def flush(self) -> None:
        with self.lock:
            self.ready.clear()
            self.leased.clear()


class DictSchedule(BaseSchedule):
    def __init__(self, queue: DictQueue) -> None:
        self.queue = queue
        self.lock = queue.lock  # the queue's lock: a move is one step for every observer
        self.entries: list[tuple[float, int, bytes]] = []  # sorted (timestamp, arrival, data)

    def add(self, data: bytes, timestamp: float, priority: int = 0) -> None:
        with self.lock:
            bisect.insort(self.entries, (timestamp, next(self.queue.arrivals), data))

    def move_due(self, now: float, limit: int = 1000) -> int:
        with self.lock:
            due = self.pop_due(now, limit)
            for data in due:
                self.queue.enqueue(data)
            return len(due)

    def pop_due(self, now: float, limit: int = 1000) -> list[bytes]:
        with self.lock:
            due = [entry for entry in self.entries[:limit] if entry[0] <= now]
            del self.entries[: len(due)]
            return [data for _, _, data in due]

    def peek(self, n: int = 100) -> list[tuple[float, bytes]]:
        with self.lock:
            return [(timestamp, data) for timestamp, _, data in self.entries[:n]]

    def flush(self) -> None:
        with self.lock:
            self.entries.clear()


class DictStore(BaseDataStore):
    """Expired entries stay in the dict until overwritten or popped; reads skip them."""

    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self.data: dict[str, tuple[bytes, float | None]] = {}  # key: value, expires

    def live(self, key: str) -> bytes | None:
        value, expires = self.data.get(key, (None, None))
        return None if expires is not None and expires <= time.time() else value

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with self.lock:
            self.data[key] = (value, None if ttl is None else time.time() + ttl)

    def peek(self, key: str) -> bytes | None:
        with self.lock:
            return self.live(key)

    def pop(self, key: str) -> bytes | None:
        with self.lock:
            value = self.live(key)
            self.data.pop(key, None)
            return value

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        with self.lock:
            if self.live(key) is not None:
                return False
            self.put(key, value, ttl)
            return True

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with self.lock:
            current = self.live(key)
            if current is None:
                self.put(key, str(amount).encode(), ttl)
                return amount
            total = int(current) + amount
            self.data[key] = (str(total).encode(), self.data[key][1])
            return total

    def items(self, prefix: str = "") -> dict[str, bytes]:
        with self.lock:
            found = {key: self.live(key) for key in self.data if key.startswith(prefix)}
            return {key: value for key, value in found.items() if value is not None}


class DictEvents(BaseEventEmitter):
    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self.stored: collections.deque[tuple[int, float, bytes]] = collections.deque()
        self.ids = itertools.count(1)

    def emit(self, event: bytes) -> None:
        with self.lock:
            now = time.time()
            self.stored.append((next(self.ids), now, event))
            while self.stored[0][1] < now - EVENT_RETENTION:
                self.stored.popleft()

    def read_after(self, cursor: object | None) -> tuple[object, list[bytes]]:
        with self.lock:
            if cursor is None:
                return (self.stored[-1][0] if self.stored else 0), []
            new = [(i, event) for i, _, event in self.stored if i > cursor]  # type: ignore[operator]
            return (new[-1][0] if new else cursor), [event for _, event in new]


class DictBackend(BaseBackend):
    process_safe = False  # the dicts live in this process

    def __init__(self, name: str, url: str | None = None) -> None:
        self.name = name
        self.url = url
        lock = threading.RLock()
        self.queue = DictQueue(lock)
        self.schedule = DictSchedule(self.queue)
        self.store = DictStore(lock)
        self.events = DictEvents(lock)


def _shared(make: Callable[[str], Any]) -> Iterator[BackendFactory]:
    backends: dict[str, Any] = {}  # same name, same in-process backend
    yield lambda name: backends.setdefault(name, make(name))


class TestMinimalBackend(BackendConformance):
    """Required methods only: the derived ones come from the base classes and must pass too."""

    @pytest.fixture
    def backend_factory(self) -> Iterator[BackendFactory]:
        yield from _shared(DictBackend)


def _raises_not_implemented(function: Any) -> bool:
    """True when `function` does nothing but raise NotImplementedError (after a docstring)."""
    (tree,) = ast.parse(textwrap.dedent(inspect.getsource(function))).body
    body = [n for n in tree.body if not isinstance(n, ast.Expr)]  # type: ignore[attr-defined]
    return len(body) == 1 and isinstance(body[0], ast.Raise)


@pytest.mark.parametrize(
    "written,base",
    [
        (DictQueue, BaseQueue),
        (DictSchedule, BaseSchedule),
        (DictStore, BaseDataStore),
        (DictEvents, BaseEventEmitter),
    ],
)
def test_the_minimal_backend_writes_only_required_methods(written: type, base: type) -> None:
    required = {
        name
        for name, member in vars(base).items()
        if inspect.isfunction(member) and _raises_not_implemented(member)
    }
    mine = {name for name, member in vars(written).items() if inspect.isfunction(member)}
    assert mine - {"__init__", "live"} == required


# -- deliberately broken backends: the suite must catch each one ------------------------------


class _Suite(BackendConformance):
    """The suite's tests, called directly with a backend of our choosing."""


def _run_suite_test(name: str, factory: BackendFactory) -> None:
    """Run one standard test of the suite against `factory`'s backends; raise what it raises."""
    opened: list[Any] = []
    instance = f"broken-{uuid.uuid4().hex[:12]}"

    def connect(name: str | None = None) -> Any:
        opened.append(factory(name or instance))
        return opened[-1]

    test = getattr(_Suite(), name)
    arguments = {"backend": connect(), "connect": connect, "backend_factory": factory}
    arguments["other"] = connect(instance)
    wanted = inspect.signature(test).parameters
    try:
        test(**{key: value for key, value in arguments.items() if key in wanted})
    finally:
        for backend in opened:
            backend.close()


class ReadThenWriteStore(LiteStore):
    """put_if_empty as two statements: between the read and the write, others read too.

    Built on the SQLite example rather than the dict backend above: a real store does I/O
    between the two steps, where other threads and processes run; a dict under the GIL hardly
    ever switches threads there, so it would not model the bug.
    """

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        if self.peek(key) is not None:
            return False
        self.put(key, value, ttl)
        return True


def _read_then_write_lite(path: Path) -> BackendFactory:
    def make(name: str) -> LiteBackend:
        backend = LiteBackend(name, f"lite:///{path}")
        backend.store = ReadThenWriteStore(name, backend._conns)
        return backend

    return make


@pytest.mark.parametrize(
    "test_name",
    [
        "test_concurrent_put_if_empty_has_exactly_one_winner",
        "test_concurrent_put_if_empty_across_processes_has_exactly_one_winner",
        "test_concurrent_takeover_of_an_expired_key_has_exactly_one_winner",
    ],
    ids=["threads", "processes", "takeover"],
)
def test_a_read_then_write_put_if_empty_fails_the_race_tests_every_time(
    test_name: str, tmp_path: Path
) -> None:
    factory = _read_then_write_lite(tmp_path / "huey.db")
    for _ in range(10):  # every run, not most runs
        with pytest.raises(AssertionError, match="won one key|took it over"):
            _run_suite_test(test_name, factory)


class CountsExpiredStore(DictStore):
    """Leaves expired entries in place, as DictStore does, but counts them in size()."""

    def size(self) -> int:
        with self.lock:
            return len(self.data)


class TakesLiveLeasesQueue(DictQueue):
    """recover() with a "grace period": it takes leases with less than a second left."""

    def recover(self) -> int:
        with self.lock:
            soon = time.time() + 1.0
            taken = [lease for lease, (_, deadline, _) in self.leased.items() if deadline < soon]
            for lease in taken:
                bisect.insort(self.ready, self.leased.pop(lease)[2])
            return len(taken)


def _with_store(store: type[DictStore]) -> Callable[[str], DictBackend]:
    def make(name: str) -> DictBackend:
        backend = DictBackend(name)
        backend.store = store(backend.queue.lock)
        return backend

    return make


def _with_queue(queue: type[DictQueue]) -> Callable[[str], DictBackend]:
    def make(name: str) -> DictBackend:
        backend = DictBackend(name)
        backend.queue = queue(backend.queue.lock)
        backend.schedule = DictSchedule(backend.queue)
        return backend

    return make


@pytest.mark.parametrize(
    "make,test_name,message",
    [
        (
            _with_store(CountsExpiredStore),
            "test_size_and_items_skip_expired_keys_nothing_has_read",
            "size\\(\\) before pop/delete counted expired keys",
        ),
        (
            _with_queue(TakesLiveLeasesQueue),
            "test_recover_leaves_a_live_lease_alone_until_its_deadline",
            "recover\\(\\) took a lease that had 0.5 s left",
        ),
    ],
    ids=["size-counts-expired-keys", "recover-takes-live-leases"],
)
def test_the_suite_catches_a_broken_backend(
    make: Callable[[str], DictBackend], test_name: str, message: str
) -> None:
    factory = next(_shared(make))
    with pytest.raises(AssertionError, match=message):
        _run_suite_test(test_name, factory)
    _run_suite_test(test_name, next(_shared(DictBackend)))  # and the sound backend passes it
