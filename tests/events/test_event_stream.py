"""The event stream on every backend: each status of docs/events.md, with its fields.

One scenario per backend (memory, SQLite, Redis, PostgreSQL) walks a task through every status
the producer and the consumer emit, while a listener subscribed through the backend collects
them. Events may be published from a background thread, so the listener waits with a timeout.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
import uuid

import pytest

from huey_core import Huey
from huey_core import signals as S
from huey_core.consumer import Consumer
from huey_core.events import decode_event
from huey_core.exceptions import CancelExecution
from huey_core.protocols import Delivery
from huey_core.testing import require_port

FIELDS = {
    "status",
    "id",
    "task",
    "retries",
    "retry_delay",
    "execute_time",
    "error",
    "traceback",
    "timestamp",
    "consumer",
}
ALL_STATUSES = {
    "enqueued",
    "scheduled",
    "revoked",
    "started",
    "finished",
    "error",
    "retrying",
    "expired",
    "locked",
    "interrupted",
    "dead-lettered",
    "recovered",
    "canceled",
    "rate-limited",
    "progress",
}


def _server(port: int, what: str) -> None:
    require_port(what, port)


@pytest.fixture(params=["memory", "sqlite", "redis", "postgresql"])
def huey(request, tmp_path):
    name = f"ev-{uuid.uuid4().hex[:10]}"
    if request.param == "memory":
        h = Huey(name, backend="memory")
    elif request.param == "sqlite":
        h = Huey(name, url=f"sqlite:///{tmp_path}/ev.db")
    elif request.param == "redis":
        _server(6379, "Redis")
        h = Huey(name, url="redis://127.0.0.1:6379/0")
    else:
        _server(5432, "PostgreSQL")
        h = Huey(name, url="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    yield h
    try:
        h.flush()
        h.storage.close()
    except Exception:  # noqa: BLE001 - cleanup of a test that already failed
        pass


class Listener:
    """Collects decoded events from a subscription in a thread."""

    def __init__(self, huey: Huey) -> None:
        self.events: list[dict] = []
        self._sub = huey.storage.events.listen()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for raw in self._sub:
            self.events.append(decode_event(raw))

    def wait(self, predicate, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            time.sleep(0.01)
        raise AssertionError(f"no matching event; got {[e['status'] for e in self.events]}")

    def status(self, status: str, task_id: str | None = None, timeout: float = 10.0) -> dict:
        return self.wait(
            lambda e: e["status"] == status and (task_id is None or e["id"] == task_id), timeout
        )

    def close(self) -> None:
        self._sub.close()
        self._thread.join(5)


def drain(huey: Huey, owner: str = "test-worker") -> None:
    """Process every ready message as a consumer worker does (dequeue, process, ack)."""
    queue = huey.storage.queue
    for _ in range(100):
        delivery = queue.dequeue(owner, 30)
        if delivery is None:
            return
        huey.process(delivery, worker=owner)
        queue.ack(delivery.lease)
    raise AssertionError("queue did not drain")


def test_every_status_with_its_fields(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    @huey.task(retries=1)
    def bad():
        raise ValueError("broken")

    @huey.task()
    @huey.lock_task("busy")
    def exclusive():
        pass

    @huey.task(expires=datetime.timedelta(seconds=-1))
    def stale():
        pass

    @huey.task()
    def limited():
        with huey.rate_limit(f"rl-{huey.name}", 1, 3600, retry=False):
            pass

    @huey.task()
    def vetoed():
        pass

    @huey.pre_execute()
    def veto(task):
        if task.name == "vetoed":
            raise CancelExecution(retry=False)

    @huey.task(context=True)
    def reporting(task=None):
        task.progress(7, 9, "pages")

    @huey.task(timeout=0.05)
    def overdue():
        time.sleep(0.2)  # a thread cannot be interrupted: the late value becomes a timeout

    # huey's signals fire in process next to the events (the emitter is one more receiver).
    signals_seen: list[str] = []
    huey.signal()(lambda signal, task, *extra: signals_seen.append(signal))

    listener = Listener(huey)  # sees every event emitted after listen() returned
    try:
        ok = add(1, 2)
        drain(huey)
        enqueued = listener.status("enqueued", ok.id)
        started = listener.status("started", ok.id)
        finished = listener.status("finished", ok.id)
        for event in (enqueued, started, finished):
            assert FIELDS <= set(event), sorted(event)
            assert event["task"] == "add" and event["error"] is False
            assert event["traceback"] is None and event["execute_time"] is None
            assert event["retries"] == 0 and event["retry_delay"] == 0
            assert event["consumer"].endswith(f":{os.getpid()}")
            assert abs(event["timestamp"] - time.time()) < 60
        assert finished["duration"] >= 0 and finished["worker"] == "test-worker"

        failing = bad()
        drain(huey)
        error = listener.status("error", failing.id)
        assert error["error"] is True and "ValueError: broken" in error["traceback"]
        assert error["duration"] >= 0 and error["retries"] == 1
        retrying = listener.status("retrying", failing.id)
        assert retrying["error"] is False
        listener.wait(
            lambda e: e["status"] == "error" and e["id"] == failing.id and e["retries"] == 0
        )

        eta = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
        later = add.schedule((1, 1), eta=eta)
        drain(huey)
        scheduled = listener.status("scheduled", later.id)
        assert abs(scheduled["execute_time"] - eta.timestamp()) < 1

        revoked = add(2, 2)
        revoked.revoke()
        drain(huey)
        assert listener.status("revoked", revoked.id)["task"] == "add"

        stale_result = stale()
        drain(huey)
        listener.status("expired", stale_result.id)

        with huey.lock_task("busy"):
            locked = exclusive()
            drain(huey)
        listener.status("locked", locked.id)

        limited()
        second = limited()
        drain(huey)
        listener.status("rate-limited", second.id)

        canceled = vetoed()
        drain(huey)
        listener.status("canceled", canceled.id)

        huey.process(Delivery(b"\x00not a message", "lease-x", 1), worker="test-worker")
        dead = listener.status("dead-lettered")
        assert dead["error"] is True and dead["reason"]

        late = overdue()
        drain(huey)
        timed_out = listener.status("error", late.id)
        assert timed_out["error"] is True and "TaskTimeout" in timed_out["traceback"]

        reported = reporting()
        drain(huey)
        progress = listener.status("progress", reported.id)
        assert (progress["done"], progress["total"], progress["note"]) == (7, 9, "pages")
        assert progress["task"] == "reporting" and progress["worker"] == "test-worker"
        assert huey.progress(reported.id)[:3] == (7, 9, "pages")  # stored in this backend

        statuses = {e["status"] for e in listener.events}
        missing = ALL_STATUSES - {"interrupted", "recovered"} - statuses
        assert not missing, missing
        # Every huey signal but interrupted (next test) fired; dead-lettered is ours, not huey's.
        assert set(signals_seen) >= set(S.ALL_SIGNALS) - {
            S.SIGNAL_INTERRUPTED,
            S.SIGNAL_DEAD_LETTERED,
        }
        assert all(FIELDS <= set(e) for e in listener.events)
    finally:
        listener.close()


def test_consumer_emits_recovered_and_interrupted(huey: Huey) -> None:
    started, release = threading.Event(), threading.Event()
    interrupted_signals: list[str] = []
    huey.signal(S.SIGNAL_INTERRUPTED)(lambda signal, task: interrupted_signals.append(task.name))

    @huey.task()
    def slow():
        started.set()
        release.wait(30)

    # A "dead consumer" leased a message and vanished; its lease expires after 0.2 s.
    slow()
    assert huey.storage.queue.dequeue("dead-host:1:Worker-1", 0.2) is not None
    listener = Listener(huey)  # sees every event emitted after listen() returned
    consumer = Consumer(huey, workers=1, periodic=False, scheduler_interval=0.1, shutdown_timeout=0)
    consumer.start()
    try:
        recovered = listener.status("recovered")
        assert FIELDS <= set(recovered) and recovered["count"] == 1
        assert started.wait(10)
    finally:
        consumer.stop()  # shutdown_timeout=0: the running task is released and reported
    try:
        interrupted = listener.status("interrupted")
        assert interrupted["task"] == "slow" and FIELDS <= set(interrupted)
        assert interrupted_signals == ["slow"]
        assert huey.storage.queue.size() == 1  # released, to run again on the next consumer
    finally:
        release.set()  # let the abandoned task thread end before the backend closes
        listener.close()


class _DownEmitter:
    def __init__(self) -> None:
        self.calls = 0

    def emit(self, event: bytes) -> None:
        self.calls += 1
        raise ConnectionError("event channel down")

    def emit_many(self, events: list[bytes]) -> None:
        self.calls += 1
        raise ConnectionError("event channel down")

    def listen(self):  # pragma: no cover - never listened to here
        raise ConnectionError("event channel down")


def test_a_failing_channel_never_breaks_or_blocks_tasks(huey: Huey) -> None:
    @huey.task()
    def add(a, b):
        return a + b

    down = _DownEmitter()
    huey.storage.events = down
    results = [add(i, i) for i in range(20)]
    drain(huey)
    assert [r.get() for r in results] == [2 * i for i in range(20)]
    # Nobody listening on the real channel is fine too (the emit simply goes nowhere).


def test_passwords_in_task_errors_are_masked_for_every_listener(huey: Huey) -> None:
    @huey.task()
    def connect():
        raise ConnectionError("cannot reach postgresql://app:hunter2@db.internal/prod")

    listener = Listener(huey)  # a Python subscriber: the raw stream, not `huey events`
    try:
        failed = connect()
        drain(huey)
        error = listener.status("error", failed.id)
        assert "hunter2" not in error["traceback"] and "hunter2" not in error["message"]
        assert "postgresql://app:***@db.internal/prod" in error["traceback"]
    finally:
        listener.close()
