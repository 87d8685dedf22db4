"""Server restart mid-drain: a private Redis and a private PostgreSQL on spare loopback ports,
started by the test, are killed and started again while two consumers drain the queue. The
consumers keep running, every task runs, and nothing acknowledged is lost: every task's result
is in the store afterwards. The URL carries a password, which no log line may show."""

from __future__ import annotations

import time

import pytest

from tests.reliability.support import PrivatePostgres, PrivateRedis, logs, stop, wait_for

pytestmark = pytest.mark.slow

TOTAL = 3000
PASSWORD = "restart-pw-never-logged"


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path / "redis", "--requirepass", PASSWORD)
    server.start()

    def restart() -> None:
        server.proc.kill()  # kill -9: only what the append-only file fsynced survives
        server.proc.wait(10)
        server.proc = None
        time.sleep(1.0)
        server.start()

    yield f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0", restart
    server.stop()


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
    except Exception as exc:  # noqa: BLE001
        server.destroy()
        pytest.fail(f"could not start a private PostgreSQL: {exc}")

    def restart() -> None:
        server.stop("immediate")  # a crash: no shutdown checkpoint
        time.sleep(1.0)
        server.start()

    yield server.url(PASSWORD), restart
    server.destroy()


@pytest.mark.parametrize("server", ["private_redis", "private_postgres"])
def test_consumers_survive_a_server_restart_mid_drain(server, request, make_app):
    url, restart = request.getfixturevalue(server)
    app = make_app(url)
    module = app.load()
    huey = module.huey
    results = [module.record(i) for i in range(TOTAL)]
    for _ in range(2):
        app.start_consumer("-w", "4", "-n", "-s", "0.2", "-d", "0.01", "-m", "0.5",
                           "--lease-timeout", "3")  # fmt: skip
    assert wait_for(lambda: len(app.executions()) >= TOTAL // 5, timeout=60), logs(app)
    restart()
    done_at_restart = len(app.executions())
    assert done_at_restart < TOTAL, "the drain finished before the restart; raise TOTAL"

    def drained() -> bool:
        try:
            return huey.storage.queue.size() == 0 and not huey.storage.queue.leases()
        except Exception:  # noqa: BLE001 - the test's own connection may be reconnecting
            return False

    assert wait_for(drained, timeout=120, interval=0.2), logs(app)
    assert all(proc.poll() is None for proc in app.procs), logs(app)  # nobody gave up
    runs = app.executions()
    assert {str(i) for i in range(TOTAL)} <= set(runs)
    # Nothing acknowledged is lost: a message is acked only after its result is stored.
    assert [r.get() for r in results] == list(range(TOTAL))
    for proc in app.procs:
        assert stop(proc) == 0, logs(app)
    text = logs(app)
    assert "failed" in text and "answers again" in text  # they noticed, and recovered
    assert PASSWORD not in text
    print(
        f"{server}: {done_at_restart} done at the restart; "
        f"{sum(runs.values()) - TOTAL} ran twice (at-least-once)"
    )
