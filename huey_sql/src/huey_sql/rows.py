"""Reading rows that something other than huey may have written, and setting bad ones aside.

The tables are plain tables: a producer in another language, an operator's UPDATE or an old
release can put values there that this code never writes. Whatever a row holds, it must not stop
every dequeue or every scheduler run. So values are read leniently where a lenient reading is
unambiguous (SQLite keeps whatever type it is given: a TEXT payload is read as its UTF-8 bytes),
and a row the core cannot be handed at all (a payload that is neither bytes nor text, a priority
or delivery count that is not an integer) is removed and written to the dead-letter store with
the reason, in the one transaction, together with its `dead-lettered` event
(huey_core.deadletters.backend_dead_letter). The rest of the queue flows.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from huey_core.deadletters import backend_dead_letter
from huey_sql.db import Database

log = logging.getLogger("huey_sql")

# The delivery counter is a 32-bit column: it stops growing here instead of overflowing (a row
# at the top is dead-lettered by the core's max_deliveries long before anyway).
MAX_COUNT = 2**31 - 1
BAD_ROWS_PER_CALL = 100  # rows set aside by one dequeue before it gives up until the next call


def payload(value: Any) -> bytes | None:
    """The message bytes of a stored payload; None when it is neither bytes nor text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return None


def shown(value: Any) -> bytes:
    """Bytes for any stored value, for peeks and dead letters (never raises)."""
    found = payload(value)
    return found if found is not None else repr(value).encode()


def integer(value: Any) -> int | None:
    """An integer column's value; None when it holds something else (SQLite allows it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def seconds(value: Any) -> float | None:
    """A finite float column's value (a time); None when it holds anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def kind(value: Any) -> str:
    return "NULL" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"


def dead_letter(
    cur: Any, db: Database, data: Any, reason: str, deliveries: int | None = None
) -> str:
    """Store the dead letter and its event inside the caller's transaction; return its key.

    The caller removes the row in the same transaction and logs (after the commit) with
    `logged()`.
    """
    key, record, event = backend_dead_letter(db.name, shown(data), reason, deliveries)
    cur.execute(db.dialect.put_sql, (db.name, key, record, None))
    db.dialect.emit_many(cur, db.name, time.time(), [event], db.channel("ev"))
    return key


def logged(db: Database, reason: str, key: str) -> None:
    log.error("instance %r: %s; moved it to the dead letters (%s)", db.name, reason, key)
