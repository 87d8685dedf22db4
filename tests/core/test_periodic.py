"""crontab syntax and periodic-task enqueueing (UTC and local time, dedup across consumers)."""

from __future__ import annotations

import datetime
import os
import time

import pytest

from huey_core import Huey, PeriodicTask, clock, crontab
from tests.core.helpers import drain, make_huey

# 2024-01-07 was a Sunday.
SUNDAY = datetime.datetime(2024, 1, 7, 12, 0)


def days_matching(spec: str) -> list[int]:
    """Cron weekday numbers (0 = Sunday) of the days in one week that `spec` selects."""
    check = crontab(day_of_week=spec)
    return [d for d in range(7) if check(SUNDAY + datetime.timedelta(days=d))]


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("*", [0, 1, 2, 3, 4, 5, 6]),
        ("0", [0]),
        ("7", [0]),
        ("1-5", [1, 2, 3, 4, 5]),
        ("5-7", [0, 5, 6]),
        ("0-7", [0, 1, 2, 3, 4, 5, 6]),
        ("5-1", [0, 1, 5, 6]),
        ("0-6/2", [0, 2, 4, 6]),
        ("1-7/2", [0, 1, 3, 5]),
        ("0,6", [0, 6]),
        (6, [6]),
    ],
)
def test_day_of_week(spec, expected) -> None:
    assert days_matching(spec) == expected


@pytest.mark.parametrize(
    "kwargs, hits, misses",
    [
        ({"minute": "*/15"}, ["00:00", "00:15", "13:45"], ["00:14", "00:16"]),
        ({"minute": "0", "hour": "*/6"}, ["00:00", "06:00", "18:00"], ["03:00", "06:01"]),
        ({"minute": "5-10"}, ["01:05", "01:10"], ["01:04", "01:11"]),
        ({"minute": "10-50/20"}, ["00:10", "00:30", "00:50"], ["00:20", "00:40"]),
        ({"minute": "1,5,9"}, ["00:01", "00:05", "00:09"], ["00:02"]),
        ({"minute": "0", "hour": "22-2"}, ["22:00", "23:00", "00:00", "02:00"], ["03:00", "21:00"]),
        ({"minute": 30, "hour": 9}, ["09:30"], ["09:31", "10:30"]),
        ({"minute": "40-59/10"}, ["00:40", "00:50"], ["00:30", "00:00"]),
    ],
)
def test_minute_and_hour_syntax(kwargs, hits, misses) -> None:
    check = crontab(**kwargs)

    def at(hhmm: str) -> datetime.datetime:
        hour, minute = map(int, hhmm.split(":"))
        return datetime.datetime(2024, 3, 4, hour, minute)

    assert all(check(at(t)) for t in hits)
    assert not any(check(at(t)) for t in misses)


def test_day_and_month() -> None:
    check = crontab(minute="0", hour="0", day="1,15", month="*/3")
    assert check(datetime.datetime(2024, 1, 1)) and check(datetime.datetime(2024, 4, 15))
    assert not check(datetime.datetime(2024, 2, 1)) and not check(datetime.datetime(2024, 1, 2))
    # day and day_of_week must both match (huey's rule)
    both = crontab(minute="0", hour="0", day="7", day_of_week="0")
    assert both(datetime.datetime(2024, 1, 7)) and not both(datetime.datetime(2024, 2, 7))


def test_helpers() -> None:
    assert crontab.hourly()(datetime.datetime(2024, 1, 1, 5, 0))
    assert not crontab.daily()(datetime.datetime(2024, 1, 1, 5, 0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"minute": "60"},
        {"hour": "24"},
        {"day": "0"},
        {"month": "13"},
        {"day_of_week": "8"},
        {"minute": "*/0"},
        {"minute": "a"},
        {"minute": "1-"},
        {"minute": ""},
        {"minute": "1,,2"},
        {"minute": "5-70"},
        {"minute": 1.5},
        {"minute": "40/10"},  # huey refuses "a/n" and "*/n" on weekdays: tests/parity
        {"day_of_week": "*/2"},
    ],
)
def test_bad_specs_raise(kwargs) -> None:
    with pytest.raises(ValueError):
        crontab(**kwargs)


def _register(huey: Huey, calls: list, spec: crontab) -> None:
    @huey.periodic_task(spec, name="tick")
    def tick():
        calls.append(1)
        return "ignored"


def test_enqueue_periodic_runs_due_tasks_once_per_minute(huey: Huey) -> None:
    calls: list = []
    _register(huey, calls, crontab(minute="*/5"))
    assert huey.enqueue_periodic(datetime.datetime(2024, 1, 1, 10, 3)) == []
    due = datetime.datetime(2024, 1, 1, 10, 5, 1)
    (task,) = huey.enqueue_periodic(due)
    assert isinstance(task, PeriodicTask) and task.name == "tick"
    assert huey.enqueue_periodic(due.replace(second=59)) == []  # same minute: deduplicated
    drain(huey)
    assert calls == [1] and huey.result_count() == 0  # periodic results are not stored
    assert len(huey.enqueue_periodic(datetime.datetime(2024, 1, 1, 10, 10))) == 1


def test_a_failing_periodic_task_stores_no_error(huey: Huey) -> None:
    @huey.periodic_task(crontab(), name="broken_tick")
    def broken_tick():
        raise ValueError("every minute")

    huey.enqueue_periodic(datetime.datetime(2024, 1, 1, 10, 5))
    drain(huey)
    assert huey.result_count() == 0  # nobody holds a handle to read it: it would pile up


def test_dedup_across_two_huey_objects_sharing_a_backend(huey: Huey) -> None:
    calls: list = []
    other = Huey(huey.name, backend=huey.storage)
    _register(huey, calls, crontab())
    _register(other, calls, crontab())
    now = datetime.datetime(2024, 5, 5, 5, 5)
    results = [huey.enqueue_periodic(now), other.enqueue_periodic(now), huey.enqueue_periodic(now)]
    assert sorted(len(r) for r in results) == [0, 0, 1]
    drain(huey)
    assert calls == [1]


def test_periodic_fires_at_the_right_minute_in_utc_and_local_time() -> None:
    calls: list = []
    utc_now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    local_now = datetime.datetime.now()
    utc = make_huey(utc=True)
    # Whole hours (this one and the next) so a minute boundary during the test cannot matter.
    _register(utc, calls, crontab(hour=f"{utc_now.hour},{(utc_now.hour + 1) % 24}"))
    local = make_huey(utc=False)
    _register(local, calls, crontab(hour=f"{local_now.hour},{(local_now.hour + 1) % 24}"))
    # With no argument each instance reads its own clock.
    assert len(utc.enqueue_periodic()) == 1
    assert len(local.enqueue_periodic()) == 1


def test_local_time_crontab_follows_the_local_zone() -> None:
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset() is needed to change the local zone")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"  # UTC+05:30: local and UTC minutes differ
    time.tzset()
    try:
        utc_hour = datetime.datetime.now(datetime.timezone.utc).hour
        local = make_huey(utc=False)
        utc = make_huey(utc=True)
        for h in (local, utc):
            hours = f"{utc_hour},{(utc_hour + 1) % 24}"

            @h.periodic_task(crontab(minute="*", hour=hours), name="at_utc_hour")
            def at_utc_hour():
                pass

        now_local = clock.now(local.utc)
        now_utc = clock.now(utc.utc)
        assert (now_local - now_utc).total_seconds() == pytest.approx(5.5 * 3600, abs=5)
        assert len(utc.enqueue_periodic()) == 1
        # 05:30 ahead, the local hour is never the UTC hour.
        assert local.enqueue_periodic() == []

        # an eta given in local time is stored in the instance's clock
        @local.task()
        def job():
            pass

        eta = datetime.datetime.now() + datetime.timedelta(minutes=10)
        result = job.schedule(eta=eta)
        assert result.task.eta == eta

        @utc.task()
        def job2():
            pass

        result = job2.schedule(eta=eta)
        assert (
            abs((result.task.eta - (eta - datetime.timedelta(hours=5, minutes=30))).total_seconds())
            < 1
        )
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_revoked_periodic_task_is_skipped(huey: Huey) -> None:
    calls: list = []

    @huey.periodic_task(crontab())
    def tick():
        calls.append(1)

    tick.revoke()
    huey.enqueue_periodic(datetime.datetime(2024, 1, 1))
    drain(huey)
    assert calls == []
    tick.restore()
    huey.enqueue_periodic(datetime.datetime(2024, 1, 1, 0, 1))
    drain(huey)
    assert calls == [1]
