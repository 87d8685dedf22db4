"""`huey info` shows odd stored state instead of failing on it (issue 11, item 6).

- A leased row without a deadline (written by hand or by an old release; SQL backends): the row
  is listed, marked odd, and the command exits 0. Before: a TypeError, exit code 1.
- A dead worker's lease on a message whose unpickling raises KeyboardInterrupt: listed, marked
  odd (its lease expired), exit 0. Before: the KeyboardInterrupt ended `huey info` silently,
  with exit code 0 and no output at all.
"""

from __future__ import annotations

import json
import time

import pytest

from huey_sql.testing import malformed_rows as sql_rows
from tests.reliability.support import KINDS, server_url


def _info(app) -> tuple[str, dict]:
    text = app.cli("info", app.import_path)
    assert text.returncode == 0 and "Traceback" not in text.stderr, text
    as_json = app.cli("info", app.import_path, "--json")
    assert as_json.returncode == 0, as_json
    return text.stdout, json.loads(as_json.stdout)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_a_lease_without_a_deadline_is_shown_as_odd(kind, make_app, tmp_path):
    app = make_app(server_url(kind, tmp_path))
    huey = app.load().huey
    sql_rows(app.url)["deadline"](huey.storage)
    text, data = _info(app)
    assert data["in_flight"] == 1
    [lease] = data["leases"]
    assert lease["deadline"] is None and lease["expires_in"] is None
    assert "no deadline" in lease["odd"]
    assert "in flight: 1" in text and "no deadline" in text and "odd:" in text


@pytest.mark.parametrize("kind", KINDS)
def test_a_dead_workers_lease_on_a_poison_message_is_shown_as_odd(kind, make_app, tmp_path):
    app = make_app(server_url(kind, tmp_path))
    module = app.load()
    huey = module.huey
    module.record(module.Bomb("KeyboardInterrupt"))  # unpickling it raises KeyboardInterrupt
    # The worker that leased it died: nobody extends its 1 s lease, which expires.
    assert huey.storage.queue.dequeue("dead-host:1:Worker-1", 1.0) is not None
    time.sleep(1.2)
    text, data = _info(app)
    [lease] = data["leases"]
    assert lease["owner"] == "dead-host:1:Worker-1" and lease["expires_in"] < 0
    assert "expired" in lease["odd"] and lease["task"] is None
    assert "leased by dead-host:1:Worker-1" in text and "odd: the lease expired" in text
