"""`huey metrics` and `huey consume --metrics-port`: Prometheus exporters (docs/metrics.md).

prometheus_client is an extra (`huey-core[metrics]`): it is imported only here, only when asked
for, and its absence is one line saying what to install.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import click

from huey_core.api import Huey
from huey_core.cli.base import (
    UserError,
    app,
    backend_options,
    import_path_arg,
    one_line,
    sigterm_as_interrupt,
)

if TYPE_CHECKING:
    from huey_core.consumer import Consumer
    from huey_core.metrics import MetricsExporter

__all__ = ["metrics", "start_consumer_metrics", "start_exporter"]

INSTALL_HINT = 'install it with: pip install "huey-core[metrics]"'


def start_exporter(huey: Huey, host: str, port: int, **options: Any) -> MetricsExporter:
    """A started MetricsExporter, or UserError in one line (extra missing, port taken)."""
    try:
        from huey_core.metrics import MetricsExporter
    except ImportError as exc:
        raise UserError(
            f"metrics need prometheus_client ({exc.name} is missing); {INSTALL_HINT}"
        ) from None
    exporter = MetricsExporter(huey, host, port, **options)
    try:
        exporter.start()
    except OSError as exc:
        exporter.stop()
        raise UserError(f"cannot serve metrics on {host}:{port}: {one_line(exc)}") from None
    return exporter


def start_consumer_metrics(consumer: Consumer, host: str, port: int) -> MetricsExporter:
    """An exporter counting only the events of `consumer`'s own processes."""
    return start_exporter(
        consumer.huey, host, port, accept=lambda e: e.get("consumer") in consumer.identities()
    )


@click.command()
@import_path_arg
@backend_options
@click.option(
    "--host",
    "metrics_host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="Address to listen on (0.0.0.0: every interface).",
)
@click.option(
    "--port",
    "metrics_port",
    type=click.IntRange(0, 65535),
    default=9807,
    show_default=True,
    metavar="PORT",
    help="Port of http://HOST:PORT/metrics (0: a free one).",
)
def metrics(
    import_path: str,
    backend: str | None,
    url: str | None,
    metrics_host: str,
    metrics_port: int,
) -> None:
    """Serve Prometheus metrics of every consumer of an instance, from its event stream.

    Counts the events of all producers and consumers sharing the backend (task events by task
    and status, durations, retries, dead letters) and reads queue depth, scheduled messages,
    in-flight leases and stored dead letters at each scrape. Runs until interrupted.
    """
    huey = app(import_path, backend, url)
    exporter = start_exporter(huey, metrics_host, metrics_port)
    click.echo(f"serving Prometheus metrics of {huey.name!r} on {exporter.url}", err=True)
    try:
        with sigterm_as_interrupt():
            threading.Event().wait()
    finally:
        exporter.stop()
