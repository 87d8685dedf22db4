"""The Redis backend of the huey toolkit (`backend="redis"` or `redis://`, `rediss://`, `unix://`)."""

from __future__ import annotations

__version__ = "0.1.0"
