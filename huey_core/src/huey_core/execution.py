"""Running a task: the checks before, the call, and what its outcome sets off.

`Executor.execute(task)` decides whether the task runs now (due, not revoked, not expired),
calls it under its timeout (an async task on the worker thread's event loop, huey_core.aio) and
turns what happened into an `Outcome`; `settle()` then does what the outcome calls for, in one
place: store the result or error, fire signals and events, run post-execute hooks, enqueue the
next pipeline step or error handler, report to a chord, or schedule the retry that
`huey_core.retries` decides.

Task failures never propagate out of `execute()`; a storage failure does (the consumer then
releases the message so it runs again). A KeyboardInterrupt inside the task means the process is
being stopped: the outcome is `interrupted`, nothing is settled, and the consumer releases the
message.
"""

from __future__ import annotations

import copy
import datetime
import inspect
import logging
import pickle
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from huey_core import aio, clock, keys, retries
from huey_core import signals as S
from huey_core.exceptions import (
    CancelExecution,
    PoisonMessage,
    RateLimitExceeded,
    RetryTask,
    TaskException,
    TaskLockedException,
    TaskTimeout,
    is_user_interrupt,
)
from huey_core.progress import ProgressReporter
from huey_core.protocols import Delivery
from huey_core.results import abort_chord_member, chord_member_of, report_to_chord
from huey_core.serializer import SKIPPED, Error
from huey_core.task import PeriodicTask, Task
from huey_core.timeouts import TaskTimer

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["Executor", "Hooks", "Outcome", "error_metadata"]

logger = logging.getLogger("huey")

Hook = Callable[..., Any]


@dataclass
class Outcome:
    """What happened to one task: ran or skipped, its value or exception, and what follows."""

    task: Task
    ran: bool = True  # False: not due, revoked, expired or canceled before it started
    value: Any = None
    exception: BaseException | None = None
    signal: str | None = None  # the signal that reports a failure (error, timeout, locked...)
    duration: float = 0.0
    retry_eta: datetime.datetime | None = None  # asked for by the exception (RetryTask...)
    interrupted: bool = False  # an exit signal cut it short: release, do not acknowledge

    @property
    def succeeded(self) -> bool:
        return self.ran and not self.interrupted and self.exception is None


@dataclass
class Hooks:
    """The pre-execute, post-execute, startup and shutdown hooks, by name."""

    pre_execute: dict[str, Hook] = field(default_factory=dict)
    post_execute: dict[str, Hook] = field(default_factory=dict)
    startup: dict[str, Hook] = field(default_factory=dict)
    shutdown: dict[str, Hook] = field(default_factory=dict)

    @staticmethod
    def adder(registry: dict[str, Hook], name: str | None) -> Callable[[Hook], Hook]:
        """A decorator that adds its function to `registry` under `name` (default: its name)."""

        def decorator(fn: Hook) -> Hook:
            registry[name or fn.__name__] = fn
            return fn

        return decorator

    @staticmethod
    def remove(registry: dict[str, Hook], name: str | Hook) -> bool:
        """Remove a hook by name or function; True when it was there."""
        key = name if isinstance(name, str) else name.__name__
        return registry.pop(key, None) is not None

    @staticmethod
    def run_each(registry: dict[str, Hook], kind: str) -> None:
        """Call every hook; a failing one is logged and the others still run.

        An async hook runs on this thread's task loop: a worker's on_startup can open the
        loop-bound clients its async tasks use.
        """
        for name, fn in list(registry.items()):
            try:
                value = fn()
                if inspect.isawaitable(value):
                    aio.run(value)
            except BaseException as exc:  # noqa: BLE001 - SystemExit too: see is_user_interrupt
                if is_user_interrupt(exc):
                    raise
                logger.exception("%s hook %s failed", kind, name)

    def before(self, task: Task) -> bool:
        """Run the pre-execute hooks; False when one raised CancelExecution."""
        for name, hook in list(self.pre_execute.items()):
            try:
                hook(task)
            except CancelExecution:
                logger.warning("task %s canceled by pre-execute hook %s", task.id, name)
                return False
            except BaseException as exc:  # noqa: BLE001 - SystemExit too: see is_user_interrupt
                if is_user_interrupt(exc):
                    raise
                logger.exception("pre-execute hook %s failed for task %s", name, task.id)
        return True

    def after(self, task: Task, value: Any, exception: BaseException | None) -> None:
        for name, hook in list(self.post_execute.items()):
            try:
                hook(task, value, exception)
            except BaseException as exc:  # noqa: BLE001 - SystemExit too: see is_user_interrupt
                if is_user_interrupt(exc):
                    raise
                logger.exception("post-execute hook %s failed for task %s", name, task.id)


def error_metadata(task: Task, exception: BaseException) -> dict[str, Any]:
    """What an error result holds: error (repr), retries left, traceback, task id."""
    tb = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
    if isinstance(exception, TaskException):
        error = exception.metadata.get("error") or repr(exception)
    else:
        error = repr(exception)
    return {"error": error, "retries": task.retries, "traceback": tb, "task_id": task.id}


def _traceback(exception: BaseException) -> str:
    return "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))


# exception type -> the signal reporting it (None: no failure signal, e.g. RetryTask)
_FAILURE_SIGNALS: tuple[tuple[type[BaseException], str | None], ...] = (
    (TaskTimeout, S.SIGNAL_TIMEOUT),
    (RateLimitExceeded, S.SIGNAL_RATE_LIMITED),
    (TaskLockedException, S.SIGNAL_LOCKED),
    (RetryTask, None),
    (CancelExecution, S.SIGNAL_CANCELED),
)


class Executor:
    """Runs tasks for one Huey instance (see the module docstring)."""

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self.in_flight: set[Task] = set()  # tasks running in this process, for shutdown
        self._local = threading.local()  # per worker: lease -> Task decoded by prepare()

    def prepare(self, batch: list[Delivery]) -> None:
        """Decode a claimed batch and read its revocations in one round trip, on the worker
        thread that will process() it. A message that does not decode is left to process()."""
        prepared: dict[str, Task] = {}
        for delivery in batch:
            try:
                prepared[delivery.lease] = self.huey.deserialize_task(delivery.data)
            except PoisonMessage:
                continue
        self._local.prepared = prepared
        if prepared:
            self.huey._revocations.prefetch(list(prepared.values()))

    def _decode(self, delivery: Delivery) -> Task:
        prepared: dict[str, Task] | None = getattr(self._local, "prepared", None)
        task = prepared.pop(delivery.lease, None) if prepared else None
        if task is None:
            return self.huey.deserialize_task(delivery.data)
        revocations = self.huey._revocations
        if not revocations.fresh(task):  # the batch took a while: read the rest again, at once
            revocations.prefetch([task, *prepared.values()])  # type: ignore[union-attr]
        return task

    # -- the consumer's entry point --------------------------------------------------------------

    def process(self, delivery: Delivery, worker: str = "") -> bool:
        """Handle one leased message; True when the caller should ack it, False to release it.

        Undecodable, unsigned/tampered, unknown-task and too-often-delivered messages are
        dead-lettered (and acked). Everything else goes through `execute()`. False means an exit
        signal cut the task short: it did not finish, so it must run again. Never raises because
        of a task or a message; a storage failure propagates (the caller releases the message).
        """
        huey = self.huey
        try:
            task = self._decode(delivery)
        except PoisonMessage as exc:
            huey.dead_letter(delivery.data, str(exc), deliveries=delivery.deliveries)
            return True
        if delivery.deliveries > huey.max_deliveries:
            reason = (
                f"delivered {delivery.deliveries} times (max_deliveries={huey.max_deliveries}); "
                "it probably kills its worker"
            )
            huey.dead_letter(delivery.data, reason, task=task, deliveries=delivery.deliveries)
            return True
        with huey.running_as(worker):
            outcome = self.execute(task)
        return not outcome.interrupted

    # -- deciding ---------------------------------------------------------------------------------

    def execute(self, task: Task, timestamp: datetime.datetime | None = None) -> Outcome:
        """Run `task` unless it is not due (then schedule it), revoked or expired; settle it."""
        huey = self.huey
        if timestamp is None:
            timestamp = clock.now(huey.utc)
        if not huey.ready_to_run(task, timestamp):
            huey.add_schedule(task)
            return Outcome(task, ran=False)
        if huey.is_revoked(task, timestamp, False):
            logger.warning(
                "task %s was revoked, not running it", task.id, extra=_log(task, "revoked")
            )
            self._skip(task, S.SIGNAL_REVOKED)
            return Outcome(task, ran=False)
        if task.expires_resolved and task.expires_resolved < timestamp:
            logger.info(
                "task %s expired at %s, not running it",
                task.id,
                task.expires_resolved,
                extra=_log(task, "expired"),
            )
            self._skip(task, S.SIGNAL_EXPIRED)
            return Outcome(task, ran=False)
        if not huey.hooks.before(task):
            self._skip(task, S.SIGNAL_CANCELED)
            return Outcome(task, ran=False)
        outcome = self.run(task)
        self.settle(outcome)
        return outcome

    def _skip(self, task: Task, signal: str) -> None:
        self.huey.send_signal(signal, task)
        if chord_member_of(task):
            if signal == S.SIGNAL_REVOKED and self.huey.get(keys.replaced(task.id)) is not None:
                return  # rescheduled: its copy reports to the chord
            abort_chord_member(self.huey, task, SKIPPED)

    # -- running ----------------------------------------------------------------------------------

    def run(self, task: Task) -> Outcome:
        """Call the task under its timeout; the outcome says how it went (nothing settled yet)."""
        logger.info("executing %s", task, extra=_log(task, "started"))
        self.huey.send_signal(S.SIGNAL_EXECUTING, task)
        start = time.monotonic()
        task.start_clock()
        task._progress = reporter = ProgressReporter(self.huey, task)
        self.in_flight.add(task)
        try:
            value = self._call(task)
        except KeyboardInterrupt:
            logger.warning(
                "task %s interrupted by an exit signal", task.id, extra=_log(task, "interrupted")
            )
            self.huey.send_signal(S.SIGNAL_INTERRUPTED, task)
            return Outcome(task, interrupted=True, duration=time.monotonic() - start)
        except BaseException as exc:  # noqa: BLE001 - whatever the task raises is its outcome
            return self._failure(task, exc, time.monotonic() - start)
        finally:
            self.in_flight.discard(task)
            task._progress = None
            reporter.flush()  # the last report lands before the task's result and events
        duration = time.monotonic() - start
        logger.info("%s finished in %0.3fs", task, duration, extra=_log(task, "finished", duration))
        return Outcome(task, value=value, duration=duration)

    @staticmethod
    def _call(task: Task) -> Any:
        start = time.monotonic()
        if task.is_async:  # cancelled at its timeout; no thread interrupts an event loop
            value = aio.run(task.execute(), task.timeout)
        else:
            timer = TaskTimer(task.timeout)
            with timer:
                value = task.execute()
                timer.finish()
            if inspect.iscoroutine(value):  # an async function behind a plain decorator
                value = aio.run(value, max(task.time_remaining, 0.001) if task.timeout else None)
        duration = time.monotonic() - start
        if task.timeout and duration > task.timeout:
            # A thread worker could not interrupt it; the late value is discarded.
            raise TaskTimeout(f"timeout {task.timeout}s (ran {duration:0.3f}s)")
        return value

    def _failure(self, task: Task, exc: BaseException, duration: float) -> Outcome:
        signal = S.SIGNAL_ERROR
        for kind, kind_signal in _FAILURE_SIGNALS:
            if isinstance(exc, kind):
                signal = kind_signal  # type: ignore[assignment]
                break
        else:
            if isinstance(exc, SystemExit):  # sys.exit() inside a task is a task failure
                logger.error("task %s called sys.exit(%s)", task.id, exc.code)
                exc = TaskException({"error": f"SystemExit({exc.code!r})"}).with_traceback(
                    exc.__traceback__
                )
            else:
                logger.exception(
                    "%s failed after %0.3fs",
                    task,
                    duration,
                    exc_info=exc,
                    extra=_log(task, "error", duration),
                )
        eta = retries.prepare(task, exc, self.huey.utc)
        _log_failure(task, exc, eta)
        return Outcome(task, exception=exc, signal=signal, duration=duration, retry_eta=eta)

    # -- settling ---------------------------------------------------------------------------------

    def settle(self, outcome: Outcome) -> None:
        """Do what the outcome calls for (see the module docstring)."""
        if not outcome.ran or outcome.interrupted:
            return
        if outcome.signal is not None:
            self._report_failure(outcome)
        if outcome.exception is None:
            self._succeeded(outcome)
        else:
            self._failed(outcome)

    def _report_failure(self, outcome: Outcome) -> None:
        exc = outcome.exception
        assert exc is not None and outcome.signal is not None
        extra = (exc,) if outcome.signal == S.SIGNAL_ERROR else ()
        self.huey.signals.send(outcome.signal, outcome.task, *extra)
        self.huey.emit_signal_event(
            outcome.signal,
            outcome.task,
            traceback=_traceback(exc),
            duration=outcome.duration,
            message=repr(exc),
        )

    def _keeps_results(self, task: Task) -> bool:
        return self.huey.results and not isinstance(task, PeriodicTask)

    def _succeeded(self, outcome: Outcome) -> None:
        huey, task, value = self.huey, outcome.task, outcome.value
        if self._keeps_results(task) and (value is not None or huey.store_none):
            self._store_result(task, value)
        huey.hooks.after(task, value, None)
        huey.send_signal(S.SIGNAL_COMPLETE, task, duration=outcome.duration)
        if task.on_complete:
            task.on_complete.extend_data(value)
            huey.enqueue(task.on_complete)
        if task.chord_config is not None:
            report_to_chord(huey, task.chord_config, value)

    def _store_result(self, task: Task, value: Any) -> None:
        try:
            self.huey.put_result(task.id, value)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError) as exc:
            # The serializer cannot hold this value (e.g. an object under JSON): the caller
            # gets an error instead of a message that fails forever.
            logger.error("result of task %s cannot be serialized: %s", task.id, exc)
            self.huey.put_result(task.id, Error(error_metadata(task, exc)))

    def _failed(self, outcome: Outcome) -> None:
        huey, task, exc = self.huey, outcome.task, outcome.exception
        assert exc is not None
        final = not task.retries
        surface = final or (
            huey.store_intermediate_errors and not isinstance(exc, retries.RETRY_LATER)
        )
        error: Error | None = Error(error_metadata(task, exc)) if surface else None
        if error is not None and self._keeps_results(task):
            step: Task | None = task
            while step is not None:  # the rest of a failed pipeline never runs
                huey.put_result(step.id, error)
                step = step.on_complete if final else None
        huey.hooks.after(task, outcome.value, exc)
        if surface and task.on_error:
            handler = copy.copy(task.on_error)  # on_error is shared across retries
            handler.extend_data(exc)
            huey.enqueue(handler)
        if final:
            abort_chord_member(huey, task, error)
            return
        huey.send_signal(S.SIGNAL_RETRYING, task)
        self._retry(task, outcome.retry_eta)

    def _retry(self, task: Task, eta: datetime.datetime | None) -> None:
        task.eta = retries.next_run(task, clock.now(self.huey.utc), eta)
        logger.info(
            "requeueing task %s, %s retries left",
            task.id,
            task.retries,
            extra=_log(task, "retrying"),
        )
        if task.eta is None:
            self.huey.enqueue(task)
        else:
            self.huey.add_schedule(task)


def _log(task: Task, status: str, duration: float | None = None) -> dict[str, Any]:
    """Fields of a task's log record that structured formatters (--log-format json) pick up;
    the status is the matching event's."""
    fields: dict[str, Any] = {"task_id": task.id, "task_name": task.name, "task_status": status}
    if duration is not None:
        fields["task_duration"] = round(duration, 6)
    return fields


def _log_failure(task: Task, exc: BaseException, eta: datetime.datetime | None) -> None:
    """The log line for an exception that is not a plain error (errors log their traceback)."""
    if isinstance(exc, TaskTimeout):
        logger.warning(
            "task %s timed out after %ss", task.id, task.timeout, extra=_log(task, "error")
        )
    elif isinstance(exc, RateLimitExceeded) and eta is not None:
        delay = task.retry_delay or exc.delay
        logger.info("task %s rate-limited on %r, retrying in %0.1fs", task.id, exc.key, delay)
    elif isinstance(exc, TaskLockedException):
        logger.warning("task %s not run: %s", task.id, exc)
    elif isinstance(exc, RetryTask):
        logger.info("task %s raised RetryTask, retrying", task.id)
    elif isinstance(exc, CancelExecution):
        logger.warning("task %s canceled itself", task.id)
