"""Tables of the sql backend and their creation.

One set of five tables per `table_prefix`, shared by every huey instance in the database: each row
carries the instance `name`, and every index starts with it, so instances never scan each other's
rows. Creation is idempotent and safe when many processes start at once: a per-dialect lock
(PostgreSQL advisory lock, MySQL GET_LOCK, SQLite's write lock) serializes the CREATE statements,
and a row in the meta table records the schema version so a later release can migrate.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    inspect,
    select,
)
from sqlalchemy.exc import DBAPIError

from huey_core.exceptions import ConfigurationError

SCHEMA_VERSION = 1

# Identifiers are spliced into DDL and LISTEN statements, so only a strict shape is accepted.
PREFIX_RE = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
MAX_NAME = 100  # instance name length; keeps (name, key) inside MySQL's 3072-byte index limit
MAX_KEY = 500

# SQLite only auto-assigns ids to an INTEGER PRIMARY KEY (the rowid alias).
Id = BigInteger().with_variant(Integer(), "sqlite")
MYSQL = ("mysql", "mariadb")


def validate_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not PREFIX_RE.match(prefix):
        raise ConfigurationError(
            f"table_prefix {prefix!r} is not allowed; use 1-20 characters of a-z, 0-9 and _, "
            "starting with a letter (for example 'huey_tk_')"
        )
    return prefix


@dataclass(frozen=True)
class Tables:
    prefix: str
    metadata: MetaData
    meta: Table
    queue: Table
    schedule: Table
    kv: Table
    events: Table


def build_tables(prefix: str, dialect: str | None = None) -> Tables:
    """The Table objects for `prefix` (validated), on a fresh MetaData.

    `dialect` ("sqlite", "postgresql", "mysql" or "mariadb"; None: all of them) leaves out the
    options and indexes of the others: SQLAlchemy imports a dialect's module (PostgreSQL's
    takes about 35 ms) to check the options named after it.
    """
    p = validate_prefix(prefix)
    mysql = dialect is None or dialect in MYSQL
    postgresql = dialect is None or dialect == "postgresql"
    sqlite = dialect is None or dialect == "sqlite"
    # MySQL: LONGBLOB (BLOB stops at 64 KB); the others have one unbounded binary type.
    blob: Any = LargeBinary()
    # Case-sensitive, byte-wise comparison of names and keys everywhere (MySQL defaults to
    # case-insensitive collations, which would make "Lock" and "lock" the same key).
    table_kw: dict[str, Any] = {}
    if mysql:
        from sqlalchemy.dialects import mysql as mysql_types

        blob = blob.with_variant(mysql_types.LONGBLOB(), *MYSQL)
        table_kw = {
            "mysql_engine": "InnoDB",
            "mysql_charset": "utf8mb4",
            "mysql_collate": "utf8mb4_bin",
        }
    md = MetaData()
    meta = Table(
        f"{p}meta",
        md,
        Column("key", String(100), primary_key=True),
        Column("value", String(200), nullable=False),
        **table_kw,
    )
    queue = Table(
        f"{p}queue",
        md,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("name", String(MAX_NAME), nullable=False),
        # -priority: one ascending index then serves "priority DESC, id ASC" on every dialect
        # (MariaDB before 10.8 ignores DESC in index definitions).
        Column("sort_key", Integer, nullable=False),
        Column("data", blob, nullable=False),
        Column("lease", String(32), nullable=True),  # NULL = ready
        Column("owner", String(200), nullable=True),
        Column("deadline", Double, nullable=True),
        Column("deliveries", Integer, nullable=False, default=0),
        **table_kw,
    )
    # The claim query (name = ?, lease IS NULL, ORDER BY sort_key, id LIMIT 1) must read an
    # index in order and stop at the first row. MySQL and SQLite treat "lease IS NULL" as an
    # equality, so one index serves the claim and, through its (name, lease) prefix, the lookups
    # by lease token. PostgreSQL does not derive the order from an IS NULL condition (it would
    # sort every ready row), so it gets two partial indexes instead: ready rows in claim order,
    # and leased rows by token (ack, release, extend; recover reads only leased rows).
    if dialect != "postgresql":
        Index(f"{p}queue_claim", queue.c.name, queue.c.lease, queue.c.sort_key, queue.c.id).ddl_if(
            callable_=_not_postgresql
        )
    if postgresql:
        Index(
            f"{p}queue_ready",
            queue.c.name,
            queue.c.sort_key,
            queue.c.id,
            postgresql_where=queue.c.lease.is_(None),
        ).ddl_if(dialect="postgresql")
        Index(
            f"{p}queue_leased",
            queue.c.name,
            queue.c.lease,
            postgresql_where=queue.c.lease.is_not(None),
        ).ddl_if(dialect="postgresql")
    schedule = Table(
        f"{p}schedule",
        md,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("name", String(MAX_NAME), nullable=False),
        Column("ts", Double, nullable=False),
        Column("priority", Integer, nullable=False, default=0),
        Column("data", blob, nullable=False),
        Index(f"{p}schedule_due", "name", "ts", "id"),
        **table_kw,
    )
    kv = Table(
        f"{p}kv",
        md,
        Column("name", String(MAX_NAME), primary_key=True),
        Column("key", String(MAX_KEY), primary_key=True),
        Column("value", blob, nullable=False),
        Column("expires_at", Double, nullable=True),  # NULL = never
        Index(f"{p}kv_expiry", "name", "expires_at"),
        **table_kw,
    )
    events_kw = dict(table_kw)
    if sqlite:
        # Listeners read "id > last seen": SQLite must never reuse the id of a trimmed row.
        events_kw["sqlite_autoincrement"] = True
    events = Table(
        f"{p}events",
        md,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("name", String(MAX_NAME), nullable=False),
        Column("created", Double, nullable=False),
        Column("data", blob, nullable=False),
        Index(f"{p}events_seq", "name", "id"),
        **events_kw,
    )
    return Tables(p, md, meta, queue, schedule, kv, events)


def _not_postgresql(
    ddl: Any, target: Any, bind: Any, tables: Any = None, state: Any = None, **kw: Any
) -> bool:
    return bool(kw["dialect"].name != "postgresql")


def lock_key(prefix: str) -> int:
    """A 64-bit key per table prefix (for PostgreSQL's advisory lock)."""
    digest = hashlib.sha1(f"huey_sql:{prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def create_schema(create_locked: Callable[[], None]) -> None:
    """Run `create_locked()` (the dialect's locked create_all() + check_version()), again when
    it lost a race with another process. Idempotent.

    Concurrent callers in several processes serialize on a database lock; a caller that still
    loses a race (a server without the lock) retries once the winner's tables exist.
    """
    for attempt in range(5):
        try:
            create_locked()
            return
        except DBAPIError as exc:
            if attempt == 4 or not _is_race(exc):
                raise
            time.sleep(0.05 * (attempt + 1))


def _is_race(exc: DBAPIError) -> bool:
    msg = str(exc.orig).lower()
    return any(
        s in msg for s in ("already exists", "duplicate", "database is locked", "deadlock", "busy")
    )


def create_all(conn: Any, tables: Tables) -> None:
    """Missing tables, then missing indexes of existing tables (added by a later release)."""
    tables.metadata.create_all(conn, checkfirst=True)
    inspector = inspect(conn)
    for table in tables.metadata.sorted_tables:
        found = {c["name"] for c in inspector.get_columns(table.name)}
        missing = sorted(c.name for c in table.columns if c.name not in found)
        if missing:
            # Another program's table with our name (huey's own PostgresHuey, say): writing to
            # it would fail on every call with a confusing column error.
            raise ConfigurationError(
                f"table {table.name!r} exists but was not created by huey-sql (missing columns "
                f"{', '.join(missing)}); choose another table_prefix"
            )
        for index in table.indexes:
            index.create(conn, checkfirst=True)


def check_version(conn: Any, tables: Tables) -> None:
    meta = tables.meta
    found = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    if found is None:
        conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
    elif int(found) > SCHEMA_VERSION:
        raise ConfigurationError(
            f"tables with prefix {tables.prefix!r} have schema version {found}, newer than the "
            f"{SCHEMA_VERSION} this huey-sql understands; upgrade huey-sql"
        )
