"""Consumer logging that respects the application (issue 12): an app's own logging set-up keeps
huey's records; --log-format json, --logging-config FILE (dictConfig) and huey's -S/--simple."""

from __future__ import annotations

import json
import re
import signal

import pytest

from huey_core.testing.apps import App, read_log, wait_for

pytestmark = pytest.mark.slow

TASKS = """
@huey.task()
def add(a, b):
    return a + b


@huey.task()
def fail(message):
    raise ValueError(message)
"""

# An app with its own logging: every record becomes a JSON line in app.log, through the root
# logger, as an app using a JSON log shipper would set it up.
APP_WITH_LOGGING = (
    """
import json
import logging
import os

from huey_core import Huey


class ShipperFormatter(logging.Formatter):
    def format(self, record):
        return json.dumps({"pid": record.process, "logger": record.name, "msg": record.getMessage()})


handler = logging.FileHandler(os.path.join(os.environ["TEST_MARKERS"], "app.log"))
handler.setFormatter(ShipperFormatter())
logging.basicConfig(level=logging.INFO, handlers=[handler])

huey = Huey(os.environ["TEST_HUEY_NAME"])
"""
    + TASKS
)

PLAIN_APP = (
    """
import os

from huey_core import Huey

huey = Huey(os.environ["TEST_HUEY_NAME"])
"""
    + TASKS
)


def _run(app: App, *options: str, log_name: str | None = None) -> tuple[str, str, str]:
    """A consumer runs add(1, 2) and fail("boom"); (its output, ok id, failed id)."""
    module = app.load()
    proc = app.start_consumer("-n", "-s", "0.2", *options)
    ok, bad = module.add(1, 2), module.fail("boom")
    assert ok.get(blocking=True, timeout=20) == 3
    target = (lambda: (app.directory / log_name).read_text()) if log_name else None

    def output() -> str:
        if target is None:
            return read_log(proc)
        try:
            return target()
        except FileNotFoundError:
            return ""

    assert wait_for(lambda: re.search(f"{bad.id}.* failed after", output())), read_log(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, read_log(proc)
    return output(), ok.id, bad.id


@pytest.fixture
def new_app(tmp_path):
    apps: list[App] = []

    def make(source: str) -> App:
        directory = tmp_path / f"app{len(apps)}"
        directory.mkdir()
        app = App(directory, source, "logs", HUEY_URL=f"sqlite:///{directory}/huey.db")
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def test_an_app_that_configured_logging_gets_hueys_records(new_app):
    app = new_app(APP_WITH_LOGGING)
    text, ok_id, bad_id = _run(app, log_name="app.log")
    records = [json.loads(line) for line in text.splitlines()]  # the app's format only
    messages = [r["msg"] for r in records if r["pid"] == app.procs[0].pid]
    assert any("consumer ready" in m for m in messages)
    assert any(ok_id in m and "finished in" in m for m in messages)
    assert any(bad_id in m and "failed after" in m for m in messages)
    # and the consumer did not print them a second time in its own format
    assert "finished in" not in read_log(app.procs[0])


def test_log_format_json_is_one_object_per_line_with_task_fields(new_app):
    app = new_app(PLAIN_APP)
    text, ok_id, bad_id = _run(app, "--log-format", "json")
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    by_status = {(r.get("id"), r.get("status")): r for r in records}
    started = by_status[(ok_id, "started")]
    finished = by_status[(ok_id, "finished")]
    assert started["task"] == finished["task"] == "add"  # as in events
    assert isinstance(finished["duration"], float) and finished["duration"] >= 0
    error = by_status[(bad_id, "error")]
    assert error["level"] == "ERROR" and "ValueError: boom" in error["traceback"]
    assert error["task"] == "fail" and isinstance(error["duration"], float)


def test_logging_config_file_is_applied_with_dictconfig(new_app):
    app = new_app(PLAIN_APP)
    config = {
        "version": 1,
        "formatters": {"short": {"format": "CFG %(levelname)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(app.directory / "configured.log"),
                "formatter": "short",
            }
        },
        "loggers": {"huey": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }
    (app.directory / "logging.json").write_text(json.dumps(config))
    text, ok_id, _ = _run(app, "--logging-config", "logging.json", log_name="configured.log")
    assert re.search(rf"^CFG INFO .*{ok_id} finished in", text, flags=re.M), text


def test_simple_format_is_time_and_message(new_app):
    app = new_app(PLAIN_APP)
    text, ok_id, _ = _run(app, "-S")
    line = next(line for line in text.splitlines() if ok_id in line and "finished in" in line)
    assert re.fullmatch(rf"\d\d:\d\d:\d\d {app.module}\.add: {ok_id} finished in \S+s", line)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--logging-config", "missing.json"], "--logging-config: cannot read missing.json"),
        (["--logging-config", "bad.json"], "--logging-config: bad.json is not valid JSON"),
        (["--logging-config", "bad.json", "-l", "x.log"], "replaces -l, -S and --log-format"),
        (["--log-format", "xml"], "'xml' is not one of 'text', 'json'"),
    ],
)
def test_bad_logging_options_are_one_line_exit_2(new_app, args, fragment):
    app = new_app(PLAIN_APP)
    (app.directory / "bad.json").write_text("{not json")
    out = app.cli("consume", app.import_path, *args, timeout=30)
    assert out.returncode == 2, out.stderr
    assert fragment in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
