"""huey's definition-time checks: duplicate task names and the crontab grammar.

Every crontab input in the table is given to huey 3.5.4's `crontab(strict=True)` and to ours:
both accept it or both refuse it, and when both accept, both select the same minutes, hours,
days, months and weekdays. (huey's default strict=False silently drops some bad pieces; here
those always raise: docs/migrating-from-huey.md.)
"""

from __future__ import annotations

import datetime
import importlib
import sys
import uuid

import pytest

from huey_core import Huey, crontab

huey_api = pytest.importorskip("huey.api")

# field -> a datetime for each value of the field's domain, the other fields fixed
_BASE = datetime.datetime(2024, 1, 7, 0, 0)  # a Sunday in a 31-day month
DOMAIN = {
    "minute": [_BASE.replace(minute=m) for m in range(60)],
    "hour": [_BASE.replace(hour=h) for h in range(24)],
    "day": [_BASE.replace(day=d) for d in range(1, 32)],
    "month": [_BASE.replace(month=m, day=1) for m in range(1, 13)],
    "day_of_week": [_BASE + datetime.timedelta(days=d) for d in range(7)],
}

ACCEPTED = {
    "minute": ["*", "0", "59", 5, "*/15", "*/1", "*/60", "*/100", "5-10", "10-50/20", "50-10",
               "50-10/7", "1,5,9", "05", "0-59/59", "3,3", "*,5"],
    "hour": ["*", "23", "*/6", "22-2", "0-23/5", "9,17"],
    "day": ["*", "1", "31", "*/10", "1-31/2", "28-3", "1,15"],
    "month": ["*", "12", "*/3", "11-2", "1-12/4"],
    "day_of_week": ["*", "0", "7", 6, "1-5", "5-7", "0-7", "5-1", "7-3", "7-7", "1-7/2",
                    "3-7/2", "6-1/2", "0,6", "0-6/3"],
}  # fmt: skip
REFUSED = {
    "minute": ["60", "-1", -1, "*/0", "1-5/0", "a", "1-", "-5", "", "1,,2", "5-70", " 5",
               "1, 2", "40/10", "*/", "**", "1-2-3", "5/", "*/5/2", "1-5/2/3", "²", "0x10",
               "1.5", 60],
    "hour": ["24", "0-24", "*/0", "3/2", "9, 17"],
    "day": ["0", "32", "0-5", "1/7", "*/0"],
    "month": ["0", "13", "12-13", "2/3"],
    "day_of_week": ["8", "*/2", "*/3", "*/1", "0-8", "8-1", "1/2", "*/0", "mon", "sun-sat"],
}  # fmt: skip


def _selected(check, field):
    return [moment for moment in DOMAIN[field] if check(moment)]


def _cases(table):
    return [(field, spec) for field, specs in table.items() for spec in specs]


@pytest.mark.parametrize(("field", "spec"), _cases(ACCEPTED))
def test_accepted_like_huey_with_the_same_schedule(field, spec):
    theirs = huey_api.crontab(strict=True, **{field: spec})
    ours = crontab(**{field: spec})
    assert _selected(ours, field) == _selected(theirs, field)
    assert _selected(ours, field)  # a schedule that never fires is refused instead


@pytest.mark.parametrize(("field", "spec"), _cases(REFUSED))
def test_refused_like_huey(field, spec):
    with pytest.raises(Exception):  # noqa: B017 - huey raises ValueError or AttributeError
        huey_api.crontab(strict=True, **{field: spec})
    with pytest.raises(ValueError, match=field):
        crontab(**{field: spec})


@pytest.mark.parametrize("spec", [1.5, None, True, ["1"]])
def test_non_string_non_int_specs_are_refused(spec):
    with pytest.raises(Exception):  # noqa: B017 - huey fails with whatever the value raises
        huey_api.crontab(strict=True, minute=spec)
    with pytest.raises(ValueError, match="expected an int or a string"):
        crontab(minute=spec)


def test_day_of_week_step_error_says_what_to_write():
    with pytest.raises(ValueError, match=r"list the days \('0,3,6'\) or step a range"):
        crontab(day_of_week="*/3")


def _both(make):
    """Run `make(Huey)` with huey's MemoryHuey and ours; return what each raised (or None)."""
    outcomes = []
    for cls in (huey_api.MemoryHuey, lambda name: Huey(name, backend="memory")):
        try:
            make(cls("dups"))
        except Exception as exc:  # noqa: BLE001 - compared below
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


def test_two_functions_with_one_name_raise_valueerror_like_huey():
    def make(huey):
        @huey.task()
        def send(x):
            return x

        @huey.task(name="send")
        def other(x):
            return x

    theirs, ours = _both(make)
    assert isinstance(theirs, ValueError) and isinstance(ours, ValueError)
    assert "name=" in str(ours) and "send" in str(ours)


def test_the_same_function_decorated_twice_raises_like_huey():
    def make(huey):
        def send(x):
            return x

        huey.task()(send)
        huey.periodic_task(crontab_for(huey))(send)

    def crontab_for(huey):
        return huey_api.crontab() if type(huey).__module__.startswith("huey.") else crontab()

    theirs, ours = _both(make)
    assert isinstance(theirs, ValueError) and isinstance(ours, ValueError)


def test_a_second_name_or_unregistering_first_is_accepted_like_huey():
    def make(huey):
        def send(x):
            return x

        first = huey.task()(send)
        huey.task(name="send_again")(send)
        first.unregister()
        return huey.task()(send)

    assert _both(make) == [None, None]


def test_the_first_registration_keeps_working_after_a_refused_duplicate():
    huey = Huey("dups-kept", backend="memory", immediate=True)

    @huey.task()
    def send(x):
        return ("first", x)

    with pytest.raises(ValueError):

        @huey.task(name="send")
        def other(x):
            return ("second", x)

    assert send(1)() == ("first", 1)


@pytest.mark.parametrize("package", ["huey", "huey_core"])
def test_reloading_a_tasks_module_on_a_shared_huey_raises_like_huey(package, tmp_path, monkeypatch):
    """A development reloader that re-imports tasks.py while the Huey lives in another module."""
    prefix = f"reload_{package}_{uuid.uuid4().hex[:6]}"
    (tmp_path / f"{prefix}_app.py").write_text(
        f"from {package} import MemoryHuey\nhuey = MemoryHuey('reload')\n"
    )
    (tmp_path / f"{prefix}_tasks.py").write_text(
        f"from {prefix}_app import huey\n\n@huey.task()\ndef ping():\n    return 'pong'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tasks = importlib.import_module(f"{prefix}_tasks")
    try:
        with pytest.raises(ValueError):
            importlib.reload(tasks)
    finally:
        for name in (f"{prefix}_tasks", f"{prefix}_app"):
            sys.modules.pop(name, None)
