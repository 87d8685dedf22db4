"""Turning messages, results and stored values into bytes and back.

Backends only move bytes; everything that becomes bytes goes through one serializer object with
huey's two-method interface, `serialize(obj) -> bytes` and `deserialize(data) -> obj`.

- `PickleSerializer` (the default, as in huey): any picklable value. Unpickling runs code named
  by the data, so only use it with storage nobody else can write to, or add a secret.
- `JSONSerializer`: JSON with small tags for what JSON lacks (tuples, datetimes, timedeltas,
  bytes, sets, huey error results, exceptions passed to error handlers).
- `SignedSerializer(secret, salt=None, inner=...)`: HMAC-SHA256 over the inner serializer's
  bytes. Built by `Huey(secret=...)`. Unsigned or tampered data is refused before the inner
  serializer sees it, so a forged pickle is never unpickled.

Every `deserialize` raises `PoisonMessage` and nothing else for bad bytes (garbage, truncated
data, wrong signature), so the caller can dead-letter the message instead of crashing.

`compression=True` (gzip, or zlib with `use_zlib=True`) on any of them compresses the bytes, as
`Huey(compression=True)` does; data that fails to decompress is poison too.

The task message format is described in `huey_core.message`.
"""

from __future__ import annotations

import base64
import builtins
import datetime
import gzip
import hashlib
import hmac
import json
import pickle
import zlib
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
    "build_serializer",
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


def _looks_compressed(data: bytes) -> bool:
    """A gzip member (magic 1f 8b) or a zlib stream (0x78 and a header whose check bits hold).

    Neither a pickle (protocol 2+ starts with 0x80, and no opcode is 0x1f or "x"), nor JSON,
    nor a signed message ("hs1:") can start this way, so uncompressed data is never mistaken.
    """
    if len(data) < 2:
        return False
    if data[0] == 0x1F and data[1] == 0x8B:
        return True
    return data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0


class Serializer:
    """Base class: pickle (protocol 4), huey's default; optionally gzip- or zlib-compressed.

    `compression=True` compresses what `serialize` returns (gzip, or zlib with `use_zlib=True`)
    at `compression_level` (0-9), as huey's `Serializer` does. With compression on,
    `deserialize` reads compressed and uncompressed data alike (huey does too), so turning it on
    leaves the messages already queued readable. A subclass changes the format by overriding
    `_serialize`/`_deserialize` (huey's hooks); compression and the poison checks stay here.
    """

    compression = False
    compression_level = 6
    use_zlib = False
    pickle_protocol = 4
    max_decompressed_size = 256 * 1024 * 1024  # larger compressed payloads are poison
    _what = "unpickle"  # the verb in a poison message's reason

    def __init__(
        self,
        compression: bool = False,
        compression_level: int = 6,
        use_zlib: bool = False,
        pickle_protocol: int | None = 4,
    ) -> None:
        if isinstance(compression_level, bool) or compression_level not in range(10):
            raise ValueError(
                f"compression_level must be an int from 0 to 9, not {compression_level!r}"
            )
        self.compression = bool(compression)
        self.compression_level = compression_level
        self.use_zlib = bool(use_zlib)
        self.pickle_protocol = pickle.HIGHEST_PROTOCOL if not pickle_protocol else pickle_protocol

    def _serialize(self, data: Any) -> bytes:
        return pickle.dumps(data, protocol=self.pickle_protocol)

    def _deserialize(self, data: bytes) -> Any:
        return pickle.loads(data)

    def serialize(self, data: Any) -> bytes:
        payload = self._serialize(data)
        if not self.compression:
            return payload
        if self.use_zlib:
            return zlib.compress(payload, self.compression_level)
        return gzip.compress(payload, self.compression_level, mtime=0)

    def deserialize(self, data: bytes) -> Any:
        if self.compression and isinstance(data, (bytes, bytearray)) and _looks_compressed(data):
            data = _decompress(bytes(data), self.max_decompressed_size)
        try:
            return self._deserialize(data)
        except PoisonMessage:
            raise
        except BaseException as exc:  # noqa: BLE001 - unpickling runs code the data names
            # KeyboardInterrupt, SystemExit, GeneratorExit...: raised by an object's unpickling
            # (a forged exit() call, a __reduce__ that raises), never by a real Ctrl-C, which
            # Python delivers between bytecodes of the caller. They must not end a worker.
            reason = f"cannot {self._what} data: {type(exc).__name__}: {exc}"
            raise PoisonMessage(reason) from None


def _decompress(data: bytes, limit: int) -> bytes:
    """gzip or zlib data, decompressed; PoisonMessage when it is corrupt, truncated, or would
    grow past `limit` bytes (a few kilobytes can inflate to gigabytes and exhaust a worker)."""
    inflater = zlib.decompressobj(31 if data[0] == 0x1F else 15)  # 31: gzip header and trailer
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise PoisonMessage(f"cannot decompress data: {exc}") from None
    if len(out) >= limit and (inflater.unconsumed_tail or not inflater.eof):
        raise PoisonMessage(f"cannot decompress data: it inflates past {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise PoisonMessage("cannot decompress data: truncated, or followed by other bytes")
    return out


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

    _what = "decode JSON"

    def __init__(
        self,
        compression: bool = False,
        compression_level: int = 6,
        use_zlib: bool = False,
        **dumps_options: Any,
    ) -> None:
        super().__init__(compression, compression_level, use_zlib)
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

    def _serialize(self, data: Any) -> bytes:
        return json.dumps(self._encode(data), separators=(",", ":"), **self.dumps_options).encode()

    def _deserialize(self, data: bytes) -> Any:
        return self._decode(json.loads(data))


class SignedSerializer(Serializer):
    """Signs another serializer's bytes with HMAC-SHA256: b"hs1:" + hex digest + b":" + data.

    Built as huey builds it, `SignedSerializer(secret, salt="...", compression=True, ...)`: the
    remaining keywords configure the pickle serializer inside; `inner=` wraps another one
    instead (`SignedSerializer(secret, inner=JSONSerializer())`). The older order of this
    project, `SignedSerializer(inner, secret)`, is still read. A salt, when given, is mixed
    into the key, so two salts make signatures that do not verify against each other.

    `deserialize` checks the signature in constant time before anything else runs: unsigned or
    tampered data is neither decompressed nor unpickled.
    """

    PREFIX = b"hs1:"
    _DIGEST_LEN = 64  # hex characters of a SHA-256 digest

    def __init__(
        self,
        secret: str | bytes | Serializer | None = None,
        salt: str | bytes | None = None,
        *,
        inner: Serializer | None = None,
        **options: Any,
    ) -> None:
        if isinstance(secret, Serializer) or hasattr(secret, "deserialize"):
            # SignedSerializer(inner, secret): this project's order before huey's was adopted.
            secret, salt, inner = salt, None, secret  # type: ignore[assignment]
        if not secret:
            raise ValueError("SignedSerializer needs a non-empty secret")
        if inner is not None and options:
            names = ", ".join(sorted(options))
            raise ValueError(f"SignedSerializer: pass {names} to the inner serializer, not here")
        super().__init__()
        self.inner = Serializer(**options) if inner is None else inner
        key = _to_bytes(secret)
        self._key = key if salt is None else hashlib.sha256(_to_bytes(salt) + b":" + key).digest()

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


def _to_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def build_serializer(
    serializer: Serializer | None,
    secret: str | bytes | None,
    compression: bool = False,
    use_zlib: bool = False,
) -> Serializer:
    """What `Huey(serializer=, secret=, compression=, use_zlib=)` stores and reads with."""
    if serializer is None:
        serializer = Serializer(compression=compression, use_zlib=use_zlib)
    elif compression or use_zlib:
        raise ValueError(
            "Huey(compression=/use_zlib=) configures the default serializer; with serializer= "
            "pass them to it instead: Serializer(compression=True, use_zlib=...)"
        )
    return SignedSerializer(secret, inner=serializer) if secret else serializer
