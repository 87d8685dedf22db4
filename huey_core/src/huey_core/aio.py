"""asyncio: running `async def` tasks, and waiting or enqueueing from async code.

One event loop per worker thread. A worker runs one task at a time, so a loop of its own gives
async tasks everything a loop offers (gather, timeouts, async clients) with no hand-off between
threads: a timeout cancels the coroutine in the thread that runs it, and one task that blocks its
loop (a stray time.sleep) stalls only its own worker. The loop lives as long as the worker, so
clients bound to a loop (connection pools) can be opened once per worker, in an async
`on_startup` hook, and reused by every task that worker runs. A shared loop fed by every worker
would add a cross-thread queue and a concurrency limit only to reach the same parallelism the
worker count already sets, and would let one blocking task stall all of them.

Async code that waits for a result or enqueues never runs a backend call on its own loop: each
round trip runs in a thread (asyncio.to_thread), and a wait polls with asyncio.sleep between
reads, so a thousand awaiting requests hold no thread while they wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from huey_core.exceptions import TaskTimeout

__all__ = [
    "CANCEL_GRACE",
    "aget_result",
    "aget_result_group",
    "close_thread_loop",
    "poll",
    "run",
    "thread_loop",
]

logger = logging.getLogger("huey")

# Seconds a timed-out coroutine gets to finish its `finally` blocks after it is cancelled.
CANCEL_GRACE = 5.0

_local = threading.local()


def thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop for tasks, created on first use (and anew in a forked child)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed() or getattr(_local, "pid", None) != os.getpid():
        loop = asyncio.new_event_loop()
        _local.loop, _local.pid = loop, os.getpid()
    return loop


def close_thread_loop() -> None:
    """Cancel what is left on this thread's loop and close it (a worker calls it as it ends)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    _local.loop = None
    if loop is None or loop.is_closed() or getattr(_local, "pid", None) != os.getpid():
        return
    try:
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    except Exception:  # noqa: BLE001 - closing must not fail a worker's exit
        logger.warning("closing a worker's event loop failed", exc_info=True)
    finally:
        loop.close()


def run(awaitable: Awaitable[Any], timeout: float | None = None) -> Any:
    """Run `awaitable` to completion on this thread's loop; TaskTimeout after `timeout` seconds.

    In a thread whose own loop is already running (a synchronous call in immediate mode from an
    async handler) it cannot run there, so it runs on a helper thread while this one waits.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return _run_elsewhere(awaitable, timeout)
    loop = thread_loop()
    future = asyncio.ensure_future(_within(awaitable, timeout), loop=loop)
    try:
        return loop.run_until_complete(future)
    except BaseException:
        future.cancel()  # KeyboardInterrupt: the task must not resume with the next one
        raise


async def _within(awaitable: Awaitable[Any], timeout: float | None) -> Any:
    if not timeout:
        return await awaitable
    inner = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({inner}, timeout=timeout)
    if inner in done:
        return inner.result()
    inner.cancel()
    done, _ = await asyncio.wait({inner}, timeout=CANCEL_GRACE)
    if not done:
        logger.warning(
            "a timed-out async task ignored its cancellation for %ss; it stays on the worker's "
            "loop (let CancelledError propagate in async tasks)",
            CANCEL_GRACE,
        )
    elif not inner.cancelled():
        inner.exception()  # retrieved: what it raised while being cancelled is not the story
    raise TaskTimeout(f"timeout {timeout}s")


def _run_elsewhere(awaitable: Awaitable[Any], timeout: float | None) -> Any:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = run(awaitable, timeout)
        except BaseException as exc:  # noqa: BLE001 - handed back to the calling thread
            outcome["error"] = exc
        finally:
            close_thread_loop()

    helper = threading.Thread(target=target, name="huey-async-call", daemon=True)
    helper.start()
    helper.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


async def poll(
    read: Callable[[], Any],
    missing: Any,
    timeout: float | None,
    backoff: float = 1.5,
    max_delay: float = 0.5,
    first_delay: float = 0.01,
) -> Any:
    """Call `read()` in a thread until it returns something other than `missing`.

    Sleeps `first_delay` between reads, growing by `backoff` up to `max_delay`; returns
    `missing` once `timeout` seconds have passed (None: wait for ever).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = first_delay
    while True:
        value = await asyncio.to_thread(read)
        if value is not missing:
            return value
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return missing
        await asyncio.sleep(delay if remaining is None else min(delay, remaining))
        delay = min(delay * backoff, max_delay)


# huey.contrib.asyncio's names (also importable from huey_core.contrib.asyncio), mapped onto
# the awaitable results: `await result` and `result.aget(...)`.


async def aget_result(
    res: Any,
    backoff: float = 1.15,
    max_delay: float = 1.0,
    preserve: bool = False,
    timeout: float | None = None,
) -> Any:
    """The value of `res`, awaited: ResultTimeout after `timeout` seconds (None: no limit).

    As huey: a failed task raises TaskException; `preserve=True` leaves the result stored.
    """
    return await res.aget(timeout, backoff=backoff, max_delay=max_delay, preserve=preserve)


async def aget_result_group(rg: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
    """Every value of a ResultGroup (`task.map(...)`), awaited together, in order.

    Takes aget_result's options. When one fails (or times out), the other waits are cancelled
    and the error is raised.
    """
    tasks = [asyncio.ensure_future(aget_result(r, *args, **kwargs)) for r in rg]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
