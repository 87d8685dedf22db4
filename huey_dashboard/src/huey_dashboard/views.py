"""What each page shows, read through the four protocols and the public Huey API only.

Nothing here knows a backend: counts come from `queue.size()`, `schedule.size()`,
`queue.leases()` and the data store's keys (classified by `huey_core.keys`), messages from
`peek()`, dead letters from `huey.dead_letters()`, events from the dashboard's EventFeed.

Messages are decoded only with the app's own serializer (so a signed app refuses unsigned
bytes, exactly as its consumer does), and what a page shows of arguments, results and errors is
a truncated repr with URL passwords masked.
"""

from __future__ import annotations

import collections
import datetime
import reprlib
import time
from typing import TYPE_CHECKING, Any

from huey_core import clock
from huey_core.cli.info import collect_info, periodic_schedules
from huey_core.events import EventStatus
from huey_core.plugins import mask_url
from huey_core.serializer import Error
from huey_core.task import PeriodicTask

if TYPE_CHECKING:
    from huey_core.api import Huey
    from huey_dashboard.feed import EventFeed

__all__ = [
    "PREVIEW_CHARS",
    "charts",
    "dead_letter_list",
    "describe",
    "overview",
    "preview",
    "queue_lists",
    "registered_tasks",
    "task_detail",
]

PREVIEW_CHARS = 200  # longest argument or result preview
PRIORITY_SAMPLE = 1000  # queued messages read to break the queue depth down by priority
SEARCH_LIMIT = 10_000  # queued or scheduled messages searched for one task id
LIST_LIMIT = 100  # messages listed per section of the queue page

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8
_REPR.maxlevel = 3


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A short, safe-to-show repr: nested and long values cut, URL passwords masked."""
    try:
        text = _REPR.repr(value)
    except Exception as exc:  # noqa: BLE001 - the app's own __repr__ may fail
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    text = mask_url(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def short(text: str, limit: int = 300) -> str:
    """A message for a page: one line, URL passwords masked, cut at `limit` characters."""
    text = mask_url(" ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def describe(huey: Huey, data: bytes, previews: bool = True) -> dict[str, Any]:
    """What a page shows of one stored message: id, task, arguments and settings.

    `decoded` is False, with `problem` saying why, when the app's serializer refuses the bytes
    (garbage, or unsigned when the app has a secret): then nothing of them is shown.
    """
    try:
        message = huey.serializer.deserialize(bytes(data))
    except Exception as exc:  # noqa: BLE001 - PoisonMessage, or anything a custom serializer raises
        return {"decoded": False, "problem": short(str(exc)), "id": None, "task": None}
    if not isinstance(message, dict):
        return {"decoded": False, "problem": "not a task message", "id": None, "task": None}
    name = message.get("name")
    known = huey.registry.tasks.get(name) if isinstance(name, str) else None
    eta = message.get("eta")
    return {
        "decoded": True,
        "problem": None if known else f"task {short(str(name), 80)} is not registered in this app",
        "id": message.get("id") if isinstance(message.get("id"), str) else None,
        "task": known.name if known else (name if isinstance(name, str) else None),
        "registry_name": name if isinstance(name, str) else None,
        "args": preview(message.get("args", ())) if previews else None,
        "kwargs": preview(message.get("kwargs", {})) if previews else None,
        "retries": message.get("retries"),
        "priority": message.get("priority"),
        "eta": clock.to_unix(eta, huey.utc) if isinstance(eta, datetime.datetime) else None,
    }


# -- the overview -------------------------------------------------------------------------------


def overview(huey: Huey, feed: EventFeed) -> dict[str, Any]:
    """Counts, leases, queue depth by priority, charts and the latest events."""
    info = collect_info(huey)
    for lease in info["leases"]:
        lease["owner"] = mask_url(lease["owner"])
    return {
        "info": info,
        "by_priority": _by_priority(huey, info["queued"]),
        "charts": charts(feed.rates(), feed.started),
        "latest": feed.recent(limit=12),
        "process_safe": huey.storage.process_safe,
    }


def _by_priority(huey: Huey, queued: int) -> dict[str, Any]:
    counts: collections.Counter[int] = collections.Counter()
    sample = huey.storage.queue.peek(PRIORITY_SAMPLE) if queued else []
    for data in sample:
        try:
            message = huey.serializer.deserialize(data)
            priority = message.get("priority") if isinstance(message, dict) else None
        except Exception:  # noqa: BLE001 - an undecodable message has no priority to show
            priority = None
        counts[priority if isinstance(priority, int) else 0] += 1
    rows = [{"priority": p, "count": n} for p, n in sorted(counts.items(), reverse=True)]
    return {"rows": rows, "sampled": len(sample), "partial": queued > len(sample)}


CHART_WIDTH = 600
CHART_HEIGHT = 120


def charts(rates: list[dict[str, Any]], since: float = 0.0) -> dict[str, Any]:
    """Bars for the throughput and failure-rate charts (SVG coordinates, drawn by templates).

    `since` is when counting began (the dashboard's start): the rate per minute is taken over
    the part of the window the dashboard saw.
    """
    finished = [b["counts"].get("finished", 0) for b in rates]
    failed = [b["counts"].get("error", 0) for b in rates]
    totals = [f + e for f, e in zip(finished, failed, strict=True)]
    peak = max(totals, default=0) or 1
    width = CHART_WIDTH / max(len(rates), 1)
    throughput, failure = [], []
    for i, (done, err) in enumerate(zip(finished, failed, strict=True)):
        x = round(i * width, 2)
        ok_h = CHART_HEIGHT * done / peak
        err_h = CHART_HEIGHT * err / peak
        throughput.append(
            {
                "x": x,
                "w": round(width * 0.9, 2),
                "ok_y": round(CHART_HEIGHT - ok_h, 2),
                "ok_h": round(ok_h, 2),
                "err_y": round(CHART_HEIGHT - ok_h - err_h, 2),
                "err_h": round(err_h, 2),
                "done": done,
                "err": err,
            }
        )
        rate = err / (done + err) if done + err else 0.0
        failure.append(
            {
                "x": x,
                "w": round(width * 0.9, 2),
                "h": round(CHART_HEIGHT * rate, 2),
                "y": round(CHART_HEIGHT * (1 - rate), 2),
                "rate": rate,
                "n": done + err,
            }
        )
    bucket = rates[1]["start"] - rates[0]["start"] if len(rates) > 1 else 0
    seconds = len(rates) * bucket
    observed = min(seconds, max(time.time() - since, bucket))
    total_done, total_err = sum(finished), sum(failed)
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "minutes": round(seconds / 60),
        "span": (
            f"over the last {round(seconds / 60)} min"
            if observed >= seconds
            else f"since the dashboard started, {_ago(time.time() - since)}"
        ),
        "bucket": bucket,
        "peak": peak if totals and max(totals) else 0,
        "throughput": throughput,
        "failure": failure,
        "finished": total_done,
        "errors": total_err,
        "per_minute": round((total_done + total_err) / (observed / 60), 1) if observed else 0.0,
        "failure_rate": total_err / (total_done + total_err) if total_done + total_err else 0.0,
    }


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 90 else f"{seconds / 60:.0f} min ago"


# -- one task -----------------------------------------------------------------------------------


def task_detail(huey: Huey, feed: EventFeed, task_id: str, previews: bool = True) -> dict[str, Any]:
    """Everything known about one task id: where its message is, its result, its events."""
    storage = huey.storage
    places: list[dict[str, Any]] = []
    for lease in storage.queue.leases():
        message = describe(huey, lease.data, previews)
        if message["id"] == task_id:
            places.append(
                {
                    "state": "in flight",
                    "message": message,
                    "owner": mask_url(lease.owner),
                    "deadline": lease.deadline,
                    "deliveries": lease.deliveries,
                }
            )
    for data in storage.queue.peek(SEARCH_LIMIT):
        message = describe(huey, data, previews)
        if message["id"] == task_id:
            places.append({"state": "queued", "message": message})
    for when, data in storage.schedule.peek(SEARCH_LIMIT):
        message = describe(huey, data, previews)
        if message["id"] == task_id:
            places.append({"state": "scheduled", "message": message, "at": when})
    for letter in huey.dead_letters():
        if letter.get("task_id") == task_id:
            places.append(
                {
                    "state": "dead-lettered",
                    "message": _payload(huey, letter, previews),
                    "letter": _letter_fields(letter),
                }
            )
    timeline = feed.timeline(task_id)
    result = _result(huey, task_id, previews)
    return {
        "id": task_id,
        "places": places,
        "result": result,
        "timeline": timeline,
        "progress": _progress(huey, timeline, task_id),
        "revoked": huey.is_revoked(task_id),
        "task": _task_name(places, timeline),
        "found": bool(places or timeline or result),
        "error": _last_error(timeline),
    }


def _task_name(places: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> str | None:
    for place in places:
        if place["message"].get("task"):
            return str(place["message"]["task"])
    for event in reversed(timeline):
        if isinstance(event.get("task"), str):
            return str(event["task"])
    return None


def _result(huey: Huey, task_id: str, previews: bool) -> dict[str, Any] | None:
    raw = huey.storage.store.peek(task_id)
    if raw is None:
        return None
    try:
        value = huey.serializer.deserialize(raw)
    except Exception as exc:  # noqa: BLE001 - unsigned or unreadable: say so, show nothing
        return {"error": False, "value": None, "problem": short(str(exc))}
    if isinstance(value, Error):
        meta = value.metadata
        return {
            "error": True,
            "value": preview(meta.get("error"), 500),
            "traceback": mask_url(str(meta.get("traceback") or "")),
            "problem": None,
            "retries": meta.get("retries"),
        }
    return {"error": False, "value": preview(value) if previews else "(hidden)", "problem": None}


def _last_error(timeline: list[dict[str, Any]]) -> dict[str, Any] | None:
    for event in reversed(timeline):
        if event.get("error") and event.get("traceback"):
            return {
                "status": event.get("status"),
                "traceback": event["traceback"],
                "timestamp": event.get("timestamp"),
            }
    return None


def _progress(huey: Huey, timeline: list[dict[str, Any]], task_id: str) -> dict[str, Any] | None:
    """The latest progress a task reported: its newest progress event, else the stored key."""
    latest: dict[str, Any] | None = None
    for event in reversed(timeline):
        if event.get("status") == EventStatus.PROGRESS.value:
            latest = {k: event.get(k) for k in ("done", "total", "note")}
            latest["time"] = event.get("timestamp")
            break
    if latest is None:
        stored = huey.progress(task_id)
        if stored is not None:
            latest = stored._asdict()
    if latest is None:
        return None
    done, total = latest.get("done"), latest.get("total")
    numeric = isinstance(done, (int, float)) and isinstance(total, (int, float)) and total > 0
    latest["fraction"] = min(max(done / total, 0.0), 1.0) if numeric else None  # type: ignore[operator]
    if latest.get("note") is not None:
        latest["note"] = short(str(latest["note"]), 200)
    return latest


# -- lists --------------------------------------------------------------------------------------


def queue_lists(huey: Huey, previews: bool = True) -> dict[str, Any]:
    storage = huey.storage
    queued = [describe(huey, data, previews) for data in storage.queue.peek(LIST_LIMIT)]
    scheduled = [
        dict(describe(huey, data, previews), at=when)
        for when, data in storage.schedule.peek(LIST_LIMIT)
    ]
    return {
        "queued": queued,
        "queued_total": storage.queue.size(),
        "scheduled": scheduled,
        "scheduled_total": storage.schedule.size(),
        "limit": LIST_LIMIT,
    }


def _letter_fields(letter: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(letter.get("id")),
        "reason": mask_url(str(letter.get("reason") or "")),
        "time": letter.get("time"),
        "task": letter.get("task"),
        "task_id": letter.get("task_id"),
        "deliveries": letter.get("deliveries"),
    }


def _payload(huey: Huey, letter: dict[str, Any], previews: bool) -> dict[str, Any]:
    payload = letter.get("payload")
    if not isinstance(payload, bytes):
        return {"decoded": False, "problem": "unreadable record", "id": None, "task": None}
    return describe(huey, payload, previews)


def dead_letter_list(huey: Huey, previews: bool = True) -> list[dict[str, Any]]:
    """Every dead letter, newest first, with what can be shown of its message."""
    letters = [
        dict(_letter_fields(letter), message=_payload(huey, letter, previews))
        for letter in huey.dead_letters()
    ]
    letters.reverse()
    return letters


def registered_tasks(huey: Huey) -> dict[str, Any]:
    """Every registered task with its settings and whether its kind is revoked; periodic ones."""
    rows = []
    for name, cls in sorted(huey.registry.tasks.items()):
        rows.append(
            {
                "name": cls.name,
                "registry_name": name,
                "retries": cls.default_retries,
                "retry_delay": cls.default_retry_delay,
                "priority": cls.default_priority,
                "timeout": cls.default_timeout,
                "periodic": issubclass(cls, PeriodicTask),
                "revoked": huey.is_revoked(cls),
            }
        )
    return {"tasks": rows, "periodic": periodic_schedules(huey)}
