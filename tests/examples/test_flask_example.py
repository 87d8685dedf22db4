"""examples/flask_app (docs/flask.md): requests through Flask's test client, tasks run by a real
`huey consume` process; and `make flask-demo`'s script, which serves the app over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from huey_core.testing.apps import stop
from tests.examples.support import EXAMPLES, consume, output

pytestmark = pytest.mark.slow


def poll(client: Any, task_id: str, timeout: float = 30) -> tuple[dict[str, Any], list[dict]]:
    """GET /tasks/<id> until finished or failed: (final state, every state seen)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/tasks/{task_id}")
        assert response.status_code == 200
        seen.append(response.get_json())
        if seen[-1]["state"] in ("finished", "failed"):
            return seen[-1], seen
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never finished: {seen[-3:]}")


def test_flask_app_hands_work_to_a_real_consumer(example, processes) -> None:
    app = example("flask_app.app").app
    client = app.test_client()

    accepted = client.post("/add", json={"a": 1, "b": 2})
    assert accepted.status_code == 202
    task_id = accepted.get_json()["id"]
    assert accepted.get_json()["url"] == f"/tasks/{task_id}"
    assert client.get(f"/tasks/{task_id}").get_json()["state"] == "pending"  # no consumer yet

    consumer = consume(processes, "flask_app")
    try:
        final, _ = poll(client, task_id)
        assert (final["state"], final["result"]) == ("finished", 3), output(consumer)
        assert poll(client, task_id)[0]["result"] == 3  # polling again still sees it

        waited = client.get("/add?a=20&b=22&wait=20")
        assert (waited.status_code, waited.get_json()["result"]) == (200, 42)

        report = client.post("/reports", json={"pages": 4}).get_json()
        final, seen = poll(client, report["id"])
        assert final["result"] == {"pages": 4, "words": 1400}
        assert final["progress"]["done"] == final["progress"]["total"] == 4
        running = [s["progress"]["done"] for s in seen if s["state"] == "running"]
        assert running and all(1 <= done < 4 for done in running), seen
        assert running == sorted(running)

        failing = client.post("/reports", json={"pages": 0}).get_json()
        final, _ = poll(client, failing["id"])
        assert final["state"] == "failed" and "at least one page" in final["error"]

        # The periodic task runs when the consumer starts (then once a minute).
        deadline = time.monotonic() + 30
        while client.get("/heartbeat").get_json()["heartbeat"] is None:
            assert time.monotonic() < deadline, output(consumer)
            time.sleep(0.1)
        assert client.get("/heartbeat").get_json()["heartbeat"]["pid"] == consumer.pid
    finally:
        assert stop(consumer) == 0, output(consumer)


def test_flask_app_rejects_bad_input_with_a_clear_error(example) -> None:
    client = example("flask_app.app").app.test_client()
    response = client.post("/add", json={"a": "one", "b": 2})
    assert response.status_code == 400
    assert response.get_json() == {"error": "a must be an integer"}
    assert client.post("/reports", data="not json").status_code == 400
    response = client.get("/add?a=1&b=2&wait=soon")
    assert (response.status_code, response.get_json()) == (
        400,
        {"error": "wait must be a number of seconds"},
    )


def test_flask_app_wait_gives_up_with_504(example) -> None:
    client = example("flask_app.app").app.test_client()
    response = client.get("/add?a=1&b=1&wait=0.2")  # no consumer is running
    assert response.status_code == 504
    assert "no result within 0.2 s" in response.get_json()["error"]


def test_make_flask_demo(processes) -> None:
    """What `make flask-demo` runs: the Flask server and a consumer, driven over real HTTP."""
    demo = processes(str(EXAMPLES / "webdemo.py"), "flask")
    assert demo.wait(120) == 0, output(demo)
    text = output(demo)
    assert "flask demo: every answer as expected" in text
    assert "running: page" in text
    assert "consumer stopped with SIGTERM, exit code 0" in text
