"""huey-lite: an example storage backend for the huey toolkit on the standard library's sqlite3."""

from __future__ import annotations

__version__ = "0.1.0"
