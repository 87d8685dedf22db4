"""Enforcing a task's `timeout=` as well as Python allows.

- Main thread (a process worker, or immediate mode in a script): SIGALRM via setitimer
  interrupts the task, even inside time.sleep().
- Other threads: a watchdog raises TaskTimeout in the worker thread asynchronously
  (PyThreadState_SetAsyncExc). Python delivers it between bytecodes, so a task blocked in one
  long C call (a socket read, time.sleep) is only interrupted when that call returns.
- Greenlets (`-k greenlet`, gevent monkey-patched): gevent.Timeout raises TaskTimeout in the
  task's greenlet at its next switch (a sleep, a socket read), as huey does.
- Either way, the executor reports a task that returns after its deadline as TaskTimeout.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from types import FrameType
from typing import Any

from huey_core import greenlets
from huey_core.exceptions import TaskTimeout

__all__ = ["TaskTimer"]


class TaskTimer:
    """`with TaskTimer(seconds): ...` interrupts the block with TaskTimeout after `seconds`.

    Call `finish()` the moment the guarded call returns: no interruption fires after it.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = float(seconds or 0)
        self._guard = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None
        self._old_handler: Any = None
        self._alarm = False
        self._green: Any = None  # a gevent.Timeout, with greenlet workers

    def __enter__(self) -> TaskTimer:
        if self.seconds <= 0:
            return self
        if greenlets.patched():
            # Every greenlet shares one thread: an asynchronous exception would hit them all.
            self._green = greenlets.start_timeout(
                self.seconds, TaskTimeout(f"timeout {self.seconds}s")
            )
            return self
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            try:
                self._old_handler = signal.signal(signal.SIGALRM, self._on_alarm)
                signal.setitimer(signal.ITIMER_REAL, self.seconds)
                self._alarm = True
                return self
            except ValueError:  # not allowed here (e.g. a sub-interpreter)
                pass
        thread_id = threading.get_ident()
        self._timer = threading.Timer(self.seconds, self._interrupt, args=(thread_id,))
        self._timer.daemon = True
        self._timer.start()
        return self

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if not self._done:
            raise TaskTimeout(f"timeout {self.seconds}s")

    def _interrupt(self, thread_id: int) -> None:
        with self._guard:
            if self._done:
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread_id), ctypes.py_object(TaskTimeout)
            )

    def finish(self) -> None:
        """Called as soon as the task returns: no interruption may fire after this."""
        with self._guard:
            self._done = True
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old_handler or signal.SIG_DFL)
            self._alarm = False
        if self._timer is not None:
            self._timer.cancel()
        if self._green is not None:
            self._green.close()
            self._green = None

    def __exit__(self, *exc: object) -> None:
        self.finish()
