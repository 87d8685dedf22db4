"""Registers the "lite" backend and its `huey lite` commands.

Kept import-light: backend.py is named by import path and imported only when the backend is
used; sqlite3 is imported inside the command that needs it.
"""

from __future__ import annotations

import click

from huey_core import hookimpl


@hookimpl
def huey_register_backends(register):  # type: ignore[no-untyped-def]
    register("lite", ["lite"], "huey_lite.backend:LiteBackend", "example: stdlib sqlite3 file")


@hookimpl
def huey_add_commands(cli: click.Group) -> None:
    @cli.group()
    def lite() -> None:
        """Maintenance for the lite backend's database file."""

    @lite.command()
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    def vacuum(path: str) -> None:
        """Compact PATH, reclaiming the space of deleted messages."""
        import sqlite3

        conn = sqlite3.connect(path)
        try:
            conn.execute("VACUUM")
        finally:
            conn.close()
        click.echo(f"vacuumed {path}")
