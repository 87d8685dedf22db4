"""`huey dashboard IMPORT_PATH`: serve the dashboard with uvicorn."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import click

from huey_core.cli.base import (
    UserError,
    app,
    backend_options,
    import_path_arg,
    one_line,
    sigterm_as_interrupt,
)

if TYPE_CHECKING:
    from huey_core.api import Huey
    from huey_dashboard.security import Settings

__all__ = ["dashboard", "serve"]


@click.command()
@import_path_arg
@backend_options
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="Address to listen on. Anything but a loopback address needs --token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    metavar="PORT",
    help="Port to listen on (0: a free one, printed).",
)
@click.option(
    "--token",
    envvar="HUEY_DASHBOARD_TOKEN",
    metavar="TOKEN",
    help="Require this token to sign in (at least 16 characters). "
    "[default: $HUEY_DASHBOARD_TOKEN; none on 127.0.0.1]",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Show everything, change nothing: no revoke, requeue, purge or reschedule.",
)
@click.option(
    "--previews/--no-previews",
    default=True,
    show_default=True,
    help="Show (truncated) task arguments and results, decoded with the app's serializer.",
)
def dashboard(
    import_path: str,
    backend: str | None,
    url: str | None,
    host: str,
    port: int,
    token: str | None,
    read_only: bool,
    previews: bool,
) -> None:
    """Serve a live web dashboard for the Huey instance at IMPORT_PATH.

    Overview (queue depth, scheduled, in flight, results, dead letters, charts), a live event
    feed, each task's arguments, error and timeline, periodic and registered tasks, and actions
    (revoke, restore, requeue, purge, reschedule). It reads everything through the storage
    protocols, so it works on every backend. Stop it with Ctrl-C.
    """
    # Imported here: every huey command loads this plugin, only this one needs the web stack.
    from huey_dashboard.security import Settings

    settings = Settings(
        host=host, port=port, token=token or None, read_only=read_only, previews=previews
    )
    try:
        settings.check()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    huey = app(import_path, backend, url)
    serve(huey, settings)


def serve(huey: Huey, settings: Settings) -> None:
    """Bind, print the address, and run uvicorn until interrupted."""
    import uvicorn

    from huey_dashboard.app import create_app

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
        sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {settings.host}:{settings.port}: {one_line(exc)}"
        ) from None
    port = sock.getsockname()[1]
    shown = f"[{settings.host}]" if family == socket.AF_INET6 else settings.host
    mode = " (read-only)" if settings.read_only else ""
    click.echo(f"huey dashboard for {huey.name!r} on http://{shown}:{port}/{mode}", err=True)
    config = uvicorn.Config(
        create_app(huey, settings),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    # uvicorn stops gracefully on SIGTERM or Ctrl-C, then re-raises the signal: let it end the
    # command with exit code 0, as `huey consume` does.
    with sigterm_as_interrupt():
        uvicorn.Server(config).run(sockets=[sock])
