"""The FastAPI example: enqueue from a request, await or poll the result, show progress.

    cd examples && uvicorn fastapi_app.app:app              # the web app
    cd examples && huey consume fastapi_app.tasks.huey      # a consumer, in another terminal

Every backend call runs off the event loop (aenqueue, aget, aresult, aprogress), so one slow
round trip never holds up the other requests.

Routes:
    POST /add      {"a": 1, "b": 2}  -> 202 {"id": ..., "url": "/tasks/<id>"}
    GET  /add?a=1&b=2&wait=5         -> 200 {"result": 3}, awaiting up to 5 s (504 after)
    POST /reports  {"pages": 5}      -> 202 {"id": ..., "url": ...}: a long task with progress
    GET  /tasks/{id}                 -> {"state": pending|running|finished|failed, "result",
                                         "error", "progress": {"done", "total", "note"}}
    GET  /heartbeat                  -> what the periodic task last recorded
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fastapi_app.tasks import HEARTBEAT, add, build_report, huey
from huey_core import ResultTimeout, TaskException

app = FastAPI(title="huey FastAPI example")


class Numbers(BaseModel):
    a: int
    b: int


class Report(BaseModel):
    pages: int


def _accepted(result: Any) -> JSONResponse:
    return JSONResponse({"id": result.id, "url": f"/tasks/{result.id}"}, status_code=202)


@app.post("/add", status_code=202)
async def enqueue_add(numbers: Numbers) -> JSONResponse:
    return _accepted(await add.aenqueue(numbers.a, numbers.b))


@app.get("/add")
async def add_and_wait(a: int, b: int, wait: float = Query(5.0, gt=0, le=30)) -> JSONResponse:
    result = await add.aenqueue(a, b)
    try:
        value = await result.aget(timeout=wait)  # the loop serves other requests meanwhile
    except ResultTimeout:
        return JSONResponse({"id": result.id, "error": f"no result within {wait} s"}, 504)
    return JSONResponse({"id": result.id, "result": value})


@app.post("/reports", status_code=202)
async def enqueue_report(report: Report) -> JSONResponse:
    return _accepted(await build_report.aenqueue(report.pages))


@app.get("/tasks/{task_id}")
async def task_status(task_id: str) -> dict[str, Any]:
    progress = await huey.aprogress(task_id)
    body: dict[str, Any] = {
        "id": task_id,
        "progress": None if progress is None else progress._asdict(),
    }
    try:
        value = await huey.aresult(task_id, blocking=False, preserve=True)
    except TaskException as exc:
        return {**body, "state": "failed", "error": exc.metadata["error"]}
    if value is not None:
        return {**body, "state": "finished", "result": value}
    return {**body, "state": "running" if progress else "pending"}


@app.get("/heartbeat")
async def last_heartbeat() -> dict[str, Any]:
    return {"heartbeat": await asyncio.to_thread(huey.get, HEARTBEAT, True)}
