"""Serializer details beyond test_messages.py: how exceptions cross JSON, what Error and SKIPPED
compare and print as, and what a signed message that fails each check is told."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle

import pytest

from huey_core import TaskException
from huey_core.exceptions import PoisonMessage
from huey_core.serializer import SKIPPED, Error, JSONSerializer, Serializer, SignedSerializer


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
