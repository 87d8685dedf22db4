"""huey's storage classes (`huey.storage`), mapped onto this project's backends.

In huey a storage class is the storage: `Huey(name, storage_class=RedisStorage, host=...)`
builds `RedisStorage(name, host=...)`. Here storage lives in backend plugins, so each class below
translates huey's keyword arguments into a backend choice (name, URL, options) once, when the
Huey is constructed: an argument this project cannot honour is refused there, in one line that
says what to use instead, never at first use. Calling a class, `RedisStorage("app", db=1)`,
builds that Backend directly, so `Huey("app", backend=RedisStorage("app", db=1))` works too.

The table of classes and options, and what each one means here, is in docs/backends.md
("huey storage classes").
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import Any, ClassVar, NamedTuple

from huey_core.exceptions import ConfigurationError
from huey_core.protocols import Backend

__all__ = [
    "BaseStorage",
    "BlackHoleStorage",
    "CySqliteStorage",
    "FileStorage",
    "MemoryStorage",
    "PostgresStorage",
    "PriorityRedisExpireStorage",
    "PriorityRedisStorage",
    "RedisExpireStorage",
    "RedisStorage",
    "SqlStorage",
    "SqliteStorage",
    "StorageSpec",
]


class StorageSpec(NamedTuple):
    """What a storage class makes of huey's arguments: the backend and, for the Huey, a result
    ttl (RedisExpireStorage's expire_time)."""

    backend: str
    url: str | None
    options: dict[str, Any]
    result_ttl: float | None = None


def _refuse_unknown(cls: type, kwargs: dict[str, Any], hint: str) -> None:
    if kwargs:
        raise ConfigurationError(
            f"{cls.__name__} does not take {', '.join(sorted(kwargs))}; {hint}"
        )


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class BaseStorage:
    """Base of the storage classes. A huey app's own BaseStorage subclass (its own enqueue,
    dequeue, ...) cannot be mapped: write a backend instead (docs/writing-backends.md)."""

    backend: ClassVar[str] = ""

    def __new__(cls, name: str = "huey", **kwargs: Any) -> Backend:  # type: ignore[misc]
        from huey_core.plugins import create_backend

        spec = cls.spec(name, kwargs)
        return create_backend(name, spec.backend, spec.url, **spec.options)

    @classmethod
    def spec(cls, name: str, kwargs: dict[str, Any]) -> StorageSpec:
        """Translate huey's keyword arguments (raises ConfigurationError on one it refuses)."""
        if not cls.backend:
            raise ConfigurationError(
                f"{cls.__name__} is not a storage this project knows; pass one of "
                "huey_core.storage_classes, or write a backend (docs/writing-backends.md)"
            )
        return StorageSpec(cls.backend, kwargs.pop("url", None), kwargs)


class MemoryStorage(BaseStorage):
    """huey's MemoryStorage: the in-process memory backend. It takes no options."""

    backend = "memory"

    @classmethod
    def spec(cls, name: str, kwargs: dict[str, Any]) -> StorageSpec:
        _refuse_unknown(cls, kwargs, "the memory backend has no options")
        return StorageSpec("memory", None, {})


class BlackHoleStorage(BaseStorage):
    """huey's BlackHoleStorage: enqueue does nothing, nothing is stored (huey-memory)."""

    backend = "blackhole"

    @classmethod
    def spec(cls, name: str, kwargs: dict[str, Any]) -> StorageSpec:
        _refuse_unknown(cls, kwargs, "the blackhole backend has no options")
        return StorageSpec("blackhole", None, {})


# -- Redis ----------------------------------------------------------------------------------------


def _redis_url(params: dict[str, Any]) -> str | None:
    """huey passes host/port/db/password to redis.ConnectionPool; here they make the URL."""
    host, port, db, password = (params.pop(k, None) for k in ("host", "port", "db", "password"))
    username = params.pop("username", None)
    if all(v is None for v in (host, port, db, password, username)):
        return None
    auth = ""
    if password is not None or username is not None:
        user = urllib.parse.quote(username or "", safe="")
        auth = f"{user}:{urllib.parse.quote(password or '', safe='')}@"
    return f"redis://{auth}{host or '127.0.0.1'}:{port or 6379}/{db or 0}"


class RedisStorage(BaseStorage):
    """huey's RedisStorage(name, blocking=True, read_timeout=1, connection_pool=None, url=None,
    client_name=None, notify_result=False, notify_result_ttl=60, clean_name=True,
    **connection_params) on the redis backend. Every Redis queue here honours priorities, so
    this is also PriorityRedisStorage."""

    backend = "redis"

    @classmethod
    def spec(cls, name: str, kwargs: dict[str, Any]) -> StorageSpec:
        url = kwargs.pop("url", None)
        pool = kwargs.pop("connection_pool", None)
        built = _redis_url(kwargs)
        if sum(1 for given in (url, pool, built) if given) > 1:
            raise ConfigurationError(
                f"{cls.__name__}: pass only one of url=, connection_pool= or "
                "host=/port=/db=/password=, as huey requires"
            )
        options: dict[str, Any] = {
            "blocking": bool(kwargs.pop("blocking", True)),
            "read_timeout": kwargs.pop("read_timeout", 1),
            "clean_name": bool(kwargs.pop("clean_name", True)),
        }
        # Waiting for a result is always woken by the write here (no polling to switch off).
        kwargs.pop("notify_result", None)
        kwargs.pop("notify_result_ttl", None)
        if pool is not None:
            options["connection_pool"] = pool
        # redis-py connection options (client_name=, socket_timeout=, ...) and the backend's own
        options.update(kwargs)
        try:
            from huey_redis.backend import check_connection_options
        except ImportError:  # huey-redis missing: Huey() already warns which extra to install
            pass
        else:
            if not _flag(options.get("cluster")):
                check_connection_options(options)
        return StorageSpec("redis", url or built, options)


class PriorityRedisStorage(RedisStorage):
    """huey's PriorityRedisStorage: the same as RedisStorage here."""


class RedisExpireStorage(RedisStorage):
    """huey's RedisExpireStorage(name, expire_time=86400, ...): task results expire after
    `expire_time` seconds (a Redis TTL), and reading a result does not delete it (it stays
    readable until it expires). Other keys (revocations, locks) never expire."""

    @classmethod
    def spec(cls, name: str, kwargs: dict[str, Any]) -> StorageSpec:
        expire_time = kwargs.pop("expire_time", 86400)
        base = super().spec(name, kwargs)
        options = {**base.options, "keep_on_read": True}
        return StorageSpec(base.backend, base.url, options, result_ttl=float(expire_time))


class PriorityRedisExpireStorage(RedisExpireStorage):
    """huey's PriorityRedisExpireStorage: the same as RedisExpireStorage here."""


# -- SQL ------------------------------------------------------------------------------------------

_JOURNAL_MODES = ("WAL", "DELETE", "TRUNCATE", "PERSIST", "MEMORY", "OFF")
_SQLITE_CONNECT_HINT = (
    "the sql backend opens its own SQLite connections; pass filename=, timeout=, "
    "journal_mode=, cache_mb=, fsync= or a sql backend option (docs/sql.md)"
)


def _sql_options(cls: type, kwargs: dict[str, Any], hint: str) -> dict[str, Any]:
    """The sql backend's own options among `kwargs`; anything else is refused in one line."""
    try:
        from huey_sql.options import OPTIONS
    except ImportError:  # huey-sql missing: Huey() already warns which extra to install
        return kwargs
    _refuse_unknown(cls, {k: v for k, v in kwargs.items() if k not in OPTIONS}, hint)
    return kwargs


class SqliteStorage(BaseStorage):
    """huey's SqliteStorage(name, filename="huey.db", cache_mb=8, fsync=None, journal_mode="wal",
    timeout=5, strict_fifo=False) on the sql backend. The PRAGMAs apply to every connection."""

    backend = "sql"

    @classmethod
    def spec(cls, name: str, kwargs: dict[str, Any]) -> StorageSpec:
        filename = kwargs.pop("filename", "huey.db")
        url = kwargs.pop("url", None) or f"sqlite:///{filename}"
        fsync = kwargs.pop("fsync", None)
        journal_mode = kwargs.pop("journal_mode", "wal")
        if journal_mode is not None and str(journal_mode).upper() not in _JOURNAL_MODES:
            raise ConfigurationError(
                f"{cls.__name__}: journal_mode must be one of {', '.join(_JOURNAL_MODES)} "
                f"(or None), not {journal_mode!r}"
            )
        options: dict[str, Any] = {
            "busy_timeout": float(kwargs.pop("timeout", 5)),
            # huey leaves the file's mode alone on None; WAL is what the sql backend needs most
            "sqlite_journal_mode": journal_mode or "wal",
            "sqlite_cache_mb": kwargs.pop("cache_mb", 8),
        }
        if fsync is not None:
            options["sqlite_synchronous"] = "FULL" if fsync else "OFF"
        # The queue is always FIFO within a priority (see docs/backends.md): nothing to switch.
        kwargs.pop("strict_fifo", None)
        kwargs.pop("create_tables", None)  # tables are created on first use, if missing
        options.update(_sql_options(cls, kwargs, _SQLITE_CONNECT_HINT))
        return StorageSpec("sql", url, options)


_SYNCHRONOUS = {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}


class CySqliteStorage(SqliteStorage):
    """huey's CySqliteStorage(name, filename="huey.db", pragmas=None, timeout=5, ...): the same
    SQLite database on the sql backend (its own driver, not cysqlite). `pragmas` may set
    journal_mode, cache_size and synchronous; any other PRAGMA is refused."""

    @classmethod
    def spec(cls, name: str, kwargs: dict[str, Any]) -> StorageSpec:
        pragmas = dict(kwargs.pop("pragmas", None) or {})
        if "journal_mode" in pragmas:
            kwargs.setdefault("journal_mode", pragmas.pop("journal_mode"))
        if "cache_size" in pragmas:  # negative: KiB, as huey writes it; positive: pages
            size = int(pragmas.pop("cache_size"))
            kwargs.setdefault("cache_mb", -size / 1000 if size < 0 else size * 4 / 1000)
        synchronous = pragmas.pop("synchronous", None)
        _refuse_unknown(cls, {f"pragmas[{k!r}]": v for k, v in pragmas.items()}, "only "
                        "journal_mode, cache_size and synchronous can be set")  # fmt: skip
        spec = super().spec(name, kwargs)
        if synchronous is not None:
            level = _SYNCHRONOUS.get(str(synchronous), str(synchronous).upper())
            spec.options["sqlite_synchronous"] = level
        return spec


def _conninfo_url(dsn: str | None, params: dict[str, Any]) -> str:
    """A PostgreSQL URL from a libpq DSN ("host=... dbname=...") and/or connection keywords."""
    parts: dict[str, str] = {}
    for item in (dsn or "").split():
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigurationError(
                "PostgresStorage: dsn= must be a URL (postgresql://...) or key=value pairs"
            )
        parts[key] = value.strip("'")
    parts.update({k: str(v) for k, v in params.items()})
    if "database" in parts:
        parts["dbname"] = parts.pop("database")
    quote = urllib.parse.quote
    user, password = parts.pop("user", ""), parts.pop("password", "")
    auth = f"{quote(user, safe='')}{':' + quote(password, safe='') if password else ''}@"
    host = parts.pop("host", "")
    port = parts.pop("port", "")
    netloc = (auth if user or password else "") + host + (f":{port}" if port else "")
    path = "/" + quote(parts.pop("dbname", ""), safe="")
    query = urllib.parse.urlencode(parts)
    return f"postgresql+psycopg://{netloc}{path}" + (f"?{query}" if query else "")


class PostgresStorage(BaseStorage):
    """huey's PostgresStorage(name, dsn=None, connection=None, blocking=True, read_timeout=1,
    table_prefix="huey", create_tables=True, **connection_params) on the sql backend."""

    backend = "sql"

    @classmethod
    def spec(cls, name: str, kwargs: dict[str, Any]) -> StorageSpec:
        if kwargs.pop("connection", None) is not None:
            raise ConfigurationError(
                f"{cls.__name__}: connection= (a callable returning a connection) is not "
                "supported; pass dsn= or host=/dbname=/user=/password=, the sql backend pools "
                "its own connections"
            )
        dsn = kwargs.pop("dsn", None)
        options: dict[str, Any] = {"notify": bool(kwargs.pop("blocking", True))}
        # huey waits read_timeout for a NOTIFY before looking again: the sql backend's fallback
        # poll interval on PostgreSQL means the same
        options["poll_interval"] = float(kwargs.pop("read_timeout", 1))
        prefix = kwargs.pop("table_prefix", None)
        if prefix is not None:
            # "_tk_" keeps these tables apart from huey's own, which have other columns
            options["table_prefix"] = re.sub("[^A-Za-z0-9_]", "", str(prefix)) + "_tk_"
        kwargs.pop("create_tables", None)
        ours = {k: kwargs.pop(k) for k in list(kwargs) if k in _sql_option_names()}
        if dsn is not None and "://" in dsn:
            if kwargs:
                raise ConfigurationError(
                    f"{cls.__name__}: pass connection keywords inside the dsn= URL, not "
                    f"beside it ({', '.join(sorted(kwargs))})"
                )
            url = dsn
        else:
            url = _conninfo_url(dsn, kwargs)
        return StorageSpec("sql", url, {**options, **ours})


def _sql_option_names() -> frozenset[str]:
    try:
        from huey_sql.options import OPTIONS
    except ImportError:
        return frozenset()
    return OPTIONS


# peewee's db_url schemes (huey.contrib.sql_huey) -> SQLAlchemy's
_PEEWEE_SCHEMES = {
    "sqlite": "sqlite",
    "sqliteext": "sqlite",
    "sqlite+pool": "sqlite",
    "sqliteext+pool": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresext": "postgresql+psycopg",
    "postgres+pool": "postgresql+psycopg",
    "postgresql+pool": "postgresql+psycopg",
    "postgresext+pool": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mysql+pool": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


class SqlStorage(BaseStorage):
    """huey.contrib.sql_huey's SqlStorage(name, database=URL) on the sql backend.

    `database` is a peewee-style URL (sqlite:///path, postgresql://..., mysql://...) or any
    SQLAlchemy URL the sql backend takes. A peewee Database object is refused: pass its URL.
    """

    backend = "sql"

    @classmethod
    def spec(cls, name: str, kwargs: dict[str, Any]) -> StorageSpec:
        database = kwargs.pop("database", None)
        kwargs.pop("create_tables", None)
        if not isinstance(database, str) or "://" not in database:
            raise ConfigurationError(
                f"{cls.__name__} needs database= as a URL string (e.g. "
                f"postgresql://user@host/db); got {type(database).__name__}"
            )
        scheme, rest = database.split("://", 1)
        url = f"{_PEEWEE_SCHEMES.get(scheme.lower(), scheme)}://{rest}"
        return StorageSpec("sql", url, _sql_options(cls, kwargs, "pass sql backend options"))


class FileStorage(BaseStorage):
    """huey's FileStorage(name, path, levels=2, use_thread_lock=False), mapped onto one SQLite
    database file, `huey.db`, in the directory `path` (created if missing).

    Why not files: huey's FileStorage serialises every operation behind one lock file and is
    not meant for production; a SQLite file in the same directory keeps the "no server, just a
    folder" setup and adds leases, atomic claims across processes and the conformance suite.
    `levels` and `use_thread_lock` shape huey's directory layout and have no meaning here.
    """

    backend = "sql"

    @classmethod
    def spec(cls, name: str, kwargs: dict[str, Any]) -> StorageSpec:
        path = kwargs.pop("path", None)
        if not path:
            raise ConfigurationError(f"{cls.__name__} needs path=, the directory to store in")
        levels = kwargs.pop("levels", 2)
        if not 0 <= int(levels) <= 4:
            raise ConfigurationError(f"{cls.__name__}: levels must be between 0 and 4")
        kwargs.pop("use_thread_lock", None)
        path = os.path.abspath(os.fspath(path))
        if os.path.exists(path) and not os.path.isdir(path):
            raise ConfigurationError(f"{cls.__name__}: path {path!r} is not a directory")
        os.makedirs(path, exist_ok=True)
        options = _sql_options(cls, kwargs, "pass sql backend options (docs/sql.md)")
        return StorageSpec("sql", f"sqlite:///{os.path.join(path, 'huey.db')}", options)


def from_storage_class(
    storage_class: type[BaseStorage],
    name: str,
    backend: object,
    url: str | None,
    options: dict[str, Any],
) -> StorageSpec:
    """Huey's `storage_class=` and the storage keyword arguments beside it, as a StorageSpec."""
    if not (isinstance(storage_class, type) and issubclass(storage_class, BaseStorage)):
        raise ConfigurationError(
            f"storage_class={storage_class!r} is not one of huey_core.storage_classes (change "
            "`from huey.storage import ...` to `from huey_core.storage_classes import ...`)"
        )
    if backend is not None:
        raise ConfigurationError(
            f"pass storage_class={storage_class.__name__} or backend=, not both"
        )
    kwargs = dict(options)
    if url is not None:
        kwargs["url"] = url
    return storage_class.spec(name, kwargs)
