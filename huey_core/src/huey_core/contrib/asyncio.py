"""huey.contrib.asyncio's names: `aget_result` and `aget_result_group` for asyncio callers.

Both map onto the awaitable results every `Result` already has (`await result`,
`result.aget(...)`, see huey_core.aio): reads run in a thread and the waits are asyncio sleeps,
so the event loop never blocks. Port: `from huey.contrib.asyncio import aget_result` becomes
`from huey_core.contrib.asyncio import aget_result`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["aget_result", "aget_result_group"]


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
