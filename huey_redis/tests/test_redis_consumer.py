"""The consumer on the loopback Redis: what several consumers sharing a server rely on.

`redis_name` (conftest.py) is a unique instance name whose keys are deleted afterwards."""

from __future__ import annotations

import threading
import time

from huey_core import Huey, crontab
from huey_core.consumer import Consumer
from huey_redis.testing import REDIS_URL


def test_three_periodic_consumers_enqueue_each_task_once_per_minute(redis_name):
    def app() -> Huey:
        h = Huey(redis_name, url=REDIS_URL)

        @h.periodic_task(crontab(minute="*"), name="every_minute")
        def every_minute():
            pass

        @h.periodic_task(crontab(minute="*/2"), name="every_other_minute")
        def every_other_minute():
            pass

        return h

    apps = [app() for _ in range(3)]
    consumers = [Consumer(h, periodic=True) for h in apps]
    minute = time.mktime((2026, 3, 2, 9, 0, 0, 0, 0, -1))  # an even minute: both tasks due
    # Every consumer checks concurrently, several times within the minute.
    barrier = threading.Barrier(3)

    def check(consumer: Consumer) -> None:
        barrier.wait()
        for offset in (0.0, 0.5, 20.0, 59.0):
            consumer.scheduler.periodic_check(minute + offset)

    threads = [threading.Thread(target=check, args=(c,)) for c in consumers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(t.name for t in apps[0].pending()) == ["every_minute", "every_other_minute"]
    for c in consumers:
        c.scheduler.periodic_check(minute + 60.0)  # an odd minute: only every_minute
    assert apps[0].pending_count() == 3
    for h in apps:
        h.storage.close()


def test_two_consumers_share_the_work_and_each_task_runs_once(redis_name):
    runs: list[str] = []
    lock = threading.Lock()

    def app():
        h = Huey(redis_name, url=REDIS_URL)

        @h.task(name="record")
        def record(i):
            with lock:
                runs.append(i)
            time.sleep(0.01)
            return i

        return h, record

    (h1, record), (h2, _) = app(), app()
    c1 = Consumer(h1, workers=2, periodic=False, scheduler_interval=0.1)
    c2 = Consumer(h2, workers=2, periodic=False, scheduler_interval=0.1)
    c1.start()
    c2.start()
    try:
        results = [record(i) for i in range(60)]
        assert [r.get(blocking=True, timeout=20) for r in results] == list(range(60))
    finally:
        c1.stop()
        c2.stop()
    assert sorted(runs) == list(range(60))  # every task exactly once
    done = sum(w.processed for w in c1.worker_list + c2.worker_list)
    assert done == 60
    assert h1.storage.queue.leases() == []
    h1.storage.close()
    h2.storage.close()
