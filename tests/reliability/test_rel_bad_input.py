"""No message and no task can take a worker down (issue 11, items 1 and 2).

- A message whose unpickling raises a BaseException (KeyboardInterrupt, SystemExit,
  GeneratorExit, a bare BaseException or a subclass; an argument whose `__reduce__` names a
  callable that raises) is dead-lettered with its reason within `max_deliveries`, signed or
  not. Before, a KeyboardInterrupt one killed the worker thread and stayed leased.
- A task body that raises such an exception ends as an error result and is retried as
  configured, in thread and process workers, and the worker lives on. A pre- or post-execute
  hook or a signal receiver that raises SystemExit, KeyboardInterrupt or a BaseException is
  logged; the task still completes.

Every backend: memory (an in-process consumer), SQLite, PostgreSQL, MariaDB and Redis (real
`huey consume` processes).
"""

from __future__ import annotations

import builtins
import time
import uuid

import pytest

from huey_core import Huey
from huey_core.consumer import Consumer
from huey_core.exceptions import PoisonMessage, TaskException
from huey_core.protocols import Delivery
from tests.reliability.support import KINDS, logs, server_url, stop, wait_for

SECRET = "bad-input-secret"
BOMBS = ("KeyboardInterrupt", "SystemExit", "GeneratorExit", "BaseException", "Doom")
RAISED = ("GeneratorExit", "BaseException", "Doom", "SystemExit")


class Doom(BaseException):
    pass


def explode(kind: str) -> None:
    raise (Doom if kind == "Doom" else getattr(builtins, kind))(f"{kind} while unpickling")


class Bomb:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __reduce__(self):
        return (explode, (self.kind,))


@pytest.mark.parametrize("secret", [None, SECRET], ids=["pickle", "signed"])
@pytest.mark.parametrize("kind", BOMBS)
def test_a_message_whose_unpickling_raises_is_dead_lettered_at_once(kind, secret):
    huey = Huey(f"bomb-{uuid.uuid4().hex[:8]}", backend="memory", secret=secret)

    @huey.task()
    def target(arg):
        return arg

    data = huey.serialize_task(target.s(Bomb(kind)))
    with pytest.raises(PoisonMessage, match=kind):
        huey.serializer.deserialize(data)
    with pytest.raises(PoisonMessage, match=kind):
        huey.deserialize_task(data)
    assert huey.process(Delivery(data, "lease-1", 1), worker="w") is True  # acked: done with
    [letter] = huey.dead_letters()
    assert kind in letter["reason"] and letter["payload"] == data
    assert huey.pending() == [] and huey.scheduled() == []  # inspection skips it too


def _check_outcome(app, huey, module, results) -> None:
    good, raised, hooked = results
    queue = huey.storage.queue
    # Settled first: a message released by mistake would run again before the queue is empty.
    assert wait_for(lambda: queue.size() == 0 and queue.leases() == [], timeout=15), (
        queue.size(), queue.leases())  # fmt: skip
    time.sleep(0.5)  # a released message is redelivered after one backoff step (-d 0.01)
    runs = app.executions()
    assert all(runs[str(i)] == 1 for i in range(10)), runs
    for kind, result in raised.items():
        assert runs[f"raises-{kind}"] == 2, (kind, runs)  # retries=1: ran, retried once
        with pytest.raises(TaskException) as info:
            result.get(blocking=True, timeout=15)
        assert kind.replace("Doom", "Doom(") in str(info.value) or kind in str(info.value)
    assert runs["hooked"] == 1 and hooked.get(blocking=True, timeout=15) == "hooked"
    letters = huey.dead_letters()
    assert len(letters) == len(BOMBS), letters
    for kind in BOMBS:
        letter = next(d for d in letters if kind in d["reason"])
        assert letter["deliveries"] <= huey.max_deliveries, letter
    assert queue.size() == 0 and queue.leases() == []


def _enqueue_all(module):
    for i in range(5):
        module.record(i)
    for kind in BOMBS:
        module.record(module.Bomb(kind))
    raised = {kind: module.raises(kind, f"raises-{kind}") for kind in RAISED}
    hooked = module.hooked("hooked")
    for i in range(5, 10):
        module.record(i)
    return None, raised, hooked


def _done(app, huey) -> bool:
    runs = app.executions()
    return (
        all(str(i) in runs for i in range(10))
        and runs["hooked"] == 1
        and all(runs[f"raises-{k}"] == 2 for k in RAISED)
        and len(huey.dead_letters()) == len(BOMBS)
    )


WORKERS = [(kind, "thread") for kind in KINDS] + [(kind, "process") for kind in KINDS]


@pytest.mark.parametrize(("kind", "worker_type"), WORKERS)
def test_bad_input_never_wedges_a_consumer(kind, worker_type, make_app, tmp_path):
    # Process workers run with a secret: the signed path must dead-letter the same way.
    env = {"TEST_MAX_DELIVERIES": "2"}
    if worker_type == "process":
        env["TEST_SECRET"] = SECRET
    app = make_app(server_url(kind, tmp_path), **env)
    module = app.load()
    huey = module.huey
    results = _enqueue_all(module)
    consumer = app.start_consumer(
        "-k", worker_type, "-w", "2", "-n", "--lease-timeout", "2", "-s", "0.2",
        "-d", "0.01", "-m", "0.2",
    )  # fmt: skip
    assert wait_for(lambda: _done(app, huey), timeout=60), (app.executions(), logs(app))
    _check_outcome(app, huey, module, results)
    text = logs(app)
    assert consumer.poll() is None, text
    # No worker died on the way: none was replaced, no thread ended with a traceback.
    for sign in ("stopped unexpectedly", "exited with code", "Exception in thread"):
        assert sign not in text, text
    assert stop(consumer) == 0, logs(app)


def test_bad_input_never_wedges_an_in_process_consumer_on_memory(make_app):
    app = make_app("memory://", TEST_MAX_DELIVERIES="2")
    module = app.load()
    huey = module.huey
    results = _enqueue_all(module)
    consumer = Consumer(huey, workers=2, periodic=False, lease_timeout=2, scheduler_interval=0.2)
    consumer.start()
    try:
        workers = list(consumer.worker_list)
        assert wait_for(lambda: _done(app, huey), timeout=60), app.executions()
        _check_outcome(app, huey, module, results)
        assert consumer.worker_list == workers and all(w.is_alive() for w in workers)
    finally:
        consumer.stop(timeout=5)


def test_a_dead_lettered_task_with_a_readable_id_answers_its_result_with_an_error():
    huey = Huey(f"dead-{uuid.uuid4().hex[:8]}", backend="memory", max_deliveries=2)

    @huey.task()
    def target(arg):
        return arg

    unknown = target.s(1)
    data = huey.serialize_task(unknown).replace(b"target", b"gone00")  # a task nobody has
    assert huey.process(Delivery(data, "lease-1", 1)) is True
    with pytest.raises(TaskException, match="dead-lettered: unknown task"):
        huey.result(unknown.id, blocking=True, timeout=5)  # answers at once, never waits
    too_often = target.s(2)
    assert huey.process(Delivery(huey.serialize_task(too_often), "lease-2", 3)) is True
    with pytest.raises(TaskException, match="dead-lettered: delivered 3 times"):
        huey.result(too_often.id, blocking=True, timeout=5)
    assert len(huey.dead_letters()) == 2
