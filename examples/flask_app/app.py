"""The Flask example: enqueue from a request, poll (or wait for) the result, show progress.

    cd examples && flask --app flask_app.app run        # the web app
    cd examples && huey consume flask_app.tasks.huey    # a consumer, in another terminal

Routes:
    POST /add      {"a": 1, "b": 2}  -> 202 {"id": ..., "url": "/tasks/<id>"}
    GET  /add?a=1&b=2&wait=5         -> 200 {"result": 3}, waiting up to 5 s (504 after)
    POST /reports  {"pages": 5}      -> 202 {"id": ..., "url": ...}: a long task with progress
    GET  /tasks/<id>                 -> {"state": pending|running|finished|failed, "result",
                                         "error", "progress": {"done", "total", "note"}}
    GET  /heartbeat                  -> what the periodic task last recorded
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from flask_app.tasks import HEARTBEAT, add, build_report, huey
from huey_core import ResultTimeout, TaskException

app = Flask(__name__)
MAX_WAIT = 30.0  # seconds a request may hold a server thread waiting for a result


def _ints(data: Any, *names: str) -> list[int]:
    """The named integer fields of a JSON object or query string; ValueError names a bad one."""
    values = []
    for name in names:
        try:
            values.append(int(data[name]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{name} must be an integer") from None
    return values


@app.errorhandler(ValueError)
def bad_request(exc: ValueError) -> Any:
    return jsonify(error=str(exc)), 400


def _accepted(result: Any) -> Any:
    return jsonify(id=result.id, url=f"/tasks/{result.id}"), 202


@app.post("/add")
def enqueue_add() -> Any:
    a, b = _ints(request.get_json(silent=True), "a", "b")
    return _accepted(add(a, b))


@app.get("/add")
def add_and_wait() -> Any:
    a, b = _ints(request.args, "a", "b")
    try:
        wait = min(float(request.args.get("wait", 5)), MAX_WAIT)
    except ValueError:
        raise ValueError("wait must be a number of seconds") from None
    result = add(a, b)
    try:
        # A sync view may block: the server gives each request its own thread.
        return jsonify(id=result.id, result=result.get(blocking=True, timeout=wait))
    except ResultTimeout:
        return jsonify(id=result.id, error=f"no result within {wait} s"), 504


@app.post("/reports")
def enqueue_report() -> Any:
    (pages,) = _ints(request.get_json(silent=True), "pages")
    return _accepted(build_report(pages))


@app.get("/tasks/<task_id>")
def task_status(task_id: str) -> Any:
    progress = huey.progress(task_id)
    body: dict[str, Any] = {
        "id": task_id,
        "progress": None if progress is None else progress._asdict(),
    }
    try:
        value = huey.result(task_id, preserve=True)  # preserve: every poll sees it
    except TaskException as exc:
        return jsonify({**body, "state": "failed", "error": exc.metadata["error"]})
    if value is not None:
        return jsonify({**body, "state": "finished", "result": value})
    return jsonify({**body, "state": "running" if progress else "pending"})


@app.get("/heartbeat")
def last_heartbeat() -> Any:
    return jsonify(heartbeat=huey.get(HEARTBEAT, peek=True))
