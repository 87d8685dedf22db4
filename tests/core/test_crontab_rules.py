"""crontab details beyond test_periodic.py: the errors a typo gets, ranges that wrap, what the
schedule prints, and `next_match` (the "next:" column of `huey info`)."""

from __future__ import annotations

import datetime

import pytest

from huey_core import crontab
from huey_core.crontab import Crontab, next_match

SUNDAY = datetime.datetime(2024, 1, 7, 12, 0)  # 2024-01-07 was a Sunday


def days_matching(spec: str) -> list[int]:
    check = crontab(day_of_week=spec)
    return [d for d in range(7) if check(SUNDAY + datetime.timedelta(days=d))]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"minute": 1.5}, r"crontab minute=1\.5: expected an int or a string like '\*/5'"),
        ({"hour": ["1"]}, r"crontab hour=\['1'\]: expected an int or a string"),
        ({"minute": " "}, r"crontab minute=' ': cannot parse ' '"),
        ({"minute": "1,x"}, r"crontab minute='1,x': cannot parse 'x'"),
        ({"hour": "*/0"}, r"crontab hour='\*/0': step must be at least 1 in '\*/0'"),
        ({"day": "0-3"}, r"crontab day='0-3': 0 is outside 1-31"),
        ({"minute": ""}, r"^crontab minute: empty specification$"),
    ],
)
def test_a_bad_field_raises_naming_the_field_and_the_piece(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        crontab(**kwargs)


def test_every_n_days_of_the_week_is_refused_with_what_to_write_instead() -> None:
    with pytest.raises(ValueError) as info:
        crontab(day_of_week="*/2")
    assert str(info.value) == (
        "crontab day_of_week='*/2': '*/n' is not supported for days of the week (as in huey): "
        "list the days ('0,3,6') or step a range ('0-6/3')"
    )


@pytest.mark.parametrize("spec", ["*/1", "0-59/1"])
def test_a_step_of_one_is_every_value(spec: str) -> None:
    check = crontab(minute=spec)
    assert all(check(datetime.datetime(2024, 1, 1, 0, m)) for m in range(60))


def test_a_stepped_range_that_wraps_steps_across_the_wrap() -> None:
    every_other = crontab(minute="58-1/2")  # 58, 59, 0, 1: every second one
    minutes = [m for m in range(60) if every_other(datetime.datetime(2024, 1, 1, 0, m))]
    assert minutes == [0, 58]
    month_end = crontab(day="31-2/2")  # 31, 1, 2: the 31st and the 2nd
    days = [d for d in range(1, 32) if month_end(datetime.datetime(2024, 1, d))]
    assert days == [2, 31]
    assert days_matching("5-1/2") == [0, 5]  # Friday, Saturday, Sunday, Monday: every second


def test_spaces_inside_a_field_are_refused_as_huey_refuses_them() -> None:
    with pytest.raises(ValueError, match=r"crontab minute='1, 2': cannot parse ' 2'"):
        crontab(minute="1, 2")


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("5-6", [5, 6]),
        ("7-3", [0, 1, 2, 3]),  # 7 is Sunday, the start of the week
    ],
)
def test_day_of_week_steps_and_ranges_walk_one_week(spec, expected) -> None:
    assert days_matching(spec) == expected


def test_a_minute_range_starting_at_7_wraps_like_any_other() -> None:
    check = crontab(minute="7-3")  # 7..59, then 0..3
    minutes = [m for m in range(60) if check(datetime.datetime(2024, 1, 1, 0, m))]
    assert minutes == list(range(0, 4)) + list(range(7, 60))


def test_a_crontab_prints_its_five_fields() -> None:
    assert repr(crontab(minute="*/5")) == "crontab(*/5 * * * *)"
    assert crontab(minute="0", hour="9", day_of_week="1-5").text == "0 9 * * 1-5"
    assert repr(crontab.daily()) == "crontab(0 0 * * *)"


def test_the_crontab_class_defaults_to_every_minute() -> None:
    assert Crontab().text == "* * * * *"
    assert Crontab(minute="30")(datetime.datetime(2024, 2, 29, 23, 30))


def test_next_match_is_the_first_whole_minute_strictly_after() -> None:
    every_quarter = crontab(minute="*/15")
    assert next_match(every_quarter, datetime.datetime(2024, 1, 1, 10, 14, 59, 999)) == (
        datetime.datetime(2024, 1, 1, 10, 15)
    )
    assert next_match(every_quarter, datetime.datetime(2024, 1, 1, 10, 15)) == (
        datetime.datetime(2024, 1, 1, 10, 30)
    )
    assert next_match(crontab(minute="*"), datetime.datetime(2024, 1, 1, 10, 7, 30)) == (
        datetime.datetime(2024, 1, 1, 10, 8)
    )
    monday = crontab(minute="0", hour="0", day_of_week="1")
    assert next_match(monday, SUNDAY) == datetime.datetime(2024, 1, 8, 0, 0)
    first_of_month = crontab(minute="0", hour="0", day="1")
    assert next_match(first_of_month, SUNDAY) is None  # more than the default week away
    assert next_match(first_of_month, SUNDAY, horizon_minutes=40 * 24 * 60) == (
        datetime.datetime(2024, 2, 1, 0, 0)
    )


def test_next_match_of_a_check_that_raises_is_none() -> None:
    def broken(moment: datetime.datetime) -> bool:
        raise RuntimeError("custom validate function")

    assert next_match(broken, SUNDAY) is None
