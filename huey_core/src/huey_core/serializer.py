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

The task message format is described in `huey_core.message`.
"""

from __future__ import annotations

import base64
import builtins
import datetime
import hashlib
import hmac
import json
import pickle
from collections.abc import Callable
from typing import Any

from huey_core.exceptions import PoisonMessage, TaskException

__all__ = [
    "SKIPPED",
    "Error",
    "JSONSerializer",
    "PickleSerializer",
    "Serializer",
    "SignedSerializer",
]


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
        except BaseException as exc:  # noqa: BLE001 - unpickling runs code the data names
            # KeyboardInterrupt, SystemExit, GeneratorExit...: raised by an object's unpickling
            # (a forged exit() call, a __reduce__ that raises), never by a real Ctrl-C, which
            # Python delivers between bytecodes of the caller. They must not end a worker.
            raise PoisonMessage(f"cannot unpickle data: {type(exc).__name__}: {exc}") from None


PickleSerializer = Serializer

_TAG = "__huey__"


def _exception_args(exc: BaseException) -> list[Any]:
    """[type name, args] with every argument JSON can hold as is, the others as repr."""
    args = [a if isinstance(a, (str, int, float, bool)) or a is None else repr(a) for a in exc.args]
    return [type(exc).__name__, args]


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
        if isinstance(obj, dict) and all(isinstance(k, str) for k in obj) and _TAG not in obj:
            return {k: self._encode(v) for k, v in obj.items()}
        for kind, test, encode in self._ENCODERS:
            if test(obj):
                return {_TAG: [kind, encode(self, obj)]}
        raise TypeError(f"JSONSerializer cannot encode {type(obj).__name__}: {obj!r}")

    # (tag, is-it, how) in the order they are tried: a datetime is also a date.
    _ENCODERS: tuple[tuple[str, Callable[[Any], bool], Callable[[Any, Any], Any]], ...] = (
        ("tuple", lambda o: isinstance(o, tuple), lambda s, o: [s._encode(v) for v in o]),
        (
            "dict",
            lambda o: isinstance(o, dict),
            lambda s, o: [[s._encode(k), s._encode(v)] for k, v in o.items()],
        ),
        ("datetime", lambda o: isinstance(o, datetime.datetime), lambda s, o: o.isoformat()),
        ("date", lambda o: isinstance(o, datetime.date), lambda s, o: o.isoformat()),
        ("timedelta", lambda o: isinstance(o, datetime.timedelta), lambda s, o: o.total_seconds()),
        (
            "bytes",
            lambda o: isinstance(o, (bytes, bytearray)),
            lambda s, o: base64.b64encode(bytes(o)).decode("ascii"),
        ),
        (
            "set",
            lambda o: isinstance(o, (set, frozenset)),
            lambda s, o: [s._encode(v) for v in o],
        ),
        ("error", lambda o: isinstance(o, Error), lambda s, o: s._encode(o.metadata)),
        ("skipped", lambda o: o is SKIPPED, lambda s, o: None),
        ("exception", lambda o: isinstance(o, BaseException), lambda s, o: _exception_args(o)),
    )

    def _decode(self, obj: Any) -> Any:
        if isinstance(obj, list):
            return [self._decode(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if len(obj) == 1 and _TAG in obj:
            kind, value = obj[_TAG]
            decode = self._DECODERS.get(kind)
            if decode is None:
                raise ValueError(f"unknown tag {kind!r}")
            return decode(self, value)
        return {k: self._decode(v) for k, v in obj.items()}

    _DECODERS: dict[str, Callable[[Any, Any], Any]] = {
        "tuple": lambda s, v: tuple(s._decode(x) for x in v),
        "dict": lambda s, v: {s._decode(k): s._decode(x) for k, x in v},
        "datetime": lambda s, v: datetime.datetime.fromisoformat(v),
        "date": lambda s, v: datetime.date.fromisoformat(v),
        "timedelta": lambda s, v: datetime.timedelta(seconds=v),
        "bytes": lambda s, v: base64.b64decode(v.encode("ascii"), validate=True),
        "set": lambda s, v: {s._decode(x) for x in v},
        "error": lambda s, v: Error(s._decode(v)),
        "skipped": lambda s, v: SKIPPED,
        "exception": lambda s, v: _exception_from(str(v[0]), list(v[1])),
    }

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
        except BaseException as exc:  # noqa: BLE001 - an inner serializer's unpickling, as above
            raise PoisonMessage(f"cannot decode signed data: {type(exc).__name__}: {exc}") from None
