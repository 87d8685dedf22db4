"""The wire format: a Task as a message dict, and a message as bytes through the serializer.

A task message is a dict:

    v                 1 (format version)
    id                str, the task id (also the result key)
    name              str, "<module>.<task name>": the key in the task registry
    args              tuple of positional arguments
    kwargs            dict of keyword arguments
    eta               naive datetime (UTC when huey.utc, else local time) or None
    retries           int, retries left
    retry_delay       float seconds between retries (0: retry at once)
    retry_backoff     float multiplier applied to retry_delay after each retry (0/1: none)
    priority          int or None (higher runs first)
    expires           seconds, timedelta or datetime as given by the caller, or None
    expires_resolved  naive datetime after which the task is skipped, or None
    timeout           float seconds or None
    on_complete       nested message run with this task's return value appended, or None
    on_error          nested message run with the exception appended, or None
    chord             [chord id, size, member index, callback message] or None

Decoding checks every field, so a message that cannot run here (garbage, a forged or truncated
payload, an unknown task) raises `PoisonMessage` and nothing else: the caller dead-letters it.
"""

from __future__ import annotations

import datetime
from typing import Any

from huey_core.exceptions import HueyException, PoisonMessage
from huey_core.serializer import Serializer
from huey_core.task import ChordConfig, Registry, Task

__all__ = ["MAX_DEPTH", "MessageCodec"]

VERSION = 1
MAX_DEPTH = 100  # nested pipelines/chords deeper than this are refused as poison
_NUMBERS = ("retries", "retry_delay", "retry_backoff", "priority", "timeout")


class MessageCodec:
    """Encodes tasks for the queue and decodes them in the consumer, for one registry."""

    def __init__(self, registry: Registry, serializer: Serializer) -> None:
        self.registry = registry
        self.serializer = serializer

    # -- encoding -------------------------------------------------------------------------------

    def to_message(self, task: Task) -> dict[str, Any]:
        name = self.registry.name_of(type(task))
        if name not in self.registry:
            raise HueyException(f"task {name} is not registered with this Huey instance")
        kwargs = task.kwargs
        if kwargs and kwargs.get("task") is task:  # an injected context=True argument
            kwargs = {k: v for k, v in kwargs.items() if k != "task"}
        cc = task.chord_config
        return {
            "v": VERSION,
            "id": task.id,
            "name": name,
            "args": tuple(task.args),
            "kwargs": kwargs,
            "eta": task.eta,
            "retries": task.retries,
            "retry_delay": task.retry_delay,
            "retry_backoff": task.retry_backoff,
            "priority": task.priority,
            "expires": task.expires,
            "expires_resolved": task.expires_resolved,
            "timeout": task.timeout,
            "on_complete": self.to_message(task.on_complete) if task.on_complete else None,
            "on_error": self.to_message(task.on_error) if task.on_error else None,
            "chord": [cc.cid, cc.size, cc.idx, self.to_message(cc.callback)] if cc else None,
        }

    def encode(self, task: Task) -> bytes:
        return self.serializer.serialize(self.to_message(task))

    # -- decoding -------------------------------------------------------------------------------

    def decode(self, data: bytes) -> Task:
        """The Task in `data`; PoisonMessage (and nothing else) when it cannot run here."""
        try:
            message = self.serializer.deserialize(data)
        except PoisonMessage:
            raise
        except BaseException as exc:  # noqa: BLE001 - a user-supplied serializer may raise
            # anything, KeyboardInterrupt from an object's unpickling included: that is a bad
            # message, not a shutdown, and must not end the worker (see serializer.Serializer)
            raise PoisonMessage(f"cannot decode message: {type(exc).__name__}: {exc}") from None
        try:
            return self.from_message(message)
        except PoisonMessage:
            raise
        except BaseException as exc:  # noqa: BLE001 - e.g. an args container whose __len__ raises
            raise PoisonMessage(f"malformed task message: {type(exc).__name__}: {exc}") from None

    def peek_names(self, data: bytes) -> tuple[str | None, str | None]:
        """(task id, registry name) of a message, as far as they can be read; Nones otherwise.

        For naming a message that cannot run here (an unknown task, a malformed field).
        """
        try:
            message = self.serializer.deserialize(data)
            if not isinstance(message, dict):
                return None, None
            task_id, name = message.get("id"), message.get("name")
        except BaseException:  # noqa: BLE001 - any failure just means "cannot tell"
            return None, None
        return (
            task_id if isinstance(task_id, str) else None,
            name if isinstance(name, str) else None,
        )

    def from_message(self, message: Any, depth: int = 0) -> Task:
        if depth > MAX_DEPTH:
            raise PoisonMessage("message nests too deeply")
        if not isinstance(message, dict):
            raise PoisonMessage(f"message is a {type(message).__name__}, not a task message")
        fields = _check_fields(message)
        task_class = self.registry.get(fields["name"])
        return task_class(
            tuple(fields["args"]),
            dict(fields["kwargs"]),
            id=fields["id"],
            eta=fields["eta"],
            retries=fields["retries"],
            retry_delay=fields["retry_delay"],
            priority=fields["priority"],
            expires=fields["expires"],
            on_complete=self._nested(message.get("on_complete"), depth),
            on_error=self._nested(message.get("on_error"), depth),
            expires_resolved=fields["expires_resolved"],
            timeout=fields["timeout"],
            chord_config=self._chord(message.get("chord"), depth),
            retry_backoff=fields["retry_backoff"],
        )

    def _nested(self, message: Any, depth: int) -> Task | None:
        return self.from_message(message, depth + 1) if message else None

    def _chord(self, value: Any, depth: int) -> ChordConfig | None:
        if not value:
            return None
        try:
            cid, size, idx, callback = value
            return ChordConfig(
                str(cid), int(size), int(idx), self.from_message(callback, depth + 1)
            )
        except PoisonMessage:
            raise
        except Exception:
            raise PoisonMessage("task message has a malformed chord") from None


def _check_fields(message: dict[str, Any]) -> dict[str, Any]:
    """The message's fields, each checked for the type a Task needs; PoisonMessage if not."""
    # Runs for every message a consumer takes: common values pass on a type() test before the
    # full checks.
    try:
        name, task_id = message["name"], message["id"]
    except (KeyError, TypeError) as exc:
        raise PoisonMessage(f"task message lacks field {exc}") from None
    get = message.get
    args, kwargs = get("args") or (), get("kwargs") or {}
    eta, expires_resolved, expires = get("eta"), get("expires_resolved"), get("expires")
    if not isinstance(name, str) or not isinstance(task_id, str):
        raise PoisonMessage("task message has a non-string name or id")
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise PoisonMessage("task message has malformed args or kwargs")
    if kwargs and not all(isinstance(k, str) for k in kwargs):
        raise PoisonMessage("task message has non-string keyword names")
    for value in (eta, expires_resolved):
        # Messages carry naive datetimes; an aware one cannot be compared with the clock.
        if value is not None and (
            not isinstance(value, datetime.datetime) or value.tzinfo is not None
        ):
            raise PoisonMessage("task message has a malformed eta or expiry")
    fields = {
        "name": name,
        "id": task_id,
        "args": args,
        "kwargs": kwargs,
        "eta": eta,
        "expires_resolved": expires_resolved,
        "expires": expires,
    }
    for key in _NUMBERS:
        value = get(key)
        if value is not None and type(value) is not int and type(value) is not float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PoisonMessage(f"task message field {key} is not a number")
        fields[key] = value
    if expires is not None and (
        isinstance(expires, bool)
        or not isinstance(expires, (int, float, datetime.timedelta, datetime.datetime))
    ):
        raise PoisonMessage("task message has a malformed expires")
    return fields
