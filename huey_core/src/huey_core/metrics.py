"""Prometheus metrics, fed by the event stream (docs/metrics.md).

`huey consume --metrics-port PORT` serves the metrics of that consumer: the events its own
processes emit. `huey metrics IMPORT_PATH` is a standalone exporter for a fleet: it counts every
event on the instance's stream, producers' `enqueued` included. Both read the storage gauges
(queue depth, scheduled, in flight, dead letters) through the protocols at scrape time, so they
work on every backend.

This module imports `prometheus_client`, which comes with `pip install "huey-core[metrics]"`;
the command line imports it only when asked for metrics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from huey_core import keys
from huey_core.events import EventListener, EventStatus
from huey_core.plugins import mask_url

if TYPE_CHECKING:
    from huey_core.api import Huey

__all__ = ["DURATION_BUCKETS", "MetricsExporter", "StorageCollector", "TaskMetrics"]

logger = logging.getLogger("huey.metrics")

# Task durations span milliseconds (a cache write) to many minutes (a report).
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    float("inf"),
)  # fmt: skip
# Label values come from events anyone who can write to the backend can forge: past this many
# distinct task names, new ones are counted as "other" so a flood cannot exhaust memory.
MAX_TASK_LABELS = 500
_STATUSES = {status.value for status in EventStatus}


class TaskMetrics:
    """Counters and histograms updated by `observe(event)`, in their own registry.

    huey_task_events_total{huey,task,status}   every event, by task name and status
    huey_task_duration_seconds{huey,task,status}  run time of finished and error events
    huey_task_retries_total{huey,task}          retrying events
    huey_dead_lettered_total{huey,task}         dead-lettered events
    """

    def __init__(self, huey_name: str, registry: CollectorRegistry) -> None:
        self.huey_name = huey_name
        self.registry = registry
        self._tasks: set[str] = set()
        self._lock = threading.Lock()
        self.events = Counter(
            "huey_task_events",
            "Task events seen on the event stream, by task and status.",
            ["huey", "task", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "huey_task_duration_seconds",
            "Run time of tasks that finished or failed, from their events.",
            ["huey", "task", "status"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "huey_task_retries",
            "Retries scheduled after a task failed.",
            ["huey", "task"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "huey_dead_lettered",
            "Messages moved to the dead-letter store.",
            ["huey", "task"],
            registry=registry,
        )

    def _task_label(self, task: object) -> str:
        name = task if isinstance(task, str) and task else "unknown"
        with self._lock:
            if name in self._tasks:
                return name
            if len(self._tasks) >= MAX_TASK_LABELS:
                return "other"
            self._tasks.add(name)
            return name

    def observe(self, event: dict[str, Any]) -> None:
        """Count one event (a dict as decoded from the stream)."""
        status = event.get("status")
        status = status if status in _STATUSES else "other"
        task = self._task_label(event.get("task"))
        self.events.labels(self.huey_name, task, status).inc()
        duration = event.get("duration")
        finished = status in (EventStatus.FINISHED.value, EventStatus.ERROR.value)
        if finished and isinstance(duration, (int, float)) and duration >= 0:
            self.duration.labels(self.huey_name, task, status).observe(duration)
        if status == EventStatus.RETRYING.value:
            self.retries.labels(self.huey_name, task).inc()
        elif status == EventStatus.DEAD_LETTERED.value:
            self.dead_lettered.labels(self.huey_name, task).inc()


class StorageCollector(Collector):
    """Gauges read from the backend at scrape time, through the four protocols.

    huey_queue_depth, huey_scheduled, huey_in_flight (leased messages), huey_dead_letters
    (stored), and huey_backend_up (0 when reading them failed; the others are then left out).
    """

    def __init__(self, huey: Huey) -> None:
        self.huey = huey

    def collect(self) -> Iterator[GaugeMetricFamily]:
        name = self.huey.name
        try:
            storage = self.huey.storage
            values = {
                "huey_queue_depth": ("Messages ready in the queue.", storage.queue.size()),
                "huey_scheduled": ("Messages waiting in the schedule.", storage.schedule.size()),
                "huey_in_flight": ("Messages leased to a worker.", len(storage.queue.leases())),
                "huey_dead_letters": (
                    "Dead letters stored.",
                    len(storage.store.items(keys.DEAD_LETTER)),
                ),
            }
        except Exception as exc:  # noqa: BLE001 - a scrape must answer even when Redis is down
            logger.warning("metrics: cannot read the backend: %s", mask_url(str(exc)))
            values = {}
        for metric, (help_text, value) in values.items():
            family = GaugeMetricFamily(metric, help_text, labels=["huey"])
            family.add_metric([name], value)
            yield family
        up = GaugeMetricFamily("huey_backend_up", "1 when the backend answered.", labels=["huey"])
        up.add_metric([name], 1 if values else 0)
        yield up


class MetricsExporter:
    """Serves /metrics over HTTP (prometheus_client's server) from the event stream.

    `accept(event)` picks the events to count (all by default). `start()` subscribes, waits
    up to `ready_timeout` seconds for the subscription, then listens on `host:port` (port 0
    picks a free one; `url` says which).
    """

    def __init__(
        self,
        huey: Huey,
        host: str = "127.0.0.1",
        port: int = 0,
        accept: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created: noise here
        self.huey = huey
        self.host = host
        self.port = port
        self.accept = accept
        self.registry = CollectorRegistry(auto_describe=True)
        self.tasks = TaskMetrics(huey.name, self.registry)
        self.registry.register(StorageCollector(huey))
        self.listener = EventListener(huey, self._handle, name="huey-metrics")
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def _handle(self, event: dict[str, Any]) -> None:
        if event.get("huey") not in (None, self.huey.name):
            return  # another instance sharing the channel or table
        if self.accept is None or self.accept(event):
            self.tasks.observe(event)

    def start(self, ready_timeout: float = 10.0) -> None:
        self.listener.start()
        if not self.listener.ready.wait(ready_timeout):
            logger.warning("metrics: not subscribed to events yet; counting starts when it is")
        self._server, self._thread = start_http_server(self.port, self.host, self.registry)
        self.port = int(self._server.server_address[1])
        logger.info("serving Prometheus metrics on %s", self.url)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self.listener.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
