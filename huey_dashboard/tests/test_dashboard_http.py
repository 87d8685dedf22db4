"""The dashboard over HTTP, in process (Starlette's TestClient) on the memory backend: what the
pages show, and that it is safe by default (host check, token, CSRF, read-only, previews that
never decode untrusted bytes without the app's serializer, masked passwords)."""

from __future__ import annotations

import datetime
import pickle
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from huey_core import Huey
from huey_core.testing.apps import wait_for
from huey_dashboard import Settings, create_app
from huey_dashboard.views import PREVIEW_CHARS

LOCAL = "http://127.0.0.1:8765"


def make_huey(**options: Any) -> Huey:
    huey = Huey(f"dash-{uuid.uuid4().hex[:8]}", backend="memory", **options)

    @huey.task(retries=1)
    def add(a: Any, b: Any = 0) -> Any:
        return a + b

    @huey.task()
    def connect(url: str) -> None:
        raise ConnectionError(f"cannot reach {url}")

    return huey


@pytest.fixture
def dashboard() -> Iterator[Callable[..., tuple[Huey, TestClient]]]:
    clients: list[TestClient] = []

    def make(huey: Huey | None = None, **settings: Any) -> tuple[Huey, TestClient]:
        huey = make_huey() if huey is None else huey
        client = TestClient(create_app(huey, Settings(**settings)), base_url=LOCAL)
        client.__enter__()  # runs the lifespan: the event feed subscribes
        clients.append(client)
        return huey, client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def task(huey: Huey, name: str) -> Any:
    return next(c for c in huey.registry.tasks.values() if c.name == name)


def enqueue(huey: Huey, name: str, *args: Any, **kwargs: Any) -> Any:
    return huey.enqueue(task(huey, name)(args, kwargs))


def csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "the page has no action form"
    return match.group(1)


def counts(client: TestClient) -> dict[str, int]:
    info = client.get("/api/overview").json()["info"]
    return {k: info[k] for k in ("queued", "scheduled", "in_flight", "dead_letters", "results")}


# -- what the pages show ----------------------------------------------------------------------


def test_overview_counts_what_the_backend_holds(dashboard) -> None:
    huey, client = dashboard()
    assert counts(client) == {"queued": 0, "scheduled": 0, "in_flight": 0, "dead_letters": 0,
                              "results": 0}  # fmt: skip
    add = task(huey, "add")
    huey.enqueue(add((1,), {}, priority=9))  # dequeued first: the one in flight
    for i in range(3):
        huey.enqueue(add((i,), {}))
    huey.enqueue(add((0,), {}, priority=5))
    huey.add_schedule(add((1,), {}, eta=datetime.datetime(2100, 1, 1)))
    huey.dead_letter(b"junk", "test: put aside")
    huey.put_result("some-task-id", 42)
    delivery = huey.storage.queue.dequeue("host-a:123:Worker-1", 30)
    assert delivery is not None

    assert counts(client) == {"queued": 4, "scheduled": 1, "in_flight": 1, "dead_letters": 1,
                              "results": 1}  # fmt: skip
    data = client.get("/api/overview").json()
    assert data["by_priority"]["rows"] == [{"priority": 5, "count": 1},
                                           {"priority": 0, "count": 3}]  # fmt: skip
    page = client.get("/").text
    assert "host-a:123:Worker-1" in page  # the lease owner, in the in-flight table
    assert re.search(r'data-count="queued">4<', page)


def run_one(huey: Huey, worker: str = "host-a:1:Worker-1") -> None:
    """Claim the next message and process it here, as a consumer worker would."""
    delivery = huey.storage.queue.dequeue(worker, 30)
    assert delivery is not None
    with huey.running_as(worker):
        huey.process(delivery, worker)
    huey.storage.queue.ack(delivery.lease)


def test_the_task_view_shows_arguments_error_timeline_and_progress(dashboard) -> None:
    huey, client = dashboard()
    url = "postgresql://app:hunter2@db.internal/orders"
    result = enqueue(huey, "connect", url)
    queued = client.get(f"/tasks/{result.id}").text
    assert "postgresql://app:***@db.internal/orders" in queued  # the argument, masked
    assert "hunter2" not in queued

    run_one(huey)
    assert wait_for(lambda: len(client.get(f"/api/tasks/{result.id}").json()["timeline"]) >= 3)
    detail = client.get(f"/api/tasks/{result.id}").json()
    assert [e["status"] for e in detail["timeline"]] == ["enqueued", "started", "error"]
    assert detail["result"]["error"] and "ConnectionError" in detail["result"]["value"]
    page = client.get(f"/tasks/{result.id}").text
    assert "Traceback" in page and "app:***@db.internal" in page and "hunter2" not in page

    # Progress, as issue 14's task.progress() reports it: events, else the stored key.
    other = enqueue(huey, "add", 1, 2)
    huey.emit("progress", other.task, done=30, total=40, note="rows imported")
    assert wait_for(lambda: "rows imported" in client.get(f"/tasks/{other.id}").text)
    assert (
        '<progress id="task-progress" max="1" value="0.75">'
        in client.get(f"/tasks/{other.id}").text
    )
    stored = enqueue(huey, "add", 2, 3)
    huey.storage.store.put(
        f"progress:{stored.id}",
        b'{"done": 5, "total": null, "note": "pages", "time": 1700000000}',
    )
    page = client.get(f"/tasks/{stored.id}").text
    assert '<span id="task-progress">5</span>' in page and "pages" in page


def test_the_event_feed_filters_by_task_and_status(dashboard) -> None:
    huey, client = dashboard()
    enqueue(huey, "add", 1, 2)
    enqueue(huey, "connect", "redis://x")
    run_one(huey)
    run_one(huey)
    assert wait_for(lambda: len(client.get("/events?status=error").text.split("s-error")) == 2)
    errors = client.get("/events?status=error").text
    assert re.findall(r'class="status s-([\w-]+)"', errors) == ["error"]
    adds = client.get("/events?task=add").text
    rows = re.findall(r"<tr><td>[^<]*</td><td><span class=\"status s-[\w-]+\">(\w+)</span></td>"
                      r"<td>(\w+)</td>", adds)  # fmt: skip
    assert sorted(rows) == [("enqueued", "add"), ("finished", "add"), ("started", "add")]


def test_argument_previews_are_truncated(dashboard) -> None:
    huey, client = dashboard()
    enqueue(huey, "add", "x" * 5000, list(range(10_000)))
    page = client.get("/queue").text
    previews = re.findall(r'<td class="mono preview">(.*?)</td>', page, re.S)
    assert len(previews) == 1
    assert "xxxx" in previews[0] and len(previews[0]) <= PREVIEW_CHARS + 20  # + html escapes


class Boom:
    """Unpickling this creates a file: proof that bytes were unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_a_signed_app_never_unpickles_unsigned_bytes(dashboard, tmp_path: Path) -> None:
    huey, client = dashboard(make_huey(secret="a secret of this app"))
    marker = tmp_path / "unpickled"
    forged = pickle.dumps({"id": "forged", "name": "x.add", "args": (Boom(marker),)})
    storage = huey.storage
    storage.queue.enqueue(forged)
    storage.schedule.add(forged, time.time() + 600)
    storage.store.put("forged", forged)  # where a result would be
    huey.dead_letter(forged, "test: forged")
    pages = [client.get(p) for p in ("/", "/queue", "/dead-letters", "/tasks/forged",
                                     "/api/overview", "/api/tasks/forged")]  # fmt: skip
    assert all(p.status_code == 200 for p in pages)
    assert not marker.exists()
    assert "not decoded: message is not signed" in pages[1].text


# -- actions ------------------------------------------------------------------------------------


def post(client: TestClient, action: str, token: str, **fields: str) -> Any:
    return client.post(f"/actions/{action}", data={"csrf": token, **fields},
                       follow_redirects=False)  # fmt: skip


def flash(response: Any) -> str:
    return str(response.cookies.get("huey_dashboard_flash", ""))


def test_revoke_and_restore_a_task_kind_or_id(dashboard) -> None:
    huey, client = dashboard()
    token = csrf(client.get("/tasks").text)
    add = task(huey, "add")
    answer = post(client, "revoke", token, task=add.registry_name, next="/tasks")
    assert answer.status_code == 303 and answer.headers["location"] == "/tasks"
    assert huey.is_revoked(add) and "every add task is revoked" in flash(answer)
    assert "s-revoked" in client.get("/tasks").text
    post(client, "restore", token, task="add")
    assert not huey.is_revoked(add)

    result = enqueue(huey, "add", 1, 2)
    post(client, "revoke", token, task_id=result.id)
    assert result.is_revoked()
    post(client, "restore", token, task_id=result.id)
    assert not result.is_revoked()
    refused = post(client, "revoke", token, task="no_such_task")
    assert "no task named 'no_such_task'" in flash(refused)


def test_requeue_and_purge_dead_letters_one_or_all(dashboard) -> None:
    huey, client = dashboard()
    message = huey.serialize_task(task(huey, "add")((1, 2), {}))
    ids = [huey.dead_letter(message, f"test {i}") for i in range(4)]
    token = csrf(client.get("/dead-letters").text)
    assert "requeued 1 dead letter" in flash(post(client, "requeue", token, dead_letter=ids[0]))
    assert huey.storage.queue.size() == 1 and len(huey.dead_letters()) == 3
    assert "purged 1 dead letter" in flash(post(client, "purge", token, dead_letter=ids[1]))
    assert len(huey.dead_letters()) == 2 and huey.storage.queue.size() == 1
    assert "no dead letter" in flash(post(client, "purge", token, dead_letter=ids[1]))
    assert "requeued 2" in flash(post(client, "requeue", token, dead_letter="all"))
    assert huey.storage.queue.size() == 3 and huey.dead_letters() == []
    huey.dead_letter(message, "again")
    assert "purged 1" in flash(post(client, "purge", token, dead_letter="all"))
    assert huey.dead_letters() == []


def test_reschedule_runs_a_copy_now_and_revokes_the_original(dashboard) -> None:
    huey, client = dashboard()
    queued = enqueue(huey, "add", 0, 0)
    huey.storage.queue.flush()
    scheduled = task(huey, "add")((1, 2), {}, eta=datetime.datetime(2100, 1, 1))
    huey.add_schedule(scheduled)
    token = csrf(client.get("/queue").text)
    answer = post(client, "reschedule", token, task_id=scheduled.id, delay="0")
    assert "runs now" in flash(answer)
    assert huey.is_revoked(scheduled.id)
    copies = huey.pending()
    assert len(copies) == 1 and copies[0].args == (1, 2) and copies[0].id != scheduled.id
    assert "not in the schedule" in flash(post(client, "reschedule", token, task_id=queued.id))


# -- safe by default ----------------------------------------------------------------------------


def test_actions_need_the_pages_csrf_token_and_their_own_origin(dashboard) -> None:
    huey, client = dashboard()
    letter = huey.dead_letter(b"junk", "test")
    token = csrf(client.get("/dead-letters").text)
    assert post(client, "purge", "", dead_letter=letter).status_code == 403
    assert post(client, "purge", "0" * 64, dead_letter=letter).status_code == 403
    foreign = client.post("/actions/purge", data={"csrf": token, "dead_letter": letter},
                          headers={"origin": "http://evil.example"},
                          follow_redirects=False)  # fmt: skip
    assert foreign.status_code == 403
    assert len(huey.dead_letters()) == 1  # none of those did anything
    own = client.post("/actions/purge", data={"csrf": token, "dead_letter": letter},
                      headers={"origin": LOCAL}, follow_redirects=False)  # fmt: skip
    assert own.status_code == 303 and huey.dead_letters() == []


def test_read_only_shows_no_buttons_and_refuses_actions(dashboard) -> None:
    huey, client = dashboard(read_only=True)
    letter = huey.dead_letter(b"junk", "test")
    for path in ("/", "/dead-letters", "/tasks", "/queue"):
        page = client.get(path).text
        assert "data-action" not in page and 'action="/actions/' not in page
    assert "read-only" in client.get("/").text
    token = client.app.state.dashboard.settings.csrf_token  # type: ignore[attr-defined]
    assert post(client, "purge", token, dead_letter=letter).status_code == 403
    assert len(huey.dead_letters()) == 1


def test_on_loopback_only_loopback_host_names_are_answered(dashboard) -> None:
    huey, client = dashboard()
    assert client.get("/").status_code == 200
    assert client.get("http://localhost:8765/").status_code == 200
    # A site whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing.
    assert client.get("http://rebind.example:8765/").status_code == 421


def test_a_token_guards_every_page_on_other_hosts(dashboard) -> None:
    secret = "correct horse battery staple"
    huey, client = dashboard(host="0.0.0.0", token=secret)
    page = client.get("http://dash.example/", headers={"accept": "text/html"},
                      follow_redirects=False)  # fmt: skip
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/"
    assert client.get("http://dash.example/api/overview").status_code == 401
    assert client.get("http://dash.example/static/dashboard.css").status_code == 200
    wrong = client.post("http://dash.example/login", data={"token": "guess", "next": "/"},
                        follow_redirects=False)  # fmt: skip
    assert wrong.status_code == 401 and "huey_dashboard_session" not in wrong.cookies
    right = client.post("http://dash.example/login", data={"token": secret, "next": "/queue"},
                        follow_redirects=False)  # fmt: skip
    assert right.status_code == 303 and right.headers["location"] == "/queue"
    assert secret not in right.headers["set-cookie"]  # the cookie is derived, not the token
    assert client.get("http://dash.example/api/overview").status_code == 200  # signed in
    fresh = TestClient(client.app, base_url="http://dash.example")
    assert fresh.get("/api/overview").status_code == 401
    bearer = {"authorization": f"Bearer {secret}"}
    assert fresh.get("/api/overview", headers=bearer).status_code == 200


def test_unsafe_settings_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="--token"):
        Settings(host="0.0.0.0").check()
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(token="short").check()
    Settings(host="::1").check()
    Settings(host="0.0.0.0", token="x" * 16).check()


def test_responses_forbid_framing_and_foreign_scripts(dashboard) -> None:
    huey, client = dashboard()
    headers = client.get("/").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


def test_the_memory_backend_warns_that_consumers_are_not_seen(dashboard) -> None:
    huey, client = dashboard()
    assert "keeps its data inside one process" in client.get("/").text
