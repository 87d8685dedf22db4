"""The dead-letter store: messages that can never run, kept with the reason.

A message is dead-lettered when it cannot be decoded, fails its signature check, names a task
this process does not know, or was delivered more than `max_deliveries` times (it probably kills
its worker). Each dead letter is a JSON record under `dead-letter:<id>` in the data store, with
the raw message bytes base64-encoded, so it can be listed and requeued from the command line:

    {"id": "<32 hex>", "reason": "...", "time": <unix>, "task": "<module.task>" or null,
     "task_id": "..." or null, "deliveries": <int> or null, "payload": "<base64>"}

A backend that finds a stored row it cannot hand to the core at all (a payload that is not
bytes, a priority that is not a number) writes the dead letter itself, in the same transaction
that removes the row, with `backend_dead_letter()`: see "Malformed rows" in
huey_core.protocols. When the task id is known, the core also stores an error result for it, so
`Result.get()` raises instead of waiting for a task that will never run.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from huey_core import keys
from huey_core import signals as S
from huey_core.events import EventStatus, Named, build_event, encode_event
from huey_core.serializer import Error
from huey_core.task import PeriodicTask, Task

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["DeadLetters"]

logger = logging.getLogger("huey")


def record(
    data: bytes,
    reason: str,
    task: str | None = None,
    task_id: str | None = None,
    deliveries: int | None = None,
    dl_id: str | None = None,
) -> tuple[str, bytes]:
    """(key, value) of a new dead letter in the format above (a fresh id unless given)."""
    dl_id = dl_id or uuid.uuid4().hex
    value = {
        "id": dl_id,
        "reason": reason,
        "time": time.time(),
        "task": task,
        "task_id": task_id,
        "deliveries": deliveries,
        "payload": base64.b64encode(bytes(data)).decode("ascii"),
    }
    return keys.dead_letter(dl_id), json.dumps(value).encode()


def backend_dead_letter(
    instance: str,
    data: bytes,
    reason: str,
    deliveries: int | None = None,
    dl_id: str | None = None,
) -> tuple[str, bytes, bytes]:
    """For a backend that sets a malformed row aside: (key, record, event).

    The backend stores `record` under `key` in its own DataStore in the transaction that
    removes the row (or, where it cannot do both at once, first the record and then the
    removal, with a `dl_id` derived from the row so that doing it twice stores one letter),
    then emits `event`, a `dead-lettered` event, and logs the reason.
    """
    key, value = record(data, reason, deliveries=deliveries, dl_id=dl_id)
    dl_id = key[len(keys.DEAD_LETTER) :]
    event = build_event(
        EventStatus.DEAD_LETTERED, None, huey=instance, error=True, reason=reason,
        dead_letter_id=dl_id,
    )  # fmt: skip
    return key, value, encode_event(event)


class DeadLetters:
    def __init__(self, huey: Huey) -> None:
        self.huey = huey

    def add(
        self, data: bytes, reason: str, task: Task | None = None, deliveries: int | None = None
    ) -> str:
        """Store `data` as a dead letter; signal and emit it; return its id."""
        huey = self.huey
        if task is None:  # best effort: name the task even when it cannot run here
            task_id, task_name = huey.codec.peek_names(data)
        else:
            task_id, task_name = task.id, huey.registry.name_of(type(task))
        key, value = record(data, reason, task_name, task_id, deliveries)
        dl_id = key[len(keys.DEAD_LETTER) :]
        huey.storage.store.put(key, value)
        logger.error("dead-lettered message %s (task %s): %s", dl_id, task_name or "?", reason)
        if task_id is not None:
            self._fail_result(task, task_id, reason)
        if task is not None:
            huey.signals.send(S.SIGNAL_DEAD_LETTERED, task, reason)
        # Events name known tasks as every other event does (task.name); unknown ones by the
        # registry name the message carries.
        about = task if task is not None else Named(task_id, task_name)
        huey.emit(EventStatus.DEAD_LETTERED, about, error=True, reason=reason, dead_letter_id=dl_id)
        # Rare and important: send it now, not in the next batch, so the worker's next message
        # (a task that kills its process, say) cannot take the event down with it.
        huey.flush_events()
        return dl_id

    def _fail_result(self, task: Task | None, task_id: str, reason: str) -> None:
        """An error result for the task id, so a caller waiting on it gets an answer."""
        huey = self.huey
        if not huey.results or isinstance(task, PeriodicTask):
            return
        error = Error({"error": f"dead-lettered: {reason}", "retries": 0, "traceback": None,
                       "task_id": task_id})  # fmt: skip
        try:
            huey.put_result(task_id, error)
        except Exception:  # noqa: BLE001 - the dead letter is stored; the result is a courtesy
            logger.warning("could not store the error result of task %s", task_id, exc_info=True)

    def list(self) -> list[dict[str, Any]]:
        """Every dead letter, oldest first (see Huey.dead_letters for the fields)."""
        letters = []
        for key, raw in self.huey.storage.store.items(keys.DEAD_LETTER).items():
            try:
                record = json.loads(raw)
                record["payload"] = base64.b64decode(record["payload"])
            except Exception:  # noqa: BLE001 - shown as unreadable rather than hidden
                record = {
                    "id": key[len(keys.DEAD_LETTER) :],
                    "reason": "unreadable dead-letter record",
                    "time": None,
                    "task": None,
                    "task_id": None,
                    "payload": raw,
                }
            letters.append(record)
        letters.sort(key=lambda r: r.get("time") or 0)
        return letters

    def requeue(self, dl_id: str) -> bool:
        """Put a dead letter's payload back on the queue (fresh delivery count); False if unknown."""
        store = self.huey.storage.store
        raw = store.pop(keys.dead_letter(dl_id))
        if raw is None:
            return False
        try:
            letter = json.loads(raw)
            payload = base64.b64decode(letter["payload"])
        except Exception:  # noqa: BLE001 - a record we cannot read: requeue its bytes as they are
            letter, payload = {}, raw
        if isinstance(letter.get("task_id"), str):
            # The error result stored when it was dead-lettered: the task gets another chance,
            # so a caller waiting on its result waits for this run instead.
            store.delete(letter["task_id"])
        self.huey.storage.queue.enqueue(payload, 0)
        logger.info("requeued dead letter %s", dl_id)
        return True

    def purge(self) -> int:
        """Delete every dead letter; return how many there were."""
        store = self.huey.storage.store
        return sum(bool(store.delete(key)) for key in list(store.items(keys.DEAD_LETTER)))
