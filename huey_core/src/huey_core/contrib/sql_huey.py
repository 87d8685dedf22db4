"""huey.contrib.sql_huey: `SqlHuey(name, database=URL)` on the sql backend.

huey builds it on peewee; here `database` is a URL string (peewee's sqlite:///, postgresql://,
mysql:// forms or any SQLAlchemy URL the sql backend takes), see storage_classes.SqlStorage.
"""

from __future__ import annotations

from huey_core.api import Huey
from huey_core.storage_classes import SqlStorage

__all__ = ["SqlHuey", "SqlStorage"]


class SqlHuey(Huey):
    """`SqlHuey(name, database="postgresql://user@host/db")`."""

    storage_class = SqlStorage
