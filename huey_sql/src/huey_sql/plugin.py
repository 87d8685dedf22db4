"""Registers the sql backend. Import-light: SQLAlchemy loads only when the backend is used."""

from __future__ import annotations

from huey_core import hookimpl


@hookimpl
def huey_register_backends(register):  # type: ignore[no-untyped-def]
    register(
        "sql",
        [
            "sqlite",
            "postgresql",
            "postgresql+psycopg",
            "postgres",
            "mysql+pymysql",
            "mariadb+pymysql",
        ],
        "huey_sql.backend:SQLBackend",
        "SQLite, PostgreSQL, MySQL/MariaDB",
    )
