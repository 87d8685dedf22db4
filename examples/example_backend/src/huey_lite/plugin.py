"""Registers the "lite" backend. Kept import-light: backend.py is named here, imported on use."""

from __future__ import annotations

from huey_core import hookimpl


@hookimpl
def huey_register_backends(register):  # type: ignore[no-untyped-def]
    register("lite", ["lite"], "huey_lite.backend:LiteBackend", "example: stdlib sqlite3 file")
