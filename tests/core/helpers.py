"""Helpers shared by the core API tests: `from tests.core.helpers import make_huey, drain`."""

from __future__ import annotations

import os
import uuid

from click.testing import CliRunner

from huey_core import Huey

# The core tests run on the memory backend. HUEY_CORE_TEST_BACKEND / HUEY_CORE_TEST_URL run the
# same tests on another backend (e.g. redis://127.0.0.1:6379/0) to check the API end to end.
TEST_BACKEND = os.environ.get("HUEY_CORE_TEST_BACKEND", "memory")
TEST_URL = os.environ.get("HUEY_CORE_TEST_URL") or None
created: list[Huey] = []


def make_huey(**options: object) -> Huey:
    if "backend" not in options and "url" not in options:
        options["backend"] = TEST_BACKEND
        if TEST_URL:
            options["url"] = TEST_URL
        if TEST_BACKEND == "sql":
            options["table_prefix"] = "hc_"  # tables of our own on shared servers
    huey = Huey(f"t-{uuid.uuid4().hex[:8]}", **options)  # type: ignore[arg-type]
    created.append(huey)
    return huey


def cleanup() -> None:
    """Remove what the tests stored (only their own uniquely named instances) and close."""
    while created:
        huey = created.pop()
        if not huey.storage_built or TEST_BACKEND == "memory":
            continue
        try:
            huey.storage.queue.flush()
            huey.storage.schedule.flush()
            huey.storage.store.flush()
            huey.storage.close()
        except Exception:
            pass


def drain(huey: Huey, limit: int = 1000) -> int:
    """Run every ready message the way a consumer worker does; return how many were processed."""
    queue = huey.storage.queue
    count = 0
    while count < limit:
        delivery = queue.dequeue("test-worker", huey.lease_timeout)
        if delivery is None:
            return count
        huey.process(delivery, worker="test-worker")
        queue.ack(delivery.lease)
        count += 1
    raise AssertionError("queue did not drain")


def run_due(huey: Huey, now: float | None = None) -> int:
    """Run the scheduled tasks due at unix time `now`, as if the clock said `now`.

    (A consumer moves due messages to the queue; here the clock is faked, so the tasks are read
    from the schedule and executed with that timestamp.)
    """
    import datetime
    import time

    when = time.time() if now is None else now
    if huey.utc:
        stamp = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).replace(tzinfo=None)
    else:
        stamp = datetime.datetime.fromtimestamp(when)
    tasks = huey.read_schedule(stamp)
    for task in tasks:
        huey.execute(task, timestamp=stamp)
    return len(tasks) + drain(huey)


def collect_events(huey: Huey, action, expected: int, wait: float = 5.0) -> list[dict]:
    """Run `action()` while subscribed to huey's events; return the first `expected` events.

    Memory events are delivered synchronously, so they are all in the subscription's inbox once
    `action()` returns; a reader thread drains it (the iterator blocks while the inbox is empty).
    """
    import threading
    import time

    from huey_core.events import decode_event

    # Events go out from a background thread: what earlier calls emitted must not arrive late,
    # inside this window (the memory backend delivers at once, Redis and SQL do not).
    huey.flush_events()
    sub = huey.storage.events.listen()
    events: list[dict] = []

    def read() -> None:
        for raw in sub:
            events.append(decode_event(raw))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    action()
    huey.flush_events()
    deadline = time.monotonic() + wait
    while len(events) < expected and time.monotonic() < deadline:
        time.sleep(0.005)
    sub.close()
    reader.join(5)
    return events[:expected] if len(events) >= expected else events


def cli_runner() -> CliRunner:
    """A CliRunner that captures stderr apart from stdout: click 8.2 always does, 8.1 (the
    lowest version huey-core declares, which CI also tests) only with mix_stderr=False."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg, unused-ignore]
    except TypeError:  # click 8.2+: no mix_stderr, stderr always separate
        return CliRunner()
