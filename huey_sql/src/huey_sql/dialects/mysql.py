"""MySQL 8 / MariaDB 10.6+ (PyMySQL): SKIP LOCKED claims in two statements, waiters poll.

MySQL cannot UPDATE a table it selects from in a subquery, so a claim locks the next ready row
(skipping rows other claimers hold) and then leases it. There is no notification channel: the
queue does not block and the consumer polls with backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from huey_core.exceptions import ConfigurationError
from huey_sql import schema
from huey_sql.dialects.base import Dialect, Row

DEADLOCK, LOCK_WAIT_TIMEOUT = 1213, 1205


class MySQLDialect(Dialect):
    name = "mysql"
    extra = "mysql"
    placeholder = "%s"
    quote = "`"
    claim_is_one_statement = False
    pop_is_one_statement = False

    def __init__(self, url: Any, tables: Any, options: dict[str, Any]) -> None:
        super().__init__(url, tables, options)
        q = tables.queue.name
        self.pick_locked_sql = self.sql(
            self.pick_sql.replace("SELECT id ", "SELECT id, data, deliveries ") + self.skip_locked
        )
        self.pick_many_locked_sql = self.sql(
            self.pick_sql.replace("SELECT id ", "SELECT id, data, deliveries ").replace(
                "LIMIT 1", "LIMIT ?"
            )
            + self.skip_locked
        )
        self.lease_sql = self.sql(
            f"UPDATE {q} SET lease = ?, owner = ?, deadline = ?, {self.count_up} WHERE id = ?"
        )
        self._delete_returning: bool | None = None
        self._packet: int | None = None

    def upsert(self, insert: str, key: str) -> str:
        return f"{insert} ON DUPLICATE KEY UPDATE value = VALUES(value), expires_at = VALUES(expires_at)"

    def insert_ignore(self, insert: str, key: str) -> str:
        return insert.replace("INSERT INTO", "INSERT IGNORE INTO", 1)

    def claim(self, cur: Any, claim: Row, name: str) -> Row | None:
        cur.execute(self.pick_locked_sql, (name,))
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute(self.lease_sql, (*claim, row[0]))
        return (row[1], row[2] + 1 if row[2] < 2147483647 else row[2])

    def concat(self, a: str, b: str) -> str:
        return f"CONCAT({a}, {b})"  # || is OR in MySQL

    def claim_many(self, cur: Any, claim: Row, name: str, n: int) -> list[Row]:
        # No UPDATE of a table selected from in a subquery: lock the rows, then lease them.
        cur.execute(self.pick_many_locked_sql, (name, n))
        found = list(cur.fetchall())
        if not found:
            return []
        # handed out before: claimed alone, and a batch stops before one (Queue.dequeue_many)
        if found[0][2]:
            found = found[:1]
        else:
            end = next((i for i, row in enumerate(found) if row[2]), len(found))
            found = found[:end]
        q = self.tables.queue.name
        ids = [row[0] for row in found]
        cur.execute(
            f"UPDATE {q} SET lease = CONCAT(%s, id), owner = %s, deadline = %s, {self.count_up} "
            f"WHERE id IN ({self.params(len(ids))})",
            (*claim, *ids),
        )
        nonce = claim[0]
        return [
            (f"{nonce}{row[0]}", row[1], row[2] + 1 if row[2] < 2147483647 else row[2])
            for row in found
        ]

    def pop(self, cur: Any, name: str, key: str) -> Row | None:
        if self._delete_returning is None:
            # MariaDB has DELETE ... RETURNING; MySQL 8 does not.
            cur.execute("SELECT VERSION()")
            self._delete_returning = "mariadb" in str(cur.fetchone()[0]).lower()
        if self._delete_returning:
            return super().pop(cur, name, key)
        cur.execute(self.read_locked_sql, (name, key))
        row = cur.fetchone()
        if row is not None:
            cur.execute(self.delete_key_sql, (name, key))
        return row

    def insert_if_absent(self, cur: Any, args: Row) -> bool:
        cur.execute(self.insert_if_absent_sql, args)
        return bool(cur.rowcount == 1)  # INSERT IGNORE: 0 rows on a duplicate key

    def create_tables(self, engine: Engine) -> None:
        # MySQL DDL commits implicitly, so the lock is a session lock around it.
        name = f"huey_sql_schema_{self.tables.prefix}"
        with engine.connect() as conn:
            got = conn.execute(text("SELECT GET_LOCK(:n, 60)"), {"n": name}).scalar()
            try:
                if not got:
                    raise ConfigurationError(f"timed out waiting for the schema lock {name!r}")
                schema.create_all(conn, self.tables)
                conn.commit()
                with conn.begin():
                    schema.check_version(conn, self.tables)
            finally:
                conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})
                conn.commit()

    def payload_limit(self, read: Callable[[Callable[[Any], Any]], Any]) -> int | None:
        """max_allowed_packet: the server's for this session, and PyMySQL's own (16 MB by
        default), whichever is smaller. Asked once per backend."""
        if self._packet is None:

            def ask(cur: Any) -> int:
                cur.execute("SELECT @@max_allowed_packet")
                server = int(cur.fetchone()[0])
                return min(server, int(getattr(cur.connection, "max_allowed_packet", server)))

            self._packet = int(read(ask))
        return self._packet

    def is_transient(self, exc: BaseException) -> bool:
        args: tuple[Any, ...] = getattr(exc, "args", ())
        return bool(args) and args[0] in (DEADLOCK, LOCK_WAIT_TIMEOUT)

    def engine_options(self) -> dict[str, Any]:
        return {
            # A checkout pings first, so connections broken by a server restart are replaced
            # instead of failing the first query after it.
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": 5},
            "pool_recycle": 3600,  # below MySQL's default wait_timeout of 8 hours
            # SKIP LOCKED claims with fewer gap locks, and a locking read sees the latest commit.
            "isolation_level": "READ COMMITTED",
            # Every transaction ends in COMMIT or ROLLBACK before its connection goes back
            # (Database.run, SQLAlchemy's Connection): the pool's ROLLBACK on return would only
            # add a round trip to each operation.
            "pool_reset_on_return": None,
        }
