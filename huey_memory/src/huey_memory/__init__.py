"""The in-process backend of the huey toolkit (`backend="memory"` or `memory://`)."""

from __future__ import annotations

__version__ = "0.1.0"
