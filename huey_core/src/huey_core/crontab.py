"""`crontab(...)`: the schedule of a periodic task, as huey spells it.

Each field accepts an int or a string of comma-separated pieces, exactly huey's grammar:

    *        every value              */n      every n-th value from the field's minimum
    a        one value                a-b      a through b (wraps around when a > b: 22-2)
    a-b/n    every n-th value of a-b

Ranges: minute 0-59, hour 0-23, day 1-31, month 1-12, day_of_week 0-7 where both 0 and 7 mean
Sunday (1 = Monday ... 6 = Saturday). `*/n` is refused for day_of_week, as huey refuses it
(a week does not divide evenly: list the days, or use a range with a step, `0-6/2`).

What huey refuses with `strict=True` is refused here too, with ValueError when the crontab is
built (a piece that does not parse, spaces, a value out of range, a step of 0), so a typo fails
at import time instead of silently never firing. huey's default `strict=False` drops an
unparsable piece when another piece of the field parses; here `strict` is accepted for
compatibility and bad pieces always raise.

As in huey, all five fields must match (day and day_of_week are ANDed, unlike Vixie cron's OR).
The returned object is called with a naive datetime (UTC or local time, per `Huey(utc=...)`).
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable
from typing import Any

__all__ = ["Crontab", "crontab", "next_match"]

# "*", "*/n", "a", "a-b", "a-b/n": nothing else (huey's strict grammar; no spaces, no "a/n").
_PIECE = re.compile(
    r"(?:(?P<star>\*)(?:/(?P<every>\d+))?|(?P<lo>\d+)(?:-(?P<hi>\d+)(?:/(?P<step>\d+))?)?)"
)

# field name -> (minimum, maximum) of accepted input values
_FIELDS: dict[str, tuple[int, int]] = {
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "day_of_week": (0, 7),
}


def parse_field(field: str, spec: Any) -> frozenset[int]:
    """The set of values `spec` selects for `field`; ValueError naming the bad piece."""
    if isinstance(spec, bool) or not isinstance(spec, (int, str)):
        raise ValueError(f"crontab {field}={spec!r}: expected an int or a string like '*/5'")
    text = str(spec)
    if not text:
        raise ValueError(f"crontab {field}: empty specification")
    values: set[int] = set()
    for piece in text.split(","):
        values.update(_parse_piece(field, spec, piece))
    if field == "day_of_week":
        values = {v % 7 for v in values}
    return frozenset(values)


def _parse_piece(field: str, spec: Any, piece: str) -> list[int]:
    """The values one comma-separated piece of a field selects."""
    lo_ok, hi_ok = _FIELDS[field]
    # day_of_week: ranges and steps walk the week 0..6; 7 is only an alias of 0 (Sunday).
    cycle_hi = 6 if field == "day_of_week" else hi_ok
    match = _PIECE.fullmatch(piece)
    if not match:
        raise ValueError(f"crontab {field}={spec!r}: cannot parse {piece!r}")
    step = int(match["every"] or match["step"] or 1)
    if (match["every"] or match["step"]) and step < 1:
        raise ValueError(f"crontab {field}={spec!r}: step must be at least 1 in {piece!r}")
    if match["star"]:
        if match["every"] is not None and field == "day_of_week":
            raise ValueError(
                f"crontab day_of_week={spec!r}: '*/n' is not supported for days of the week "
                "(as in huey): list the days ('0,3,6') or step a range ('0-6/3')"
            )
        return list(range(lo_ok, cycle_hi + 1))[::step]
    start = int(match["lo"])
    end = int(match["hi"]) if match["hi"] is not None else start
    for value in (start, end):
        if not lo_ok <= value <= hi_ok:
            raise ValueError(f"crontab {field}={spec!r}: {value} is outside {lo_ok}-{hi_ok}")
    if field == "day_of_week" and start == 7:
        start = 0 if end != 7 else 7  # "7-3" is Sunday..Wednesday; "7" alone stays 7
    if start <= end:
        span = list(range(start, end + 1))
    else:  # wraps around: 22-2 is 22, 23, 0, 1, 2
        span = list(range(start, cycle_hi + 1)) + list(range(lo_ok, end + 1))
    return span[::step]


class Crontab:
    """A parsed crontab; call it with a datetime to know whether the task runs that minute."""

    def __init__(
        self,
        minute: Any = "*",
        hour: Any = "*",
        day: Any = "*",
        month: Any = "*",
        day_of_week: Any = "*",
    ) -> None:
        self.spec = {
            "minute": minute,
            "hour": hour,
            "day": day,
            "month": month,
            "day_of_week": day_of_week,
        }
        self.minutes = parse_field("minute", minute)
        self.hours = parse_field("hour", hour)
        self.days = parse_field("day", day)
        self.months = parse_field("month", month)
        self.days_of_week = parse_field("day_of_week", day_of_week)  # 0 = Sunday

    def __call__(self, timestamp: datetime.datetime) -> bool:
        weekday = (timestamp.weekday() + 1) % 7  # Python: Monday=0; cron: Sunday=0
        return (
            timestamp.minute in self.minutes
            and timestamp.hour in self.hours
            and timestamp.day in self.days
            and timestamp.month in self.months
            and weekday in self.days_of_week
        )

    @property
    def text(self) -> str:
        """The five fields as cron writes them, e.g. "*/5 * * * *"."""
        return " ".join(str(self.spec[f]) for f in _FIELDS)

    def __repr__(self) -> str:
        return f"crontab({self.text})"


def next_match(
    check: Callable[[datetime.datetime], bool],
    after: datetime.datetime,
    horizon_minutes: int = 7 * 24 * 60,
) -> datetime.datetime | None:
    """The first whole minute after `after` that `check` accepts, within the horizon; or None.

    A check that raises is treated as never matching.
    """
    moment = after.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    for _ in range(horizon_minutes):
        try:
            if check(moment):
                return moment
        except Exception:  # noqa: BLE001 - a custom validate function that fails
            return None
        moment += datetime.timedelta(minutes=1)
    return None


def crontab(
    minute: Any = "*",
    hour: Any = "*",
    day: Any = "*",
    month: Any = "*",
    day_of_week: Any = "*",
    strict: bool = True,
) -> Crontab:
    """Build a periodic-task schedule: `@huey.periodic_task(crontab(minute="*/15"))`."""
    del strict  # bad specs always raise; kept so huey code passing strict= ports unchanged
    return Crontab(minute, hour, day, month, day_of_week)


crontab.hourly = functools.partial(crontab, minute="0")  # type: ignore[attr-defined]
crontab.daily = functools.partial(crontab, minute="0", hour="0")  # type: ignore[attr-defined]
