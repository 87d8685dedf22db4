"""The example Django project as its users run it: `manage.py runserver` and `manage.py run_huey`
as separate processes, orders placed over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from huey_core.testing.apps import wait_for
from huey_sql.testing import postgres_database, postgres_sql

PROJECT = Path(__file__).resolve().parents[1]
ROOT = PROJECT.parents[1]
_spec = importlib.util.spec_from_file_location("huey_django_example_demo", PROJECT / "demo.py")
assert _spec is not None and _spec.loader is not None
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)
Shop = demo.Shop

pytestmark = pytest.mark.slow

BOOK = {"item": "book", "quantity": 2, "unit_cents": 1250}


def make_shop(tmp_path: Path, request: pytest.FixtureRequest, database: str, **env: str) -> Any:
    env["SHOP_HUEY_NAME"] = f"shop-{uuid.uuid4().hex[:8]}"
    if database == "postgresql":
        name = request.getfixturevalue("pg_name")
        env.update(SHOP_DB="postgresql", SHOP_DB_NAME=name)
    shop = Shop(tmp_path, **env)
    request.addfinalizer(shop.close)
    migrated = shop.manage("migrate", "-v", "0")
    assert migrated.returncode == 0, migrated.stderr
    return shop


@pytest.fixture
def pg_name() -> Iterator[str]:
    with postgres_database("hdjshop") as name:
        yield name


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_views_enqueue_on_commit_and_run_huey_runs_the_tasks(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    shop = make_shop(tmp_path, request, database)
    shop.start_web()
    consumer = shop.start("run_huey")

    status, placed = shop.post("/orders/", BOOK)
    assert status == 201, placed
    status, declined = shop.post("/orders/", {**BOOK, "decline": True})
    assert status == 402, declined

    assert shop.wait_result(placed["task"]) == {"ready": True, "value": 2500}, shop.log(consumer)
    order = shop.wait_order(placed["order"])
    assert order["status"] == "paid" and order["total_cents"] == 2500
    assert order["receipt_sent"] is True  # the on_commit_task ran too
    assert order["task_id"] == placed["task"]  # the id was known before the commit
    # The periodic db task (discovered in orders/tasks.py) ran when the consumer started.
    assert wait_for(lambda: shop.get("/reports/")["reports"]), shop.log(consumer)
    # The declined order rolled back before its tasks were enqueued: nothing ran, nothing waits.
    assert shop.get(f"/tasks/{declined['task']}/") == {"ready": False, "value": None}
    assert shop.get("/reports/")["pending"] == 0
    assert shop.stop(consumer) == 0
    assert "periodic tasks (UTC): report_sales" in shop.log(consumer)


def django_connections(database: str, application: str) -> list[int]:
    """Server pids of Django connections (those that last touched an order) of `application`."""
    rows = postgres_sql(
        "SELECT pid FROM pg_stat_activity WHERE datname = "
        f"'{database}' AND application_name = '{application}' AND strpos(query, 'orders_order') > 0"
    )
    return [int(row[0]) for row in rows]


@pytest.mark.parametrize("max_age", ["0", "none"])
def test_db_tasks_never_reuse_a_connection_the_database_dropped(
    max_age: str, tmp_path: Path, request: pytest.FixtureRequest, pg_name: str
) -> None:
    shop = make_shop(tmp_path, request, "postgresql", SHOP_CONN_MAX_AGE=max_age)
    shop.start_web()
    consumer = shop.start("run_huey", "-w", "1", "--no-periodic", SHOP_APP_NAME="shop-worker")

    status, first = shop.post("/orders/", BOOK)
    assert shop.wait_result(first["task"])["value"] == 2500, shop.log(consumer)
    shop.wait_order(first["order"])
    if max_age == "0":
        # Like a request, each task closes its connection when done: none is left to go stale.
        assert wait_for(lambda: not django_connections(pg_name, "shop-worker"), timeout=5)
    else:
        # Persistent connections stay open between tasks; the server drops this one (restart,
        # idle timeout), and the next task must not fail on it.
        (stale,) = django_connections(pg_name, "shop-worker")
        postgres_sql(f"SELECT pg_terminate_backend({stale})")
    status, second = shop.post("/orders/", BOOK)
    assert shop.wait_result(second["task"]) == {"ready": True, "value": 2500}, shop.log(consumer)
    assert shop.stop(consumer) == 0


def test_process_workers_use_the_database_after_the_fork(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    shop = make_shop(tmp_path, request, "postgresql")
    shop.start_web()
    consumer = shop.start("run_huey", "--worker-type", "process", "--workers", "2")
    placed = [shop.post("/orders/", {**BOOK, "quantity": n})[1] for n in range(1, 5)]
    values = [shop.wait_result(p["task"])["value"] for p in placed]
    assert values == [1250, 2500, 3750, 5000], shop.log(consumer)
    assert shop.stop(consumer) == 0


def test_the_database_password_never_reaches_the_consumer_log(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    password = f"pw-{uuid.uuid4().hex}"  # the test server trusts loopback: any password works
    shop = make_shop(tmp_path, request, "postgresql", SHOP_DB_PASSWORD=password)
    shop.start_web()
    consumer = shop.start("run_huey", "-v", "2")  # Django's verbosity 2: huey logs at DEBUG
    status, placed = shop.post("/orders/", BOOK)
    assert shop.wait_result(placed["task"])["value"] == 2500
    assert shop.stop(consumer) == 0
    log = shop.log(consumer)
    assert "postgres:***@127.0.0.1" in log  # the banner names the database, masked
    assert " DEBUG " in log
    assert password not in log


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_run_huey_refuses_what_cannot_work_in_one_line(tmp_path: Path) -> None:
    shop = Shop(tmp_path)  # SQLite, not even migrated: nothing gets that far
    bad_option = shop.manage("run_huey", "--workers", "0", timeout=60)
    assert bad_option.returncode == 2
    assert "argument -w/--workers: 0 is not in the range 1<=x<=1000" in one_line_error(bad_option)

    shop.env["DJANGO_DEBUG"] = "1"  # immediate mode follows DEBUG: no consumer needed
    immediate = shop.manage("run_huey", timeout=60)
    assert immediate.returncode == 2
    assert re.match(
        r"CommandError: settings.HUEY runs tasks immediately", one_line_error(immediate)
    )

    shop.env.pop("DJANGO_DEBUG")
    unknown = shop.manage("run_huey", "--backend", "nosuch", timeout=60)
    assert unknown.returncode == 2
    assert "unknown backend 'nosuch'" in one_line_error(unknown)


def test_make_django_demo_runs_the_example(tmp_path: Path) -> None:
    # The documented command: `make django-demo` runs this script (after `make dev`).
    recipe = re.search(r"^django-demo:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe and recipe.group(1).endswith("python examples/django_project/demo.py")
    started = time.monotonic()
    run = subprocess.run([sys.executable, str(PROJECT / "demo.py")], cwd=ROOT,
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith("django demo: OK")
    assert "SIGTERM run_huey: exit code 0" in run.stdout
    assert time.monotonic() - started < 120
