"""huey's hook and signal registration methods, which `Huey` inherits from `HookMethods`.

The hooks themselves live in `huey_core.execution.Hooks` (run around each task and each worker)
and the signals in `huey_core.signals.Signal`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huey_core.execution import Hooks
    from huey_core.signals import Signal

__all__ = ["HookMethods"]

Hook = Callable[..., Any]


class HookMethods:
    """pre_execute / post_execute / on_startup / on_shutdown hooks and signal receivers."""

    hooks: Hooks
    signals: Signal

    def pre_execute(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """`fn(task)` before each task; raising CancelExecution cancels it."""
        return self.hooks.adder(self.hooks.pre_execute, name)

    def post_execute(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """`fn(task, task_value, exception)` after each task."""
        return self.hooks.adder(self.hooks.post_execute, name)

    def on_startup(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """`fn()` once in each consumer worker when it starts."""
        return self.hooks.adder(self.hooks.startup, name)

    def on_shutdown(self, name: str | None = None) -> Callable[[Hook], Hook]:
        """`fn()` once in each consumer worker when it stops."""
        return self.hooks.adder(self.hooks.shutdown, name)

    def unregister_pre_execute(self, name: str | Hook) -> bool:
        return self.hooks.remove(self.hooks.pre_execute, name)

    def unregister_post_execute(self, name: str | Hook) -> bool:
        return self.hooks.remove(self.hooks.post_execute, name)

    def unregister_on_startup(self, name: str | Hook) -> bool:
        return self.hooks.remove(self.hooks.startup, name)

    def unregister_on_shutdown(self, name: str | Hook) -> bool:
        return self.hooks.remove(self.hooks.shutdown, name)

    def run_startup_hooks(self) -> None:
        """Run every on_startup hook (a failing hook is logged; the others still run)."""
        self.hooks.run_each(self.hooks.startup, "startup")

    def run_shutdown_hooks(self) -> None:
        """Run every on_shutdown hook (a failing hook is logged; the others still run)."""
        self.hooks.run_each(self.hooks.shutdown, "shutdown")

    def signal(self, *signals: str) -> Callable[[Hook], Hook]:
        """Connect `fn(signal, task, *extra)` to the named signals (all of them when none)."""

        def decorator(fn: Hook) -> Hook:
            self.signals.connect(fn, *signals)
            return fn

        return decorator

    def disconnect_signal(self, receiver: Hook, *signals: str) -> None:
        self.signals.disconnect(receiver, *signals)
