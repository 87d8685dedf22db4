"""What differs between SQLite, PostgreSQL and MySQL/MariaDB: one Dialect class per database.

`dialect_for(url)` picks the class; each one holds its database's SQL and behaviour (claim,
upsert, NOTIFY, transactions, which errors are worth another try, how a waiter wakes up).
"""

from __future__ import annotations

import os

from sqlalchemy.engine import URL, make_url

from huey_core.exceptions import ConfigurationError
from huey_core.plugins import mask_url
from huey_sql.dialects.base import Dialect, Waker
from huey_sql.dialects.mysql import MySQLDialect
from huey_sql.dialects.postgresql import PostgresDialect
from huey_sql.dialects.sqlite import SQLiteDialect

__all__ = ["Dialect", "Waker", "dialect_for", "normalize_url"]

# Every driver name a user's URL may carry maps to the one driver each database is tested with:
# the driver is ours to choose, the server, credentials and options are the user's. Without
# this a Django or SQLAlchemy URL (postgres://, postgresql+psycopg2://, mysql://,
# mysql+mysqldb:// for mysqlclient) would have to be rewritten by hand.
_POSTGRES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
_MYSQL = (
    "mysql",
    "mysql+pymysql",
    "mysql+mysqldb",
    "mariadb",
    "mariadb+pymysql",
    "mariadb+mysqldb",
)

_BY_BACKEND: dict[str, type[Dialect]] = {
    "sqlite": SQLiteDialect,
    "postgresql": PostgresDialect,
    "mysql": MySQLDialect,
    "mariadb": MySQLDialect,
}


def dialect_for(url: URL) -> type[Dialect]:
    """The Dialect class for a URL that normalize_url() returned."""
    return _BY_BACKEND[url.get_backend_name()]


def _quote_at_signs(raw: str) -> str:
    """Percent-encode the "@" signs of an unencoded password.

    libpq, redis-py and browsers end the password at the last "@" before the host; SQLAlchemy
    ends it at the first one, so `user:S3cret@tail@host` would connect to host "tail@host" (and
    quote "tail" in every error). Encoded, both read password "S3cret@tail" and host "host".
    """
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.startswith("sqlite"):  # a file path may hold "@"
        return raw
    head, query_sep, query = rest.partition("?")
    location, slash, database = head.partition("/")
    if location.count("@") < 2:
        return raw
    userinfo, _, host = location.rpartition("@")
    user, colon, password = userinfo.partition(":")
    quoted = password.replace("@", "%40")
    return f"{scheme}://{user}{colon}{quoted}@{host}{slash}{database}{query_sep}{query}"


def normalize_url(url: str | None) -> URL:
    """The SQLAlchemy URL for a huey URL: driver mapped, SQLite path made absolute.

    PostgreSQL URLs connect with psycopg 3 and MySQL/MariaDB ones with PyMySQL, whatever driver
    they name (see _POSTGRES, _MYSQL). A relative SQLite path resolves against the
    working directory now, so a later chdir (or a daemonized consumer) keeps the same file.
    In-memory SQLite is rejected: each connection would see a different empty database.
    """
    raw = _quote_at_signs(url or "sqlite:///huey.db")
    try:
        u = make_url(raw)
    except Exception:  # sqlalchemy raises ArgumentError with the URL in the message
        raise ConfigurationError(f"cannot parse database URL {mask_url(raw)!r}") from None
    driver = u.drivername
    if driver in _POSTGRES:
        return u.set(drivername="postgresql+psycopg")
    if driver in _MYSQL:
        u = u.set(drivername=f"{u.get_backend_name()}+pymysql")
        if "charset" not in u.query:
            u = u.update_query_dict({"charset": "utf8mb4"})
        return u
    if driver in ("sqlite", "sqlite+pysqlite"):
        db = u.database or ""
        if db in ("", ":memory:") or db.startswith("file::memory:") or "mode=memory" in str(u):
            raise ConfigurationError(
                "in-memory SQLite cannot be shared between connections or consumer processes; "
                "use a file (sqlite:///huey.db) or the memory backend (memory://)"
            )
        return u.set(drivername="sqlite", database=os.path.abspath(db))
    raise ConfigurationError(
        f"the sql backend does not support {driver!r}; use sqlite:///path, postgresql:// "
        "(psycopg 3) or mysql:// / mariadb:// (PyMySQL)"
    )
