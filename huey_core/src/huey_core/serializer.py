"""Turning messages, results and stored values into bytes and back.

Backends only move bytes; everything that becomes bytes goes through one serializer object with
huey's two-method interface, `serialize(obj) -> bytes` and `deserialize(data) -> obj`.

- `PickleSerializer` (the default, as in huey): any picklable value. Unpickling runs code named
  by the data, so only use it with storage nobody else can write to, or add a secret.
- `JSONSerializer`: JSON with small tags for what JSON lacks (tuples, datetimes, timedeltas,
  bytes, sets, huey error results, exceptions passed to error handlers).
- `SignedSerializer(inner, secret)`: HMAC-SHA256 over the inner serializer's bytes. Built by
  `Huey(secret=...)`. Unsigned or tampered data is refused before the inner serializer sees it,
  so a forged pickle is never unpickled.

Every `deserialize` raises `PoisonMessage` and nothing else for bad bytes (garbage, truncated
data, wrong signature), so the caller can dead-letter the message instead of crashing.

Task message format (see `huey_core.api.Huey.serialize_task`), a dict:

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
"""

from __future__ import annotations

import base64
import builtins
import datetime
import hashlib
import hmac
import json
import pickle
from typing import Any

from huey_core.exceptions import PoisonMessage, TaskException

__all__ = ["SKIPPED", "Error", "JSONSerializer", "PickleSerializer", "Serializer", "SignedSerializer"]


class Error:
    """A stored failure: what `Result.get()` turns into `TaskException(metadata)`.

    `metadata` holds `error` (repr of the exception), `traceback` (string), `retries` and
    `task_id`.
    """

    __slots__ = ("metadata",)

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.metadata = metadata

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Error) and other.metadata == self.metadata

    def __repr__(self) -> str:
        return f"Error({self.metadata.get('error')!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Error, (self.metadata,))


class _Skipped:
    """Stands in a chord's result list for a member that was revoked, expired or canceled."""

    def __repr__(self) -> str:
        return "SKIPPED"

    def __reduce__(self) -> str:
        return "SKIPPED"  # unpickles as this module's singleton


SKIPPED = _Skipped()


class Serializer:
    """Base class: pickle (protocol 4), huey's default."""

    def serialize(self, data: Any) -> bytes:
        return pickle.dumps(data, protocol=4)

    def deserialize(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except (Exception, SystemExit) as exc:  # unpickling garbage can raise nearly anything
            # SystemExit too: a forged pickle calling exit() must not end the worker thread.
            raise PoisonMessage(f"cannot unpickle data: {type(exc).__name__}: {exc}") from None


PickleSerializer = Serializer

_TAG = "__huey__"


def _exception_from(name: str, args: list[Any]) -> BaseException:
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(*args)
        except Exception:
            pass
    return TaskException({"error": f"{name}{tuple(args)!r}"}, *args)


class JSONSerializer(Serializer):
    """JSON; tuples, datetimes, timedeltas, bytes, sets, errors and exceptions survive the trip.

    Tagged values are one-key objects `{"__huey__": [kind, value]}`. Exceptions other than
    builtins come back as `TaskException` carrying the original repr.
    """

    def __init__(self, **dumps_options: Any) -> None:
        self.dumps_options = dumps_options

    def _encode(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, list):
            return [self._encode(v) for v in obj]
        if isinstance(obj, tuple):
            return {_TAG: ["tuple", [self._encode(v) for v in obj]]}
        if isinstance(obj, dict):
            if all(isinstance(k, str) for k in obj) and _TAG not in obj:
                return {k: self._encode(v) for k, v in obj.items()}
            return {_TAG: ["dict", [[self._encode(k), self._encode(v)] for k, v in obj.items()]]}
        if isinstance(obj, datetime.datetime):
            return {_TAG: ["datetime", obj.isoformat()]}
        if isinstance(obj, datetime.date):
            return {_TAG: ["date", obj.isoformat()]}
        if isinstance(obj, datetime.timedelta):
            return {_TAG: ["timedelta", obj.total_seconds()]}
        if isinstance(obj, (bytes, bytearray)):
            return {_TAG: ["bytes", base64.b64encode(bytes(obj)).decode("ascii")]}
        if isinstance(obj, (set, frozenset)):
            return {_TAG: ["set", [self._encode(v) for v in obj]]}
        if isinstance(obj, Error):
            return {_TAG: ["error", self._encode(obj.metadata)]}
        if obj is SKIPPED:
            return {_TAG: ["skipped", None]}
        if isinstance(obj, BaseException):
            args = [a if isinstance(a, (str, int, float, bool)) or a is None else repr(a) for a in obj.args]
            return {_TAG: ["exception", [type(obj).__name__, args]]}
        raise TypeError(f"JSONSerializer cannot encode {type(obj).__name__}: {obj!r}")

    def _decode(self, obj: Any) -> Any:
        if isinstance(obj, list):
            return [self._decode(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if len(obj) == 1 and _TAG in obj:
            kind, value = obj[_TAG]
            if kind == "tuple":
                return tuple(self._decode(v) for v in value)
            if kind == "dict":
                return {self._decode(k): self._decode(v) for k, v in value}
            if kind == "datetime":
                return datetime.datetime.fromisoformat(value)
            if kind == "date":
                return datetime.date.fromisoformat(value)
            if kind == "timedelta":
                return datetime.timedelta(seconds=value)
            if kind == "bytes":
                return base64.b64decode(value.encode("ascii"), validate=True)
            if kind == "set":
                return {self._decode(v) for v in value}
            if kind == "error":
                return Error(self._decode(value))
            if kind == "skipped":
                return SKIPPED
            if kind == "exception":
                name, args = value
                return _exception_from(str(name), list(args))
            raise ValueError(f"unknown tag {kind!r}")
        return {k: self._decode(v) for k, v in obj.items()}

    def serialize(self, data: Any) -> bytes:
        return json.dumps(self._encode(data), separators=(",", ":"), **self.dumps_options).encode()

    def deserialize(self, data: bytes) -> Any:
        try:
            return self._decode(json.loads(data))
        except Exception as exc:
            raise PoisonMessage(f"cannot decode JSON data: {type(exc).__name__}: {exc}") from None


class SignedSerializer(Serializer):
    """Wraps another serializer with an HMAC-SHA256 signature: b"hs1:" + hex digest + b":" + data.

    `deserialize` checks the signature in constant time before the inner serializer runs.
    """

    PREFIX = b"hs1:"
    _DIGEST_LEN = 64  # hex characters of a SHA-256 digest

    def __init__(self, inner: Any = None, secret: str | bytes | None = None) -> None:
        if not secret:
            raise ValueError("SignedSerializer needs a non-empty secret")
        self.inner = Serializer() if inner is None else inner
        self._key = secret.encode() if isinstance(secret, str) else bytes(secret)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest().encode("ascii")

    def serialize(self, data: Any) -> bytes:
        payload = self.inner.serialize(data)
        return self.PREFIX + self._sign(payload) + b":" + payload

    def deserialize(self, data: bytes) -> Any:
        if not isinstance(data, (bytes, bytearray)) or not bytes(data).startswith(self.PREFIX):
            raise PoisonMessage("message is not signed (a secret is configured)")
        data = bytes(data)
        head = len(self.PREFIX)
        digest = data[head : head + self._DIGEST_LEN]
        if data[head + self._DIGEST_LEN : head + self._DIGEST_LEN + 1] != b":":
            raise PoisonMessage("message signature is malformed")
        payload = data[head + self._DIGEST_LEN + 1 :]
        if not hmac.compare_digest(digest, self._sign(payload)):
            raise PoisonMessage("message signature does not match (tampered, or another secret)")
        try:
            return self.inner.deserialize(payload)
        except PoisonMessage:
            raise
        except Exception as exc:
            raise PoisonMessage(f"cannot decode signed data: {type(exc).__name__}: {exc}") from None
