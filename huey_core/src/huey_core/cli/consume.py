"""`huey consume` (and `huey_consumer`): run a consumer from the command line."""

from __future__ import annotations

import logging
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
from huey_core.cli.logs import setup_logging
from huey_core.consumer import MODES, WORKER_TYPES, Consumer
from huey_core.exceptions import ConfigurationError

CONSUME_HELP = """Run the consumer for the Huey instance at IMPORT_PATH (e.g. myapp.tasks.huey).

The working directory is added to the Python path first. SIGTERM or SIGINT: stop taking work,
finish running tasks (up to --shutdown-timeout, then release them back to the queue), exit 0.
A second signal stops at once; with -g, so does the other signal of the two.
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
        click.option("-S", "--simple", is_flag=True, help="Log only the time and the message."),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="json: one JSON object per line (task records carry id, task, status, duration).",
        ),
        click.option(
            "--logging-config",
            metavar="FILE",
            help="Configure logging from a dictConfig file (JSON, or YAML with PyYAML) "
            "instead; replaces -l, -S and --log-format.",
        ),
        click.option(
            "-w",
            "--workers",
            type=click.IntRange(min=1, max=limits.MAX_WORKERS),
            default=1,
            show_default=True,
            help=f"Number of worker threads, processes or greenlets (at most {limits.MAX_WORKERS}).",
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
            help="Run workers as threads, forked processes, or greenlets (gevent, patched "
            'before the app is imported; needs "huey-core[gevent]").',
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
            type=Finite(0, open_min=True, maximum=limits.MAX_SCHEDULER_INTERVAL),
            default=1.0,
            show_default=True,
            help="Seconds between moves of due scheduled tasks to the queue (at most 60).",
        ),
        click.option(
            "-t",
            "--shutdown-timeout",
            type=Finite(0),
            default=30.0,
            show_default=True,
            help="Seconds running tasks get to finish at shutdown before they are "
            "released back to the queue.",
        ),
        click.option(
            "-g",
            "--graceful-signal",
            type=click.Choice(limits.GRACEFUL_SIGNALS),
            default=None,
            help="The signal that stops gracefully; the other of SIGINT and SIGTERM then stops "
            "at once, releasing running tasks. [default: both stop gracefully]",
        ),
        click.option(
            "-M",
            "--max-tasks",
            type=click.IntRange(min=1),
            default=None,
            metavar="COUNT",
            help="Replace a worker (thread or process) after it has run COUNT tasks. "
            "[default: never]",
        ),
        click.option(
            "-c",
            "--health-check-interval",
            type=Finite(0, open_min=True),
            default=1.0,
            show_default=True,
            metavar="SECONDS",
            help="Seconds between checks for dead workers, which are replaced (their tasks "
            "go back to the queue at once).",
        ),
        click.option(
            "-C",
            "--disable-health-check",
            is_flag=True,
            help="Do not replace workers that die. [default: replace them]",
        ),
        click.option(
            "-f",
            "--flush-locks",
            is_flag=True,
            help="Release the app's task locks (huey.lock_task) at start, e.g. left by a "
            "consumer that was killed. [default: keep them]",
        ),
        click.option(
            "-L",
            "--extra-locks",
            metavar="NAMES",
            default=None,
            help="Also release these lock names (comma-separated) at start; implies -f. "
            "[default: none]",
        ),
        click.option(
            "--lease-timeout",
            type=Finite(limits.MIN_LEASE_TIMEOUT),
            default=None,
            help="Seconds a worker owns a message before another consumer may take it "
            f"(extended while the task runs; at least {limits.MIN_LEASE_TIMEOUT:g}). "
            "[default: the app's lease_timeout, 30]",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(0, 65535),
            default=None,
            metavar="PORT",
            help="Serve Prometheus metrics of this consumer on http://HOST:PORT/metrics "
            '(needs "huey-core[metrics]"; 0: a free port, logged).',
        ),
        click.option(
            "--metrics-host",
            default="127.0.0.1",
            show_default=True,
            metavar="HOST",
            help="Address the metrics server listens on (0.0.0.0: every interface).",
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
    simple: bool,
    log_format: str,
    logging_config: str | None,
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
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    configure_logging: bool = True,
    graceful_signal: str | None = None,
    max_tasks: int | None = None,
    health_check_interval: float = 1.0,
    disable_health_check: bool = False,
    flush_locks: bool = False,
    extra_locks: str | None = None,
) -> None:
    """Everything `huey consume` does, from its parsed options; exits the process.

    configure_logging=False leaves the "huey" logger as the caller set it up (manage.py run_huey
    when Django's LOGGING setting configured it).
    """
    if max_delay < delay:
        raise click.BadParameter(
            f"--max-delay ({max_delay}) must be at least --delay ({delay})",
            param_hint="'-m' / '--max-delay'",
        )
    huey = app(import_path, backend, url, warn_split=True)
    if huey.immediate:
        raise UserError(
            f"{import_path} runs tasks immediately (immediate=True), so a consumer has nothing "
            "to do; set huey.immediate = False for production"
        )
    if logging_config and (logfile or simple or log_format != "text"):
        raise UserError("--logging-config replaces -l, -S and --log-format: give one or the other")
    if configure_logging:
        try:
            setup_logging(logfile, verbose, quiet, simple, log_format, logging_config)
        except ValueError as exc:
            raise UserError(f"--logging-config: {exc}") from None
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
            graceful_signal=graceful_signal,
            max_tasks=max_tasks,
            health_check_interval=health_check_interval,
            check_worker_health=not disable_health_check,
            flush_locks=flush_locks,
            extra_locks=extra_locks,
        )
    except ConfigurationError as exc:
        raise UserError(one_line_message(exc)) from None
    exporter = None
    if metrics_port is not None:
        from huey_core.cli.metrics import start_consumer_metrics  # prometheus_client: an extra

        exporter = start_consumer_metrics(consumer, metrics_host, metrics_port)
    code = consumer.run()
    if exporter is not None:
        exporter.stop()
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
