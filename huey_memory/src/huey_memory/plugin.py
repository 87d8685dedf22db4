"""Registers the memory backend. Import-light: the backend module loads only when used."""

from __future__ import annotations

from huey_core import hookimpl


@hookimpl
def huey_register_backends(register):  # type: ignore[no-untyped-def]
    register("memory", ["memory"], "huey_memory.backend:MemoryBackend", "in-process, for tests")
