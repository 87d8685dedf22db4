"""huey.contrib.asyncio's names: `aget_result` and `aget_result_group` for asyncio callers.

Both map onto the awaitable results every `Result` already has (`await result`,
`result.aget(...)`, see huey_core.aio): reads run in a thread and the waits are asyncio sleeps,
so the event loop never blocks. Port: `from huey.contrib.asyncio import aget_result` becomes
`from huey_core.contrib.asyncio import aget_result`.
"""

from __future__ import annotations

from huey_core.aio import aget_result, aget_result_group

__all__ = ["aget_result", "aget_result_group"]
