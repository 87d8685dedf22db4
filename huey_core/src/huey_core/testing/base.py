"""Fixtures and guards shared by every conformance mixin.

The only thing an adopter must supply is the `backend_factory` fixture: a callable
`factory(name: str) -> Backend`. Calling it twice with the same name must give backends that see
the same stored data, the way a second consumer process connecting to the same server would (an
in-process backend may return the very same object). Everything else derives from it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from huey_core.protocols import Backend, Delivery, Queue

__all__ = ["BackendFactory", "ConformanceBase", "Connect", "drain", "run_rounds", "run_threads"]

BackendFactory = Callable[[str], Backend]
Connect = Callable[..., Backend]

_SUITE_MODULE = "huey_core.testing"


def _is_suite(klass: type) -> bool:
    return klass.__module__ == _SUITE_MODULE or klass.__module__.startswith(_SUITE_MODULE + ".")


def _check_overrides(cls: type) -> None:
    """Refuse a class that redefines a standard test without saying why in `overrides`.

    A backend that quietly replaces `test_ack_is_idempotent` with a weaker version would still
    report "conformant"; this makes every deviation explicit and reviewable.
    """
    suite_tests: set[str] = set()
    for klass in cls.__mro__:
        if _is_suite(klass):
            suite_tests.update(n for n in vars(klass) if n.startswith("test_"))
    if _is_suite(cls):
        return
    allowed: dict[str, str] = getattr(cls, "overrides", {}) or {}
    problems: list[str] = []
    if not isinstance(allowed, dict):
        problems.append("`overrides` must be a dict {test name: reason}")
        allowed = {}
    for name, reason in allowed.items():
        if name not in suite_tests:
            problems.append(f"`overrides` names {name!r}, which is not a standard test")
        elif not isinstance(reason, str) or not reason.strip():
            problems.append(f"`overrides[{name!r}]` needs a reason (a non-empty string)")
    for name in sorted(suite_tests):
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if not _is_suite(owner) and name not in allowed:
            problems.append(
                f"{owner.__qualname__}.{name} redefines a standard conformance test; remove it "
                f"or list it in `overrides = {{{name!r}: 'why'}}`"
            )
    if problems:
        raise TypeError(f"{cls.__qualname__}: " + "; ".join(problems))


def drain(
    queue: Queue, owner: str = "drain", lease_timeout: float = 60.0, limit: int = 10_000
) -> list[Delivery]:
    """Dequeue every ready message (without acknowledging), in dequeue order.

    Fails instead of looping forever when the queue keeps handing out messages past `limit`
    (a backend that re-delivers leased messages would otherwise hang the suite).
    """
    found: list[Delivery] = []
    while (delivery := queue.dequeue(owner, lease_timeout)) is not None:
        found.append(delivery)
        if len(found) > limit:
            raise AssertionError(f"dequeue returned more than {limit} messages: leased ones again?")
    return found


def run_threads(target: Callable[[int], Any], count: int, timeout: float = 30.0) -> list[Any]:
    """Run target(i) in `count` threads released together by a barrier; return their results.

    Re-raises the first exception from any thread, so a backend error fails the test loudly.
    """
    return run_rounds(lambda _round, i: target(i), count, 1, timeout)[0]


def run_rounds(
    target: Callable[[int, int], Any], count: int, rounds: int, timeout: float = 30.0
) -> list[list[Any]]:
    """Run target(round, i) in `count` threads, `rounds` times; results[round][i].

    The same threads run every round, and a barrier releases all of them at once at the start
    of each round: a race that a single round hits only now and then is hit on almost every
    run. Re-raises the first exception from any thread.
    """
    barrier = threading.Barrier(count)
    results: list[list[Any]] = [[None] * count for _ in range(rounds)]
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait(timeout)
                results[r][i] = target(r, i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread below
            errors.append(exc)
            barrier.abort()  # the others stop waiting for this thread

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise AssertionError(f"threads still running after {timeout} s (deadlock?)")
    first = next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), None)
    if first is not None or errors:
        raise first or errors[0]
    return results


class ConformanceBase:
    """Fixtures every conformance mixin uses. Override `backend_factory`; tune the timings below.

    Timings are small so that the suite runs in seconds; raise them only if the backend's clock
    has a coarser grain (e.g. whole-second expiry), and say so in a comment.
    """

    #: Standard tests this backend deliberately redefines: {"test_name": "reason"}.
    overrides: ClassVar[dict[str, str]] = {}
    #: Lease timeout / ttl used by expiry tests, in seconds. No test asserts that something with
    #: this ttl is still alive (a stalled machine could outlast it), only that it has expired.
    short_ttl: ClassVar[float] = 0.1
    #: Extra time after `short_ttl` before the expiry is asserted (clock and timer grain).
    expiry_slack: ClassVar[float] = 0.25
    #: How quickly a blocked wait must notice a write made by another thread or connection.
    wake_within: ClassVar[float] = 2.0
    #: Examples of random operation sequences each reference-model test runs (hypothesis).
    model_examples: ClassVar[int] = 25

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_overrides(cls)

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        """Override me: return `factory(name) -> Backend` (same name = same stored data)."""
        raise NotImplementedError(
            f"{type(self).__name__} must override the `backend_factory` fixture: return a "
            "callable factory(name) -> Backend; see huey_core.testing"
        )

    @pytest.fixture
    def connect(self, backend_factory: BackendFactory) -> Iterator[Connect]:
        """`connect(name=None)`: a backend for `name` (default: the test's instance name).

        Every backend opened here is flushed (queue, schedule, store) and closed after the test.
        """
        default = f"conformance-{uuid.uuid4().hex[:12]}"
        opened: list[Backend] = []

        def open_backend(name: str | None = None) -> Backend:
            backend = backend_factory(name or default)
            opened.append(backend)
            return backend

        yield open_backend
        cleaned: set[int] = set()
        for backend in reversed(opened):
            if id(backend) in cleaned:
                continue  # an in-process factory may hand out the same object twice
            cleaned.add(id(backend))
            try:
                backend.queue.flush()
                backend.schedule.flush()
                backend.store.flush()
            finally:
                backend.close()

    @pytest.fixture
    def backend(self, connect: Connect) -> Backend:
        """A fresh backend under a unique instance name, flushed and closed after the test."""
        return connect()

    @pytest.fixture
    def other(self, backend: Backend, connect: Connect) -> Backend:
        """A second connection to the same instance, as another consumer process would open."""
        return connect(backend.name)

    def expire(self) -> None:
        """Sleep until anything created with `short_ttl` has expired."""
        time.sleep(self.short_ttl + self.expiry_slack)

    def dequeue_woken_by(self, backend: Backend, wake: Callable[[], Any]) -> Delivery | None:
        """A 5 s blocking dequeue while `wake()` runs after 0.2 s; asserts it woke promptly."""
        timer = threading.Timer(0.2, wake)
        started = time.monotonic()
        timer.start()
        try:
            delivery = backend.queue.dequeue("worker-1", 30.0, wait=5.0)
        finally:
            timer.cancel()
        elapsed = time.monotonic() - started
        assert elapsed < self.wake_within, f"woke after {elapsed:.2f} s of a 5 s wait"
        return delivery

    def run_model(self, machine: Any) -> None:
        """Run a hypothesis state machine with the suite's settings (no deadline, no database)."""
        import hypothesis
        from hypothesis import stateful

        stateful.run_state_machine_as_test(
            machine,
            settings=hypothesis.settings(
                max_examples=self.model_examples,
                stateful_step_count=25,
                deadline=None,
                database=None,
                suppress_health_check=list(hypothesis.HealthCheck),
            ),
        )
