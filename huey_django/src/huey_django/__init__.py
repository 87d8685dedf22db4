"""Django integration for the huey toolkit (docs/django.md).

Add "huey_django" to INSTALLED_APPS and configure `settings.HUEY`; then in an app's tasks.py:

    from huey_django import db_task

    @db_task(retries=2)
    def process_order(order_id): ...

`python manage.py run_huey` runs the consumer; each installed app's `tasks` module is imported
at start-up, so every task is registered. `HUEY` is the instance built from settings.HUEY (on
first use of the name).

    config.py       settings.HUEY -> Huey; a Django database -> an sql backend URL
    decorators.py   task, periodic_task, db_task, db_periodic_task, on_commit_task, ...
    apps.py         the AppConfig: imports each app's tasks module
    options.py      `huey consume`'s options as `manage.py run_huey` arguments
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from huey_django.config import build_huey, database_url, get_huey
from huey_django.decorators import (
    OnCommitTask,
    close_db,
    db_periodic_task,
    db_task,
    enqueue_on_commit,
    lock_task,
    on_commit_task,
    periodic_task,
    task,
)

if TYPE_CHECKING:
    from huey_core import Huey

    HUEY: Huey

__version__ = "0.1.0"

__all__ = [
    "HUEY",
    "OnCommitTask",
    "build_huey",
    "close_db",
    "database_url",
    "db_periodic_task",
    "db_task",
    "enqueue_on_commit",
    "get_huey",
    "lock_task",
    "on_commit_task",
    "periodic_task",
    "task",
]


def __getattr__(name: str) -> Huey:
    # Built on first use rather than at import: Django imports this package while it reads
    # INSTALLED_APPS, and the instance must see the finished settings.
    if name == "HUEY":
        return get_huey()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
