"""Events: one JSON object per thing that happens to a task (DESIGN.md section 8).

Fields of every event:

    status        enqueued, scheduled, revoked, started, finished, error, retrying, expired,
                  locked, interrupted, canceled, rate-limited, dead-lettered, recovered
    id            task id, or null when the message could not be decoded
    task          task name, or null
    retries       retries left (int) or null
    retry_delay   seconds (float) or null
    execute_time  unix timestamp of the task's eta, or null when it runs as soon as possible
    error         true for error and dead-lettered events
    traceback     string or null
    timestamp     unix time of the event
    consumer      "<host>:<pid>" of the process that emitted it
    huey          instance name

`duration` (seconds) is added to finished and error events, `worker` when a consumer worker ran
the task, `reason` to dead-lettered events; other keyword fields pass through unchanged.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import time
from typing import Any

logger = logging.getLogger("huey.events")

__all__ = ["build_event", "consumer_identity", "decode_event", "encode_event", "eta_timestamp"]

_IDENTITY: tuple[int, str] | None = None


def consumer_identity() -> str:
    """"<host>:<pid>", recomputed after a fork."""
    global _IDENTITY
    pid = os.getpid()
    if _IDENTITY is None or _IDENTITY[0] != pid:
        _IDENTITY = (pid, f"{socket.gethostname()}:{pid}")
    return _IDENTITY[1]


def eta_timestamp(eta: datetime.datetime | None, utc: bool) -> float | None:
    """Unix time of a naive eta in UTC (utc=True) or local time; aware datetimes convert as is."""
    if eta is None:
        return None
    if eta.tzinfo is None and utc:
        eta = eta.replace(tzinfo=datetime.timezone.utc)
    return eta.timestamp()  # a naive datetime is taken as local time here


def build_event(
    status: str,
    task: Any = None,
    *,
    utc: bool = True,
    huey: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The event dict for `status` about `task` (a huey_core.api.Task or None)."""
    event: dict[str, Any] = {
        "status": status,
        "id": getattr(task, "id", None),
        "task": getattr(task, "name", None),
        "retries": getattr(task, "retries", None),
        "retry_delay": getattr(task, "retry_delay", None),
        "execute_time": eta_timestamp(getattr(task, "eta", None), utc),
        "error": False,
        "traceback": None,
        "timestamp": time.time(),
        "consumer": consumer_identity(),
        "huey": huey,
    }
    for key, value in fields.items():
        if value is not None or key not in event:
            event[key] = value
    event["error"] = bool(event["error"])
    return event


def encode_event(event: dict[str, Any]) -> bytes:
    """Compact JSON; values JSON cannot hold (datetimes, exceptions) become strings."""
    return json.dumps(event, separators=(",", ":"), default=str).encode()


def decode_event(data: bytes | str) -> dict[str, Any]:
    """The event dict back from what an EventEmitter subscription yields."""
    return json.loads(data)


def emit_event(emitter: Any, event: dict[str, Any]) -> bool:
    """Publish `event`; log and return False on any failure (events never break a task)."""
    try:
        emitter.emit(encode_event(event))
        return True
    except Exception:
        logger.warning("could not emit %s event for task %s", event.get("status"), event.get("id"), exc_info=True)
        return False
