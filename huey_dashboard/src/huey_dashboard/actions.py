"""What the dashboard's buttons do, each through the public Huey API.

Every action takes the submitted form and returns one line for the page, or raises ActionError
with one line saying what was wrong. The web layer checks the CSRF token and read-only mode
before any of this runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from huey_core import keys
from huey_core.exceptions import PoisonMessage
from huey_core.results import Result
from huey_core.task import Task
from huey_dashboard.views import SEARCH_LIMIT, describe

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["ACTIONS", "ActionError", "run"]

Form = Mapping[str, str]
MAX_ID = 200  # characters: task ids are uuids, dead-letter ids hex; anything longer is a mistake
MAX_DELAY = 366 * 86400.0


class ActionError(Exception):
    """A request the dashboard refuses, with one line saying why."""


def _field(form: Form, name: str) -> str:
    value = str(form.get(name, "")).strip()
    if len(value) > MAX_ID or not value.isprintable():
        raise ActionError(f"{name} is not a valid identifier")
    return value


def _task_class(huey: Huey, name: str) -> type[Task]:
    tasks = huey.registry.tasks
    found = [cls for key, cls in tasks.items() if name in (key, cls.name)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ActionError(f"task name {name!r} is ambiguous; use the full name (module.task)")
    raise ActionError(f"no task named {name!r} is registered in {huey.name!r}")


def revoke(huey: Huey, form: Form) -> str:
    name, task_id = _field(form, "task"), _field(form, "task_id")
    if name:
        cls = _task_class(huey, name)
        huey.revoke_all(cls)
        return f"every {cls.name} task is revoked until restored"
    if task_id:
        huey.revoke_by_id(task_id)
        return f"task {task_id} is revoked"
    raise ActionError("name a task or a task id to revoke")


def restore(huey: Huey, form: Form) -> str:
    name, task_id = _field(form, "task"), _field(form, "task_id")
    if name:
        cls = _task_class(huey, name)
        if huey.restore_all(cls):
            return f"{cls.name} tasks run again"
        return f"{cls.name} tasks were not revoked"
    if task_id:
        if huey.restore_by_id(task_id):
            return f"task {task_id} is restored"
        return f"task {task_id} was not revoked"
    raise ActionError("name a task or a task id to restore")


def requeue(huey: Huey, form: Form) -> str:
    letter = _field(form, "dead_letter")
    if not letter:
        raise ActionError("name a dead letter to requeue")
    ids = [str(d["id"]) for d in huey.dead_letters()] if letter == "all" else [letter]
    done = sum(huey.requeue_dead_letter(i) for i in ids)
    if letter != "all" and not done:
        raise ActionError(f"no dead letter {letter} (requeued or purged already?)")
    return f"requeued {done} dead letter(s)"


def purge(huey: Huey, form: Form) -> str:
    letter = _field(form, "dead_letter")
    if letter == "all":
        return f"purged {huey.purge_dead_letters()} dead letter(s)"
    if not letter:
        raise ActionError("name a dead letter to purge")
    if not huey.storage.store.delete(keys.dead_letter(letter)):
        raise ActionError(f"no dead letter {letter} (requeued or purged already?)")
    return "purged 1 dead letter"


def reschedule(huey: Huey, form: Form) -> str:
    """Revoke a scheduled task and enqueue a copy (new id) to run in `delay` seconds, or now."""
    task_id = _field(form, "task_id")
    try:
        delay = float(form.get("delay") or 0)
    except ValueError:
        raise ActionError("the delay must be a number of seconds") from None
    if not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY:
        raise ActionError("the delay must be between 0 and 366 days, in seconds")
    for _, data in huey.storage.schedule.peek(SEARCH_LIMIT):
        if describe(huey, data, previews=False)["id"] != task_id:
            continue
        try:
            task = huey.deserialize_task(data)
        except PoisonMessage as exc:
            raise ActionError(f"task {task_id} cannot be decoded here: {exc}") from None
        new = Result(huey, task).reschedule(delay=delay or None)
        when = f"in {delay:g} s" if delay else "now"
        copy = f"a copy, {new.id}," if isinstance(new, Result) else "a copy"
        return f"task {task_id} is revoked; {copy} runs {when}"
    raise ActionError(f"task {task_id} is not in the schedule (it may have run already)")


ACTIONS: dict[str, Callable[[Huey, Form], str]] = {
    "revoke": revoke,
    "restore": restore,
    "requeue": requeue,
    "purge": purge,
    "reschedule": reschedule,
}


def run(huey: Huey, name: str, form: Form) -> str:
    action = ACTIONS.get(name)
    if action is None:
        raise ActionError(f"no action {name!r}")
    return action(huey, form)
