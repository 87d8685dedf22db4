"""The demo app: a Huey instance on the embedded default (SQLite in ./huey.db) and a few tasks.

Run a consumer for it with `huey consume demoapp.huey -w 2` from this directory; `demo.py` does
that for you and feeds it some work.
"""

from __future__ import annotations

import time

from huey_core import Huey, crontab

huey = Huey("demo")  # no backend and no URL: SQLite in the working directory


@huey.task()
def add(a: int, b: int) -> int:
    return a + b


@huey.task()
def slow_square(x: int, seconds: float = 1.0) -> int:
    """Something that takes a while, so two workers visibly share the load."""
    time.sleep(seconds)
    return x * x


@huey.task(retries=2, retry_delay=1)
def flaky(key: str) -> str:
    """Fails on its first attempt and succeeds on the retry (attempts counted in the store)."""
    attempt = huey.storage.store.incr(f"demo:attempts:{key}")
    if attempt == 1:
        raise RuntimeError(f"attempt {attempt} of {key!r} failed on purpose; retrying in 1 s")
    return f"{key} succeeded on attempt {attempt}"


@huey.periodic_task(crontab(minute="*"))
def every_minute() -> None:
    """Runs at the start of every minute while a consumer with periodic tasks (the default) runs."""
    print("every_minute: tick", flush=True)
