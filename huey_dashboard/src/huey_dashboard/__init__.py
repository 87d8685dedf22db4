"""huey-dashboard: a live web dashboard for the huey toolkit, on every backend.

`huey dashboard my_app.huey` serves it (docs/dashboard.md); `create_app(huey, Settings())`
returns the ASGI app for embedding or tests.
"""

from __future__ import annotations

from huey_dashboard.security import Settings

__all__ = ["Settings", "create_app"]
__version__ = "0.1.0"


def create_app(huey, settings=None):  # type: ignore[no-untyped-def]
    from huey_dashboard.app import create_app as build

    return build(huey, settings)
