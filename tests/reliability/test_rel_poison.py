"""Poison input never stops a consumer.

Garbage bytes, a truncated pickle, an unknown task name, unsigned and tampered messages (a
secret is set) and a task that kills its worker process (`os._exit`) on every delivery each go to
the dead-letter store with their reason and a `dead-lettered` event, while the consumer keeps
running the good tasks around them. `huey dead-letters` lists them, `--requeue ID` puts one back
on the queue and `--purge` deletes them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.reliability.support import logs, server_url, stop, wait_for

pytestmark = pytest.mark.slow

SECRET = "poison-test-secret"


def poison_messages(huey, module) -> dict[str, bytes]:
    """name -> raw message bytes that can never run."""
    signed = huey.serializer  # SignedSerializer: secret set
    inner = signed.inner
    valid = signed.deserialize(huey.serialize_task(module.record.s("never")))

    def sign(payload: bytes) -> bytes:
        return signed.PREFIX + signed._sign(payload) + b":" + payload

    unknown = dict(valid, name="nowhere.missing_task", id="unknown-task")
    tampered = bytearray(huey.serialize_task(module.record.s("tampered")))
    tampered[-5] ^= 0x01  # one bit of the pickled arguments
    return {
        "garbage": b"\x00\xff\xfe garbage \x80\x04",
        "truncated": sign(inner.serialize(valid)[:-7]),
        "unknown": sign(inner.serialize(unknown)),
        "unsigned": inner.serialize(dict(valid, id="unsigned", args=("unsigned",))),
        "tampered": bytes(tampered),
    }


EXPECTED_REASONS = {
    "garbage": "not signed",
    "truncated": "unpickle",
    "unknown": "nowhere.missing_task",
    "unsigned": "not signed",
    "tampered": "does not match",
    "die": "delivered 3 times",
}


def start_event_listener(app):
    out = open(app.directory / "events.jsonl", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "huey_core.cli", "events", app.import_path],
        cwd=app.directory, env=app.env, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    proc.log = out
    app.procs.append(proc)
    return proc


def events(app) -> list[dict]:
    path = app.directory / "events.jsonl"
    found = []
    for line in path.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            pass
    return found


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_poison_is_dead_lettered_and_the_consumer_keeps_running(kind, make_app, tmp_path):
    app = make_app(server_url(kind, tmp_path), TEST_SECRET=SECRET, TEST_MAX_DELIVERIES="2")
    module = app.load()
    huey = module.huey
    queue = huey.storage.queue
    start_event_listener(app)
    # The listener sees events from the moment it subscribes: wait until it does.
    warm = 0
    while not wait_for(lambda: any(e.get("status") == "enqueued" for e in events(app)), 0.3):
        module.record(f"warm{warm}")
        warm += 1
        assert warm < 100, (app.directory / "events.jsonl").read_text()

    for i in range(10):
        module.record(i)
    poison = poison_messages(huey, module)
    for data in poison.values():
        queue.enqueue(data)
    module.die()
    for i in range(10, 20):
        module.record(i)

    # Worker processes, so os._exit() takes one worker and the consumer starts another.
    consumer = app.start_consumer(
        "-k", "process", "-w", "2", "-n", "--lease-timeout", "1", "-s", "0.2",
        "-d", "0.01", "-m", "0.2",
    )  # fmt: skip
    good = {str(i) for i in range(20)}
    assert wait_for(lambda: good <= set(app.executions()), timeout=60), logs(app)
    assert wait_for(lambda: len(huey.dead_letters()) == len(EXPECTED_REASONS), timeout=60), (
        huey.dead_letters(), logs(app))  # fmt: skip
    assert consumer.poll() is None, logs(app)  # still running

    runs = app.executions()
    assert "never" not in runs and "tampered" not in runs and "unsigned" not in runs
    assert all(runs[i] == 1 for i in good)
    letters = huey.dead_letters()
    reasons = [letter["reason"] for letter in letters]
    for name, expected in EXPECTED_REASONS.items():
        assert any(expected in reason for reason in reasons), (name, reasons)
    assert poison["garbage"] in [letter["payload"] for letter in letters]

    # One dead-lettered event per dead letter, with its reason and id.
    assert wait_for(
        lambda: len([e for e in events(app) if e["status"] == "dead-lettered"]) == len(letters),
        timeout=15,
    ), "missing events for: " + repr(sorted(
        d["reason"][:40] for d in letters if d["id"] not in
        {e.get("dead_letter_id") for e in events(app)}))  # fmt: skip
    dead_events = [e for e in events(app) if e["status"] == "dead-lettered"]
    assert {e["dead_letter_id"] for e in dead_events} == {letter["id"] for letter in letters}
    assert all(e["reason"] and e["error"] for e in dead_events)

    # The command line: list, requeue one (it is dead-lettered again, as it still cannot run),
    # then purge.
    listed = app.cli("dead-letters", app.import_path, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {row["id"] for row in rows} == {letter["id"] for letter in letters}
    text = app.cli("dead-letters", app.import_path)
    assert "nowhere.missing_task" in text.stdout and "does not match" in text.stdout

    garbage_id = next(letter["id"] for letter in letters if letter["payload"] == poison["garbage"])
    requeued = app.cli("dead-letters", app.import_path, "--requeue", garbage_id)
    assert requeued.returncode == 0 and "requeued 1" in requeued.stdout, requeued
    assert wait_for(lambda: garbage_id not in {d["id"] for d in huey.dead_letters()} and len(
        huey.dead_letters()) == len(EXPECTED_REASONS), timeout=15)  # fmt: skip
    unknown = app.cli("dead-letters", app.import_path, "--requeue", "no-such-id")
    assert unknown.returncode != 0 and "no-such-id" in unknown.stderr + unknown.stdout

    module.record("after-requeue")
    assert wait_for(lambda: "after-requeue" in app.executions(), timeout=30), logs(app)
    purged = app.cli("dead-letters", app.import_path, "--purge")
    assert purged.returncode == 0 and f"purged {len(EXPECTED_REASONS)}" in purged.stdout
    assert huey.dead_letters() == []
    assert app.cli("dead-letters", app.import_path).stdout.strip() == "no dead letters"

    assert stop(consumer) == 0, logs(app)
    assert queue.size() == 0 and queue.leases() == []
