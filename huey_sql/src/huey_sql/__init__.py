"""The SQL backend of the huey toolkit on SQLAlchemy 2: SQLite, PostgreSQL, MySQL/MariaDB."""

from __future__ import annotations

__version__ = "0.1.0"
