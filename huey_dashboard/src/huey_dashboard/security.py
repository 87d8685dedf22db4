"""Safe by default: who may load the dashboard, and which POSTs it accepts.

- It binds to 127.0.0.1. Any other address needs a token (`--token` or HUEY_DASHBOARD_TOKEN):
  browsers sign in once on /login and get an HttpOnly, SameSite=Strict cookie derived from it;
  scripts send `Authorization: Bearer <token>`.
- Bound to a loopback address it answers only requests whose Host header names a loopback
  host, so a web page that re-points its own domain at 127.0.0.1 (DNS rebinding) cannot read it.
- Every action is a POST carrying a CSRF token that only the dashboard's own pages contain
  (a hidden form field), and, when the browser sends one, an Origin of the dashboard itself.
- `--read-only` removes the action buttons and refuses every POST action.
- Responses forbid framing (no click-jacking of buttons) and inline scripts.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.datastructures import URL
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "Guard", "Settings", "is_loopback", "safe_next"]

COOKIE = "huey_dashboard_session"
PUBLIC_PATHS = ("/login", "/static/")
HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Settings:
    """How one dashboard process runs (the `huey dashboard` options)."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    read_only: bool = False
    previews: bool = True
    # Per process: sessions and CSRF tokens of an earlier run stop working after a restart.
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def check(self) -> None:
        """ValueError with one line when the options are unsafe together."""
        if not is_loopback(self.host) and not self.token:
            raise ValueError(
                f"--host {self.host} makes the dashboard reachable from other machines; "
                "give it a --token (or set HUEY_DASHBOARD_TOKEN), or keep --host 127.0.0.1"
            )
        if self.token is not None and len(self.token) < 16:
            raise ValueError(
                "--token must be at least 16 characters; e.g. run: openssl rand -hex 16"
            )

    def _mac(self, purpose: str) -> str:
        return hmac.new(self.secret, purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def csrf_token(self) -> str:
        return self._mac("csrf")

    @property
    def session(self) -> str:
        """The cookie value a signed-in browser carries (never the token itself)."""
        return self._mac(f"session:{self.token}")

    def token_matches(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(
            candidate.encode(), self.token.encode()
        )

    def host_allowed(self, host: str | None) -> bool:
        if not is_loopback(self.host):
            return True  # reachable by any name; the token guards it
        return bool(host) and is_loopback(host or "")

    def authorized(self, conn: HTTPConnection) -> bool:
        if self.token is None:
            return True
        cookie = conn.cookies.get(COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), self.session.encode()):
            return True
        scheme, _, credential = conn.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(credential.strip())

    def csrf_ok(self, conn: HTTPConnection, submitted: str) -> bool:
        """The form carried this process's CSRF token, and any Origin is the dashboard's own."""
        if not hmac.compare_digest(submitted.encode(), self.csrf_token.encode()):
            return False
        origin = conn.headers.get("origin")
        if origin is None:
            return True
        return origin != "null" and URL(origin).netloc == conn.url.netloc


class Guard:
    """ASGI middleware: host check, sign-in, security headers on every response."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + HEADERS
            await send(message)

        refusal = self._refusal(conn)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, conn: HTTPConnection) -> Response | None:
        settings = self.settings
        if not settings.host_allowed(conn.url.hostname):
            return PlainTextResponse(
                "this dashboard answers only to 127.0.0.1 or localhost", status_code=421
            )
        path = conn.url.path
        if settings.authorized(conn) or path.startswith(PUBLIC_PATHS):
            return None
        if conn.scope.get("method") == "GET" and "text/html" in conn.headers.get("accept", ""):
            target = path + (f"?{conn.url.query}" if conn.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        return PlainTextResponse(
            "sign in first: /login, or send Authorization: Bearer <token>", status_code=401
        )


def safe_next(target: str | None) -> str:
    """A local path to go back to after a form; anything else (another site) becomes /."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
