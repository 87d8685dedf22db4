"""huey-dashboard: a live web dashboard for the huey toolkit, on every backend.

`huey dashboard my_app.huey` serves it (docs/dashboard.md); `create_app(huey, Settings())`
returns the ASGI app for embedding or tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from huey_dashboard.security import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from huey_core.api import Huey

__all__ = ["Settings", "create_app"]
__version__ = "0.1.0"


def create_app(huey: Huey, settings: Settings | None = None) -> Starlette:
    """The ASGI app for `huey` (imports the web stack on first call)."""
    from huey_dashboard.app import create_app as build

    return build(huey, settings)
