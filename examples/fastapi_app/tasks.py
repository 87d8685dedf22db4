"""The tasks of the FastAPI example (async ones), imported by the app and by `huey consume`.

Run the consumer from examples/: `huey consume fastapi_app.tasks.huey -w 2`. The backend comes
from HUEY_URL (e.g. redis://127.0.0.1:6379/0), else SQLite in ./huey.db. Each consumer worker
thread runs these coroutines on an event loop of its own (docs/asyncio.md).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from huey_core import Huey, crontab

huey = Huey("fastapi-example")

HEARTBEAT = "fastapi-example:heartbeat"  # the data-store key the periodic task writes


@huey.task()
async def add(a: int, b: int) -> int:
    await asyncio.sleep(0.05)  # stands for an awaited call to another service
    return a + b


@huey.task(context=True, timeout=60)
async def build_report(pages: int, task: Any = None) -> dict[str, Any]:
    """A long task that reports progress page by page, for a progress bar."""
    if pages < 1:
        raise ValueError("a report needs at least one page")
    for page in range(1, pages + 1):
        await asyncio.sleep(0.2)  # the real work of one page
        task.progress(page, pages, f"page {page} of {pages}")
    return {"pages": pages, "words": pages * 350}


@huey.periodic_task(crontab(minute="*"))
async def heartbeat() -> None:
    """Once a minute (and when a consumer starts): record that the consumers are alive."""
    huey.put(HEARTBEAT, {"time": time.time(), "pid": os.getpid()})
