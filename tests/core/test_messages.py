"""Serializers, signing, poison messages and the dead-letter store."""

from __future__ import annotations

import datetime
import json
import pickle

import pytest

from huey_core import (
    Huey,
    JSONSerializer,
    PoisonMessage,
    Serializer,
    SignedSerializer,
    TaskException,
)
from huey_core.protocols import Delivery
from huey_core.serializer import SKIPPED, Error
from tests.core.helpers import collect_events, drain, make_huey

VALUES = [
    None,
    1,
    2.5,
    "text",
    b"\x00bytes",
    (1, (2, 3)),
    [1, [2]],
    {"a": (1, 2), "b": {"c": None}},
    {1: "int key"},
    {"__huey__": "looks like a tag"},
    {1, 2},
    datetime.datetime(2024, 2, 29, 12, 30, 1, 5),
    datetime.date(2024, 1, 1),
    datetime.timedelta(seconds=90),
    Error({"error": "ValueError('x')", "traceback": "tb", "retries": 0, "task_id": "i"}),
    [SKIPPED, 1],
]


@pytest.mark.parametrize("serializer", [Serializer(), JSONSerializer()], ids=["pickle", "json"])
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_round_trip(serializer, value) -> None:
    assert serializer.deserialize(serializer.serialize(value)) == value


def test_json_is_json_and_carries_exceptions() -> None:
    serializer = JSONSerializer()
    data = serializer.serialize({"args": (1, "x")})
    assert json.loads(data) == {"args": {"__huey__": ["tuple", [1, "x"]]}}
    back = serializer.deserialize(serializer.serialize(KeyError("k")))
    assert isinstance(back, KeyError) and back.args == ("k",)


def test_json_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(TypeError):
        JSONSerializer().serialize(object())


@pytest.mark.parametrize(
    "serializer",
    [
        Serializer(),
        JSONSerializer(),
        SignedSerializer(Serializer(), "s3cret"),
        SignedSerializer(JSONSerializer(), b"k"),
    ],
    ids=["pickle", "json", "signed-pickle", "signed-json"],
)
@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00\xff garbage",
        pickle.dumps({"a": 1})[:-3],
        b'{"__huey__": ["nope", 1]}',
        b"[1,",
        b"hs1:zz:",
    ],
    ids=["empty", "garbage", "truncated-pickle", "bad-tag", "truncated-json", "bad-signature"],
)
def test_bad_bytes_only_ever_raise_poison_message(serializer, garbage) -> None:
    with pytest.raises(PoisonMessage):
        serializer.deserialize(garbage)


def test_signature_rejects_tampering_and_unsigned_data() -> None:
    signed = SignedSerializer(Serializer(), "secret")
    data = signed.serialize({"a": 1})
    assert signed.deserialize(data) == {"a": 1}
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(PoisonMessage, match="tampered"):
        signed.deserialize(tampered)
    with pytest.raises(PoisonMessage, match="not signed"):
        signed.deserialize(Serializer().serialize({"a": 1}))
    with pytest.raises(PoisonMessage):
        SignedSerializer(Serializer(), "other").deserialize(data)


@pytest.mark.parametrize("serializer", [None, JSONSerializer()], ids=["pickle", "json"])
def test_tasks_run_with_each_serializer(serializer) -> None:
    huey = make_huey(serializer=serializer)

    @huey.task()
    def combine(a, b, when=None):
        return [a, b, when]

    @huey.task()
    def wrap(*parts):
        return parts

    when = datetime.datetime(2030, 1, 1)
    result = huey.enqueue(combine.s((1, 2), {"k": b"v"}, when=when).then(wrap, "x"))
    drain(huey)
    first = [(1, 2), {"k": b"v"}, when]
    assert result.get() == [first, ("x", first)]


def test_chord_with_a_skipped_member_under_json() -> None:
    from huey_core import group

    huey = make_huey(serializer=JSONSerializer())

    @huey.task()
    def ident(x):
        return x

    @huey.task()
    def collect(values):
        return values

    members = [ident.s(1), ident.s(2)]
    result = huey.enqueue(group(members).then(collect))
    huey.revoke(members[0])
    drain(huey)
    assert result.get() == [SKIPPED, 2]


def test_unserializable_result_becomes_an_error() -> None:
    huey = make_huey(serializer=JSONSerializer())

    @huey.task()
    def odd():
        return object()

    result = odd()
    drain(huey)
    with pytest.raises(TaskException) as info:
        result.get()
    assert "cannot encode" in info.value.metadata["error"]


def test_message_format_is_documented_fields() -> None:
    huey = make_huey(serializer=JSONSerializer())

    @huey.task(retries=2, retry_delay=3, priority=4, timeout=5, expires=60)
    def job(x, y=None):
        return x

    job(1, y=2)
    (raw,) = huey.storage.queue.peek()
    message = huey.serializer.deserialize(raw)
    assert set(message) == {
        "v",
        "id",
        "name",
        "args",
        "kwargs",
        "eta",
        "retries",
        "retry_delay",
        "retry_backoff",
        "priority",
        "expires",
        "expires_resolved",
        "timeout",
        "on_complete",
        "on_error",
        "chord",
    }
    assert (
        message["name"].endswith(".job")
        and message["args"] == (1,)
        and message["kwargs"] == {"y": 2}
    )
    assert (
        message["retries"],
        message["retry_delay"],
        message["priority"],
        message["timeout"],
    ) == (2, 3, 4, 5)


def _dead_letter_scenario(huey: Huey, payload: bytes, deliveries: int = 1) -> list[dict]:
    delivery = Delivery(payload, "lease", deliveries)
    return collect_events(huey, lambda: huey.process(delivery, worker="w1"), expected=1)


def test_signed_huey_dead_letters_tampered_and_unsigned_messages() -> None:
    producer = make_huey(secret="right")
    ran = []

    @producer.task()
    def job():
        ran.append(1)

    job()
    (good,) = producer.storage.queue.peek()
    tampered = good.replace(b"job", b"jox")
    unsigned = Serializer().serialize(producer.codec.to_message(job.s()))
    for payload, reason in ((tampered, "tampered"), (unsigned, "not signed")):
        events = _dead_letter_scenario(producer, payload)
        assert ran == []
        assert [e["status"] for e in events] == ["dead-lettered"]
        assert reason in events[0]["reason"] and events[0]["error"] is True
    letters = producer.dead_letters()
    assert len(letters) == 2 and {type(letter["payload"]) for letter in letters} == {bytes}
    drain(producer)  # the genuine message still runs
    assert ran == [1]


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\x80\x04garbage", "unpickle"),
        (pickle.dumps({"v": 1, "id": "x", "name": "x"})[:-5], "unpickle"),
        (pickle.dumps(["not", "a", "dict"]), "not a task message"),
        (pickle.dumps({"v": 1, "id": "i", "name": "nowhere.task", "args": ()}), "unknown task"),
        (pickle.dumps({"v": 1, "id": "i", "name": "x", "args": 5}), "malformed args"),
    ],
    ids=["garbage", "truncated", "wrong-type", "unknown-task", "bad-args"],
)
def test_poison_messages_are_dead_lettered_with_reason(huey: Huey, payload, reason) -> None:
    events = _dead_letter_scenario(huey, payload)
    (letter,) = huey.dead_letters()
    assert reason in letter["reason"] and letter["payload"] == payload
    assert letter["deliveries"] == 1 and letter["time"] > 0
    (event,) = events
    assert event["status"] == "dead-lettered" and reason in event["reason"]
    assert event["dead_letter_id"] == letter["id"]


def test_unknown_task_dead_letter_names_the_task(huey: Huey) -> None:
    other = make_huey()

    @other.task()
    def elsewhere():
        pass

    elsewhere()
    (payload,) = other.storage.queue.peek()
    events = _dead_letter_scenario(huey, payload)
    (letter,) = huey.dead_letters()
    assert letter["task"] == f"{__name__}.elsewhere" and letter["task_id"]
    assert events[0]["task"] == f"{__name__}.elsewhere"


def test_too_many_deliveries_dead_letters_without_running(huey: Huey) -> None:
    ran = []

    @huey.task()
    def crashes_worker():
        ran.append(1)

    crashes_worker()
    (payload,) = huey.storage.queue.peek()
    huey.storage.queue.flush()
    events = _dead_letter_scenario(huey, payload, deliveries=huey.max_deliveries + 1)
    assert ran == []
    (letter,) = huey.dead_letters()
    assert letter["reason"] == (
        "delivered 6 times (max_deliveries=5); it probably kills its worker"
    )
    assert letter["task"] == f"{__name__}.crashes_worker" and letter["deliveries"] == 6
    assert events[0]["task"] == "crashes_worker" and events[0]["id"] == letter["task_id"]
    # Done with: the caller acknowledges it, so it does not come back to kill another worker.
    assert huey.process(Delivery(payload, "l3", huey.max_deliveries + 1)) is True

    # Delivery number max_deliveries still runs.
    huey.process(Delivery(payload, "l2", huey.max_deliveries))
    assert ran == [1]


def test_a_requeued_dead_letter_answers_its_result_with_the_new_run(huey: Huey) -> None:
    @huey.task()
    def double(n):
        return n * 2

    result = double(21)
    (payload,) = huey.storage.queue.peek()
    huey.storage.queue.flush()
    huey.process(Delivery(payload, "l", huey.max_deliveries + 1))  # dead-lettered
    (letter,) = huey.dead_letters()
    assert huey.requeue_dead_letter(letter["id"]) is True
    # Not the error stored when it was dead-lettered: the task has not run again yet...
    assert result.get() is None
    drain(huey)
    assert result.get(blocking=True, timeout=5) == 42  # ...and then the requeued run's value


def test_requeue_and_purge_dead_letters(huey: Huey) -> None:
    ran = []

    @huey.task()
    def job():
        ran.append(1)

    job()
    (payload,) = huey.storage.queue.peek()
    huey.storage.queue.flush()
    huey.process(Delivery(payload, "l", 99))
    (letter,) = huey.dead_letters()
    assert huey.requeue_dead_letter(letter["id"]) is True
    assert huey.requeue_dead_letter(letter["id"]) is False
    assert huey.dead_letters() == []
    drain(huey)  # a requeued message starts with a fresh delivery count
    assert ran == [1]
    huey.process(Delivery(b"junk", "l", 1))
    huey.process(Delivery(b"junk2", "l", 1))
    assert huey.purge_dead_letters() == 2 and huey.dead_letters() == []


def test_dequeue_skips_poison(huey: Huey) -> None:
    @huey.task()
    def job():
        return 1

    huey.storage.queue.enqueue(b"junk")
    job()
    task = huey.dequeue()
    assert task is not None and task.name == "job"
    assert len(huey.dead_letters()) == 1


def test_signed_results_too() -> None:
    huey = make_huey(secret="k")

    @huey.task()
    def job():
        return {"x": 1}

    result = job()
    drain(huey)
    raw = huey.storage.store.peek(result.id)
    assert raw.startswith(b"hs1:")
    assert result.get() == {"x": 1}
