"""The conformance suite's own promises: abstract fixture, explicit skips, no silent overrides."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from huey_core.testing import BackendConformance, QueueConformance, require_port, require_server


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
