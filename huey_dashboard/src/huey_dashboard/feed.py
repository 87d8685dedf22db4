"""The dashboard's memory of the event stream: recent events, per-task timelines, rates.

One subscription per dashboard process (huey_core.events.EventListener) feeds every page: the
live feed, each task's timeline and progress, and the throughput and failure-rate charts. The
stream is live, not a log: the dashboard remembers what it saw since it started, within bounds.
Browsers get events through `Subscriber`s, one asyncio queue each, filled from the listener
thread without ever blocking it.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from huey_core.events import EventListener
from huey_core.plugins import mask_url

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["EventFeed", "Subscriber"]

Event = dict[str, Any]
_LONG_TEXT = 20_000  # characters kept of a traceback or message


def clean(event: Event) -> Event:
    """The event as pages show it: URL passwords masked, long texts cut, keys as strings."""
    out: Event = {}
    for key, value in event.items():
        if isinstance(value, str):
            if "://" in value:
                value = mask_url(value)
            if len(value) > _LONG_TEXT:
                value = value[:_LONG_TEXT] + "\n[... cut]"
        elif not (value is None or isinstance(value, (bool, int, float))):
            value = mask_url(str(value))[:200]  # a nested value another version sent
        out[str(key)] = value
    return out


class Subscriber:
    """One browser's live feed: events matching `accept`, queued for its SSE response.

    `put` is called from the listener thread; the queue belongs to the server's event loop, so
    the hand-over goes through `call_soon_threadsafe`. A browser that cannot keep up loses
    events (counted in `dropped`), never the listener's time.
    """

    MAX_QUEUED = 500

    def __init__(self, loop: asyncio.AbstractEventLoop, accept: Callable[[Event], bool]) -> None:
        self.loop = loop
        self.accept = accept
        self.queue: asyncio.Queue[Event] = asyncio.Queue(self.MAX_QUEUED)
        self.dropped = 0

    def put(self, event: Event) -> None:
        if not self.accept(event):
            return
        try:
            self.loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:  # the loop is closed: the server is stopping
            pass

    def _put(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1


class EventFeed:
    """Keeps what the pages need from the event stream of `huey`."""

    RECENT = 1000  # events kept for the feed page
    TASKS = 5000  # task ids whose timeline is kept (least recently updated go first)
    TIMELINE = 100  # events kept per task
    BUCKET = 10.0  # seconds per bar of the charts
    WINDOW = 900.0  # seconds the charts cover

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self.started = time.time()
        self._lock = threading.Lock()
        self._recent: collections.deque[Event] = collections.deque(maxlen=self.RECENT)
        self._timelines: collections.OrderedDict[str, list[Event]] = collections.OrderedDict()
        self._buckets: dict[int, collections.Counter[str]] = {}
        self._subscribers: set[Subscriber] = set()
        self.version = 0  # grows with every event: pages compare it to know when to refresh
        self.listener = EventListener(huey, self.add, name="huey-dashboard")

    def start(self, ready_timeout: float = 10.0) -> bool:
        """Subscribe; True once the subscription is open (within `ready_timeout` seconds)."""
        self.listener.start()
        return self.listener.ready.wait(ready_timeout)

    def stop(self) -> None:
        self.listener.stop()

    # -- the listener's side ------------------------------------------------------------------

    def add(self, event: Event) -> None:
        if event.get("huey") not in (None, self.huey.name):
            return  # another instance sharing the channel or table
        event = clean(event)
        stamp = event.get("timestamp")
        if not isinstance(stamp, (int, float)):
            event["timestamp"] = stamp = time.time()
        with self._lock:
            self.version += 1
            self._recent.append(event)
            task_id = event.get("id")
            if isinstance(task_id, str) and task_id:
                timeline = self._timelines.pop(task_id, [])
                timeline.append(event)
                self._timelines[task_id] = timeline[-self.TIMELINE :]
                while len(self._timelines) > self.TASKS:
                    self._timelines.popitem(last=False)
            bucket = int(stamp // self.BUCKET)
            self._buckets.setdefault(bucket, collections.Counter())[str(event.get("status"))] += 1
            oldest = bucket - int(self.WINDOW // self.BUCKET)
            for old in [b for b in self._buckets if b < oldest]:
                del self._buckets[old]
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.put(event)

    # -- the pages' side ----------------------------------------------------------------------

    def subscribe(self, accept: Callable[[Event], bool]) -> Subscriber:
        subscriber = Subscriber(asyncio.get_running_loop(), accept)
        with self._lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    def recent(
        self, accept: Callable[[Event], bool] | None = None, limit: int = 200
    ) -> list[Event]:
        """The newest events first, at most `limit`, those `accept` takes."""
        with self._lock:
            events = list(self._recent)
        events.reverse()
        if accept is not None:
            events = [e for e in events if accept(e)]
        return events[:limit]

    def timeline(self, task_id: str) -> list[Event]:
        """The events of one task seen since the dashboard started, oldest first."""
        with self._lock:
            return list(self._timelines.get(task_id, ()))

    def task_names(self) -> list[str]:
        with self._lock:
            names = {e.get("task") for e in self._recent}
        return sorted(n for n in names if isinstance(n, str))

    def rates(self, now: float | None = None) -> list[dict[str, Any]]:
        """One entry per BUCKET seconds over the last WINDOW: its start and event counts."""
        now = time.time() if now is None else now
        last = int(now // self.BUCKET)
        count = int(self.WINDOW // self.BUCKET)
        with self._lock:
            buckets = {b: dict(c) for b, c in self._buckets.items()}
        return [
            {"start": b * self.BUCKET, "counts": buckets.get(b, {})}
            for b in range(last - count + 1, last + 1)
        ]
