"""Options are checked where they enter, on the command line and in Python alike (issue 11,
item 4): a value that would break later is refused at once with one line (exit code 2 on the
command line), and the limits are those of huey_core.limits.

Before, `--lease-timeout nan` stored leases that never expired, `0`, `-1` or `1e-9` ran one task
several times in one consumer, `priority=2**31` made a message PostgreSQL and MySQL never
stored, and `-w 10000` started ten thousand threads.
"""

from __future__ import annotations

import math
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from huey_core import Huey
from huey_core.consumer import Consumer
from huey_core.exceptions import ConfigurationError
from huey_core.limits import MAX_WORKERS, MIN_LEASE_TIMEOUT, PRIORITY_MAX, PRIORITY_MIN
from huey_core.testing.apps import App

SOURCE = """
import os
from huey_core import Huey

huey = Huey(os.environ["TEST_HUEY_NAME"], url=os.environ["TEST_URL"])


@huey.task()
def add(a, b):
    return a + b
"""

NOT_FINITE = ("nan", "inf", "-inf")
# (arguments after the command and the import path, what the error line names)
REFUSED = [
    *[(["consume", "{app}", opt, v], opt) for opt in ("-d", "-m", "-b", "-s") for v in NOT_FINITE],
    *[(["consume", "{app}", "--shutdown-timeout", v], "--shutdown-timeout") for v in NOT_FINITE],
    *[
        (["consume", "{app}", "--lease-timeout", v], "--lease-timeout")
        for v in (*NOT_FINITE, "0", "-1", "1e-9", "0.5")
    ],
    (["consume", "{app}", "-w", str(MAX_WORKERS + 1)], "--workers"),
    (["consume", "{app}", "-w", "10000"], "--workers"),
    (["consume", "{app}", "--url", ""], "--url"),
    (["info", "{app}", "--url", "  "], "--url"),
    *[(["enqueue", "{app}", "add", "1", "2", "--delay", v], "--delay") for v in NOT_FINITE],
    (["enqueue", "{app}", "add", "1", "2", "--priority", str(2**31)], "--priority"),
    (["enqueue", "{app}", "add", "1", "2", "--priority", str(-(2**31))], "--priority"),
    *[(["info", "{app}", "--interval", v], "--interval") for v in NOT_FINITE],
]


@pytest.fixture
def app(tmp_path):
    made = App(tmp_path, SOURCE, "opts", TEST_URL=f"sqlite:///{tmp_path}/huey.db")
    yield made
    made.close()


def test_the_command_line_refuses_each_bad_value_in_one_line_with_exit_code_2(app):
    def attempt(case):
        args, named = case
        argv = [a.replace("{app}", app.import_path) for a in args]
        return case, app.cli(*argv, timeout=20)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(attempt, REFUSED))
    for (args, named), done in outcomes:
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (args, done.returncode, done.stderr)
        assert len(lines) == 1 and "Traceback" not in done.stderr, (args, done.stderr)
        assert named in lines[0], (args, lines[0])
    # The enqueue attempts stored nothing.
    assert app.load().huey.pending_count() == 0


def test_the_command_line_accepts_the_limits_themselves(app):
    done = app.cli(
        "enqueue", app.import_path, "add", "1", "2", "--priority", str(PRIORITY_MAX),
        "--delay", "0",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = app.cli("enqueue", app.import_path, "add", "3", "4", "--priority", str(PRIORITY_MIN))
    assert done.returncode == 0, done.stderr
    huey = app.load().huey
    assert huey.pending_count() + huey.scheduled_count() == 2


@pytest.mark.parametrize("value", [math.nan, math.inf, 0, -1, 1e-9, 0.5])
def test_huey_and_consumer_refuse_a_bad_lease_timeout(value):
    with pytest.raises(ConfigurationError, match="lease_timeout"):
        Huey("opts", backend="memory", lease_timeout=value)
    huey = Huey("opts", backend="memory")
    with pytest.raises(ConfigurationError, match="lease_timeout"):
        Consumer(huey, lease_timeout=value)
    assert huey.lease_timeout == 30.0  # unchanged by the refused override
    Consumer(huey, lease_timeout=MIN_LEASE_TIMEOUT)  # the minimum itself is fine


@pytest.mark.parametrize(
    "options",
    [
        {"initial_delay": math.nan},
        {"max_delay": math.inf},
        {"backoff": math.nan},
        {"backoff": math.inf},
        {"scheduler_interval": math.nan},
        {"shutdown_timeout": math.inf},
        {"shutdown_timeout": math.nan},
        {"workers": MAX_WORKERS + 1},
        {"workers": 0},
    ],
)
def test_consumer_refuses_non_finite_and_out_of_range_options(options):
    with pytest.raises(ConfigurationError):
        Consumer(Huey("opts", backend="memory"), **options)


@pytest.mark.parametrize(
    "options",
    [
        {"retry_delay": math.nan},
        {"retry_delay": -1},
        {"retry_backoff": math.inf},
        {"priority": 2**31},
        {"priority": -(2**31)},
        {"priority": 1.5},
        {"timeout": math.inf},
        {"expires": math.nan},
        {"retries": -1},
    ],
)
def test_task_options_are_refused_at_the_decorator_and_at_the_call(options):
    huey = Huey(f"opts-{uuid.uuid4().hex[:8]}", backend="memory", results=False)
    with pytest.raises(ConfigurationError):
        huey.task(**options)

    @huey.task()
    def add(a, b):
        return a + b

    with pytest.raises(ConfigurationError):
        add.schedule((1, 2), delay=1, **options)
    with pytest.raises(ConfigurationError):
        huey.enqueue(add.s(1, 2, **options))
    with pytest.raises(ConfigurationError):  # a later step of a pipeline is checked too
        huey.enqueue(add.s(1, 2).then(add.s(3, **options)))
    assert huey.pending_count() == 0 and huey.scheduled_count() == 0


@pytest.mark.parametrize("delay", [math.nan, math.inf, -math.inf])
def test_a_non_finite_delay_is_refused_at_the_call(delay):
    huey = Huey(f"opts-{uuid.uuid4().hex[:8]}", backend="memory")

    @huey.task()
    def add(a, b):
        return a + b

    with pytest.raises(ConfigurationError, match="delay"):
        add.schedule((1, 2), delay=delay)
    assert huey.scheduled_count() == 0
