"""The consumer: workers (threads, forked processes or greenlets), the scheduler, the
heartbeat, the supervisor, shutdown.

What each part does lives beside it: the worker loop in `huey_core.worker`, the scheduler and
the heartbeat in `huey_core.scheduler`, worker processes in `huey_core.processes`, gevent in
`huey_core.greenlets`. This module starts, supervises and stops them.

Supervision (a thread of its own): a worker that leaves after `max_tasks` tasks is replaced at
once; every `health_check_interval` seconds (unless the health check is disabled) a worker that
died (a thread that escaped its loop, a killed process) is replaced too, and the messages it held
are released back to the queue at once instead of waiting for their leases to expire.

Shutdown (SIGTERM or SIGINT, or `stop()`): workers stop taking work and finish what they hold;
after `shutdown_timeout` seconds, tasks still running are released back to the queue (event
`interrupted`). The schedule stays in storage. A second signal stops at once, releasing every lease
still held, so nothing acknowledged is lost and nothing in flight waits for its lease to expire.
"""

from __future__ import annotations

import datetime
import logging
import math
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.context import ForkContext, ForkProcess
from multiprocessing.sharedctypes import Synchronized
from types import FrameType
from typing import TYPE_CHECKING, Any

from huey_core import clock, greenlets, limits, processes
from huey_core.events import consumer_identity
from huey_core.exceptions import ConfigurationError
from huey_core.gate import RunGate
from huey_core.plugins import mask_url
from huey_core.scheduler import Heartbeat, Scheduler
from huey_core.task import Task
from huey_core.worker import BLOCKING_WAIT, Backoff, Worker

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["MODES", "WORKER_TYPES", "Backoff", "Consumer"]

logger = logging.getLogger("huey.consumer")

WORKER_TYPES = ("thread", "process", "greenlet")  # huey's spelling
SUPERVISE_EVERY = 0.1  # seconds between the supervisor's looks for workers to replace
MODES = ("auto", "blocking", "polling")


class Consumer:
    """Runs the tasks of one Huey instance.

    `start()` starts everything in the background and returns (for tests or an app that embeds a
    consumer); `stop()` ends it; `run()` is the command-line loop: start, wait for SIGTERM or
    SIGINT, shut down as described in the module docstring, return the exit code (0).

    Options mirror `huey consume`: `workers` threads or processes (`worker_type`), `periodic`
    enqueues crontab tasks, `initial_delay`/`backoff`/`max_delay` pace polling, `mode` picks
    blocking waits or polling (auto: blocking where the queue supports it),
    `scheduler_interval` paces the scheduler, `shutdown_timeout` bounds a graceful stop,
    `utc` decides the clock periodic tasks are matched against (default: `huey.utc`),
    `lease_timeout` overrides `huey.lease_timeout`. As in huey: `max_tasks` replaces a worker
    after that many tasks; `check_worker_health` replaces dead workers, looking every
    `health_check_interval` seconds; `flush_locks` releases the app's task locks at start, with
    the lock names in `extra_locks` (a list or huey's comma-separated string);
    `graceful_signal` ("INT" or "TERM") makes that signal stop gracefully and the other one
    stop at once (default: both stop gracefully).
    """

    def __init__(
        self,
        huey: Huey,
        workers: int = 1,
        periodic: bool = True,
        initial_delay: float = 0.1,
        backoff: float = 1.15,
        max_delay: float = 10.0,
        scheduler_interval: float = 1.0,
        worker_type: str = "thread",
        mode: str = "auto",
        shutdown_timeout: float | None = 30.0,
        utc: bool | None = None,
        lease_timeout: float | None = None,
        check_worker_health: bool = True,
        scheduler: bool = True,
        health_check_interval: float = 1.0,
        flush_locks: bool = False,
        extra_locks: str | list[str] | tuple[str, ...] | None = None,
        max_tasks: int | None = None,
        graceful_signal: str | None = None,
    ) -> None:
        _check_options(workers, worker_type, mode, scheduler_interval, shutdown_timeout)
        limits.check_seconds("the health check interval", health_check_interval, 0.0, open_min=True)
        self.max_tasks = limits.check_max_tasks(max_tasks)
        self.graceful_signal = limits.check_graceful_signal(graceful_signal)
        self.extra_locks = _lock_names(extra_locks)
        self.flush_locks = bool(flush_locks or self.extra_locks)
        if worker_type == "greenlet":
            greenlets.check_ready()
        Backoff(initial_delay, backoff, max_delay)  # validates the three together
        self.huey = huey
        self.workers = workers
        self.periodic = periodic
        self.initial_delay = initial_delay
        self.backoff = backoff
        self.max_delay = max_delay
        self.scheduler_interval = scheduler_interval
        self.worker_type = worker_type
        self.mode = mode
        # None: wait for running tasks however long they take (huey's default).
        self.shutdown_timeout = math.inf if shutdown_timeout is None else shutdown_timeout
        self.utc = huey.utc if utc is None else utc
        if lease_timeout is not None:
            huey.lease_timeout = limits.check_lease_timeout(lease_timeout)
        self.check_worker_health = check_worker_health
        self.health_check_interval = float(health_check_interval)
        self.run_scheduler = scheduler
        storage = huey.storage
        if worker_type == "process" and not storage.process_safe:
            raise ConfigurationError(
                f"the {self.backend_description} backend keeps its data inside one process, so "
                "worker processes would not share it; use --worker-type thread or another backend"
            )
        if mode == "blocking" and not storage.queue.blocking:
            logger.warning(
                "the %s queue cannot wait for messages; polling instead", self.backend_description
            )
        self.blocking = storage.queue.blocking and mode != "polling"
        self.stopping = threading.Event()  # workers take no new work
        self.hard_stop = threading.Event()  # stop at once; release what is in flight
        # Set once a graceful stop has waited long enough: acks that keep failing are dropped
        # (the lease expires and the task runs again: at-least-once).
        self.acks_given_up = threading.Event()
        self._stopped = threading.Event()
        self._heartbeat = Heartbeat(self)
        self._scheduler = Scheduler(self)
        self._workers: list[Worker] = []
        # Worker threads share one GIL: while tasks are quick, the ones beyond the first park.
        self.gate = RunGate(self) if worker_type == "thread" and workers > 1 else None
        self._processes: list[ForkProcess] = []
        self._started = False
        self._worker_base = 0  # index offset for a forked child's worker name
        self._signals_received = 0
        # Signal numbers on their way from the handler to the thread that acts on them.
        self._signals: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._supervisor: threading.Thread | None = None
        self._supervising = threading.Lock()  # no worker is replaced once a stop has begun
        self.replaced = 0  # workers replaced (max_tasks or dead), for tests and operators
        # Process workers: the parent writes STOP_GRACEFUL or STOP_NOW into a shared integer
        # that its children poll (huey_core.processes).
        self._mp_state: Synchronized[int] | None = None

    # -- properties ----------------------------------------------------------------------------

    @property
    def lease_timeout(self) -> float:
        return self.huey.lease_timeout

    @property
    def backend_description(self) -> str:
        storage = self.huey.storage
        try:
            return mask_url(storage.describe())
        except Exception:  # noqa: BLE001 - a banner must not fail
            return type(storage).__name__

    @property
    def worker_list(self) -> list[Worker]:
        """The worker threads (empty in a process-type parent, whose workers are processes)."""
        return list(self._workers)

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler

    @property
    def heartbeat(self) -> Heartbeat:
        return self._heartbeat

    def identities(self) -> set[str]:
        """The `consumer` field of the events this consumer emits: "<host>:<pid>" of this
        process and of each worker process (for listeners that count only its own events)."""
        host = socket.gethostname()
        return {consumer_identity()} | {f"{host}:{p.pid}" for p in self._processes if p.pid}

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def stopped_at_once(self) -> bool:
        """True when the consumer stopped without waiting for running tasks."""
        return self.hard_stop.is_set()

    def to_datetime(self, timestamp: float) -> datetime.datetime:
        """The naive datetime periodic tasks are matched against: UTC or local time."""
        return clock.to_datetime(timestamp, self.utc)

    def enqueue_periodic(self, now: datetime.datetime) -> list[Task]:
        """Enqueue the periodic tasks due at `now` (deduplicated across consumers by the core)."""
        tasks = self.huey.enqueue_periodic(now)
        for task in tasks:
            logger.info("enqueued periodic task %s", task.name)
        return tasks

    # -- start / stop --------------------------------------------------------------------------

    def start(self) -> None:
        """Start workers, heartbeat, scheduler and periodic enqueuer in the background."""
        if self._started:
            raise RuntimeError("this consumer has already been started")
        self._started = True
        if self.flush_locks:
            self._flush_locks()
        if self.worker_type == "process":
            self._start_processes()
        else:
            self._heartbeat.start()
            for n in range(1, self.workers + 1):
                worker = Worker(self, self._worker_base + n)
                self._workers.append(worker)
                worker.start()
        if self.run_scheduler:
            self._scheduler.start()
        self._supervisor = threading.Thread(
            target=self._supervise, name="huey-supervisor", daemon=True
        )
        self._supervisor.start()

    def _flush_locks(self) -> None:
        """-f/-L: a consumer killed while a task held a lock left it behind; release it now."""
        flushed = self.huey.flush_locks(*self.extra_locks)
        if flushed:
            logger.warning("released stale locks: %s", ", ".join(sorted(flushed)))
        else:
            logger.info("no stale locks to release")

    def _child_options(self) -> dict[str, Any]:
        return {
            "workers": 1,
            "periodic": False,
            "initial_delay": self.initial_delay,
            "backoff": self.backoff,
            "max_delay": self.max_delay,
            "scheduler_interval": self.scheduler_interval,
            "worker_type": "thread",
            "mode": self.mode,
            "shutdown_timeout": self.shutdown_timeout,
            "utc": self.utc,
            "scheduler": False,
            "max_tasks": self.max_tasks,
            "graceful_signal": self.graceful_signal,
        }

    def _start_processes(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self._mp_state = ctx.RawValue("i", processes.RUNNING)
        for n in range(1, self.workers + 1):
            self._processes.append(self._spawn(ctx, n))

    def _spawn(self, ctx: ForkContext, n: int) -> ForkProcess:
        proc = ctx.Process(
            target=processes.child_main,
            args=(self.huey, self._child_options(), self._mp_state, n),
            name=f"huey-worker-{n}",
            daemon=False,
        )
        proc.start()
        return proc

    def stop(self, graceful: bool = True, timeout: float | None = None) -> None:
        """Stop the consumer and wait for it.

        graceful: stop taking work, wait up to `timeout` (default `shutdown_timeout`) for
        running tasks, then release the ones still running. Not graceful: release at once.
        The schedule stays in storage either way.
        """
        timeout = self.shutdown_timeout if timeout is None else timeout
        self.stopping.set()
        if self.gate is not None:
            self.gate.wake_all()  # parked workers leave at once
        with self._supervising:  # a replacement under way finishes first; none starts after
            pass
        self._scheduler.stop()
        if not graceful:
            self.hard_stop.set()
        if self._processes:
            self._stop_processes(graceful, timeout)
        else:
            self._stop_threads(graceful, timeout)
        self._heartbeat.stop()
        self._flush_events(5.0 if graceful else 1.0)
        self._stopped.set()

    def _flush_events(self, timeout: float) -> None:
        """Events are sent by a background thread: let the last ones out before returning."""
        try:
            self.huey.flush_events(timeout)
        except Exception:  # noqa: BLE001 - never fail a shutdown over events
            logger.debug("could not flush events", exc_info=True)

    def _stop_threads(self, graceful: bool, timeout: float) -> None:
        deadline = time.monotonic() + (timeout if graceful else 0.0)
        while time.monotonic() < deadline and not self.hard_stop.is_set():
            # Until every worker has left: finished its task and acknowledged it, also one whose
            # ack of a task that ended just before the stop is retrying (it is not busy then).
            if not any(w.is_alive() for w in self._workers):
                break
            time.sleep(0.05)
        if graceful and not self.hard_stop.is_set():
            reason = "shutdown timeout reached"
        else:
            reason = "immediate shutdown"
        self.acks_given_up.set()
        abandoned = [w for w in self._workers if w.busy and w.abandon(reason)]
        if abandoned:
            self._notify_interrupted()
        # Idle workers leave their dequeue within one blocking slice or polling sleep; workers
        # whose task was abandoned may run on for a while (threads cannot be killed): their
        # result no longer matters, so nobody waits for them.
        if self.hard_stop.is_set():
            return
        deadline = time.monotonic() + BLOCKING_WAIT + 1.0
        for worker in self._workers:
            if worker.thread is not None and worker not in abandoned:
                worker.thread.join(max(deadline - time.monotonic(), 0.0))

    def _notify_interrupted(self) -> None:
        """Signal and emit `interrupted` for the tasks shutdown gave up on."""
        try:
            self.huey.notify_interrupted_tasks()  # the core knows which tasks are running
        except Exception:  # noqa: BLE001 - events and signals must not stop a shutdown
            logger.debug("notify_interrupted_tasks failed", exc_info=True)

    def _stop_processes(self, graceful: bool, timeout: float) -> None:
        assert self._mp_state is not None
        if graceful:
            self._mp_state.value = processes.STOP_GRACEFUL
            # Children enforce the shutdown timeout themselves; the margin covers their exit.
            deadline = time.monotonic() + timeout + 5.0
            while time.monotonic() < deadline and not self.hard_stop.is_set():
                if not any(p.is_alive() for p in self._processes):
                    break
                time.sleep(0.05)
        self._mp_state.value = processes.STOP_NOW
        deadline = time.monotonic() + 3.0
        for proc in self._processes:
            proc.join(max(deadline - time.monotonic(), 0.0))
        for proc in self._processes:
            if proc.is_alive():
                logger.error(
                    "worker process %s did not stop; killing it (its lease expires and the task "
                    "runs again elsewhere)",
                    proc.pid,
                )
                proc.kill()
                proc.join(1.0)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the consumer has stopped; True when it has."""
        return self._stopped.wait(timeout)

    # -- supervision ---------------------------------------------------------------------------

    def _supervise(self) -> None:
        last_check = time.monotonic()
        while not self.stopping.wait(SUPERVISE_EVERY):
            due = time.monotonic() - last_check >= self.health_check_interval
            if due:
                last_check = time.monotonic()
            try:
                self.replace_workers(dead=self.check_worker_health and due)
            except Exception:  # noqa: BLE001 - the supervisor must outlive a backend hiccup
                logger.exception("replacing a worker failed; trying again")

    def check_health(self) -> None:
        """Replace every worker that died or reached max_tasks (what the supervisor does)."""
        self.replace_workers(dead=True)

    def replace_workers(self, dead: bool) -> None:
        """Replace workers that left after max_tasks, and with `dead` those that died."""
        with self._supervising:
            if self.stopping.is_set():
                return
            for i, worker in enumerate(self._workers):
                if worker.thread is None or worker.thread.is_alive():
                    continue
                if worker.recycled:
                    logger.info(
                        "%s finished %s tasks (max tasks); starting a new one",
                        worker.name,
                        self.max_tasks,
                    )
                elif dead:
                    logger.error("%s stopped unexpectedly; starting a new one", worker.name)
                    self._release_leases(worker.owner.__eq__)
                else:
                    continue
                self._workers[i] = Worker(self, worker.index)
                self._workers[i].start()
                self.replaced += 1
            for i, proc in enumerate(self._processes):
                if proc.is_alive() or not self._replace_process(proc, dead):
                    continue
                self._processes[i] = self._spawn(multiprocessing.get_context("fork"), i + 1)
                self.replaced += 1

    def _replace_process(self, proc: ForkProcess, dead: bool) -> bool:
        if proc.exitcode == processes.RECYCLED:
            logger.info(
                "worker process %s finished %s tasks (max tasks); starting a new one",
                proc.pid,
                self.max_tasks,
            )
            return True
        if not dead:
            return False
        code = proc.exitcode or 0
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        logger.error("worker process %s %s; starting a new one", proc.pid, how)
        prefix = f"{socket.gethostname()}:{proc.pid}:"
        self._release_leases(lambda owner: owner.startswith(prefix))
        return True

    def _release_leases(self, owned: Callable[[str], bool]) -> None:
        """Give the messages a dead worker held back to the queue now (their leases would
        otherwise keep them from every consumer until they expire)."""
        queue = self.huey.storage.queue
        released = 0
        for info in queue.leases():
            if owned(info.owner):
                queue.release(info.lease)
                released += 1
        if released:
            logger.warning("released %d message(s) the dead worker held; they run again", released)

    # -- the command-line loop -----------------------------------------------------------------

    def log_banner(self) -> None:
        logger.info(
            "huey consumer starting: instance %r on %s", self.huey.name, self.backend_description
        )
        if self.blocking:
            mode = "blocking"
        else:
            mode = (
                f"polling (delay {self.initial_delay} s, x{self.backoff}, max {self.max_delay} s)"
            )
        logger.info(
            "%d %s worker(s), %s mode, lease timeout %.1f s, scheduler every %.1f s, "
            "shutdown timeout %s",
            self.workers,
            self.worker_type,
            mode,
            self.lease_timeout,
            self.scheduler_interval,
            "none" if math.isinf(self.shutdown_timeout) else f"{self.shutdown_timeout:.1f} s",
        )
        if self.max_tasks is not None:
            logger.info("each worker is replaced after %d tasks", self.max_tasks)
        if self.graceful_signal is not None:
            other = "TERM" if self.graceful_signal == "INT" else "INT"
            logger.info("SIG%s stops gracefully, SIG%s at once", self.graceful_signal, other)
        names = sorted(cls.name for cls in self.huey.registry.periodic)
        if not self.periodic:
            logger.info("periodic tasks: disabled (--no-periodic)")
        elif names:
            clock_name = "UTC" if self.utc else "local time"
            logger.info("periodic tasks (%s): %s", clock_name, ", ".join(names))
        else:
            logger.info("periodic tasks: none registered")

    def stops_at_once(self, signum: int) -> bool:
        """True for the signal that is not the graceful one (with graceful_signal set)."""
        if self.graceful_signal is None:
            return False
        return signal.Signals(signum).name != f"SIG{self.graceful_signal}"

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler. Python runs it on the main thread between two of its steps, maybe
        while that thread holds a lock the stop needs (setting `stopping` from inside
        `stopping.set()` would wait forever), so it only hands the signal on: SimpleQueue.put
        may interrupt itself safely. The `huey-signals` thread acts on it."""
        self._signals.put(signum)

    def handle_signals(self, signals: tuple[int, ...]) -> Callable[[], None]:
        """Install the stop handlers for `signals`; return the function that puts back the
        handlers they replaced."""
        relay = threading.Thread(target=self._relay_signals, name="huey-signals", daemon=True)
        relay.start()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._signals.put(None)

        return restore

    def _relay_signals(self) -> None:
        while (signum := self._signals.get()) is not None:
            self.signal_received(signum)

    def signal_received(self, signum: int) -> None:
        """Stop as SIGTERM or SIGINT asks: the first gracefully (unless it is not the graceful
        signal), a second at once."""
        self._signals_received += 1
        name = signal.Signals(signum).name
        if self.stops_at_once(signum):
            logger.warning(
                "%s received: stopping now (the graceful signal is SIG%s), releasing running tasks",
                name,
                self.graceful_signal,
            )
            self.hard_stop.set()
        elif self._signals_received == 1:
            logger.info(
                "%s received: finishing running tasks (up to %.1f s); send it again to stop now",
                name,
                self.shutdown_timeout,
            )
        else:
            logger.warning("%s received again: stopping now, releasing running tasks", name)
            self.hard_stop.set()
        self.stopping.set()

    def run(
        self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT), banner: bool = True
    ) -> int:
        """Run until SIGTERM/SIGINT (or `stop()` from another thread); return the exit code.

        Must be called from the main thread (signal handlers live there).
        """
        restore_signals = self.handle_signals(signals)
        try:
            if banner:
                self.log_banner()
            self.start()
            if banner:
                self._log_ready()
            while not self.stopping.wait(0.5):
                pass
            self._shutdown()
            return 0
        finally:
            restore_signals()

    def _log_ready(self) -> None:
        if not self._processes:
            logger.info("consumer ready (pid %d)", os.getpid())
            return
        logger.info(
            "consumer ready (pid %d, worker processes %s)",
            os.getpid(),
            ", ".join(str(p.pid) for p in self._processes),
        )

    def _shutdown(self) -> None:
        self.stopping.set()
        self._scheduler.stop()
        if self.hard_stop.is_set():
            self.stop(graceful=False)
            logger.info("consumer stopped at once; running tasks were released to the queue")
            return
        # Graceful: stop() polls; a second signal sets hard_stop and cuts the wait short.
        self.stop(graceful=True)
        if self.hard_stop.is_set():
            logger.info("consumer stopped at once; running tasks were released to the queue")
        else:
            logger.info("consumer stopped")


def _check_options(
    workers: int,
    worker_type: str,
    mode: str,
    scheduler_interval: float,
    shutdown_timeout: float | None,
) -> None:
    limits.check_workers(workers)
    if worker_type not in WORKER_TYPES:
        raise ConfigurationError(
            f"unknown worker type {worker_type!r}; choose one of: {', '.join(WORKER_TYPES)}"
        )
    if mode not in MODES:
        raise ConfigurationError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    limits.check_scheduler_interval(scheduler_interval)
    limits.check_seconds("the shutdown timeout", shutdown_timeout, optional=True)


def _lock_names(names: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """huey's comma-separated `extra_locks` string, or a list of names."""
    if names is None:
        return ()
    if isinstance(names, str):
        names = names.split(",")
    return tuple(n.strip() for n in names if n.strip())
