"""Worker processes (`huey consume -k process`): what runs in each forked child.

A child runs its worker loop on its main thread, so a task's `timeout=` is enforced with
SIGALRM: the alarm interrupts the task even inside a blocking call (time.sleep, a socket read),
which an exception sent to a thread cannot do. A watcher thread turns the parent's commands,
the parent's death and the shutdown timeout into stopping; the heartbeat thread keeps the lease
of the running task alive, as in a thread-worker consumer.

The parent tells its children to stop through a shared integer (see `ParentLink`), not a
multiprocessing.Event: a child that exits while holding an Event's lock would deadlock the
parent's next set().
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from multiprocessing.sharedctypes import Synchronized
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huey_core.api import Huey
    from huey_core.consumer import Consumer
    from huey_core.worker import Worker

__all__ = ["RECYCLED", "RUNNING", "STOP_GRACEFUL", "STOP_NOW", "ParentLink", "child_main"]

logger = logging.getLogger("huey.consumer")

RUNNING, STOP_GRACEFUL, STOP_NOW = 0, 1, 2  # parent -> worker process commands
# Exit code of a worker process that left after max_tasks (EX_TEMPFAIL): the parent replaces it
# whether or not the health check is on.
RECYCLED = 75
WATCH_EVERY = 0.05  # seconds between the watcher's looks at the parent and the clock


class ParentLink:
    """A worker process's view of its parent: the shared stop command and the parent's pid."""

    def __init__(self, state: Synchronized[int]) -> None:
        self.state = state
        self.pid = os.getppid()

    def command(self) -> int:
        """STOP_NOW when the parent says so or is gone, else what the parent says."""
        if os.getppid() != self.pid:
            return STOP_NOW  # orphaned: nobody waits for a graceful stop any more
        return int(self.state.value)


def child_main(
    huey: Huey, options: dict[str, Any], state: Synchronized[int], index: int
) -> None:  # pragma: no cover - runs in a forked child (covered by subprocess tests)
    """A worker process: one worker on the main thread, stopped by signal or by its parent."""
    from huey_core.consumer import Consumer

    # SIGINT goes to the whole foreground process group on Ctrl-C; the parent relays shutdown
    # through the shared state, so the child must not count the same keypress twice.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    code = 0
    try:
        huey.storage.after_fork()
        child = Consumer(huey, **options)
        runner = ChildRunner(child, ParentLink(state), index)
        runner.run()
        if runner.worker.recycled:
            code = RECYCLED
    except Exception:
        logger.exception("worker process %d failed", index)
        code = 1
    finally:
        _exit(huey, code)


def _exit(huey: Huey, code: int) -> None:  # pragma: no cover - ends a forked child
    try:
        huey.flush_events(5.0)  # os._exit skips atexit: send this process's last events now
    except Exception:  # noqa: BLE001
        pass
    logging.shutdown()
    os._exit(code)


class ChildRunner:
    """Runs one worker on the calling (main) thread of a worker process until it is told to stop.

    Stopping, as in a thread-worker consumer: SIGTERM or the parent's graceful command stops
    taking work and lets the running task finish, for up to `shutdown_timeout` seconds; then,
    or at once on a second SIGTERM, the parent's "stop now" or the parent's death, the running
    task's message is released to the queue and the process exits.
    """

    def __init__(self, consumer: Consumer, parent: ParentLink, index: int) -> None:
        from huey_core.worker import Worker

        self.consumer = consumer
        self.parent = parent
        self.worker: Worker = Worker(consumer, index)
        self._stop_deadline: float | None = None

    def run(self) -> None:
        consumer = self.consumer
        consumer.handle_signals((signal.SIGTERM,))  # the process ends with os._exit
        consumer._workers.append(self.worker)
        consumer.heartbeat.start()
        watcher = threading.Thread(target=self._watch, name="huey-child-watch", daemon=True)
        watcher.start()
        try:
            self.worker.run_here()  # returns once stopping is set and the worker is idle
        finally:
            consumer.stopping.set()
            consumer.heartbeat.stop()
            consumer._stopped.set()
        if not self.worker.recycled:
            logger.info("consumer stopped")

    def _watch(self) -> None:
        consumer = self.consumer
        while not consumer.stopped:
            command = self.parent.command()
            if command == STOP_NOW:
                consumer.hard_stop.set()
            if command != RUNNING:
                consumer.stopping.set()
            if consumer.stopping.is_set() and self._stop_deadline is None:
                self._stop_deadline = time.monotonic() + consumer.shutdown_timeout
            late = self._stop_deadline is not None and time.monotonic() > self._stop_deadline
            # Only a running task is cut short: an idle worker leaves its dequeue within one
            # wait by itself, handing back anything it claimed meanwhile.
            if (consumer.hard_stop.is_set() or late) and self.worker.busy:
                self._give_up("immediate shutdown" if consumer.hard_stop.is_set() else
                              "shutdown timeout reached")  # fmt: skip
            time.sleep(WATCH_EVERY)

    def _give_up(self, reason: str) -> None:  # pragma: no cover - ends the process
        """Release the running task's message and end the process now (a thread of this
        process cannot be stopped any other way)."""
        consumer = self.consumer
        consumer.acks_given_up.set()
        if self.worker.abandon(reason):
            consumer._notify_interrupted()
        consumer.heartbeat.stop()
        logger.info("consumer stopped")
        _exit(consumer.huey, 0)
