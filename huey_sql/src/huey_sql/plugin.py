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
            "postgresql+psycopg2",  # URLs written for psycopg2 (Django): psycopg 3 connects
            "postgres",
            "mysql",
            "mysql+pymysql",
            "mysql+mysqldb",  # mysqlclient URLs (Django's default driver): PyMySQL connects
            "mariadb",
            "mariadb+pymysql",
            "mariadb+mysqldb",
        ],
        "huey_sql.backend:SQLBackend",
        "SQLite, PostgreSQL, MySQL/MariaDB",
    )
