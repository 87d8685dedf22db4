"""Serializer details beyond test_messages.py: how exceptions cross JSON, what Error and SKIPPED
compare and print as, what a signed message that fails each check is told, and compression as
huey spells it (`Huey(compression=True, use_zlib=...)`, `Serializer(compression_level=...)`,
`SignedSerializer(secret, salt=...)`)."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import pickle
import random
import sys
import zlib

import pytest

from huey_core import Huey, TaskException
from huey_core.exceptions import PoisonMessage
from huey_core.serializer import (
    SKIPPED,
    Error,
    JSONSerializer,
    Serializer,
    SignedSerializer,
    build_serializer,
)
from tests.core.helpers import drain

VALUE = {"args": ("x" * 500,), "kwargs": {"n": list(range(50))}}


def _json_trip(value: object) -> object:
    serializer = JSONSerializer()
    return serializer.deserialize(serializer.serialize(value))


def test_exception_arguments_json_cannot_hold_come_back_as_their_repr() -> None:
    back = _json_trip(ValueError("bad", 3, None, True, 2.5, [1, 2], b"x"))
    assert isinstance(back, ValueError)
    assert back.args == ("bad", 3, None, True, 2.5, "[1, 2]", "b'x'")


def test_a_non_builtin_exception_comes_back_as_a_task_exception_with_its_repr() -> None:
    class QuotaExceeded(Exception):
        pass

    back = _json_trip(QuotaExceeded("api", 3))
    assert isinstance(back, TaskException)
    assert back.metadata == {"error": "QuotaExceeded('api', 3)"} and back.args == ("api", 3)


@pytest.mark.parametrize("name", ["print", "KeyboardInterrupt", "NoSuchName"])
def test_a_name_that_is_no_builtin_exception_never_builds_one(name: str) -> None:
    # A message names the class: a builtin function, a BaseException or an unknown name must not
    # be called or raised on the receiving side.
    tagged = json.dumps({"__huey__": ["exception", [name, ["x"]]]}).encode()
    back = JSONSerializer().deserialize(tagged)
    assert type(back) is TaskException and back.metadata["error"] == f"{name}('x',)"


def test_errors_compare_by_their_metadata_and_print_their_error() -> None:
    first = Error({"error": "ValueError('x')", "retries": 0})
    assert first == Error({"error": "ValueError('x')", "retries": 0})
    assert first != Error({"error": "ValueError('y')", "retries": 0})
    assert first != {"error": "ValueError('x')", "retries": 0}
    assert repr(first) == "Error(\"ValueError('x')\")"
    assert repr(SKIPPED) == "SKIPPED"
    assert pickle.loads(pickle.dumps(SKIPPED)) is SKIPPED


def test_a_signed_serializer_needs_a_secret_and_wraps_pickle_by_default() -> None:
    with pytest.raises(ValueError, match="^SignedSerializer needs a non-empty secret$"):
        SignedSerializer(Serializer(), "")
    plain = SignedSerializer(secret="k")
    data = plain.serialize({"a": (1, 2)})
    payload = data.split(b":", 2)[2]
    assert pickle.loads(payload) == {"a": (1, 2)}
    json_signed = SignedSerializer(JSONSerializer(), bytearray(b"k"))
    assert json_signed.serialize([1]).endswith(b":[1]")
    digest = hmac.new(b"k", b"[1]", hashlib.sha256).hexdigest().encode("ascii")
    assert json_signed.serialize([1]) == b"hs1:" + digest + b":[1]"


def test_each_signature_check_says_what_was_wrong() -> None:
    signer = SignedSerializer(JSONSerializer(), "k")
    good = signer.serialize({"v": 1})
    head = len(b"hs1:") + 64
    cases = {
        b'{"v": 1}': "message is not signed (a secret is configured)",
        good[:head] + b"!" + good[head + 1 :]: "message signature is malformed",
        good[:-2] + b"2}": "message signature does not match (tampered, or another secret)",
    }
    for data, reason in cases.items():
        with pytest.raises(PoisonMessage) as info:
            signer.deserialize(data)
        assert str(info.value) == reason


class _Fussy(Serializer):
    """An inner serializer of a user's that fails with an error of its own."""

    def deserialize(self, data: bytes) -> object:
        raise RuntimeError("schema v3 expected")


def test_an_inner_serializer_failing_its_own_way_is_poison_naming_the_error() -> None:
    signer = SignedSerializer(_Fussy(), "k")
    with pytest.raises(PoisonMessage) as info:
        signer.deserialize(signer.serialize({"v": 1}))
    assert str(info.value) == "cannot decode signed data: RuntimeError: schema v3 expected"


@pytest.mark.parametrize(
    ("use_zlib", "decompress"), [(False, gzip.decompress), (True, zlib.decompress)]
)
def test_compressed_output_is_gzip_or_zlib_and_reads_back(use_zlib, decompress):
    ours = Serializer(compression=True, use_zlib=use_zlib)
    data = ours.serialize(VALUE)
    assert pickle.loads(decompress(data)) == VALUE  # the format huey writes too
    assert len(data) < len(Serializer().serialize(VALUE))
    assert ours.deserialize(data) == VALUE


def test_compression_level_is_used_and_checked():
    data = bytes(range(256)) * 40
    fast = Serializer(compression=True, compression_level=1).serialize(data)
    best = Serializer(compression=True, compression_level=9).serialize(data)
    assert Serializer(compression=True).deserialize(fast) == data
    assert gzip.decompress(best) == gzip.decompress(fast)
    for bad in (10, -2, "9", True):
        with pytest.raises(ValueError, match="compression_level"):
            Serializer(compression=True, compression_level=bad)


def test_json_serializer_compresses_too():
    ours = JSONSerializer(compression=True, use_zlib=True, sort_keys=True)
    data = ours.serialize({"b": (1, 2), "a": "y" * 300})
    assert zlib.decompress(data).startswith(b'{"a":')
    assert ours.deserialize(data) == {"a": "y" * 300, "b": (1, 2)}


class Exits:
    def __reduce__(self):
        return (sys.exit, (3,))


@pytest.mark.parametrize("use_zlib", [False, True])
def test_bad_compressed_payloads_are_poison(use_zlib):
    ours = Serializer(compression=True, use_zlib=use_zlib)
    good = ours.serialize(VALUE)
    exits = (
        zlib.compress(pickle.dumps(Exits())) if use_zlib else gzip.compress(pickle.dumps(Exits()))
    )
    reasons = {
        good[:-6]: "^cannot decompress data: truncated, or followed by other bytes$",
        good[:2] + b"\x00" * 20: "^cannot decompress data: Error -3 while decompressing",
        exits: "^cannot unpickle data: SystemExit: 3$",
    }
    for bad, reason in reasons.items():
        with pytest.raises(PoisonMessage, match=reason):
            ours.deserialize(bad)


def test_a_payload_that_inflates_past_the_limit_is_poison():
    ours = Serializer(compression=True, use_zlib=True)
    ours.max_decompressed_size = 10_000
    assert ours.deserialize(ours.serialize("x" * 9_000)) == "x" * 9_000
    bomb = ours.serialize("x" * 50_000)
    assert len(bomb) < 1_000
    with pytest.raises(
        PoisonMessage, match="^cannot decompress data: it inflates past 10000 bytes$"
    ):
        ours.deserialize(bomb)
    with pytest.raises(
        PoisonMessage, match="^cannot decompress data: truncated, or followed by other bytes$"
    ):
        ours.deserialize(ours.serialize("y") + b"trailing")


def test_signed_serializer_takes_hueys_argument_order():
    by_position = SignedSerializer("s3cret", "salt-a")
    by_keyword = SignedSerializer(secret="s3cret", salt="salt-a")
    assert by_keyword.deserialize(by_position.serialize(VALUE)) == VALUE
    with pytest.raises(PoisonMessage, match="does not match"):
        SignedSerializer("s3cret", "salt-b").deserialize(by_position.serialize(VALUE))
    with pytest.raises(PoisonMessage, match="does not match"):
        SignedSerializer("s3cret").deserialize(by_position.serialize(VALUE))
    with pytest.raises(ValueError, match="secret"):
        SignedSerializer(salt="x")
    # this project's earlier order, SignedSerializer(inner, secret), still reads the same data
    legacy = SignedSerializer(JSONSerializer(), "k")
    assert (
        SignedSerializer("k", inner=JSONSerializer()).deserialize(legacy.serialize(VALUE)) == VALUE
    )


def test_signed_and_compressed_checks_the_signature_before_decompressing():
    signed = SignedSerializer("k", compression=True)
    data = signed.serialize(VALUE)
    assert gzip.decompress(data.split(b":", 2)[2]) == pickle.dumps(VALUE, protocol=4)
    assert signed.deserialize(data) == VALUE
    payload = data.split(b":", 2)[2]
    forged = gzip.compress(pickle.dumps(Exits()))
    with pytest.raises(PoisonMessage, match="does not match"):
        signed.deserialize(data.replace(payload, forged))
    with pytest.raises(ValueError, match="inner serializer"):
        SignedSerializer("k", inner=Serializer(), compression=True)


@pytest.mark.parametrize(
    "options", [{"compression": True}, {"compression": True, "use_zlib": True}]
)
def test_huey_compression_stores_compressed_and_runs_tasks(options):
    huey = Huey("compressed", backend="memory", **options)

    @huey.task()
    def echo(value):
        return value

    result = echo("z" * 1000)
    raw = huey.storage.queue.peek()[0]
    decompress = zlib.decompress if options.get("use_zlib") else gzip.decompress
    assert b"z" * 1000 in decompress(raw)
    assert drain(huey) == 1
    assert result.get() == "z" * 1000


def test_huey_compression_with_a_secret_and_with_a_serializer():
    huey = Huey("signed-compressed", backend="memory", compression=True, secret="k")

    @huey.task()
    def echo(value):
        return value

    result = echo(5)
    raw = huey.storage.queue.peek()[0]
    assert raw.startswith(SignedSerializer.PREFIX)
    assert gzip.decompress(raw.split(b":", 2)[2])
    drain(huey)
    assert result.get() == 5
    with pytest.raises(ValueError) as info:
        Huey("both", backend="memory", serializer=JSONSerializer(), compression=True)
    assert str(info.value) == (
        "Huey(compression=/use_zlib=) configures the default serializer; with serializer= "
        "pass them to it instead: Serializer(compression=True, use_zlib=...)"
    )


def test_a_message_that_fails_to_decompress_is_dead_lettered():
    huey = Huey("bad-gzip", backend="memory", compression=True)

    @huey.task()
    def echo(value):
        return value

    good = echo(1)
    huey.storage.queue.enqueue(b"\x1f\x8b\x08\x00 truncated gzip")
    huey.storage.queue.enqueue(gzip.compress(pickle.dumps(Exits())))  # SystemExit on unpickling
    assert drain(huey) == 3  # the worker survives both
    assert good.get() == 1
    reasons = sorted(letter["reason"] for letter in huey.dead_letters())
    assert len(reasons) == 2
    assert "decompress" in reasons[0] and "SystemExit" in reasons[1]


def _prose() -> str:
    """Text that compresses differently at each level (so the level in use shows)."""
    rng = random.Random(1)
    words = [
        "".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 7))) for _ in range(300)
    ]
    return " ".join(rng.choice(words) for _ in range(20000))


def test_compression_defaults_to_gzip_at_level_6_as_huey() -> None:
    text = _prose()
    assert gzip.compress(text.encode(), 6, mtime=0) != gzip.compress(text.encode(), 7, mtime=0)
    for plain, compressed in [
        (Serializer(), Serializer(compression=True)),
        (JSONSerializer(), JSONSerializer(compression=True)),
    ]:
        assert compressed.serialize(text) == gzip.compress(plain.serialize(text), 6, mtime=0)
        assert compressed.deserialize(compressed.serialize(text)) == text


@pytest.mark.parametrize("data", [b"", b"\x1f\x8b"])
def test_a_message_too_short_to_hold_anything_is_poison_saying_why(data: bytes) -> None:
    with pytest.raises(PoisonMessage) as info:
        Serializer(compression=True).deserialize(data)
    expected = "cannot unpickle data" if len(data) < 2 else "cannot decompress data: truncated"
    assert str(info.value).startswith(expected)


class _Duck:
    """A serializer of a user's that does not subclass Serializer (huey takes any such)."""

    def serialize(self, data: object) -> bytes:
        return json.dumps(data).encode()

    def deserialize(self, data: bytes) -> object:
        return json.loads(data)


def test_a_signed_serializer_wraps_any_object_that_serializes_in_the_older_order() -> None:
    signer = SignedSerializer(_Duck(), "k")
    data = signer.serialize({"v": 1})
    assert data.endswith(b':{"v": 1}') and signer.deserialize(data) == {"v": 1}


def test_a_salted_signature_is_keyed_by_sha256_of_salt_and_secret() -> None:
    # The key other processes (and earlier releases) derive: they must verify each other's data.
    signer = SignedSerializer("s3cret", "salt-a", inner=JSONSerializer())
    key = hashlib.sha256(b"salt-a:s3cret").digest()
    digest = hmac.new(key, b"[1]", hashlib.sha256).hexdigest().encode("ascii")
    assert signer.serialize([1]) == b"hs1:" + digest + b":[1]"


def test_options_beside_an_inner_serializer_are_refused_naming_them() -> None:
    with pytest.raises(ValueError) as info:
        SignedSerializer("k", inner=Serializer(), use_zlib=True, compression=True)
    assert str(info.value) == (
        "SignedSerializer: pass compression, use_zlib to the inner serializer, not here"
    )


def test_pickle_protocol_4_by_default_as_huey_and_the_highest_when_none() -> None:
    # Protocol 4 is what huey writes; every Python huey supports reads it.
    assert Serializer().serialize([1])[:2] == b"\x80\x04"
    assert Serializer(pickle_protocol=2).serialize([1])[:2] == b"\x80\x02"
    assert Serializer(pickle_protocol=None).serialize([1])[1] == pickle.HIGHEST_PROTOCOL


def test_turning_compression_on_leaves_queued_uncompressed_messages_readable() -> None:
    # Their first bytes could pass for compression headers if only one byte were checked:
    # "39" is a multiple of 31 as a zlib header would be, and BININT1 139 is "K\x8b".
    assert JSONSerializer(compression=True).deserialize(JSONSerializer().serialize(39)) == 39
    assert Serializer(compression=True).deserialize(pickle.dumps(139, protocol=1)) == 139


def test_a_payload_that_inflates_to_exactly_the_limit_is_read() -> None:
    ours = Serializer(compression=True, use_zlib=True)
    ours.max_decompressed_size = len(pickle.dumps("x" * 9_000, protocol=4))
    assert ours.deserialize(ours.serialize("x" * 9_000)) == "x" * 9_000


def test_the_serializer_huey_builds_by_default_is_plain_pickle_or_the_one_given() -> None:
    assert build_serializer(None, None).serialize([1]) == pickle.dumps([1], protocol=4)
    given = JSONSerializer()
    assert build_serializer(given, None) is given
