"""The message decoder is fuzzed: no input crashes a worker.

`huey.process()` is what a worker calls with each message it leases. For any bytes, and for
well-formed messages whose fields hold arbitrary values, it must return normally (running the
task, failing it, or dead-lettering the message) and never raise; the serializers raise only
PoisonMessage. A real consumer fed the nastiest inputs keeps its workers alive.
"""

from __future__ import annotations

import datetime
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huey_core import Huey
from huey_core.consumer import Consumer
from huey_core.exceptions import PoisonMessage
from huey_core.protocols import Delivery
from huey_core.serializer import JSONSerializer, Serializer, SignedSerializer

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


def make_huey(**options) -> Huey:
    huey = Huey(f"fuzz-{uuid.uuid4().hex[:8]}", backend="memory", **options)

    @huey.task()
    def target(*args, **kwargs):
        return len(args)

    @huey.task()
    def interrupted():
        raise KeyboardInterrupt  # what a task cut short by an exit signal looks like

    huey.fuzz_target = target
    huey.fuzz_interrupted = interrupted
    return huey


HUEYS = {
    "pickle": make_huey(),
    "json": make_huey(serializer=JSONSerializer()),
    "signed": make_huey(secret="fuzz-secret"),
}

timezones = st.sampled_from(
    [datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=-11, minutes=-30))]
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(), st.text(max_size=20), st.binary(max_size=20),
    st.datetimes(), st.datetimes(timezones=timezones), st.timedeltas(), st.dates(),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=8,
)  # fmt: skip
FIELDS = ["v", "id", "name", "args", "kwargs", "eta", "retries", "retry_delay", "retry_backoff",
          "priority", "expires", "expires_resolved", "timeout", "on_complete", "on_error",
          "chord"]  # fmt: skip


def base_message(huey: Huey) -> dict:
    return huey.serializer.deserialize(huey.serialize_task(huey.fuzz_target.s(1, 2)))


def process_never_raises(huey: Huey, data: bytes, deliveries: int = 1) -> None:
    """What a worker does with one leased message; it must not raise."""
    huey.process(Delivery(data, f"lease-{uuid.uuid4().hex}", deliveries), worker="fuzz")


@pytest.mark.parametrize("kind", list(HUEYS))
@FUZZ
@given(data=st.binary(max_size=300), deliveries=st.integers(1, 10))
def test_any_bytes(kind, data, deliveries):
    huey = HUEYS[kind]
    process_never_raises(huey, data, deliveries)
    with pytest.raises(PoisonMessage):  # random bytes are never a valid signed message
        SignedSerializer(Serializer(), "k").deserialize(data)


@pytest.mark.parametrize("kind", list(HUEYS))
@FUZZ
@given(st.data())
def test_mutated_valid_messages(kind, data):
    huey = HUEYS[kind]
    good = bytearray(huey.serialize_task(huey.fuzz_target.s(1, "two", {"three": 3})))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        pos = data.draw(st.integers(0, max(len(good) - 1, 0)))
        if op == "flip" and good:
            good[pos] ^= data.draw(st.integers(1, 255))
        elif op == "truncate":
            del good[pos:]
        else:
            good[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    process_never_raises(huey, bytes(good))


@pytest.mark.parametrize("kind", ["pickle", "signed"])
@FUZZ
@given(fields=st.dictionaries(st.sampled_from(FIELDS), values, min_size=1, max_size=4),
       drop=st.lists(st.sampled_from(FIELDS), max_size=3))  # fmt: skip
def test_well_formed_messages_with_arbitrary_fields(kind, fields, drop):
    huey = HUEYS[kind]
    message = base_message(huey)
    message.update(fields)
    for name in drop:
        message.pop(name, None)
    try:
        data = huey.serializer.serialize(message)
    except Exception:  # noqa: BLE001 - not every drawn value pickles; nothing to send then
        return
    process_never_raises(huey, data)


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(FIELDS), values, min_size=1, max_size=4))
def test_json_messages_with_arbitrary_fields(fields):
    huey = HUEYS["json"]
    message = base_message(huey)
    message.update(fields)
    try:
        data = huey.serializer.serialize(message)
    except Exception:  # noqa: BLE001 - JSON cannot carry every drawn value
        return
    process_never_raises(huey, data)


@FUZZ
@given(st.binary(max_size=200))
def test_serializers_raise_only_poison_message(data):
    for serializer in (Serializer(), JSONSerializer(), SignedSerializer(JSONSerializer(), "k")):
        try:
            serializer.deserialize(data)
        except PoisonMessage:
            pass


HOSTILE_PICKLES = {
    # Unpickling calls whatever the data names; without a secret this is arbitrary code (see
    # docs/reliability.md), but exceptions that usually end a thread must not end a worker.
    "system-exit": b"cbuiltins\nexit\n(I3\ntR.",
    "recursion": b"(" * 100_000,
    "huge-allocation": b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f.",
}


@pytest.mark.parametrize("name", list(HOSTILE_PICKLES))
def test_hostile_pickles_are_poison_not_worker_exits(name):
    huey = HUEYS["pickle"]
    with pytest.raises(PoisonMessage):
        huey.serializer.deserialize(HOSTILE_PICKLES[name])
    before = len(huey.dead_letters())
    process_never_raises(huey, HOSTILE_PICKLES[name])
    assert len(huey.dead_letters()) == before + 1


def test_a_consumer_fed_hostile_input_keeps_its_workers_and_runs_the_good_tasks():
    huey = make_huey(max_deliveries=2)
    queue = huey.storage.queue
    results = [huey.fuzz_target(i) for i in range(3)]
    for data in HOSTILE_PICKLES.values():
        queue.enqueue(data)
    queue.enqueue(b"\x80\x04garbage")
    huey.fuzz_interrupted()  # released, redelivered, then dead-lettered: never stuck
    results += [huey.fuzz_target(i, i) for i in range(3)]
    consumer = Consumer(huey, workers=2, periodic=False, lease_timeout=1, scheduler_interval=0.1)
    workers = None
    consumer.start()
    try:
        assert [r.get(blocking=True, timeout=10) for r in results] == [1, 1, 1, 2, 2, 2]
        workers = list(consumer.worker_list)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (queue.size() or queue.leases()):
            time.sleep(0.05)
        assert queue.size() == 0 and queue.leases() == []
        assert len(huey.dead_letters()) == len(HOSTILE_PICKLES) + 2
        assert all(w.thread.is_alive() for w in workers)
        assert consumer.worker_list == workers  # no worker had to be replaced
    finally:
        consumer.stop(timeout=2)
