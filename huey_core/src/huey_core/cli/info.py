"""`huey info`: what an instance holds, for operators."""

from __future__ import annotations

import datetime
import json
import math
import time
from typing import Any

import click

from huey_core import clock, keys, plugins
from huey_core.api import Huey
from huey_core.cli.base import (
    Finite,
    app,
    backend_options,
    import_path_arg,
    sigterm_as_interrupt,
)
from huey_core.crontab import Crontab, next_match
from huey_core.protocols import LeaseInfo


@click.command()
@import_path_arg
@backend_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (one per refresh).")
@click.option("--watch", is_flag=True, help="Refresh until interrupted (Ctrl-C).")
@click.option(
    "--interval",
    type=Finite(0.1),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between refreshes with --watch.",
)
def info(
    import_path: str,
    backend: str | None,
    url: str | None,
    as_json: bool,
    watch: bool,
    interval: float,
) -> None:
    """Show what an instance holds: queued, scheduled, in flight, dead letters, results, tasks.

    In-flight messages are listed with the consumer that leases them, their task, how often
    they were delivered and when the lease expires unless the consumer extends it.
    """
    huey = app(import_path, backend, url)
    with sigterm_as_interrupt():
        while True:
            data = collect_info(huey)
            if as_json:
                click.echo(json.dumps(data, default=str))
            else:
                if watch:
                    click.clear()
                click.echo(format_info(data))
            if not watch:
                return
            time.sleep(interval)


def collect_info(huey: Huey) -> dict[str, Any]:
    """Everything `huey info` shows, as JSON-ready data (no passwords, no payload bytes)."""
    storage = huey.storage
    now = time.time()
    items = storage.store.items()
    started = _running_since(items)
    in_flight = [
        _lease_info(huey, lease, started.get(lease.lease), now) for lease in storage.queue.leases()
    ]
    kinds = classify_keys(huey, items)
    return {
        "name": huey.name,
        "backend": plugins.mask_url(storage.describe()),
        "time": now,
        "queued": storage.queue.size(),
        "scheduled": storage.schedule.size(),
        "in_flight": len(in_flight),
        "dead_letters": len(kinds[keys.KeyKind.DEAD_LETTER]),
        "results": len(kinds[keys.KeyKind.RESULT]),
        "revoked": len(kinds[keys.KeyKind.REVOKED]),
        "locks": sorted(keys.lock_name(key) for key in kinds[keys.KeyKind.LOCK]),
        "stored_keys": len(items),
        "leases": in_flight,
        "tasks": sorted(huey.registry.tasks),
        "periodic_tasks": periodic_schedules(huey),
    }


def _lease_info(huey: Huey, lease: LeaseInfo, since: float | None, now: float) -> dict[str, Any]:
    """One in-flight message; `odd` says what is wrong with it, if anything (else None)."""
    task_id, task_name, readable = _peek_message(huey, lease.data)
    deadline = lease.deadline
    if deadline is not None and not math.isfinite(deadline):
        deadline = None  # JSON has no nan or infinity, and neither is a time
    odd = None
    if deadline is None:
        odd = "the lease has no deadline; the next scheduler run recovers it"
    elif deadline < now:
        odd = (
            "the lease expired: its consumer stopped extending it (killed?); the next "
            "scheduler run recovers it"
        )
    elif not readable:
        odd = "the message cannot be decoded here; it is dead-lettered when delivered again"
    return {
        "task": task_name,
        "id": task_id,
        "owner": lease.owner,
        "deliveries": lease.deliveries,
        "started": since,
        # None until the consumer's next heartbeat (lease_timeout / 3) records the start.
        "age": None if since is None else round(max(now - since, 0.0), 3),
        "deadline": deadline,
        "expires_in": None if deadline is None else round(deadline - now, 3),
        "odd": odd,
    }


def format_info(data: dict[str, Any]) -> str:
    """The human-readable `huey info` text."""
    lines = [
        f"name: {data['name']}",
        f"backend: {data['backend']}",
        f"queued: {data['queued']}",
        f"scheduled: {data['scheduled']}",
        f"in flight: {data['in_flight']}",
    ]
    for lease in data["leases"]:
        age = "just started" if lease["age"] is None else f"running {_duration(lease['age'])}"
        expires = lease["expires_in"]
        until = "no deadline" if expires is None else f"lease expires in {expires:.0f} s"
        lines.append(
            f"  {lease['task'] or '?'} {lease['id'] or '?'} leased by {lease['owner']} "
            f"({age}, delivery {lease['deliveries']}, {until})"
        )
        if lease["odd"]:
            lines.append(f"    odd: {lease['odd']}")
    lines += [
        f"dead letters: {data['dead_letters']}",
        f"results: {data['results']}",
        f"revoked: {data['revoked']}",
        f"locks: {', '.join(data['locks']) if data['locks'] else 0}",
        f"tasks: {', '.join(data['tasks']) or 'none'}",
    ]
    periodic = data["periodic_tasks"]
    lines.append(f"periodic tasks: {'' if periodic else 'none'}".rstrip())
    for entry in periodic:
        nxt = entry["next_run"]
        when = (
            datetime.datetime.fromtimestamp(nxt).isoformat(sep=" ", timespec="minutes")
            if nxt is not None
            else "not within a week"
        )
        lines.append(f"  {entry['task']}  {entry['schedule']}  next: {when}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _running_since(items: dict[str, bytes]) -> dict[str, float]:
    """lease -> unix time its task started, from the consumers' `inflight:` records."""
    since: dict[str, float] = {}
    for key, raw in items.items():
        if not key.startswith(keys.INFLIGHT):
            continue
        try:
            for lease, entry in json.loads(raw).items():
                if isinstance(entry, dict) and isinstance(entry.get("since"), (int, float)):
                    since[lease] = float(entry["since"])
        except (ValueError, AttributeError, TypeError):
            continue  # a record from another version; the age is just unknown
    return since


def _peek_message(huey: Huey, data: bytes) -> tuple[str | None, str | None, bool]:
    """(task id, task name, decodable) of a queued message; what can be read of an odd one."""
    try:
        task = huey.deserialize_task(data)
    except BaseException:  # noqa: BLE001 - a poison message or a task this app does not know
        return (*huey.codec.peek_names(data), False)
    return task.id, task.name, True


def classify_keys(huey: Huey, items: dict[str, bytes]) -> dict[keys.KeyKind, list[str]]:
    """The data store's keys by what the core keeps in them (see huey_core.keys)."""
    parts: dict[keys.KeyKind, list[str]] = {kind: [] for kind in keys.KeyKind}
    for key in items:
        parts[keys.classify(key, huey.name)].append(key)
    return parts


def periodic_schedules(huey: Huey) -> list[dict[str, Any]]:
    """Each periodic task with its schedule and the next minute it runs (within a week)."""
    now = clock.now(huey.utc)
    out = []
    for cls in huey.registry.periodic:
        check = cls.crontab
        next_run = None
        if check is not None:
            due = next_match(check, now)
            next_run = None if due is None else clock.to_unix(due, huey.utc)
        schedule = check.text if isinstance(check, Crontab) else "custom"
        out.append({"task": cls.name, "schedule": schedule, "next_run": next_run})
    return sorted(out, key=lambda e: e["task"])
