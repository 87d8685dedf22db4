"""Signal names (huey's) and the small dispatcher behind `@huey.signal(...)`.

A receiver is called as `receiver(signal, task, *extra)`; for SIGNAL_ERROR the extra argument is
the exception. A receiver that raises is logged and never disturbs the task or other receivers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from huey_core.exceptions import is_user_interrupt

logger = logging.getLogger("huey")

SIGNAL_CANCELED = "canceled"
SIGNAL_COMPLETE = "complete"
SIGNAL_ERROR = "error"
SIGNAL_EXECUTING = "executing"
SIGNAL_EXPIRED = "expired"
SIGNAL_LOCKED = "locked"
SIGNAL_RETRYING = "retrying"
SIGNAL_REVOKED = "revoked"
SIGNAL_SCHEDULED = "scheduled"
SIGNAL_INTERRUPTED = "interrupted"
SIGNAL_ENQUEUED = "enqueued"
SIGNAL_TIMEOUT = "timeout"
SIGNAL_RATE_LIMITED = "rate-limited"
# Not in huey: a message that can never run was moved to the dead-letter store (task may be None).
SIGNAL_DEAD_LETTERED = "dead-lettered"

ALL_SIGNALS = (
    SIGNAL_CANCELED,
    SIGNAL_COMPLETE,
    SIGNAL_ERROR,
    SIGNAL_EXECUTING,
    SIGNAL_EXPIRED,
    SIGNAL_LOCKED,
    SIGNAL_RETRYING,
    SIGNAL_REVOKED,
    SIGNAL_SCHEDULED,
    SIGNAL_INTERRUPTED,
    SIGNAL_ENQUEUED,
    SIGNAL_TIMEOUT,
    SIGNAL_RATE_LIMITED,
    SIGNAL_DEAD_LETTERED,
)

_ANY = "any"


class Signal:
    """Receivers by signal name; receivers connected with no names get every signal."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.receivers: dict[str, list[Callable[..., Any]]] = {_ANY: []}

    def connect(self, receiver: Callable[..., Any], *signals: str) -> None:
        with self._lock:
            for name in signals or (_ANY,):
                self.receivers.setdefault(name, []).append(receiver)

    def disconnect(self, receiver: Callable[..., Any], *signals: str) -> None:
        with self._lock:
            for name in signals or tuple(self.receivers):
                if receiver in self.receivers.get(name, ()):
                    self.receivers[name].remove(receiver)

    def send(self, signal: str, task: Any, *args: Any) -> None:
        with self._lock:
            named, every = self.receivers.get(signal), self.receivers[_ANY]
            if not named and not every:
                return  # the common case: two signals per task, nobody listening
            receivers = [*(named or ()), *every]
        for receiver in receivers:
            try:
                receiver(signal, task, *args)
            except BaseException as exc:  # noqa: BLE001 - SystemExit too: a receiver never ends a worker
                if is_user_interrupt(exc):
                    raise
                logger.exception(
                    "signal receiver %s failed for %r",
                    getattr(receiver, "__name__", receiver),
                    signal,
                )
