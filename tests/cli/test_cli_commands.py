"""The `huey` command line: options, one-line errors with exit code 2, and the small commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from huey_core.cli import cli, consumer_command
from tests.core.helpers import cli_runner as CliRunner

BIN = Path(sys.executable).parent

CONSUME_OPTIONS = {
    # option -> the default --help must show for it (None: a flag without a default to show)
    "-l, --logfile": "default: stderr",
    "-v, --verbose": None,
    "-q, --quiet": None,
    "-S, --simple": None,
    "--log-format [text|json]": "default: text",
    "--logging-config": None,
    "-w, --workers": "default: 1",
    "-p, --periodic / -n, --no-periodic": "default: periodic",
    "-d, --delay": "default: 0.1",
    "-m, --max-delay": "default: 10.0",
    "-b, --backoff": "default: 1.15",
    "-u, --utc / --localtime": "default: utc",
    "-k, --worker-type [thread|process|greenlet]": "default: thread",
    "--mode [auto|blocking|polling]": "default: auto",
    "-s, --scheduler-interval": "default: 1.0",
    "-t, --shutdown-timeout": "default: 30.0",
    "--lease-timeout": "default: the app's lease_timeout",
    "--backend": "default: the app's",
    "--url": "default: the app's",
}


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_consume_help_shows_every_option_with_its_default():
    result = CliRunner().invoke(cli, ["consume", "--help"])
    assert result.exit_code == 0
    text = _flat(result.output.split("Options:", 1)[1])
    for option, default in CONSUME_OPTIONS.items():
        assert option in text, option
        if default:
            after = text.split(option, 1)[1][:400]
            assert default in after, (option, default)


def test_huey_consumer_alias_has_the_same_options():
    result = CliRunner().invoke(consumer_command, ["--help"], prog_name="huey_consumer")
    assert result.exit_code == 0
    text = _flat(result.output)
    assert all(option in text for option in CONSUME_OPTIONS)


def test_installed_scripts_run():
    out = subprocess.run([BIN / "huey_consumer", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--worker-type" in out.stdout
    out = subprocess.run([BIN / "huey", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "consume" in out.stdout and "backends" in out.stdout


def assert_one_line_error(result, *fragments: str) -> str:
    stderr = result.stderr
    assert result.exit_code == 2 if hasattr(result, "exit_code") else result.returncode == 2
    assert "Traceback" not in stderr and "Traceback" not in (result.stdout or "")
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("value", ["0.5", "1", "1.0"])
def test_backoff_must_be_greater_than_one(value):
    result = CliRunner().invoke(cli, ["consume", "app.huey", "--backoff", value])
    assert_one_line_error(result, "--backoff", "greater than 1")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["consume"], "Missing argument 'IMPORT_PATH'"),
        (["consume", "app.huey", "-w", "0"], "--workers"),
        (["consume", "app.huey", "--worker-type", "fibre"], "--worker-type"),
        (["consume", "app.huey", "--mode", "sometimes"], "--mode"),
        (["consume", "app.huey", "--bogus"], "No such option"),
        (["consume", "app.huey", "-d", "1", "-m", "0.5"], "--max-delay"),
    ],
)
def test_bad_options_print_one_line_and_exit_2(args, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(
        "from huey_core import Huey\nhuey = Huey('x', backend='memory')\n"
    )
    assert_one_line_error(CliRunner().invoke(cli, args), fragment)


def test_import_path_that_does_not_resolve_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert_one_line_error(runner.invoke(cli, ["consume", "nosuchmodule.huey"]), "nosuchmodule")
    assert_one_line_error(runner.invoke(cli, ["consume", "justaname"]), "module")
    (tmp_path / "almost.py").write_text("huey = 42\nimport json\n")
    assert_one_line_error(runner.invoke(cli, ["consume", "almost.missing"]), "no attribute")
    assert_one_line_error(runner.invoke(cli, ["consume", "almost.huey"]), "not a Huey")
    (tmp_path / "broken.py").write_text("import not_installed_dependency\n")
    assert_one_line_error(
        runner.invoke(cli, ["consume", "broken.huey"]), "not_installed_dependency"
    )


def test_bad_import_path_in_a_real_process(tmp_path):
    out = subprocess.run(
        [BIN / "huey", "consume", "nosuch.app.huey"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "nosuch" in out.stderr


def test_unknown_backend_names_the_installed_ones_and_a_guess(make_app):
    app = make_app(None, "backend='memory'")
    out = app.cli("consume", app.import_path, "--backend", "rediss")
    line = assert_one_line_error(out, "unknown backend 'rediss'", "memory", "redis", "sql")
    assert "Did you mean 'redis'?" in line


def test_unknown_url_scheme_is_one_line(make_app):
    app = make_app(None, "backend='memory'")
    out = app.cli("consume", app.import_path, "--url", "mongodb://u:topsecret@db/x")
    line = assert_one_line_error(out, "mongodb")
    assert "topsecret" not in line


def test_process_workers_on_the_memory_backend_are_refused(make_app):
    app = make_app(None, "backend='memory'")
    out = app.cli("consume", app.import_path, "-k", "process")
    assert_one_line_error(out, "--worker-type thread")


def test_backends_lists_every_backend_with_distribution_version_and_schemes():
    result = CliRunner().invoke(cli, ["backends"])
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.output.splitlines()}
    assert re.search(r"huey-memory \d", rows["memory"]) and "memory://" in rows["memory"]
    assert re.search(r"huey-redis \d", rows["redis"]) and "rediss://" in rows["redis"]
    assert re.search(r"huey-sql \d", rows["sql"]) and "postgresql://" in rows["sql"]


def test_bare_huey_prints_help():
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0
    assert "consume" in result.output


# -- inspection commands, on an app whose memory backend lives in this process ------------------


@pytest.fixture
def memory_app(make_app, monkeypatch):
    app = make_app(None, "backend='memory'")
    module = app.load()
    monkeypatch.chdir(app.directory)
    return app, module


def test_enqueue_info_and_flush(memory_app):
    app, module = memory_app
    runner = CliRunner()
    result = runner.invoke(cli, ["enqueue", app.import_path, "add", "1", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.strip()  # the task id
    result = runner.invoke(cli, ["enqueue", app.import_path, "add", "3", "4", "--delay", "60"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(cli, ["info", app.import_path, "--json"]).output)
    # A task with an eta waits in the queue until a worker moves it to the schedule, as in huey.
    assert info["queued"] == 2 and info["in_flight"] == 0
    assert info["name"] == app.name
    assert [p["task"] for p in info["periodic_tasks"]] == ["tick"]
    human = runner.invoke(cli, ["info", app.import_path]).output
    assert "queued: 2" in human
    first, second = module.huey.pending()
    assert first.args == (1, 2) and first.eta is None
    assert second.args == (3, 4) and second.eta is not None
    unknown = runner.invoke(cli, ["enqueue", app.import_path, "nosuchtask"])
    assert_one_line_error(unknown, "no task named 'nosuchtask'")
    assert runner.invoke(cli, ["flush", app.import_path, "--yes"]).exit_code == 0
    assert module.huey.storage.queue.size() == 0


def test_dead_letters_list_requeue_and_purge(memory_app):
    app, module = memory_app
    huey = module.huey
    from huey_core.protocols import Delivery

    for payload in (b"garbage-1", b"garbage-2"):
        huey.process(Delivery(payload, "lease", 1))
    runner = CliRunner()
    listing = runner.invoke(cli, ["dead-letters", app.import_path, "--json"])
    rows = [json.loads(line) for line in listing.output.splitlines()]
    assert len(rows) == 2 and all(row["reason"] for row in rows)
    result = runner.invoke(cli, ["dead-letters", app.import_path, "--requeue", rows[0]["id"]])
    assert result.exit_code == 0 and "requeued 1" in result.output
    assert huey.storage.queue.size() == 1
    result = runner.invoke(cli, ["dead-letters", app.import_path, "--requeue", "nope"])
    assert result.exit_code == 2
    result = runner.invoke(cli, ["dead-letters", app.import_path, "--purge"])
    assert "purged 1" in result.output
    assert "no dead letters" in runner.invoke(cli, ["dead-letters", app.import_path]).output


def test_inspection_command_with_the_server_down_is_one_line(make_app):
    app = make_app(None, "url='redis://:hunter2@127.0.0.1:1/0'")
    out = app.cli("info", app.import_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "hunter2" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "ConnectionError" in out.stderr


def test_version_names_huey_core_and_every_backend_distribution():
    from importlib.metadata import version

    import huey_core

    out = subprocess.run([BIN / "huey", "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first.startswith(f"huey-core {version('huey-core')} (Python ")
    assert huey_core.__version__ == version("huey-core")
    for name, dist in (("memory", "huey-memory"), ("redis", "huey-redis"), ("sql", "huey-sql")):
        assert f"{name} ({dist} {version(dist)})" in second
