"""Prometheus metrics, scraped over loopback from a real `huey consume --metrics-port` and a
standalone `huey metrics` exporter, on a SQLite file and on Redis."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from huey_core.testing import require_port
from huey_core.testing.apps import App, read_log, wait_for

pytestmark = pytest.mark.slow

SOURCE = """
import os
import time

from huey_core import Huey

huey = Huey(os.environ["TEST_HUEY_NAME"], url=os.environ["TEST_URL"])
MARKERS = os.environ["TEST_MARKERS"]


@huey.task()
def add(a, b):
    return a + b


@huey.task(retries=1)
def fail():
    raise ValueError("always")


@huey.task()
def hold():
    # Runs until the test lets it go, so its lease is in flight while the test scrapes.
    while not os.path.exists(os.path.join(MARKERS, "release")):
        time.sleep(0.05)
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if k != "huey")
            samples[(sample.name, labels)] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture(params=["sqlite", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    if request.param == "redis":
        require_port("Redis", 6379)
        url = "redis://127.0.0.1:6379/0"
    else:
        url = f"sqlite:///{tmp_path}/huey.db"
    app = App(tmp_path, SOURCE, "metrics", TEST_URL=url)
    app.on_close.append(lambda: app.loaded and app.huey.flush())
    yield app
    app.close()


def start_standalone(app: App, port: int) -> subprocess.Popen[str]:
    log = open(app.directory / "exporter.log", "w+")  # noqa: SIM115 - closed by app.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "huey_core.cli", "metrics", app.import_path, "--port", str(port)],
        cwd=app.directory, env=app.env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, text=True,
    )  # fmt: skip
    proc.log = log  # type: ignore[attr-defined]
    app.procs.append(proc)
    return proc


def test_consumer_and_standalone_exporters_count_what_happens(app: App) -> None:
    module = app.load()
    huey = module.huey
    own, fleet = free_port(), free_port()
    consumer = app.start_consumer("-w", "2", "-n", "-s", "0.2", "--metrics-port", str(own))
    exporter = start_standalone(app, fleet)
    assert wait_for(lambda: "serving Prometheus metrics" in read_log(exporter), 30), read_log(
        exporter
    )
    assert wait_for(lambda: "serving Prometheus metrics" in read_log(consumer), 30), read_log(
        consumer
    )

    adds = [module.add(i, i) for i in range(3)]
    module.fail()
    huey.storage.queue.enqueue(b"\x80garbage that is no message", 0)  # poison: dead-lettered
    assert [r.get(blocking=True, timeout=30) for r in adds] == [0, 2, 4]

    def settled(port: int, check: Callable[[Samples], bool]) -> Samples:
        last: Samples = {}

        def ok() -> bool:
            nonlocal last
            last = scrape(port)
            return check(last)

        assert wait_for(ok, 30, 0.2), f"{read_log(consumer)}\n{sorted(last.items())}"
        return last

    def failed(s: Samples) -> bool:  # the failing task ran twice (a retry), then for good
        return value(s, "huey_task_events_total", task="fail", status="error") == 2

    settled(own, failed)
    for _ in range(3):  # two run (two workers), one waits: in the queue, or leased to a worker
        module.hold()  # that claimed it with the second in one batch (quick tasks came before)

    def busy(s: Samples) -> bool:
        in_flight, depth = value(s, "huey_in_flight"), value(s, "huey_queue_depth")
        return (
            failed(s)
            and in_flight is not None
            and depth is not None
            and in_flight >= 2
            and in_flight + depth == 3
            and value(s, "huey_dead_letters") == 1
            and value(s, "huey_task_events_total", task="hold", status="started") == 2
        )

    mine = settled(own, busy)
    # Counts by task and status, from this consumer's own events.
    assert value(mine, "huey_task_events_total", task="add", status="started") == 3
    assert value(mine, "huey_task_events_total", task="add", status="finished") == 3
    # Producers' events are not this consumer's: the test process enqueued.
    assert value(mine, "huey_task_events_total", task="add", status="enqueued") is None
    # Durations: one observation per finished task, in a histogram.
    assert value(mine, "huey_task_duration_seconds_count", task="add", status="finished") == 3
    assert value(mine, "huey_task_duration_seconds_bucket", task="add", status="finished",
                 le="+Inf") == 3  # fmt: skip
    assert (value(mine, "huey_task_duration_seconds_sum", task="add", status="finished") or -1) >= 0
    assert value(mine, "huey_task_retries_total", task="fail") == 1
    assert value(mine, "huey_dead_lettered_total", task="unknown") == 1
    assert value(mine, "huey_backend_up") == 1

    # The standalone exporter counts every producer and consumer of the instance.
    fleet_samples = settled(fleet, busy)
    assert value(fleet_samples, "huey_task_events_total", task="add", status="enqueued") == 3
    assert value(fleet_samples, "huey_task_events_total", task="add", status="finished") == 3
    assert value(fleet_samples, "huey_task_retries_total", task="fail") == 1

    (app.directory / "release").touch()
    settled(
        own,
        lambda s: (
            value(s, "huey_in_flight") == 0
            and value(s, "huey_queue_depth") == 0
            and value(s, "huey_task_events_total", task="hold", status="finished") == 3
        ),
    )


def test_a_taken_port_is_one_line_and_exit_2(app: App) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = app.cli("consume", app.import_path, "--metrics-port", str(port), timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(rf"cannot serve metrics on 127\.0\.0\.1:{port}", lines[0])


def test_without_prometheus_client_the_consumer_names_the_extra(app: App) -> None:
    # None in sys.modules makes `import prometheus_client` fail as if it were not installed.
    script = (
        "import sys; sys.modules['prometheus_client'] = None; "
        "from huey_core.cli import main; sys.argv[0] = 'huey'; main()"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, "consume", app.import_path, "--metrics-port", "0"],
        cwd=app.directory, env=app.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "huey consume: error: metrics need prometheus_client (prometheus_client is missing); "
        'install it with: pip install "huey-core[metrics]"'
    )
