"""settings.HUEY -> the project's Huey instance (see docs/django.md for every key).

    HUEY = {
        "name": "shop",            # default: the settings module's package ("shop" for shop.settings)
        "database": "default",     # the sql backend on this Django database ... or
        "url": "redis://127.0.0.1:6379/0",  # ... any backend URL, or "backend": "redis"
        "immediate": False,        # default: settings.DEBUG, as huey's djhuey does
        "options": {"table_prefix": "huey_"},  # backend options
        "consumer": {"workers": 4},            # defaults of `manage.py run_huey`
    }

settings.HUEY may also be a ready `Huey` instance. Without "database", "url" or "backend" the
core's selection applies: $HUEY_BACKEND / $HUEY_URL, else SQLite in ./huey.db.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from huey_core import Huey

__all__ = [
    "HUEY_KEYS",
    "build_huey",
    "consumer_settings",
    "database_url",
    "get_huey",
    "settings_dict",
]

# Keys that go to Huey(...) as they are.
HUEY_ARGUMENTS = (
    "results",
    "store_none",
    "utc",
    "immediate",
    "serializer",
    "events",
    "secret",
    "lease_timeout",
    "max_deliveries",
    "result_ttl",
    "immediate_use_memory",
    "store_intermediate_errors",
)
OWN_KEYS = ("name", "backend", "url", "database", "options", "consumer", "autodiscover")
HUEY_KEYS = frozenset(OWN_KEYS + HUEY_ARGUMENTS)

# Django ENGINE (its last dotted part, so GIS and instrumented wrappers of the same database
# match too) -> SQLAlchemy driver of the sql backend.
DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgis": "postgresql+psycopg",
    "sqlite3": "sqlite",
    "spatialite": "sqlite",
    "mysql": "mysql+pymysql",
}
# OPTIONS entries that mean the same to the sql backend's driver (libpq / PyMySQL connection
# parameters); Django-only ones (isolation_level, pool, init_command, ...) are not carried over.
CARRIED_OPTIONS = {
    "postgresql+psycopg": frozenset(
        {
            "sslmode",
            "sslrootcert",
            "sslcert",
            "sslkey",
            "connect_timeout",
            "application_name",
            "target_session_attrs",
            "options",
            "service",
            "passfile",
        }  # fmt: skip
    ),
    "mysql+pymysql": frozenset({"charset", "unix_socket"}),
    "sqlite": frozenset(),
}


def settings_dict() -> Mapping[str, Any] | Huey:
    """settings.HUEY ({} when unset), checked for its type and for misspelt keys."""
    config = getattr(settings, "HUEY", None)
    if config is None:
        return {}
    if isinstance(config, Huey):
        return config
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(
            f"settings.HUEY must be a dict or a huey_core.Huey instance, not {type(config).__name__}"
        )
    unknown = sorted(set(config) - HUEY_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"settings.HUEY has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known keys: {', '.join(sorted(HUEY_KEYS))}"
        )
    return config


def default_name() -> str:
    """The settings module's top package ("shop" for shop.settings): one instance per project."""
    module = getattr(settings, "SETTINGS_MODULE", None) or "django"
    return str(module).split(".")[0]


def build_huey(config: Mapping[str, Any] | Huey | None = None) -> Huey:
    """A new Huey from `config` (settings.HUEY when None). Storage is opened on first use."""
    if config is None:
        config = settings_dict()
    if isinstance(config, Huey):
        return config
    kwargs = {key: config[key] for key in HUEY_ARGUMENTS if key in config}
    kwargs.setdefault("immediate", bool(settings.DEBUG))
    backend, url = config.get("backend"), config.get("url")
    if config.get("database") is not None:
        if url is not None or backend not in (None, "sql"):
            raise ImproperlyConfigured(
                "settings.HUEY names a 'database' and also a 'url' or 'backend'; keep one of them"
            )
        url = database_url(config["database"])
    options = config.get("options") or {}
    if not isinstance(options, Mapping):
        raise ImproperlyConfigured("settings.HUEY['options'] must be a dict of backend options")
    return Huey(config.get("name") or default_name(), backend=backend, url=url, **kwargs, **options)


def database_url(alias: str) -> str:
    """The sql backend URL of Django database `alias`, built from settings.DATABASES[alias].

    The URL holds the password: never put it in a message (huey_core.plugins.mask_url).
    """
    databases = settings.DATABASES
    if alias not in databases:
        raise ImproperlyConfigured(
            f"settings.HUEY['database'] is {alias!r}, but settings.DATABASES has no such alias "
            f"(it has: {', '.join(map(repr, databases)) or 'none'})"
        )
    db = databases[alias]
    engine = str(db.get("ENGINE", ""))
    driver = DRIVERS.get(engine.rsplit(".", 1)[-1])
    if driver is None:
        raise ImproperlyConfigured(
            f"settings.HUEY['database']: the sql backend cannot use {engine or 'an empty ENGINE'} "
            f"(database {alias!r}); it supports PostgreSQL, MySQL/MariaDB and SQLite. Set "
            "settings.HUEY['url'] instead"
        )
    try:
        from sqlalchemy.engine import URL
    except ImportError:
        raise ImproperlyConfigured(
            "settings.HUEY['database'] needs the sql backend: pip install \"huey-core[sql]\""
        ) from None
    name = db.get("NAME")
    if driver == "sqlite":
        path = str(name or "")
        if not path or path == ":memory:" or "mode=memory" in path:
            raise ImproperlyConfigured(
                f"settings.HUEY['database']: {alias!r} is an in-memory SQLite database, which a "
                "consumer process cannot see; give it a file NAME"
            )
        # Absolute: the consumer may start in another directory than the web server.
        return URL.create("sqlite", database=os.path.abspath(path)).render_as_string(
            hide_password=False
        )
    host = str(db.get("HOST") or "") or None
    query = {
        key: str(value)
        for key, value in (db.get("OPTIONS") or {}).items()
        if key in CARRIED_OPTIONS[driver] and value is not None
    }
    if host and host.startswith("/"):  # a Unix socket directory (libpq) or socket file
        query["host" if driver.startswith("postgresql") else "unix_socket"] = host
        host = None
    port = db.get("PORT")
    url = URL.create(
        driver,
        username=str(db.get("USER") or "") or None,
        password=str(db.get("PASSWORD") or "") or None,
        host=host,
        port=int(port) if port not in (None, "") else None,
        database=str(name) if name else None,
        query=query,
    )
    return url.render_as_string(hide_password=False)


def consumer_settings() -> Mapping[str, Any]:
    """settings.HUEY['consumer']: defaults for `manage.py run_huey` ({} when unset)."""
    config = settings_dict()
    if isinstance(config, Huey):
        return {}
    consumer = config.get("consumer") or {}
    if not isinstance(consumer, Mapping):
        raise ImproperlyConfigured("settings.HUEY['consumer'] must be a dict of consumer options")
    return consumer


_lock = threading.Lock()
_huey: Huey | None = None


def get_huey() -> Huey:
    """The project's Huey, built from settings.HUEY on first use and shared by the process."""
    global _huey
    if _huey is None:
        with _lock:
            if _huey is None:
                _huey = build_huey()
    return _huey
