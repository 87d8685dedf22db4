"""`python manage.py run_huey`: the consumer of settings.HUEY, with every `huey consume` option."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, NoReturn

import click
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from huey_core.cli import run_consumer
from huey_core.plugins import mask_url
from huey_django.config import consumer_settings, get_huey
from huey_django.options import add_consumer_arguments, consumer_options

# run_consumer() loads the app by import path; this one resolves to huey_django.HUEY.
IMPORT_PATH = "huey_django.HUEY"


def _one_line_error(parser: CommandParser, message: str) -> NoReturn:
    """A bad option: one line and exit code 2, as `huey consume` does, not a usage block."""
    if not parser.called_from_command_line:
        raise CommandError(f"Error: {message}")
    sys.stderr.write(f"{parser.prog}: error: {message} (see: {parser.prog} --help)\n")
    raise SystemExit(2)


def _close_connections() -> None:
    connections.close_all()


class Command(BaseCommand):
    help = (
        "Run the huey consumer of settings.HUEY. Takes every option of `huey consume`; "
        "settings.HUEY['consumer'] gives their defaults. Django's -v 2 means --verbose, "
        "-v 0 --quiet."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.error = lambda message: _one_line_error(parser, message)  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_consumer_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            huey = get_huey()
            configured = consumer_settings()
            values = consumer_options(options, configured, options.get("verbosity", 1))
        except ImproperlyConfigured as exc:
            raise CommandError(mask_url(str(exc)), returncode=2) from None
        if huey.immediate:
            raise CommandError(
                "settings.HUEY runs tasks immediately (its 'immediate' defaults to DEBUG), so a "
                "consumer has nothing to do; set HUEY['immediate'] = False to use run_huey",
                returncode=2,
            )
        # Django's LOGGING may have set up the "huey" logger; then it is left alone unless a
        # logging option was given here or in settings.HUEY["consumer"].
        logging_options = ("logfile", "verbose", "quiet")
        logging_given = options.get("verbosity", 1) != 1 or any(
            options.get(k) is not None or k in configured for k in logging_options
        )
        logging_set_up = bool(logging.getLogger("huey").handlers or logging.getLogger().handlers)
        # Each worker thread opens its own Django connections; close them when it stops. And
        # none may be open before process workers fork: a child would share the parent's socket.
        huey.on_shutdown("huey_django.close_connections")(_close_connections)
        _close_connections()
        try:
            run_consumer(
                IMPORT_PATH, configure_logging=logging_given or not logging_set_up, **values
            )
        except click.ClickException as exc:
            message = " ".join(exc.format_message().split())
            raise CommandError(mask_url(message), returncode=exc.exit_code) from None
