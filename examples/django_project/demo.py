"""`make django-demo`: the example shop with a real web server and a real consumer.

1. `manage.py migrate` a fresh SQLite database in a temporary directory (or PostgreSQL with
   SHOP_DB=postgresql SHOP_DB_NAME=...; see shopsite/settings.py).
2. Start `manage.py runserver` on a free loopback port and `manage.py run_huey`.
3. Place orders over HTTP. Each view enqueues its tasks when its transaction commits; a declined
   order rolls back, so its task is never enqueued.
4. Poll the results over HTTP, show the orders and the report the periodic task wrote.
5. Stop both servers with SIGTERM; exit 0 when everything above held.

`Shop` runs the project's commands for the tests too (tests/test_django_project.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
# Variables that would point the project's huey somewhere else than settings.HUEY says.
CLEARED = ("HUEY_BACKEND", "HUEY_URL", "HUEY_DEBUG")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Shop:
    """The example project's processes on one database: `manage.py` commands, the web server
    and consumers, each in its own session with its output in `workdir`."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        self.env.update(DJANGO_SETTINGS_MODULE="shopsite.settings", PYTHONUNBUFFERED="1")
        self.env.setdefault("SHOP_DB_NAME", str(workdir / "db.sqlite3"))
        self.env.update(env)
        self.procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self.base_url = ""

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `python manage.py *args` to completion."""
        return subprocess.run([sys.executable, "manage.py", *args], cwd=HERE, env=self.env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """Start `python manage.py *args` (with `env` added); its output goes to a log file."""
        log = open(self.workdir / f"{args[0]}-{len(self.procs)}.log", "w+b")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "manage.py", *args], cwd=HERE,
                                env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        self.procs.append((proc, log))
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        for started, log in self.procs:
            if started is proc:
                # by name: seeking `log` would move where the process writes next
                return Path(log.name).read_text("utf-8", "replace")
        return ""

    def start_web(self, timeout: float = 30) -> subprocess.Popen[bytes]:
        """`manage.py runserver` on a free loopback port, once it answers."""
        port = free_port()
        proc = self.start("runserver", f"127.0.0.1:{port}", "--noreload")
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.get("/reports/")
                return proc
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"runserver did not come up:\n{self.log(proc)}") from None
                time.sleep(0.1)

    def request(self, method: str, path: str, data: Any = None) -> tuple[int, Any]:
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(self.base_url + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body}")
        return body

    def post(self, path: str, data: Any) -> tuple[int, Any]:
        return self.request("POST", path, data)

    def wait_result(self, task_id: str, timeout: float = 30) -> Any:
        """Poll GET /tasks/<id>/ until the task's result is there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.get(f"/tasks/{task_id}/")
            if answer["ready"]:
                return answer
            time.sleep(0.05)
        raise TimeoutError(f"no result for task {task_id} after {timeout} s")

    def wait_order(self, pk: int, timeout: float = 30) -> Any:
        """Poll GET /orders/<pk>/ until both its tasks ran (paid, receipt sent)."""
        deadline = time.monotonic() + timeout
        while True:
            order = self.get(f"/orders/{pk}/")
            if order["status"] == "paid" and order["receipt_sent"]:
                return order
            if time.monotonic() > deadline:
                return order
            time.sleep(0.05)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
        """SIGTERM and wait: the exit code."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def close(self) -> None:
        """Kill whatever still runs."""
        for proc, log in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
            log.close()


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"demo failed: {what}")


def run(shop: Shop) -> None:
    print("$ python manage.py migrate")
    migrated = shop.manage("migrate", "-v", "0")
    check(migrated.returncode == 0, f"migrate failed:\n{migrated.stderr}")
    web = shop.start_web()
    print(f"$ python manage.py runserver {shop.base_url[len('http://') :]} --noreload")
    print("$ python manage.py run_huey")
    consumer = shop.start("run_huey")

    placed = []
    for item, quantity, unit_cents in [("book", 2, 1250), ("pen", 10, 199), ("lamp", 1, 4900)]:
        order = {"item": item, "quantity": quantity, "unit_cents": unit_cents}
        status, body = shop.post("/orders/", order)
        print(f"POST /orders/ {json.dumps(order)} -> {status} {json.dumps(body)}")
        check(status == 201, "an order was refused")
        placed.append(body)
    status, declined = shop.post(
        "/orders/", {"item": "yacht", "quantity": 1, "unit_cents": 10**9, "decline": True}
    )
    print(
        f"POST /orders/ (declined: the transaction rolls back) -> {status} {json.dumps(declined)}"
    )
    check(status == 402, "the declined order was not refused")

    for body in placed:
        answer = shop.wait_result(body["task"])
        print(f"GET /tasks/{body['task']}/ -> {json.dumps(answer)}")
    for body in placed:
        order = shop.wait_order(body["order"])
        print(f"GET /orders/{body['order']}/ -> {json.dumps(order)}")
        check(order["status"] == "paid" and order["receipt_sent"], "an order was not processed")
    answer = shop.get(f"/tasks/{declined['task']}/")
    print(f"GET /tasks/{declined['task']}/ (the declined order's task) -> {json.dumps(answer)}")
    check(not answer["ready"], "the task of a rolled-back order ran")
    reports = shop.get("/reports/")
    print(f"GET /reports/ (report_sales runs every minute) -> {json.dumps(reports)}")
    check(bool(reports["reports"]) and reports["pending"] == 0, "no report, or tasks left over")

    code = shop.stop(consumer)
    print(f"SIGTERM run_huey: exit code {code}; its log:")
    print("    " + shop.log(consumer).strip().replace("\n", "\n    "))
    check(code == 0, f"run_huey exited with {code}")
    shop.stop(web)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="huey-django-demo-"))
    shop = Shop(workdir)
    database = shop.env.get("SHOP_DB", "sqlite")
    print(f"example shop on {database} ({shop.env['SHOP_DB_NAME']})")
    try:
        run(shop)
    except BaseException:
        for proc, _ in shop.procs:
            print(f"--- manage.py {' '.join(map(str, proc.args[2:]))} ---\n{shop.log(proc)}")
        raise
    finally:
        shop.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print("django demo: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
