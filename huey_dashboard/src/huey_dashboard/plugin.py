"""The dashboard's plugin module: the `huey` entry point names it, pluggy calls its hooks.

It imports only click: the web stack loads when `huey dashboard` runs, not with every `huey`
command.
"""

from __future__ import annotations

import click

from huey_core import hookimpl


@hookimpl
def huey_add_commands(cli: click.Group) -> None:
    from huey_dashboard.cli import dashboard

    cli.add_command(dashboard)
