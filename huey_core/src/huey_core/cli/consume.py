"""`huey consume` (and `huey_consumer`): run a consumer from the command line."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from typing import Any

import click

from huey_core import limits
from huey_core.cli.base import (
    F,
    Finite,
    HueyCommand,
    UserError,
    app,
    backend_options,
    import_path_arg,
    one_line_message,
)
from huey_core.consumer import MODES, WORKER_TYPES, Consumer
from huey_core.exceptions import ConfigurationError

LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s %(processName)s:%(threadName)s %(message)s"
LOGFILE_BYTES = 1024 * 1024
LOGFILE_BACKUPS = 3


def setup_logging(logfile: str | None, verbose: bool, quiet: bool) -> None:
    """Log to stderr, or to a rotating file (1 MB x 3); INFO, DEBUG with -v, ERROR with -q."""
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    handler: logging.Handler
    if logfile:
        handler = logging.handlers.RotatingFileHandler(
            logfile, maxBytes=LOGFILE_BYTES, backupCount=LOGFILE_BACKUPS
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger("huey")
    root.setLevel(level)
    root.addHandler(handler)
    root.propagate = False


CONSUME_HELP = """Run the consumer for the Huey instance at IMPORT_PATH (e.g. myapp.tasks.huey).

The working directory is added to the Python path first. SIGTERM or SIGINT: stop taking work,
finish running tasks (up to --shutdown-timeout, then release them back to the queue), exit 0.
A second signal stops at once.
"""


def consume_options(f: F) -> F:
    options = [
        click.option(
            "-l",
            "--logfile",
            metavar="PATH",
            help="Log to this file (rotating: 1 MB x 3 backups). [default: stderr]",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level."),
        click.option("-q", "--quiet", is_flag=True, help="Log errors only."),
        click.option(
            "-w",
            "--workers",
            type=click.IntRange(min=1, max=limits.MAX_WORKERS),
            default=1,
            show_default=True,
            help=f"Number of worker threads or processes (at most {limits.MAX_WORKERS}).",
        ),
        click.option(
            "-p/-n",
            "--periodic/--no-periodic",
            default=True,
            help="Enqueue periodic (crontab) tasks from this consumer. [default: periodic]",
        ),
        click.option(
            "-d",
            "--delay",
            type=Finite(0, open_min=True),
            default=0.1,
            show_default=True,
            help="Polling: first wait (seconds) after an empty poll.",
        ),
        click.option(
            "-m",
            "--max-delay",
            type=Finite(0, open_min=True),
            default=10.0,
            show_default=True,
            help="Polling: longest wait (seconds) between polls.",
        ),
        click.option(
            "-b",
            "--backoff",
            type=Finite(1, open_min=True),
            default=1.15,
            show_default=True,
            help="Polling: multiply the wait by this after each empty poll (> 1).",
        ),
        click.option(
            "-u",
            "--utc/--localtime",
            default=None,
            help="Match periodic tasks against UTC or local time. "
            "[default: utc, or the app's Huey(utc=...)]",
        ),
        click.option(
            "-k",
            "--worker-type",
            type=click.Choice(WORKER_TYPES),
            default="thread",
            show_default=True,
            help="Run workers as threads or forked processes.",
        ),
        click.option(
            "--mode",
            type=click.Choice(MODES),
            default="auto",
            show_default=True,
            help="blocking: wait on the backend; polling: poll with backoff; "
            "auto: blocking where the backend supports it.",
        ),
        click.option(
            "-s",
            "--scheduler-interval",
            type=Finite(0, open_min=True),
            default=1.0,
            show_default=True,
            help="Seconds between moves of due scheduled tasks to the queue.",
        ),
        click.option(
            "--shutdown-timeout",
            type=Finite(0),
            default=30.0,
            show_default=True,
            help="Seconds running tasks get to finish at shutdown before they are "
            "released back to the queue.",
        ),
        click.option(
            "--lease-timeout",
            type=Finite(limits.MIN_LEASE_TIMEOUT),
            default=None,
            help="Seconds a worker owns a message before another consumer may take it "
            f"(extended while the task runs; at least {limits.MIN_LEASE_TIMEOUT:g}). "
            "[default: the app's lease_timeout, 30]",
        ),
    ]
    f = backend_options(f)
    for option in reversed(options):
        f = option(f)
    return import_path_arg(f)


def run_consumer(  # noqa: PLR0913 - one parameter per command-line option
    import_path: str,
    logfile: str | None,
    verbose: bool,
    quiet: bool,
    workers: int,
    periodic: bool,
    delay: float,
    max_delay: float,
    backoff: float,
    utc: bool | None,
    worker_type: str,
    mode: str,
    scheduler_interval: float,
    shutdown_timeout: float,
    lease_timeout: float | None,
    backend: str | None,
    url: str | None,
) -> None:
    """Everything `huey consume` does, from its parsed options; exits the process."""
    if max_delay < delay:
        raise click.BadParameter(
            f"--max-delay ({max_delay}) must be at least --delay ({delay})",
            param_hint="'-m' / '--max-delay'",
        )
    huey = app(import_path, backend, url)
    if huey.immediate:
        raise UserError(
            f"{import_path} runs tasks immediately (immediate=True), so a consumer has nothing "
            "to do; set huey.immediate = False for production"
        )
    setup_logging(logfile, verbose, quiet)
    try:
        consumer = Consumer(
            huey,
            workers=workers,
            periodic=periodic,
            initial_delay=delay,
            backoff=backoff,
            max_delay=max_delay,
            scheduler_interval=scheduler_interval,
            worker_type=worker_type,
            mode=mode,
            shutdown_timeout=shutdown_timeout,
            utc=utc,
            lease_timeout=lease_timeout,
        )
    except ConfigurationError as exc:
        raise UserError(one_line_message(exc)) from None
    code = consumer.run()
    if consumer.stopped_at_once:
        # Task threads may still be running user code; leave without waiting for them.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


@click.command(help=CONSUME_HELP, context_settings={"show_default": False})
@consume_options
def consume(**options: Any) -> None:
    run_consumer(**options)


@click.command(
    "huey_consumer",
    cls=HueyCommand,
    help=CONSUME_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@consume_options
def consumer_command(**options: Any) -> None:
    run_consumer(**options)
