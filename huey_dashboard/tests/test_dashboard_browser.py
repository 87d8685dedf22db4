"""The dashboard in a real browser: headless Chromium against `huey dashboard` and a real
`huey consume`, on a SQLite file and on Redis, with tasks enqueued from other processes."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from huey_core.testing import require_port
from huey_core.testing.apps import App, read_log, stop, wait_for

pytestmark = pytest.mark.slow

SOURCE = """
import os
import time

from huey_core import Huey

huey = Huey(os.environ["TEST_HUEY_NAME"], url=os.environ["TEST_URL"])


@huey.task()
def slow(seconds):
    time.sleep(seconds)
    return seconds


if not os.environ.get("TEST_OLD_RELEASE"):

    @huey.task()
    def report(name):
        # New in this release: a consumer still running the old code dead-letters it.
        return f"report {name} sent"
"""


@pytest.fixture(params=["sqlite", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    if request.param == "redis":
        require_port("Redis", 6379)
        url = "redis://127.0.0.1:6379/0"
    else:
        url = f"sqlite:///{tmp_path}/huey.db"
    app = App(tmp_path, SOURCE, "dash", TEST_URL=url)
    app.on_close.append(lambda: app.loaded and app.huey.flush())
    yield app
    app.close()


def start_dashboard(app: App, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`huey dashboard IMPORT_PATH --port 0 *args`; the process and the URL it printed."""
    log = open(app.directory / "dashboard.log", "w+")  # noqa: SIM115 - closed by app.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "huey_core.cli", "dashboard", app.import_path, "--port", "0",
         *args],
        cwd=app.directory, env=app.env, stdout=log, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    proc.log = log  # type: ignore[attr-defined]
    app.procs.append(proc)
    found: list[str] = []

    def printed() -> bool:
        found[:] = re.findall(r"on (http://127\.0\.0\.1:\d+/)", read_log(proc))
        return bool(found) or proc.poll() is not None

    assert wait_for(printed, 30) and found, read_log(proc)
    return proc, found[0]


def in_another_process(app: App, code: str) -> str:
    """Run `code` with the app module imported as `tasks`, in a new Python process."""
    script = f"import {app.module} as tasks\n" + textwrap.dedent(code)
    out = subprocess.run([sys.executable, "-c", script], cwd=app.directory, env=app.env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def text_of(driver: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def count(driver: Any, key: str) -> int:
    return int(text_of(driver, f'[data-count="{key}"]'))


def until(driver: Any, check: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Wait, without reloading, until `check()` is true on the page as it updates itself."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def ok(_: Any) -> bool:
        try:
            return bool(check())
        except (StaleElementReferenceException, ValueError):
            return False  # the content was being replaced by a live update

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(ok)
    except WebDriverException as exc:
        logs = driver.get_log("browser")
        raise AssertionError(
            f"the page never showed {what}; it shows:\n"
            f"{driver.find_element('tag name', 'body').text}\n{logs}"
        ) from exc


def test_dashboard_follows_a_real_consumer_and_requeues_a_dead_letter(
    app: App, browser: Any, screenshots: Callable[[Any, str], Path]
) -> None:
    from selenium.webdriver.common.by import By

    # A consumer still on the old release, which does not know the `report` task yet.
    app.env["TEST_OLD_RELEASE"] = "1"
    old = app.start_consumer("-w", "1", "-n", "-s", "0.2")
    del app.env["TEST_OLD_RELEASE"]
    dashboard, url = start_dashboard(app)

    browser.get(url)
    until(browser, lambda: browser.find_element(By.ID, "live").text == "live", "the live badge")
    assert count(browser, "queued") == 0 and count(browser, "in_flight") == 0

    # Work arrives from another process; the open page follows it without a reload.
    in_another_process(app, "for _ in range(5): tasks.slow(1.0)")
    until(browser, lambda: count(browser, "queued") >= 1 and count(browser, "in_flight") == 1,
          "queued tasks and one in flight")  # fmt: skip
    # Read through until(): a live update may replace the row between finding and reading it.
    owner = f":{old.pid}:Worker-1"  # the owner of the lease
    until(browser, lambda: "slow" in (lease := text_of(browser, "table.leases tbody tr"))
          and owner in lease, "the running task's lease, owned by the old consumer")  # fmt: skip
    screenshots(browser, "dashboard-overview-busy")
    until(browser, lambda: count(browser, "queued") == 0 and count(browser, "in_flight") == 0,
          "the queue drained")  # fmt: skip
    until(browser, lambda: "5 finished" in browser.find_element(By.TAG_NAME, "figcaption").text,
          "five finished tasks in the throughput chart")  # fmt: skip

    # A task the old consumer cannot run becomes a dead letter, on the page as it happens.
    task_id = in_another_process(app, "print(tasks.report('q3').id)")
    until(browser, lambda: count(browser, "dead_letters") == 1, "one dead letter")
    browser.find_element(By.ID, "card-dead_letters").click()
    until(browser, lambda: "unknown task" in (row := text_of(browser, "#dead-letters tbody tr"))
          and "'q3'" in row, "the dead letter's reason and argument preview")  # fmt: skip
    screenshots(browser, "dashboard-dead-letters")

    # The new release is deployed; one click puts the message back and it runs.
    assert stop(old) == 0, read_log(old)
    new = app.start_consumer("-w", "1", "-n", "-s", "0.2")
    requeue = '#dead-letters tbody tr button[data-action="requeue"]'
    until(browser, lambda: browser.find_element(By.CSS_SELECTOR, requeue).click() or True,
          "the requeue button")  # fmt: skip
    until(browser, lambda: "requeued 1 dead letter" in browser.find_element(By.CLASS_NAME, "flash").text,
          "the requeue confirmation")  # fmt: skip
    until(browser, lambda: browser.find_elements(By.ID, "no-dead-letters"), "no dead letters left")
    result = app.huey.result(task_id, blocking=True, timeout=30, preserve=True)
    assert result == "report q3 sent", read_log(new)

    browser.get(url + f"tasks/{task_id}")
    until(browser, lambda: "finished" in browser.find_element(By.ID, "timeline").text,
          "the task's finished event in its timeline")  # fmt: skip
    timeline = browser.find_element(By.ID, "timeline").text
    assert "dead-lettered" in timeline and "started" in timeline
    until(browser, lambda: "report q3 sent" in browser.find_element(By.ID, "content").text,
          "the stored result")  # fmt: skip
    screenshots(browser, "dashboard-task")

    browser.get(url)
    until(browser, lambda: "6 finished" in browser.find_element(By.TAG_NAME, "figcaption").text,
          "six finished tasks in the throughput chart")  # fmt: skip
    screenshots(browser, "dashboard-overview")
    assert dashboard.poll() is None, read_log(dashboard)


def test_the_event_feed_shows_matching_events_as_they_happen(app: App, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    app.start_consumer("-w", "1", "-n", "-s", "0.2")
    _, url = start_dashboard(app)
    browser.get(url + "events")
    until(browser, lambda: browser.find_element(By.ID, "live").text == "live", "the live badge")
    Select(browser.find_element(By.NAME, "status")).select_by_value("finished")  # auto-submits
    until(browser, lambda: "status=finished" in browser.current_url, "the filtered page")
    until(browser, lambda: browser.find_element(By.ID, "live").text == "live", "the live badge")

    ids = in_another_process(app, "for i in range(3): print(tasks.slow(0.01).id)").split()

    def rows() -> list[str]:
        return [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#feed tbody tr")]

    until(browser, lambda: len(rows()) == 3, "three finished events")
    assert all(" finished slow " in f" {row} " for row in rows())  # the filter: no enqueued/started
    shown = {a.get_attribute("href").rsplit("/", 1)[-1]
             for a in browser.find_elements(By.CSS_SELECTOR, "#feed tbody a")}  # fmt: skip
    assert shown == set(ids)
