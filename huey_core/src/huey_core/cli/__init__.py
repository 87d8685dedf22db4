"""The `huey` command line: `consume`, and for operators `info`, `events`, `enqueue`, `flush`,
`dead-letters`, `backends`, `metrics`, plus commands plugins add (docs/consumer.md,
docs/events.md, docs/metrics.md).

`huey_consumer IMPORT_PATH` is the same as `huey consume IMPORT_PATH`, for huey users.

Every error a user can cause (a bad option, an import path that does not resolve, an unknown
backend) prints one line on stderr and exits with code 2: no usage block, no traceback.

    base.py      one-line errors, loading the app, the shared options
    consume.py   huey consume / huey_consumer
    logs.py      the consumer's logging (the app's own, text, simple, JSON, dictConfig)
    info.py      huey info
    operate.py   huey backends, events, enqueue, flush, dead-letters
    metrics.py   huey metrics (and consume --metrics-port): Prometheus exporters
"""

from __future__ import annotations

import signal
import sys

import click

from huey_core import greenlets, plugins
from huey_core.cli.base import HueyCommand, HueyGroup, UserError, load_huey
from huey_core.cli.consume import consume, consumer_command, run_consumer
from huey_core.cli.info import collect_info, format_info, info
from huey_core.cli.logs import (
    LOG_FORMAT,
    LOGFILE_BACKUPS,
    LOGFILE_BYTES,
    JsonFormatter,
    setup_logging,
)
from huey_core.cli.metrics import metrics
from huey_core.cli.operate import backends, dead_letters, enqueue, events, flush, format_event

__all__ = [
    "LOGFILE_BACKUPS",
    "LOGFILE_BYTES",
    "LOG_FORMAT",
    "HueyCommand",
    "HueyGroup",
    "JsonFormatter",
    "UserError",
    "cli",
    "collect_info",
    "consumer_command",
    "consumer_main",
    "format_event",
    "format_info",
    "load_huey",
    "main",
    "run_consumer",
    "setup_logging",
]


def version_text() -> str:
    """`huey --version`: huey-core's version, then each installed backend's distribution."""
    import platform

    from huey_core import __version__

    lines = [f"huey-core {__version__} (Python {platform.python_version()})"]
    try:
        found = sorted(plugins.backends().values(), key=lambda info: info.name)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the version
        lines.append(f"backends: cannot list them ({exc})")
    else:
        listed = ", ".join(f"{i.name} ({i.distribution} {i.version})" for i in found)
        lines.append(f"backends: {listed or 'none'}")
    return "\n".join(lines)


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_text())
        ctx.exit()


@click.group(cls=HueyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the versions of huey-core and the installed backends, then exit.",
)
def cli() -> None:
    """huey toolkit: run consumers and inspect queues."""


for _command in (consume, backends, info, dead_letters, events, enqueue, flush, metrics):
    cli.add_command(_command)
plugins.add_commands(cli)


def exit_on_sigterm_while_starting() -> None:
    """Until `Consumer.run` installs its graceful handler, SIGTERM ends the consumer with exit 0.

    A consumer stopped while it starts (systemd, Kubernetes, a script) has taken no work yet, so
    stopping at once is the graceful stop; without this Python would die of the signal.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


def main() -> None:
    """Entry point of the `huey` command."""
    if sys.argv[1:2] == ["consume"]:
        exit_on_sigterm_while_starting()
    greenlets.relaunch_patched("main")  # -k greenlet: gevent must patch before anything else
    cli.main(prog_name="huey")


def consumer_main() -> None:
    """Entry point of `huey_consumer`, the same as `huey consume`."""
    exit_on_sigterm_while_starting()
    greenlets.relaunch_patched("consumer_main")
    consumer_command.main(prog_name="huey_consumer")


if __name__ == "__main__":
    main()
