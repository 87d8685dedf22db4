"""`manage.py run_huey` takes every `huey consume` option, parsed and checked exactly as there."""

from __future__ import annotations

import logging
from typing import Any

import click
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, CommandParser, call_command
from django.test import override_settings

from huey_core.cli.consume import consume
from huey_django.management.commands import run_huey
from huey_django.management.commands.run_huey import Command
from huey_django.options import consumer_options, consumer_params


def parser() -> CommandParser:
    return Command().create_parser("manage.py", "run_huey")


def parse(*args: str, configured: dict[str, Any] | None = None) -> dict[str, Any]:
    options = vars(parser().parse_args(list(args)))
    return consumer_options(options, configured or {}, options["verbosity"])


def click_parse(*args: str) -> dict[str, Any]:
    params = dict(consume.make_context("consume", ["app.huey", *args]).params)
    params.pop("import_path")
    return params


def test_every_huey_consume_option_is_there() -> None:
    known = set(parser()._option_string_actions)
    for param in consumer_params():
        names = set(param.opts) | set(param.secondary_opts)
        # -v is Django's --verbosity; huey's -v/--verbose stays as --verbose
        assert names - {"-v"} <= known, f"run_huey lacks {sorted(names - known)}"


FULL_COMMAND_LINE = [
    "--logfile", "/tmp/huey.log", "--quiet", "--workers", "3", "--no-periodic", "--delay", "0.5",
    "--max-delay", "4", "--backoff", "1.5", "--localtime", "--worker-type", "process",
    "--mode", "polling", "--scheduler-interval", "2", "--shutdown-timeout", "5",
    "--lease-timeout", "60", "--backend", "redis", "--url", "redis://127.0.0.1:6379/3",
]  # fmt: skip


@pytest.mark.parametrize("args", [[], FULL_COMMAND_LINE, ["-w", "2", "-p", "-u", "-k", "thread"]])
def test_the_same_command_line_gives_the_same_options_as_huey_consume(args: list[str]) -> None:
    assert parse(*args) == click_parse(*args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-w", "0"], "argument -w/--workers: 0 is not in the range 1<=x<=1000."),
        (["-b", "1"], "argument -b/--backoff: must be greater than 1, got 1"),
        (["-k", "fiber"], "argument -k/--worker-type: 'fiber' is not one of"),
        (["-p", "-n"], "argument -n/--no-periodic: not allowed with argument -p/--periodic"),
    ],
)
def test_bad_values_are_refused_with_huey_consumes_message(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace(".", r"\.")):
        parser().parse_args(args)


def test_settings_give_defaults_and_the_command_line_wins() -> None:
    configured = {"workers": 4, "initial_delay": 0.5, "periodic": False, "worker_type": "process"}
    options = parse("-w", "2", "--periodic", configured=configured)
    assert options["workers"] == 2  # command line
    assert options["periodic"] is True  # command line, against the setting
    assert options["delay"] == 0.5  # huey's name for --delay, from settings
    assert options["worker_type"] == "process"  # settings
    assert options["backoff"] == 1.15  # huey consume's default


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        ({"workers": 0}, r"settings.HUEY\['consumer'\]\['workers'\]: 0 is not in the range"),
        ({"backoff": 0.5}, r"\['backoff'\]: must be greater than 1"),
        ({"worker": 2}, "unknown option 'worker'; known: backoff, delay"),
        ({"url": "redis://"}, "unknown option 'url'"),  # it belongs at the top of settings.HUEY
    ],
)
def test_bad_consumer_settings_are_named(configured: dict[str, Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        parse(configured=configured)


@pytest.mark.parametrize(
    ("args", "verbose", "quiet"),
    [([], False, False), (["-v", "2"], True, False), (["-v", "0"], False, True),
     (["-v", "3", "--quiet"], False, True)],
)  # fmt: skip
def test_djangos_verbosity_sets_the_log_level(args: list[str], verbose: bool, quiet: bool) -> None:
    options = parse(*args)
    assert (options["verbose"], options["quiet"]) == (verbose, quiet)


def test_the_help_is_huey_consumes() -> None:
    text = parser().format_help()
    ctx = click.Context(consume)
    for param in consumer_params():
        record = param.get_help_record(ctx)
        assert record is not None
        assert " ".join(record[1].split()[:4]) in " ".join(text.split())


def test_a_bad_consumer_setting_stops_run_huey_in_one_line() -> None:
    with override_settings(HUEY={**settings.HUEY, "consumer": {"workers": 0}}):
        with pytest.raises(CommandError) as caught:
            call_command("run_huey")
    assert str(caught.value) == (
        "settings.HUEY['consumer']['workers']: 0 is not in the range 1<=x<=1000."
    )
    assert caught.value.returncode == 2


def test_run_huey_leaves_logging_to_djangos_logging_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The consumer itself is not started here: only what run_huey asks of it is recorded.
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(run_huey, "run_consumer", lambda path, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # pytest's own capture
    monkeypatch.setattr(logging.getLogger("huey"), "handlers", [])
    call_command("run_huey")  # nobody set up logging: run_huey does, like huey consume
    monkeypatch.setattr(logging.getLogger("huey"), "handlers", [logging.NullHandler()])
    call_command("run_huey")  # LOGGING configured the "huey" logger: left alone
    call_command("run_huey", verbosity=2)  # ... unless asked for here
    call_command("run_huey", "--logfile", "/tmp/huey-django-test.log")
    assert [c["configure_logging"] for c in calls] == [True, False, True, True]
    assert calls[2]["verbose"] is True
