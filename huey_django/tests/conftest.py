"""Django in this process for huey_django's own tests.

Django settings can be configured once per process, so this sets up one project for the whole
session: database "default" is a SQLite file, "pg" a PostgreSQL database of its own on the shared
server (created here, dropped afterwards), and settings.HUEY a memory-backed instance whose queue
the tests read. Tests vary settings with django.test.override_settings and build_huey().
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
from django.conf import settings

from huey_sql.testing import postgres_database

_SQLITE_DIR = tempfile.TemporaryDirectory(prefix="huey-django-tests-")

if not settings.configured:
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        INSTALLED_APPS=["huey_django"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(Path(_SQLITE_DIR.name) / "db.sqlite3"),
            },
            "pg": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "set by the pg_database fixture",
                "USER": "postgres",
                "HOST": "127.0.0.1",
                "PORT": "5432",
            },
        },
        HUEY={"name": f"djtest-{uuid.uuid4().hex[:8]}", "backend": "memory", "immediate": False},
    )
    django.setup()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The alias of a PostgreSQL database this session created (and drops at the end)."""
    with postgres_database("hdj") as name:
        settings.DATABASES["pg"]["NAME"] = name
        yield "pg"
        from django.db import connections

        connections["pg"].close()


@pytest.fixture(params=["default", "pg"])
def alias(request: pytest.FixtureRequest) -> str:
    """Each Django database in turn: SQLite, then PostgreSQL."""
    if request.param == "pg":
        return str(request.getfixturevalue("pg_database"))
    return "default"


@pytest.fixture(autouse=True)
def empty_queue() -> Iterator[None]:
    from huey_django import get_huey

    get_huey().flush()
    yield
    get_huey().flush()
