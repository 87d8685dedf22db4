"""The operator commands: `backends`, `events`, `enqueue`, `flush`, `dead-letters`."""

from __future__ import annotations

import datetime
import json
import os
import sys
from typing import Any

import click

from huey_core import clock, limits, plugins
from huey_core.api import Huey
from huey_core.cli.base import (
    Finite,
    UserError,
    app,
    backend_options,
    import_path_arg,
    sigterm_as_interrupt,
)
from huey_core.cli.info import classify_keys
from huey_core.events import EventStatus
from huey_core.keys import KeyKind
from huey_core.task import Task


@click.command()
def backends() -> None:
    """List every installed storage backend with its distribution, version and URL schemes."""
    found = plugins.backends()
    if not found:
        click.echo('no backends installed; try: pip install "huey-core[sql]"')
        return
    rows = [
        (
            info.name,
            f"{info.distribution} {info.version}",
            info.description,
            ", ".join(f"{s}://" for s in info.schemes),
        )
        for info in sorted(found.values(), key=lambda i: i.name)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for name, dist, desc, schemes in rows:
        click.echo(f"{name:<{widths[0]}}  {dist:<{widths[1]}}  {desc:<{widths[2]}}  {schemes}")


@click.command("dead-letters")
@import_path_arg
@backend_options
@click.option(
    "--requeue",
    "requeue",
    metavar="ID",
    multiple=True,
    help="Put this dead letter back on the queue (repeatable; 'all' for every one).",
)
@click.option("--purge", is_flag=True, help="Delete every dead letter.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def dead_letters(
    import_path: str,
    backend: str | None,
    url: str | None,
    requeue: tuple[str, ...],
    purge: bool,
    as_json: bool,
) -> None:
    """List dead letters (messages that can never run), requeue or purge them."""
    huey = app(import_path, backend, url)
    if requeue:
        ids = [str(d["id"]) for d in huey.dead_letters()] if "all" in requeue else list(requeue)
        missing = [i for i in ids if not huey.requeue_dead_letter(i)]
        click.echo(f"requeued {len(ids) - len(missing)} dead letter(s)")
        if missing:
            raise UserError(f"no dead letter with id {', '.join(missing)}")
        return
    if purge:
        click.echo(f"purged {huey.purge_dead_letters()} dead letter(s)")
        return
    letters = huey.dead_letters()
    for letter in letters:
        if as_json:
            row = {k: v for k, v in letter.items() if not isinstance(v, bytes)}
            click.echo(json.dumps(row, default=str))
        else:
            when = letter.get("time")
            stamp = (
                datetime.datetime.fromtimestamp(when).isoformat(timespec="seconds")
                if isinstance(when, (int, float))
                else when
            )
            click.echo(
                f"{letter.get('id')}  {stamp}  {letter.get('task') or '?'}  {letter.get('reason')}"
            )
    if not letters and not as_json:
        click.echo("no dead letters")


EVENT_STATUSES = tuple(status.value for status in EventStatus)


@click.command()
@import_path_arg
@backend_options
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    type=click.Choice(EVENT_STATUSES, case_sensitive=False),
    help="Only events with this status (repeatable): " + ", ".join(EVENT_STATUSES) + ".",
)
@click.option(
    "--task",
    "tasks",
    multiple=True,
    metavar="NAME",
    help="Only events of this task, by name or module.name (repeatable).",
)
@click.option("--pretty", is_flag=True, help="One human-readable line per event instead of JSON.")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Exit after printing N events. [default: run until interrupted]",
)
def events(
    import_path: str,
    backend: str | None,
    url: str | None,
    statuses: tuple[str, ...],
    tasks: tuple[str, ...],
    pretty: bool,
    limit: int | None,
) -> None:
    """Print the instance's live events, one JSON object per line, until interrupted.

    Events of every producer and consumer using the same backend are shown, from the moment
    the subscription starts (Redis pub/sub and the SQL events table; the memory backend only
    sees its own process). Passwords in URLs inside events are masked.
    """
    huey = app(import_path, backend, url)
    if not huey.storage.process_safe:
        click.echo(
            f"huey events: note: {plugins.mask_url(huey.storage.describe())} keeps events in "
            "this process; consumers elsewhere are not shown",
            err=True,
        )
    wanted_status = {s.lower() for s in statuses}
    subscription = huey.storage.events.listen()
    printed = 0
    with sigterm_as_interrupt():
        try:
            for raw in subscription:
                text = plugins.mask_url(bytes(raw).decode("utf-8", "replace"))
                event: dict[str, Any] | None
                try:
                    event = json.loads(text)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    if wanted_status or tasks:
                        continue  # cannot tell whether it matches
                    click.echo(text)
                elif not _event_matches(event, wanted_status, tasks):
                    continue
                else:
                    click.echo(format_event(event) if pretty else text)
                printed += 1
                if limit is not None and printed >= limit:
                    return
        except BrokenPipeError:  # `huey events ... | head`
            _silence_stdout()
        finally:
            subscription.close()


def _event_matches(event: dict[str, Any], statuses: set[str], tasks: tuple[str, ...]) -> bool:
    if statuses and str(event.get("status", "")).lower() not in statuses:
        return False
    if tasks:
        name = event.get("task")
        if not isinstance(name, str):
            return False
        short = name.rsplit(".", 1)[-1]
        return any(t == name or t == short or t.rsplit(".", 1)[-1] == name for t in tasks)
    return True


def format_event(event: dict[str, Any]) -> str:
    """One line: time, status, task, id, then what matters for that status."""
    stamp = event.get("timestamp")
    when = (
        datetime.datetime.fromtimestamp(stamp).strftime("%H:%M:%S.%f")[:-3]
        if isinstance(stamp, (int, float))
        else "?"
    )
    parts = [
        when,
        f"{event.get('status', '?'):<13}",
        str(event.get("task") or "-"),
        str(event.get("id") or "-"),
    ]
    duration = event.get("duration")
    if isinstance(duration, (int, float)):
        parts.append(f"{duration:.3f}s")
    if event.get("status") in ("retrying", "error") and event.get("retries") is not None:
        parts.append(f"retries left {event['retries']}")
    execute_time = event.get("execute_time")
    if isinstance(execute_time, (int, float)) and event.get("status") in ("scheduled", "enqueued"):
        eta = datetime.datetime.fromtimestamp(execute_time).isoformat(sep=" ", timespec="seconds")
        parts.append(f"eta {eta}")
    for key in ("message", "reason", "count"):
        if event.get(key) not in (None, ""):
            parts.append(f"{key}={event[key]}")
    if event.get("error") and not event.get("message") and event.get("traceback"):
        last = str(event["traceback"]).strip().splitlines()[-1:]
        parts.extend(last)
    parts.append(f"[{event.get('worker') or event.get('consumer') or '?'}]")
    return "  ".join(parts)


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@click.command()
@import_path_arg
@click.argument("task_name", metavar="TASK")
@click.argument("args", nargs=-1, metavar="[JSON_ARG]...")
@backend_options
@click.option(
    "--kwargs",
    "kwargs_json",
    metavar="JSON",
    help="Keyword arguments as one JSON object, e.g. '{\"b\": 2}'.",
)
@click.option(
    "--delay",
    type=Finite(0),
    default=None,
    metavar="SECONDS",
    help="Run after this many seconds.",
)
@click.option(
    "--priority",
    type=click.IntRange(limits.PRIORITY_MIN, limits.PRIORITY_MAX),
    default=None,
    help="Priority (higher runs first).",
)
def enqueue(
    import_path: str,
    task_name: str,
    args: tuple[str, ...],
    backend: str | None,
    url: str | None,
    kwargs_json: str | None,
    delay: float | None,
    priority: int | None,
) -> None:
    """Enqueue TASK with arguments given as JSON values and print its id.

    e.g.: huey enqueue myapp.tasks.huey add 1 2 --kwargs '{"round": true}'

    An argument that is not valid JSON is taken as a string (so `hello` works unquoted).
    """
    huey = app(import_path, backend, url)
    task_class = _find_task(huey, task_name)
    values = []
    for raw in args:
        try:
            values.append(json.loads(raw))
        except ValueError:
            values.append(raw)  # a bare word is a string
    kwargs: dict[str, Any] = {}
    if kwargs_json is not None:
        try:
            kwargs = json.loads(kwargs_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="'--kwargs'") from None
        if not isinstance(kwargs, dict):
            raise click.BadParameter("must be a JSON object", param_hint="'--kwargs'")
    eta = None if delay is None else clock.normalize_time(delay=delay, utc=huey.utc)
    task = task_class(tuple(values), kwargs, eta=eta, priority=priority)
    huey.enqueue(task)
    click.echo(task.id)


def _find_task(huey: Huey, name: str) -> type[Task]:
    """The registered task class for `name` ("module.task" or just "task")."""
    registry = huey.registry.tasks
    matches = [
        cls for key, cls in registry.items() if name == key or key.rsplit(".", 1)[-1] == name
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UserError(f"task name {name!r} is ambiguous; use the full name (module.task)")
    known = ", ".join(sorted(registry)) or "none"
    raise UserError(f"no task named {name!r} in {huey.name!r}; known tasks: {known}")


FLUSH_PARTS = ("queue", "schedule", "results", "dead_letters", "locks", "revoked")


@click.command()
@import_path_arg
@backend_options
@click.option("--queue", is_flag=True, help="Queued messages, including those in flight.")
@click.option("--schedule", is_flag=True, help="Scheduled messages (delays, etas, retries).")
@click.option("--results", is_flag=True, help="Stored task results.")
@click.option("--dead-letters", is_flag=True, help="Dead letters.")
@click.option("--locks", is_flag=True, help="Task locks (lock_task) and rate-limit windows.")
@click.option("--revoked", is_flag=True, help="Revocations.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def flush(
    import_path: str,
    backend: str | None,
    url: str | None,
    yes: bool,
    **selected: bool,
) -> None:
    """Delete what an instance stores: everything, or only the parts named by flags.

    Without a part flag everything goes: queue, schedule and the whole data store. Asks for
    confirmation first unless --yes.
    """
    huey = app(import_path, backend, url)
    storage = huey.storage
    parts = [p for p in FLUSH_PARTS if selected.get(p)]
    where = f"{huey.name!r} on {plugins.mask_url(storage.describe())}"
    if not parts:
        what = "everything stored (queue, schedule, results, dead letters, locks, revocations)"
    else:
        what = ", ".join(p.replace("_", " ") for p in parts)
    if not yes:
        click.confirm(f"Delete {what} of {where}?", abort=True)
    if not parts:
        huey.flush()
        click.echo(f"flushed {huey.name!r}")
        return
    counts: dict[str, int] = {}
    if "queue" in parts:
        counts["queue"] = storage.queue.size() + len(storage.queue.leases())
        storage.queue.flush()
    if "schedule" in parts:
        counts["schedule"] = storage.schedule.size()
        storage.schedule.flush()
    kinds = classify_keys(huey, storage.store.items())
    store_parts = {
        "results": kinds[KeyKind.RESULT],
        "dead_letters": kinds[KeyKind.DEAD_LETTER],
        "locks": kinds[KeyKind.LOCK] + kinds[KeyKind.RATE_LIMIT],
        "revoked": kinds[KeyKind.REVOKED],
    }
    for part, part_keys in store_parts.items():
        if part in parts:
            counts[part] = sum(bool(storage.store.delete(key)) for key in part_keys)
    click.echo(", ".join(f"{p.replace('_', ' ')}: {n} deleted" for p, n in counts.items()))
