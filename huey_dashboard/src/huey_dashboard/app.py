"""The web application: pages, the live stream, actions, sign-in (Starlette + Jinja2).

Pages render on the server. Each holds a `<main id="content">` that the browser fetches again
(`X-Fragment: 1`) when the page's server-sent event stream says its data changed, and the
event feed page appends events as they arrive; the one script is static/dashboard.js.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import anyio
from jinja2 import Environment, PackageLoader, select_autoescape
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from huey_core.events import EventStatus
from huey_core.plugins import mask_url
from huey_dashboard import actions, views
from huey_dashboard.feed import EventFeed
from huey_dashboard.security import COOKIE, Guard, Settings, safe_next

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["Dashboard", "create_app"]

TICK = 1.0  # seconds between checks for changes behind a page
OVERVIEW_TTL = 1.0  # seconds one overview computation serves every browser
FLASH = "huey_dashboard_flash"
STATUSES = [s.value for s in EventStatus]


def _clock(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return "-"
    return datetime.datetime.fromtimestamp(stamp).strftime("%H:%M:%S")


def _when(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return "-"
    return datetime.datetime.fromtimestamp(stamp).isoformat(sep=" ", timespec="seconds")


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    value = float(value)
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def _until(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return "-"
    left = stamp - time.time()
    return f"in {_seconds(left)}" if left >= 0 else f"{_seconds(-left)} ago"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("huey_dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(clock=_clock, when=_when, seconds=_seconds, until=_until)
    env.filters["pct"] = lambda v: f"{100 * float(v or 0):.0f}%"
    return env


class Dashboard:
    """One dashboard: the app's Huey, the settings, the event feed, and the endpoints."""

    def __init__(self, huey: Huey, settings: Settings) -> None:
        self.huey = huey
        self.settings = settings
        self.feed = EventFeed(huey)
        self.templates = _environment()
        self._overview: tuple[float, dict[str, Any]] | None = None
        self._overview_lock = threading.Lock()

    # -- data ---------------------------------------------------------------------------------

    def overview(self, fresh: bool = True) -> dict[str, Any]:
        """The overview; with fresh=False one computed within OVERVIEW_TTL will do.

        Every open page checks for changes each TICK (fresh=False): however many browsers are
        open, the backend is read once per OVERVIEW_TTL for those checks.
        """
        with self._overview_lock:
            now = time.monotonic()
            if fresh or self._overview is None or now - self._overview[0] > OVERVIEW_TTL:
                self._overview = (now, views.overview(self.huey, self.feed))
            return self._overview[1]

    def digest(self, page: str, task_id: str) -> str:
        """A value that changes when what `page` shows changes (checked every TICK)."""
        if page == "task":
            return f"{len(self.feed.timeline(task_id))}:{int(time.time() // 10)}"
        info = self.overview(fresh=False)["info"]
        parts = [
            self.feed.version,
            info["queued"],
            info["scheduled"],
            info["in_flight"],
            info["dead_letters"],
            info["results"],
            info["revoked"],
        ]
        if page == "overview" and info["leases"]:
            parts.append(int(time.time()))  # "running for" moves on
        return json.dumps(parts)

    # -- rendering ----------------------------------------------------------------------------

    def render(
        self, request: Request, template: str, stream: str = "", **context: Any
    ) -> HTMLResponse:
        fragment = request.headers.get("x-fragment") == "1"
        flash = None if fragment else request.cookies.get(FLASH)
        storage = self.huey.storage
        context.update(
            layout="fragment.html" if fragment else "base.html",
            huey_name=self.huey.name,
            backend=mask_url(storage.describe()),
            process_safe=storage.process_safe,
            read_only=self.settings.read_only,
            csrf=self.settings.csrf_token,
            signed_in=self.settings.token is not None,
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            stream=stream,
            flash=_read_flash(flash),
        )
        html = self.templates.get_template(template).render(context)
        response = HTMLResponse(html)
        if flash:
            response.delete_cookie(FLASH, path="/")
        return response

    # -- pages (sync: Starlette runs them in its thread pool, so backend calls never block) --

    def page_overview(self, request: Request) -> HTMLResponse:
        return self.render(
            request,
            "overview.html",
            "page=overview",
            page="overview",
            title="Overview",
            data=self.overview(),
        )

    def page_events(self, request: Request) -> HTMLResponse:
        task, status = request.query_params.get("task", ""), request.query_params.get("status", "")
        accept = _event_filter(task, status)
        names = sorted(
            set(self.feed.task_names()) | {c.name for c in self.huey.registry.tasks.values()}
        )
        query = "&".join(f"{k}={v}" for k, v in (("task", task), ("status", status)) if v)
        return self.render(
            request,
            "events.html",
            "page=events" + (f"&{query}" if query else ""),
            page="events",
            title="Events",
            events=self.feed.recent(accept),
            task=task,
            status=status,
            task_names=names,
            statuses=STATUSES,
        )

    def page_task(self, request: Request) -> HTMLResponse:
        task_id = request.path_params["task_id"]
        detail = views.task_detail(self.huey, self.feed, task_id, self.settings.previews)
        return self.render(
            request,
            "task.html",
            f"page=task&id={task_id}",
            page="task",
            title=f"Task {task_id}",
            t=detail,
        )

    def page_queue(self, request: Request) -> HTMLResponse:
        lists = views.queue_lists(self.huey, self.settings.previews)
        return self.render(
            request, "queue.html", "page=queue", page="queue", title="Queue", q=lists
        )

    def page_dead_letters(self, request: Request) -> HTMLResponse:
        letters = views.dead_letter_list(self.huey, self.settings.previews)
        return self.render(
            request,
            "dead_letters.html",
            "page=dead-letters",
            page="dead-letters",
            title="Dead letters",
            letters=letters,
        )

    def page_tasks(self, request: Request) -> HTMLResponse:
        return self.render(
            request,
            "tasks.html",
            "page=tasks",
            page="tasks",
            title="Tasks",
            r=views.registered_tasks(self.huey),
        )

    def api_overview(self, request: Request) -> JSONResponse:
        return JSONResponse(json.loads(json.dumps(self.overview(), default=str)))

    def api_task(self, request: Request) -> JSONResponse:
        detail = views.task_detail(
            self.huey, self.feed, request.path_params["task_id"], self.settings.previews
        )
        return JSONResponse(json.loads(json.dumps(detail, default=str)))

    # -- live ---------------------------------------------------------------------------------

    async def stream(self, request: Request) -> Response:
        page = request.query_params.get("page", "overview")
        task_id = request.query_params.get("id", "")
        if page == "events":
            accept = _event_filter(
                request.query_params.get("task", ""), request.query_params.get("status", "")
            )
        elif page == "task":
            accept = _event_filter("", "", task_id)
        else:
            accept = None
        # At server shutdown the stream ends by itself (the browser reconnects to the next
        # server) instead of being cut off mid-response.
        shutdown = anyio.Event()
        return EventSourceResponse(
            self._events(page, task_id, accept, shutdown),
            ping=15,
            shutdown_event=shutdown,
            shutdown_grace_period=TICK + 1,
        )

    async def _events(
        self,
        page: str,
        task_id: str,
        accept: Callable[[dict[str, Any]], bool] | None,
        shutdown: anyio.Event,
    ) -> AsyncIterator[dict[str, str]]:
        subscriber = self.feed.subscribe(accept) if accept is not None else None
        # Any change after the browser loaded the page shows, however soon it comes.
        last = None if page == "events" else await run_in_threadpool(self.digest, page, task_id)
        try:
            while not shutdown.is_set():
                if subscriber is None:
                    await asyncio.sleep(TICK)
                else:
                    try:
                        event = await asyncio.wait_for(subscriber.queue.get(), TICK)
                    except asyncio.TimeoutError:
                        event = None
                    if event is not None:
                        if page == "events":
                            yield {"event": "feed", "data": json.dumps(event, default=str)}
                        else:
                            yield {"event": "refresh", "data": ""}
                        continue
                if page == "events":
                    continue
                digest = await run_in_threadpool(self.digest, page, task_id)
                if digest != last:
                    yield {"event": "refresh", "data": ""}
                last = digest
        finally:
            if subscriber is not None:
                self.feed.unsubscribe(subscriber)

    # -- actions and sign-in ------------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        back = safe_next(fields.get("next"))
        if self.settings.read_only:
            return Response("this dashboard is read-only (--read-only)", status_code=403)
        if not self.settings.csrf_ok(request, fields.get("csrf", "")):
            return Response(
                "missing or wrong CSRF token: reload the page and try again", status_code=403
            )
        try:
            text = await run_in_threadpool(
                actions.run, self.huey, request.path_params["name"], fields
            )
            kind = "ok"
        except actions.ActionError as exc:
            text, kind = str(exc), "error"
        self._overview = None  # the next page shows the change
        response = RedirectResponse(back, status_code=303)
        response.set_cookie(
            FLASH,
            json.dumps({"kind": kind, "text": text}),
            max_age=30,
            httponly=True,
            samesite="strict",
        )
        return response

    async def login(self, request: Request) -> Response:
        back = safe_next(request.query_params.get("next"))
        error = None
        if request.method == "POST":
            form = await request.form()
            token = form.get("token")
            back = safe_next(str(form.get("next") or "/"))
            if isinstance(token, str) and self.settings.token_matches(token):
                response = RedirectResponse(back, status_code=303)
                response.set_cookie(COOKIE, self.settings.session, httponly=True, samesite="strict")
                return response
            error = "wrong token"
        html = self.templates.get_template("login.html").render(
            next=back, error=error, huey_name=self.huey.name, enabled=self.settings.token
        )
        return HTMLResponse(html, status_code=401 if error else 200)

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response


def _read_flash(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return {"kind": "error" if value.get("kind") == "error" else "ok", "text": value["text"]}
    return None


def _event_filter(task: str, status: str, task_id: str = "") -> Callable[[dict[str, Any]], bool]:
    def accept(event: dict[str, Any]) -> bool:
        if task_id and event.get("id") != task_id:
            return False
        if status and event.get("status") != status:
            return False
        if task:
            name = event.get("task")
            return isinstance(name, str) and task in (name, name.rsplit(".", 1)[-1])
        return True

    return accept


def create_app(huey: Huey, settings: Settings | None = None) -> Starlette:
    """The ASGI app for `huey` (uvicorn serves it; tests use Starlette's TestClient)."""
    settings = Settings() if settings is None else settings
    dash = Dashboard(huey, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(dash.feed.start)
        try:
            yield
        finally:
            await run_in_threadpool(dash.feed.stop)

    routes = [
        Route("/", dash.page_overview),
        Route("/events", dash.page_events),
        Route("/queue", dash.page_queue),
        Route("/dead-letters", dash.page_dead_letters),
        Route("/tasks", dash.page_tasks),
        Route("/tasks/{task_id}", dash.page_task),
        Route("/api/overview", dash.api_overview),
        Route("/api/tasks/{task_id}", dash.api_task),
        Route("/stream", dash.stream),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/actions/{name}", dash.action, methods=["POST"]),
        Route("/login", dash.login, methods=["GET", "POST"]),
        Route("/logout", dash.logout, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("huey_dashboard", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes, middleware=[Middleware(Guard, settings=settings)], lifespan=lifespan
    )
    app.state.dashboard = dash
    return app
