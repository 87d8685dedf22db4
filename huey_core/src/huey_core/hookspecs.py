"""The plugin hooks. Plugins implement them with `huey_core.hookimpl`; see docs/writing-backends.md."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("huey")
hookimpl = pluggy.HookimplMarker("huey")


class RegisterBackend(Protocol):
    def __call__(
        self, name: str, schemes: Iterable[str], factory: str, description: str = ""
    ) -> None: ...


@hookspec
def huey_register_backends(register: RegisterBackend) -> None:
    """Register backends: `register(name, schemes, "module:factory", description)` once each."""


@hookspec
def huey_add_commands(cli: click.Group) -> None:
    """Add click commands to the `huey` command group."""
