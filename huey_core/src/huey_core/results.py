"""Results: the handle a call returns, groups of them, and chords.

`Result.get()` reads the stored value (an `Error` becomes `TaskException`); async code awaits
it instead (`await result`, `await result.aget(timeout=5)`), which polls the store from a thread
with asyncio.sleep between reads and so never blocks the event loop. A group enqueues
tasks together; a chord runs its members in parallel and then one callback with all their
results, in member order. Chord members report through the data store: each writes its result
under `chord:<cid>:<i>` and increments `chord:<cid>`; the member whose increment reaches the size
enqueues the callback.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import functools
import time
import uuid
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from huey_core import aio, clock, keys
from huey_core.exceptions import ResultTimeout, TaskException
from huey_core.progress import Progress, read_progress
from huey_core.serializer import Error
from huey_core.task import ChordConfig, Task, signature

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["ChordResult", "EmptyData", "Result", "ResultGroup", "chord", "group"]

WAIT_CHUNK = 5.0  # seconds per store.wait() call when Result.get() waits without a timeout


class _Empty:
    def __repr__(self) -> str:
        return "EmptyData"


EmptyData: Any = _Empty()


class Result:
    """A handle on a task's future result. `result()` is `result.get()`."""

    def __init__(self, huey: Huey, task: Task) -> None:
        self.huey = huey
        self.task = task
        self.revoke_id = task.revoke_id
        self._result: Any = EmptyData

    def __repr__(self) -> str:
        return f"<Result: task {self.id}>"

    @property
    def id(self) -> str:
        return self.task.id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.get(*args, **kwargs)

    def is_ready(self) -> bool:
        """True when the result is in; it is then read into this handle (and off the store)."""
        return self._get() is not EmptyData

    def _get(self, preserve: bool = False) -> Any:
        if self._result is EmptyData:
            raw = self.huey.get_raw(self.id, peek=preserve)
            if raw is not EmptyData:
                self._result = self.huey.serializer.deserialize(raw)
        return self._result

    def get_raw_result(
        self,
        blocking: bool = False,
        timeout: float | None = None,
        backoff: float = 1.15,
        max_delay: float = 1.0,
        revoke_on_timeout: bool = False,
        preserve: bool = False,
    ) -> Any:
        value = self._get(preserve)
        if value is not EmptyData:
            return value
        if not blocking:
            return None
        # The store wakes us when the key is written (natively where the backend can), so
        # `backoff`/`max_delay` are accepted for huey compatibility but not needed.
        deadline = None if timeout is None else time.monotonic() + timeout
        store = self.huey.storage.store
        while True:
            remaining = WAIT_CHUNK if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            arrived = store.wait(self.id, min(remaining, WAIT_CHUNK))
            value = self._get(preserve)
            if value is not EmptyData:
                return value
            if arrived:
                break  # it was there but another reader took it: it will not come back
        if revoke_on_timeout:
            self.revoke()
        raise ResultTimeout(f"timed out after {timeout}s waiting for the result of task {self.id}")

    def get(
        self,
        blocking: bool = False,
        timeout: float | None = None,
        backoff: float = 1.15,
        max_delay: float = 1.0,
        revoke_on_timeout: bool = False,
        preserve: bool = False,
    ) -> Any:
        """The task's return value; None when not ready and not blocking.

        Raises TaskException (error, traceback and retries in `.metadata`) when the task failed,
        ResultTimeout when `blocking` and `timeout` seconds pass. The stored result is consumed
        unless `preserve=True`; this handle remembers it either way.
        """
        value = self.get_raw_result(
            blocking, timeout, backoff, max_delay, revoke_on_timeout, preserve
        )
        if isinstance(value, Error):
            raise TaskException(value.metadata)
        return value

    async def aget(
        self,
        timeout: float | None = None,
        *,
        blocking: bool = True,
        backoff: float = 1.5,
        max_delay: float = 0.5,
        revoke_on_timeout: bool = False,
        preserve: bool = False,
    ) -> Any:
        """`get(blocking=True)` for async code: waits without blocking the event loop.

        Reads run in a thread; between reads it sleeps 10 ms, growing by `backoff` up to
        `max_delay` seconds (so a result is seen at most that late). `blocking=False` reads once
        and returns None when the task has not finished. Raises like get().
        """
        if blocking:
            read = functools.partial(self._get, preserve)
            value = await aio.poll(read, EmptyData, timeout, backoff, max_delay)
        else:
            value = await asyncio.to_thread(self._get, preserve)
            if value is EmptyData:
                return None
        if value is EmptyData:
            if revoke_on_timeout:
                await asyncio.to_thread(self.revoke)
            raise ResultTimeout(
                f"timed out after {timeout}s waiting for the result of task {self.id}"
            )
        if isinstance(value, Error):
            raise TaskException(value.metadata)
        return value

    def __await__(self) -> Generator[Any, None, Any]:
        """`await result`: the value, waiting as long as it takes (see aget)."""
        return self.aget().__await__()

    def progress(self) -> Progress | None:
        """The latest progress the task reported (one read; the result is not consumed)."""
        return read_progress(self.huey, self.id)

    async def aprogress(self) -> Progress | None:
        """progress() for async code (the read runs in a thread)."""
        return await asyncio.to_thread(self.progress)

    def is_revoked(self) -> bool:
        return self.huey.is_revoked(self.task, peek=True)

    def revoke(self, revoke_once: bool = True) -> None:
        self.huey.revoke(self.task, revoke_once=revoke_once)

    def restore(self) -> bool:
        return self.huey.restore(self.task)

    def reschedule(
        self,
        eta: datetime.datetime | None = None,
        delay: float | None = None,
        expires: Any = None,
        priority: int | None = None,
        preserve_pipeline: bool = True,
    ) -> Any:
        """Revoke this task and enqueue a copy (new id) for `eta`/`delay`, or now.

        A chord member's copy reports to the chord; the revoked original, skipped whenever it
        comes up, does not (the chord would otherwise count it, as SKIPPED, and the copy too).
        """
        if eta is not None or delay is not None:
            eta = clock.normalize_time(eta, delay, self.huey.utc)
        task = type(self.task)(
            self.task.args,
            self.task.kwargs,
            eta=eta,
            retries=self.task.retries,
            retry_delay=self.task.retry_delay,
            retry_backoff=self.task.retry_backoff,
            priority=self.task.priority if priority is None else priority,
            expires=self.task.expires if expires is None else expires,
            timeout=self.task.timeout,
            chord_config=self.task.chord_config,
            on_complete=self.task.on_complete if preserve_pipeline else None,
            on_error=self.task.on_error if preserve_pipeline else None,
        )
        if chord_member_of(task):
            self.huey.put(keys.replaced(self.task.id), True)
        self.revoke()
        return self.huey.enqueue(task)

    def reset(self) -> None:
        self._result = EmptyData


class ResultGroup:
    """Results of a group, map or pipeline: `get()` returns a list."""

    def __init__(self, results: list[Any]) -> None:
        self._results = results

    def get(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [result.get(*args, **kwargs) for result in self._results]

    __call__ = get

    async def aget(self, *args: Any, **kwargs: Any) -> list[Any]:
        """Every value, in order, awaited together (options of Result.aget)."""
        return list(await asyncio.gather(*(r.aget(*args, **kwargs) for r in self._results)))

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self.aget().__await__()

    def __getitem__(self, idx: int) -> Any:
        return self._results[idx].get(True)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def as_completed(self, backoff: float = 1.15, max_delay: float = 1.0) -> Iterator[Any]:
        """Yield values in completion order."""
        pending = deque(self._results)
        delays = {r.id: 0.0 for r in pending}
        while pending:
            result = pending.popleft()
            if delays[result.id]:
                time.sleep(delays[result.id])
            if result._get() is EmptyData:
                pending.append(result)
                delays[result.id] = min((delays[result.id] or 0.05) * backoff, max_delay)
            else:
                yield result.get()


class ChordResult:
    """`get()` returns the chord callback's value; `.results` holds the members' results."""

    def __init__(
        self, results: list[Result], callback: Result, pipeline: ResultGroup | None = None
    ) -> None:
        self.results = ResultGroup(results)
        self.callback = callback
        self.pipeline_results = pipeline

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.callback.get(*args, **kwargs)

    __call__ = get

    async def aget(self, *args: Any, **kwargs: Any) -> Any:
        return await self.callback.aget(*args, **kwargs)

    def __await__(self) -> Generator[Any, None, Any]:
        return self.aget().__await__()

    def reset(self) -> None:
        self.callback.reset()


class group:  # noqa: N801 - huey's name
    """Tasks enqueued together: `huey.enqueue(group([t.s(1), t.s(2)]))` -> ResultGroup."""

    def __init__(self, tasks: Iterable[Task]) -> None:
        self.tasks = list(tasks)

    def then(self, task: Any, *args: Any, **kwargs: Any) -> chord:
        """A chord: `task` runs once with the list of every member's result."""
        return chord(self.tasks, signature(task, args, kwargs))

    def error(self, *args: Any, **kwargs: Any) -> group:
        for task in self.tasks:
            task.error(*args, **kwargs)
        return self


class chord:  # noqa: N801 - huey's name
    """Members run in parallel; the callback gets their results as one list, in member order."""

    def __init__(self, tasks: Iterable[Any], callback: Any) -> None:
        self.tasks = list(tasks)
        self.callback = signature(callback)

    def then(self, task: Any, *args: Any, **kwargs: Any) -> chord:
        self.callback.then(task, *args, **kwargs)
        return self

    def error(self, task: Any, *args: Any, **kwargs: Any) -> chord:
        self.callback.error(task, *args, **kwargs)
        return self


# ------------------------------------------------------------------------ enqueueing and reporting


def pipeline_results(huey: Huey, task: Task | None) -> list[Result]:
    """One Result per step of the pipeline starting at `task`."""
    results = []
    while task is not None:
        results.append(Result(huey, task))
        task = task.on_complete
    return results


def enqueue_chord(huey: Huey, chord_obj: chord) -> ChordResult:
    """Enqueue every member, each pipeline's last step reporting to the chord."""
    cid = str(uuid.uuid4())
    size = len(chord_obj.tasks)
    results = []
    for idx, member in enumerate(chord_obj.tasks):
        if isinstance(member, group):
            raise ValueError("a group cannot be a chord member; turn it into a chord with .then()")
        head = member.callback if isinstance(member, chord) else member
        tail = head
        while tail.on_complete is not None:
            tail = tail.on_complete
        tail.chord_config = ChordConfig(cid, size, idx, chord_obj.callback)
        if isinstance(member, chord):
            enqueue_chord(huey, member)
        else:
            huey.enqueue(head)
        results.append(Result(huey, tail))
    if not size:
        callback = copy.copy(chord_obj.callback)
        callback.extend_data(([],))
        huey.enqueue(callback)
    pipeline = pipeline_results(huey, chord_obj.callback)
    return ChordResult(results, pipeline[0], ResultGroup(pipeline) if len(pipeline) > 1 else None)


def report_to_chord(huey: Huey, cc: ChordConfig, value: Any) -> None:
    """Record a member's result; the member that completes the count enqueues the callback."""
    huey.put(keys.chord_member(cc.cid, cc.idx), value)
    if huey.storage.store.incr(keys.chord_count(cc.cid)) == cc.size:
        huey.delete(keys.chord_count(cc.cid))
        results = [huey.get(keys.chord_member(cc.cid, i)) for i in range(cc.size)]
        callback = cc.callback
        callback.extend_data((results,))
        huey.enqueue(callback)


def chord_member_of(task: Task | None) -> bool:
    """True when `task` or a later step of its pipeline is a member of a chord."""
    while task is not None:
        if task.chord_config is not None:
            return True
        task = task.on_complete
    return False


def abort_chord_member(huey: Huey, task: Task | None, value: Any) -> None:
    """The rest of a pipeline will not run: report `value` for it to its chord, if any."""
    while task is not None:
        if task.chord_config is not None:
            report_to_chord(huey, task.chord_config, value)
            return
        task = task.on_complete
