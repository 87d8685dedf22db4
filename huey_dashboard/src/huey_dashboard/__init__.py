"""huey-dashboard: a live web dashboard for the huey toolkit, on every backend.

`huey dashboard my_app.huey` serves it (docs/dashboard.md); `create_app(huey, Settings())`
returns the ASGI app for embedding or tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from huey_core.api import Huey
    from huey_dashboard.security import Settings

__all__ = ["Settings", "create_app"]
__version__ = "0.1.0"


def create_app(huey: Huey, settings: Settings | None = None) -> Starlette:
    """The ASGI app for `huey` (imports the web stack on first call)."""
    from huey_dashboard.app import create_app as build

    return build(huey, settings)


def __getattr__(name: str) -> Any:
    # Every huey command loads this distribution's plugin; the web stack (Starlette) that
    # Settings lives beside is imported only when something asks for it.
    if name == "Settings":
        from huey_dashboard.security import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
