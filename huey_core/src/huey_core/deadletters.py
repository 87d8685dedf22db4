"""The dead-letter store: messages that can never run, kept with the reason.

A message is dead-lettered when it cannot be decoded, fails its signature check, names a task
this process does not know, or was delivered more than `max_deliveries` times (it probably kills
its worker). Each dead letter is a JSON record under `dead-letter:<id>` in the data store, with
the raw message bytes base64-encoded, so it can be listed and requeued from the command line.
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
from huey_core.events import EventStatus, Named
from huey_core.task import Task

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["DeadLetters"]

logger = logging.getLogger("huey")


class DeadLetters:
    def __init__(self, huey: Huey) -> None:
        self.huey = huey

    def add(
        self, data: bytes, reason: str, task: Task | None = None, deliveries: int | None = None
    ) -> str:
        """Store `data` as a dead letter; signal and emit it; return its id."""
        huey = self.huey
        dl_id = uuid.uuid4().hex
        if task is None:  # best effort: name the task even when it cannot run here
            task_id, task_name = huey.codec.peek_names(data)
        else:
            task_id, task_name = task.id, huey.registry.name_of(type(task))
        record = {
            "id": dl_id,
            "reason": reason,
            "time": time.time(),
            "task": task_name,
            "task_id": task_id,
            "deliveries": deliveries,
            "payload": base64.b64encode(bytes(data)).decode("ascii"),
        }
        huey.storage.store.put(keys.dead_letter(dl_id), json.dumps(record).encode())
        logger.error("dead-lettered message %s (task %s): %s", dl_id, task_name or "?", reason)
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
        raw = self.huey.storage.store.pop(keys.dead_letter(dl_id))
        if raw is None:
            return False
        try:
            payload = base64.b64decode(json.loads(raw)["payload"])
        except Exception:  # noqa: BLE001 - a record we cannot read: requeue its bytes as they are
            payload = raw
        self.huey.storage.queue.enqueue(payload, 0)
        logger.info("requeued dead letter %s", dl_id)
        return True

    def purge(self) -> int:
        """Delete every dead letter; return how many there were."""
        store = self.huey.storage.store
        return sum(bool(store.delete(key)) for key in list(store.items(keys.DEAD_LETTER)))
