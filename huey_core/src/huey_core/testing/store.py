"""Conformance tests for the DataStore protocol: values, ttl, atomic claims, counters, waits."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from typing import Any

import pytest

from huey_core.protocols import Backend, DataStore
from huey_core.testing.base import (
    BackendFactory,
    ConformanceBase,
    Connect,
    run_rounds,
    run_threads,
)

__all__ = ["DataStoreConformance"]

# A read-then-write put_if_empty lets two callers win in one round of contenders released at
# once in 10% to 90% of rounds, depending on the backend and on how busy the machine is; over
# this many rounds it is caught on every run. A round costs a few milliseconds.
RACE_ROUNDS = 100
RACE_THREADS = 8


def _race_processes() -> int:
    return min(4, max(2, os.cpu_count() or 2))


def _start_at(starts: Any, r: int, timeout: float = 30.0) -> None:
    """Return at the instant the parent set for round `r`, to the microsecond if a core is free.

    A barrier wakes processes one after another, tens of microseconds apart: longer than a
    read-then-write takes. Sleeping until just before a shared start time and spinning for the
    rest lines the processes up on different cores, so their calls really overlap.
    """
    deadline = time.monotonic() + timeout
    while starts[r] == 0.0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"round {r} never started")
        time.sleep(0.0005)
    ahead = starts[r] - time.time()
    if ahead > 0.002:
        time.sleep(ahead - 0.002)
    while time.time() < starts[r]:
        pass


def _contend_in_child(
    factory: BackendFactory, name: str, starts: Any, reports: Any, index: int
) -> None:
    backend: Backend | None = None
    try:
        backend = factory(name)  # its own connection, as a consumer on another machine has
        backend.store.exists("warm-up")  # connect now, not inside the first round
        reports.put(("ready", index, None))
        for r in range(len(starts)):
            _start_at(starts, r)
            won = backend.store.put_if_empty(f"periodic:{r}", f"{index}".encode(), ttl=60)
            reports.put((r, index, won))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        reports.put(("error", index, repr(exc)))
    finally:
        if backend is not None:
            backend.close()


def _gather(reports: Any, count: int) -> list[tuple[Any, int, Any]]:
    got = [reports.get(timeout=60) for _ in range(count)]
    errors = [str(detail) for kind, _, detail in got if kind == "error"]
    assert not errors, f"a contending process failed: {errors[0]}"
    return got


def _race_in_processes(factory: BackendFactory, name: str, processes: int) -> list[list[Any]]:
    """put_if_empty on one key per round from `processes` forked processes; won[round][i]."""
    context = multiprocessing.get_context("fork")
    starts = context.RawArray("d", RACE_ROUNDS)  # 0.0 until the parent starts the round
    reports = context.Queue()
    children = [
        context.Process(target=_contend_in_child, args=(factory, name, starts, reports, i))
        for i in range(processes)
    ]
    for child in children:
        child.start()
    try:
        _gather(reports, processes)  # every child is connected
        won: list[list[Any]] = []
        for r in range(RACE_ROUNDS):
            starts[r] = time.time() + 0.003  # the children poll every 0.5 ms
            row: list[Any] = [None] * processes
            for _, i, result in _gather(reports, processes):
                row[i] = result
            won.append(row)
        for child in children:
            child.join(30)
            assert child.exitcode == 0
        return won
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()


class DataStoreConformance(ConformanceBase):
    """Every statement of the DataStore docstrings, checked against `backend.store`."""

    def test_store_satisfies_protocol(self, backend: Backend) -> None:
        assert isinstance(backend.store, DataStore)

    # -- put / peek / pop / delete / exists --------------------------------------------------

    def test_put_then_peek_returns_value(self, backend: Backend) -> None:
        store = backend.store
        assert store.peek("missing") is None
        store.put("k", b"v1")
        assert store.peek("k") == b"v1"
        assert store.peek("k") == b"v1"  # peek does not consume
        store.put("k", b"v2")
        assert store.peek("k") == b"v2"

    def test_binary_empty_and_large_values(self, backend: Backend) -> None:
        store = backend.store
        every_byte = bytes(range(256))
        large = every_byte * 4096  # 1 MiB
        store.put("bytes", every_byte)
        store.put("empty", b"")
        store.put("large", large)
        assert store.peek("bytes") == every_byte
        assert store.peek("empty") == b""
        assert store.exists("empty") is True  # an empty value is still a value
        assert store.peek("large") == large

    def test_unusual_keys(self, backend: Backend) -> None:
        keys = ["a:b:c", "with space", "ünïcödé", "100%_done", "*?[x]", "quote'\"", "a" * 200]
        for i, key in enumerate(keys):
            backend.store.put(key, str(i).encode())
        for i, key in enumerate(keys):
            assert backend.store.peek(key) == str(i).encode()
        assert backend.store.items() == {key: str(i).encode() for i, key in enumerate(keys)}

    def test_pop_returns_value_and_removes_it(self, backend: Backend) -> None:
        store = backend.store
        assert store.pop("missing") is None
        store.put("result", b"42")
        assert store.pop("result") == b"42"
        assert store.pop("result") is None
        assert store.exists("result") is False

    def test_concurrent_pop_has_exactly_one_winner(
        self, backend: Backend, connect: Connect
    ) -> None:
        backend.store.put("result", b"42")
        conns = [backend if i % 2 == 0 else connect(backend.name) for i in range(8)]
        got = run_threads(lambda i: conns[i].store.pop("result"), 8)
        assert sorted(got, key=lambda v: v is not None) == [None] * 7 + [b"42"]

    def test_peek_many_keeps_order_duplicates_and_missing_keys(
        self, backend: Backend, other: Backend
    ) -> None:
        store = backend.store
        store.put("a", b"1")
        other.store.put("b", b"")  # written by another connection, read through this one
        store.put("gone", b"x", ttl=self.short_ttl)
        self.expire()
        keys = ["b", "missing", "a", "gone", "a"]
        assert store.peek_many(keys) == [b"", None, b"1", None, b"1"]
        assert store.peek_many(keys) == [store.peek(key) for key in keys]
        assert store.peek_many([]) == []
        many = [f"k{i}" for i in range(300)]  # more than one batch, for backends that batch
        for key in many[::2]:
            store.put(key, key.encode())
        expected = [key.encode() if i % 2 == 0 else None for i, key in enumerate(many)]
        assert store.peek_many(many) == expected

    def test_delete_reports_whether_key_existed(self, backend: Backend) -> None:
        store = backend.store
        assert store.delete("missing") is False
        store.put("k", b"v")
        assert store.delete("k") is True
        assert store.delete("k") is False
        assert store.peek("k") is None

    def test_exists(self, backend: Backend) -> None:
        assert backend.store.exists("k") is False
        backend.store.put("k", b"v")
        assert backend.store.exists("k") is True

    # -- ttl ---------------------------------------------------------------------------------

    def test_expired_key_behaves_like_a_missing_one(self, backend: Backend) -> None:
        store = backend.store
        store.put("short", b"v", ttl=self.short_ttl)
        store.put("later", b"v", ttl=60)
        store.put("forever", b"v")
        # Only the long ttl is checked before expiry: a stalled CI machine may outlast short_ttl.
        assert store.peek("later") == b"v"
        assert store.exists("later") is True
        self.expire()
        assert store.peek("short") is None
        assert store.exists("short") is False
        assert store.pop("short") is None
        assert store.delete("short") is False
        assert store.size() == 2
        assert store.items() == {"later": b"v", "forever": b"v"}
        assert store.wait("short", 0.1) is False

    def test_size_and_items_skip_expired_keys_nothing_has_read(self, backend: Backend) -> None:
        """A backend may leave expired entries in place; size() and items() must not count them.

        Nothing reads the expired keys before size() and items() do (a read might clean them
        up), and pop() and delete() of an expired key may leave its entry behind.
        """
        store = backend.store
        store.put("gone:put", b"v", ttl=self.short_ttl)
        store.put_if_empty("gone:claimed", b"v", ttl=self.short_ttl)
        store.incr("gone:counted", ttl=self.short_ttl)
        store.put("gone:popped", b"v", ttl=self.short_ttl)
        store.put("gone:deleted", b"v", ttl=self.short_ttl)
        store.put("kept", b"v")
        self.expire()
        for when in ("before", "after"):  # before and after pop()/delete() of expired keys
            assert store.size() == 1, f"size() {when} pop/delete counted expired keys"
            assert store.items() == {"kept": b"v"}, f"items() {when} pop/delete: expired keys"
            assert store.items("gone:") == {}, f"items(prefix) {when} pop/delete: expired keys"
            assert store.pop("gone:popped") is None
            assert store.delete("gone:deleted") is False
        store.flush("gone:")  # flushing expired keys is fine and changes nothing visible
        assert store.items() == {"kept": b"v"}

    def test_put_replaces_the_ttl_too(self, backend: Backend) -> None:
        store = backend.store
        store.put("k", b"v1", ttl=self.short_ttl)
        store.put("k", b"v2")  # no ttl now: it must outlive the first ttl
        store.put("j", b"v1")
        store.put("j", b"v2", ttl=self.short_ttl)
        self.expire()
        assert store.peek("k") == b"v2"
        assert store.peek("j") is None

    # -- put_if_empty ------------------------------------------------------------------------

    def test_put_if_empty_stores_only_when_missing(self, backend: Backend) -> None:
        store = backend.store
        assert store.put_if_empty("lock", b"first") is True
        assert store.put_if_empty("lock", b"second") is False
        assert store.peek("lock") == b"first"
        store.delete("lock")
        assert store.put_if_empty("lock", b"third") is True
        assert store.peek("lock") == b"third"

    def test_put_if_empty_succeeds_again_once_ttl_expires(self, backend: Backend) -> None:
        store = backend.store
        assert store.put_if_empty("minute-lock", b"a", ttl=self.short_ttl) is True
        assert store.put_if_empty("hour-lock", b"a", ttl=3600) is True
        assert store.put_if_empty("hour-lock", b"b", ttl=3600) is False  # a live ttl key blocks
        self.expire()
        assert store.put_if_empty("hour-lock", b"c") is False
        assert store.put_if_empty("minute-lock", b"c") is True
        assert store.peek("minute-lock") == b"c"

    def test_concurrent_put_if_empty_has_exactly_one_winner(
        self, backend: Backend, connect: Connect
    ) -> None:
        conns = [backend if i % 2 == 0 else connect(backend.name) for i in range(RACE_THREADS)]

        def contend(r: int, i: int) -> bool:
            if r == 0:
                return conns[i].store.exists("warm-up")  # connect before the races start
            return conns[i].store.put_if_empty(f"periodic:{r}", f"{i}".encode(), ttl=60)

        rounds = run_rounds(contend, RACE_THREADS, RACE_ROUNDS + 1)
        for r, won in enumerate(rounds[1:], 1):
            assert won.count(True) == 1, f"round {r}: {won.count(True)} threads won one key"
            assert backend.store.peek(f"periodic:{r}") == f"{won.index(True)}".encode()

    def test_concurrent_put_if_empty_across_processes_has_exactly_one_winner(
        self, backend: Backend, backend_factory: BackendFactory
    ) -> None:
        if not getattr(backend, "process_safe", True):
            pytest.skip("process_safe is False: separate processes would not share this backend")
        if "fork" not in multiprocessing.get_all_start_methods():
            pytest.skip("this platform cannot fork")
        rounds = _race_in_processes(backend_factory, backend.name, _race_processes())
        for r, won in enumerate(rounds):
            assert won.count(True) == 1, f"round {r}: {won.count(True)} processes won one key"
            assert backend.store.peek(f"periodic:{r}") == f"{won.index(True)}".encode()

    def test_concurrent_takeover_of_an_expired_key_has_exactly_one_winner(
        self, backend: Backend, connect: Connect
    ) -> None:
        for r in range(1, RACE_ROUNDS + 1):
            backend.store.put_if_empty(f"lock:{r}", b"crashed holder", ttl=self.short_ttl)
        self.expire()
        conns = [backend if i % 2 == 0 else connect(backend.name) for i in range(RACE_THREADS)]

        def contend(r: int, i: int) -> bool:
            if r == 0:
                return conns[i].store.exists("warm-up")
            return conns[i].store.put_if_empty(f"lock:{r}", f"{i}".encode())

        rounds = run_rounds(contend, RACE_THREADS, RACE_ROUNDS + 1)
        for r, won in enumerate(rounds[1:], 1):
            assert won.count(True) == 1, f"round {r}: {won.count(True)} threads took it over"
            assert backend.store.peek(f"lock:{r}") == f"{won.index(True)}".encode()

    # -- incr --------------------------------------------------------------------------------

    def test_incr_counts_from_zero(self, backend: Backend) -> None:
        store = backend.store
        assert store.incr("n") == 1
        assert store.incr("n") == 2
        assert store.incr("n", 5) == 7
        assert store.incr("n", -10) == -3
        assert int(store.peek("n") or b"x") == -3
        store.put("m", b"10")
        assert store.incr("m", 2) == 12

    def test_incr_is_atomic_under_threads(self, backend: Backend, connect: Connect) -> None:
        threads, each = 8, 25
        conns = [backend if i % 2 == 0 else connect(backend.name) for i in range(threads)]

        def bump(i: int) -> list[int]:
            return [conns[i].store.incr("hits") for _ in range(each)]

        seen = [value for part in run_threads(bump, threads) for value in part]
        assert sorted(seen) == list(range(1, threads * each + 1))  # no value handed out twice
        assert int(backend.store.peek("hits") or b"x") == threads * each

    def test_incr_ttl_applies_when_the_key_is_created(self, backend: Backend) -> None:
        store = backend.store
        assert store.incr("window", ttl=self.short_ttl) == 1
        assert store.incr("forever") == 1
        assert store.incr("forever", ttl=self.short_ttl) == 2  # existing key: ttl not applied
        self.expire()
        assert store.exists("window") is False
        assert store.incr("window", ttl=self.short_ttl) == 1  # a fresh window
        assert store.peek("forever") is not None

    # -- wait --------------------------------------------------------------------------------

    def test_wait_returns_at_once_when_key_exists(self, backend: Backend) -> None:
        backend.store.put("ready", b"v")
        started = time.monotonic()
        assert backend.store.wait("ready", 5.0) is True
        assert time.monotonic() - started < 1.0

    def test_wait_wakes_when_another_connection_puts(
        self, backend: Backend, other: Backend
    ) -> None:
        timer = threading.Timer(0.2, other.store.put, args=("result", b"done"))
        started = time.monotonic()
        timer.start()
        try:
            assert backend.store.wait("result", 5.0) is True
        finally:
            timer.cancel()
        elapsed = time.monotonic() - started
        assert elapsed < self.wake_within, f"woke after {elapsed:.2f} s of a 5 s wait"
        assert backend.store.peek("result") == b"done"

    def test_wait_wakes_on_put_if_empty_and_incr(self, backend: Backend, other: Backend) -> None:
        for key, write in [
            ("claimed", lambda: other.store.put_if_empty("claimed", b"x")),
            ("counted", lambda: other.store.incr("counted")),
        ]:
            timer = threading.Timer(0.2, write)
            started = time.monotonic()
            timer.start()
            try:
                assert backend.store.wait(key, 5.0) is True, key
            finally:
                timer.cancel()
            elapsed = time.monotonic() - started
            assert elapsed < self.wake_within, f"{key}: woke after {elapsed:.2f} s"

    def test_wait_returns_false_after_timeout(self, backend: Backend) -> None:
        started = time.monotonic()
        assert backend.store.wait("never", 0.3) is False
        elapsed = time.monotonic() - started
        assert 0.2 <= elapsed < self.wake_within, f"returned after {elapsed:.2f} s"

    # -- size / items / flush ----------------------------------------------------------------

    def test_size_items_and_flush_by_prefix(self, backend: Backend) -> None:
        store = backend.store
        assert store.size() == 0
        assert store.items() == {}
        store.put("r:1", b"a")
        store.put("r:2", b"b")
        store.put("lock:x", b"c")
        assert store.size() == 3
        assert store.items("r:") == {"r:1": b"a", "r:2": b"b"}
        assert store.items("nothing") == {}
        assert store.items() == {"r:1": b"a", "r:2": b"b", "lock:x": b"c"}
        store.flush("r:")
        assert store.items() == {"lock:x": b"c"}
        store.flush()
        assert store.size() == 0

    def test_prefix_is_literal_not_a_pattern(self, backend: Backend) -> None:
        store = backend.store
        for key in ["a_c", "abc", "a%c", "a*c", "a?c", "a[c", "a\\c", "A_C"]:
            store.put(key, key.encode())
        # SQL LIKE wildcards, glob characters and case must not widen the match.
        assert store.items("a_") == {"a_c": b"a_c"}
        assert store.items("a%") == {"a%c": b"a%c"}
        assert store.items("a*") == {"a*c": b"a*c"}
        assert store.items("a?") == {"a?c": b"a?c"}
        assert store.items("a[") == {"a[c": b"a[c"}
        assert store.items("a\\") == {"a\\c": b"a\\c"}
        store.flush("a_")
        store.flush("a*")
        assert sorted(store.items()) == sorted(["abc", "a%c", "a?c", "a[c", "a\\c", "A_C"])

    def test_stores_of_different_instances_are_isolated(
        self, backend: Backend, connect: Connect
    ) -> None:
        stranger = connect(f"conformance-{uuid.uuid4().hex[:12]}")
        backend.store.put("k", b"mine")
        assert stranger.store.peek("k") is None
        assert stranger.store.put_if_empty("k", b"theirs") is True
        assert backend.store.peek("k") == b"mine"
        stranger.store.flush()
        assert backend.store.items() == {"k": b"mine"}
        assert stranger.store.size() == 0

    # -- model -------------------------------------------------------------------------------

    def test_store_matches_a_reference_model(self, backend: Backend) -> None:
        """Random put/put_if_empty/pop/delete/incr/flush sequences against a plain dict."""
        pytest.importorskip("hypothesis", reason="needs huey-core[testing]")
        from hypothesis import stateful
        from hypothesis import strategies as st

        store = backend.store
        keys = st.sampled_from(["a", "a:1", "a:2", "b", "b_", "ab", ""])
        values = st.binary(max_size=8)

        class StoreModel(stateful.RuleBasedStateMachine):
            def __init__(self) -> None:
                super().__init__()
                store.flush()
                self.data: dict[str, bytes] = {}

            @stateful.rule(key=keys, value=values)
            def put(self, key: str, value: bytes) -> None:
                store.put(key, value)
                self.data[key] = value

            @stateful.rule(key=keys, value=values)
            def put_if_empty(self, key: str, value: bytes) -> None:
                stored = store.put_if_empty(key, value)
                assert stored is (key not in self.data)
                self.data.setdefault(key, value)

            @stateful.rule(key=keys)
            def pop(self, key: str) -> None:
                assert store.pop(key) == self.data.pop(key, None)

            @stateful.rule(key=keys)
            def delete(self, key: str) -> None:
                assert store.delete(key) is (self.data.pop(key, None) is not None)

            @stateful.rule(key=keys, amount=st.integers(-3, 3))
            def incr(self, key: str, amount: int) -> None:
                current = self.data.get(key)
                if current is not None and not current.strip().lstrip(b"-").isdigit():
                    return  # incr on a non-integer value is not part of the contract
                expected = (int(current) if current is not None else 0) + amount
                assert store.incr(key, amount) == expected
                self.data[key] = str(expected).encode()

            @stateful.rule(prefix=st.sampled_from(["a", "a:", "b_", "x"]))
            def flush_prefix(self, prefix: str) -> None:
                store.flush(prefix)
                self.data = {k: v for k, v in self.data.items() if not k.startswith(prefix)}

            @stateful.invariant()
            def agrees(self) -> None:
                assert store.size() == len(self.data)
                assert store.items() == {k: v for k, v in self.data.items()}
                assert store.items("a:") == {
                    k: v for k, v in self.data.items() if k.startswith("a:")
                }
                for key in ("a", "b_"):
                    assert store.peek(key) == self.data.get(key)
                    assert store.exists(key) is (key in self.data)

        self.run_model(StoreModel)
