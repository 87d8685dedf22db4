"""`make flask-demo` / `make fastapi-demo`: a web app and a consumer, talking over real HTTP.

    python webdemo.py flask      (or fastapi)

1. Start `huey consume <app>.tasks.huey -w 2` and the web server (Flask's, or uvicorn) on a free
   loopback port, both on a fresh SQLite file in a temporary directory (HUEY_URL).
2. Make the requests a browser would, printing each one and its answer: enqueue and poll, enqueue
   and wait, a long task whose progress is polled, a failing task, the periodic heartbeat.
3. Stop both with SIGTERM; exit 0 when every answer was the expected one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

SERVERS = {
    "flask": ["-m", "flask", "--app", "flask_app.app", "run", "--host", "127.0.0.1", "--port"],
    "fastapi": ["-m", "uvicorn", "fastapi_app.app:app", "--host", "127.0.0.1", "--port"],
}

STOP_SIGNALS = {"flask": signal.SIGINT, "fastapi": signal.SIGTERM}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Client:
    """JSON over HTTP with the standard library, printing a transcript line per request."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None, quiet: bool = False) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                status, payload = response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, json.load(exc)
        if not quiet:
            sent = "" if body is None else " " + json.dumps(body)
            print(f"{method} {path}{sent}\n  -> {status} {json.dumps(payload)}", flush=True)
        return status, payload

    def wait_until_up(self, server: subprocess.Popen[bytes], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"the web server exited with code {server.returncode}")
            try:
                self.call("GET", "/heartbeat", quiet=True)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"the web server did not answer on {self.base} within {timeout} s")

    def poll_task(self, task_id: str, timeout: float = 30) -> dict[str, Any]:
        """Poll /tasks/<id> until it is finished or failed, printing each new progress note."""
        deadline = time.monotonic() + timeout
        last_note: Any = ()  # the first answer is always printed
        while time.monotonic() < deadline:
            _, state = self.call("GET", f"/tasks/{task_id}", quiet=True)
            note = (state.get("progress") or {}).get("note")
            if note != last_note:
                print(f"  .. {state['state']}: {note}", flush=True)
                last_note = note
            if state["state"] in ("finished", "failed"):
                self.call("GET", f"/tasks/{task_id}")
                return dict(state)
            time.sleep(0.1)
        raise SystemExit(f"task {task_id} did not finish within {timeout} s")


def scenario(client: Client) -> list[str]:
    """The requests; returns what did not answer as expected."""
    problems = []
    _, accepted = client.call("POST", "/add", {"a": 1, "b": 2})
    if client.poll_task(accepted["id"]).get("result") != 3:
        problems.append("POST /add did not give 3")
    status, waited = client.call("GET", "/add?a=20&b=22&wait=10")
    if (status, waited.get("result")) != (200, 42):
        problems.append("GET /add did not give 42")
    _, report = client.call("POST", "/reports", {"pages": 5})
    done = client.poll_task(report["id"])
    if done.get("result", {}).get("pages") != 5 or (done.get("progress") or {}).get("done") != 5:
        problems.append("the report did not finish with its progress at 5 of 5")
    _, bad = client.call("POST", "/reports", {"pages": 0})
    if "at least one page" not in str(client.poll_task(bad["id"]).get("error")):
        problems.append("the failing report did not report its error")
    deadline = time.monotonic() + 30
    beat = None
    while beat is None and time.monotonic() < deadline:
        _, answer = client.call("GET", "/heartbeat", quiet=True)
        beat = answer["heartbeat"]
        time.sleep(0.2)
    client.call("GET", "/heartbeat")
    if beat is None:
        problems.append("the periodic heartbeat never ran")
    return problems


def stop(proc: subprocess.Popen[bytes], name: str, sig: signal.Signals = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    # uvicorn re-raises the signal once it has shut down gracefully: -SIGTERM is a clean stop.
    how = "a clean stop" if code in (0, -sig.value) else "killed"
    print(f"{name} stopped with {sig.name}, exit code {code} ({how})", flush=True)
    return 0 if code in (0, -sig.value) else code


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SERVERS:
        print(f"usage: python webdemo.py {{{'|'.join(SERVERS)}}}", file=sys.stderr)
        return 2
    kind = argv[0]
    package = f"{kind}_app"
    workdir = tempfile.mkdtemp(prefix=f"huey-{kind}-demo-")
    env = dict(os.environ, HUEY_URL=f"sqlite:///{workdir}/huey.db", PYTHONUNBUFFERED="1")
    port = free_port()
    consumer_cmd = [sys.executable, "-m", "huey_core.cli", "consume", f"{package}.tasks.huey"]
    consumer_cmd += ["-w", "2"]
    server_cmd = [sys.executable, *SERVERS[kind], str(port)]
    print(f"backend: HUEY_URL={env['HUEY_URL']}")
    print("$ huey consume", " ".join(consumer_cmd[4:]), flush=True)
    log = open(os.path.join(workdir, "processes.log"), "w")  # noqa: SIM115 - closed below
    consumer = subprocess.Popen(consumer_cmd, cwd=HERE, env=env, stdout=log, stderr=log)
    print("$", " ".join(["python", *SERVERS[kind], str(port)]), flush=True)
    server = subprocess.Popen(server_cmd, cwd=HERE, env=env, stdout=log, stderr=log)
    codes = []
    try:
        client = Client(f"http://127.0.0.1:{port}")
        client.wait_until_up(server)
        problems = scenario(client)
    finally:
        # Flask's development server stops on Ctrl-C (SIGINT); uvicorn on SIGTERM.
        codes.append(stop(server, "web server", STOP_SIGNALS[kind]))
        codes.append(stop(consumer, "consumer"))
        log.close()
    for problem in problems:
        print("PROBLEM:", problem)
    if problems:
        print(f"process logs: {log.name}")
        return 1
    print(f"{kind} demo: every answer as expected")
    return 0 if codes == [0, 0] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
