"""Registers the memory and blackhole backends. Import-light: their modules load when used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from huey_core import hookimpl

if TYPE_CHECKING:
    from huey_core.hookspecs import RegisterBackend


@hookimpl
def huey_register_backends(register: RegisterBackend) -> None:
    register("memory", ["memory"], "huey_memory.backend:MemoryBackend", "in-process, for tests")
    register(
        "blackhole",
        ["blackhole"],
        "huey_memory.blackhole:BlackHoleBackend",
        "discards everything (huey's BlackHoleStorage)",
    )
