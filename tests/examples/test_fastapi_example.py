"""examples/fastapi_app (docs/fastapi.md): the app served by a real uvicorn on a loopback port,
its async tasks run by a real `huey consume` process; and `make fastapi-demo`'s script."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from huey_core.testing.apps import stop
from tests.examples.support import EXAMPLES, consume, free_port, output

pytestmark = pytest.mark.slow


@pytest.fixture
def server(huey_url: str, processes) -> Iterator[httpx.Client]:
    """uvicorn serving fastapi_app.app on a free loopback port; an httpx client for it."""
    port = free_port()
    proc = processes(
        "-m", "uvicorn", "fastapi_app.app:app", "--host", "127.0.0.1", "--port", str(port)
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, output(proc)
        try:
            client.get("/heartbeat")
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, output(proc)
            time.sleep(0.1)
    yield client
    client.close()
    stop(proc)


def poll(client: httpx.Client, task_id: str, timeout: float = 30) -> tuple[dict, list[dict]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/tasks/{task_id}")
        assert response.status_code == 200
        seen.append(response.json())
        if seen[-1]["state"] in ("finished", "failed"):
            return seen[-1], seen
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never finished: {seen[-3:]}")


def test_fastapi_app_hands_work_to_a_real_consumer(server: httpx.Client, processes) -> None:
    accepted = server.post("/add", json={"a": 1, "b": 2})
    assert accepted.status_code == 202
    task_id = accepted.json()["id"]
    assert server.get(f"/tasks/{task_id}").json()["state"] == "pending"  # no consumer yet

    consumer = consume(processes, "fastapi_app")
    try:
        final, _ = poll(server, task_id)
        assert (final["state"], final["result"]) == ("finished", 3), output(consumer)

        waited = server.get("/add", params={"a": 20, "b": 22, "wait": 20})
        assert (waited.status_code, waited.json()["result"]) == (200, 42)

        report = server.post("/reports", json={"pages": 4}).json()
        final, seen = poll(server, report["id"])
        assert final["result"] == {"pages": 4, "words": 1400}
        assert final["progress"]["done"] == final["progress"]["total"] == 4
        running = [s["progress"]["done"] for s in seen if s["state"] == "running"]
        assert running and all(1 <= done < 4 for done in running), seen
        assert running == sorted(running)

        failing = server.post("/reports", json={"pages": 0}).json()
        final, _ = poll(server, failing["id"])
        assert final["state"] == "failed" and "at least one page" in final["error"]

        deadline = time.monotonic() + 30
        while server.get("/heartbeat").json()["heartbeat"] is None:
            assert time.monotonic() < deadline, output(consumer)
            time.sleep(0.1)
        assert server.get("/heartbeat").json()["heartbeat"]["pid"] == consumer.pid
    finally:
        assert stop(consumer) == 0, output(consumer)


def test_a_request_awaiting_a_result_leaves_the_server_free(server: httpx.Client, processes):
    """uvicorn runs one event loop: if awaiting a result blocked it, no other request would be
    answered until that result came. Here one request waits for a task no consumer runs yet,
    and meanwhile other requests are answered at once."""
    waiting: dict[str, Any] = {}

    def wait_for_sum() -> None:
        waiting["response"] = server.get("/add", params={"a": 40, "b": 2, "wait": 30})

    waiter = threading.Thread(target=wait_for_sum)
    waiter.start()
    time.sleep(0.5)  # the request is in, awaiting its result
    assert waiter.is_alive()
    for _ in range(5):
        start = time.monotonic()
        assert server.get("/heartbeat").status_code == 200
        assert server.post("/add", json={"a": 1, "b": 1}).status_code == 202
        assert time.monotonic() - start < 1.0
    consumer = consume(processes, "fastapi_app")
    try:
        waiter.join(40)
        assert not waiter.is_alive()
        response = waiting["response"]
        assert (response.status_code, response.json()["result"]) == (200, 42)
    finally:
        assert stop(consumer) == 0, output(consumer)


def test_fastapi_app_validates_input_and_times_out_with_504(server: httpx.Client) -> None:
    assert server.post("/add", json={"a": "one", "b": 2}).status_code == 422
    assert server.get("/add", params={"a": 1, "b": 1, "wait": 3600}).status_code == 422
    response = server.get("/add", params={"a": 1, "b": 1, "wait": 0.2})  # no consumer running
    assert response.status_code == 504
    assert "no result within 0.2 s" in response.json()["error"]


def test_make_fastapi_demo(processes) -> None:
    """What `make fastapi-demo` runs: uvicorn and a consumer, driven over real HTTP."""
    demo = processes(str(EXAMPLES / "webdemo.py"), "fastapi")
    assert demo.wait(120) == 0, output(demo)
    text = output(demo)
    assert "fastapi demo: every answer as expected" in text
    assert "running: page" in text
    assert "consumer stopped with SIGTERM, exit code 0" in text
