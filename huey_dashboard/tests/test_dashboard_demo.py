"""`make dashboard-demo` (examples/dashboard_demo.py): one command starts a consumer and the
dashboard, feeds them work, and stops both cleanly."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from huey_core.testing.apps import wait_for

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_demo_serves_a_dashboard_over_a_busy_consumer(tmp_path: Path) -> None:
    for name in ("demoapp.py", "dashboard_demo.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)  # its SQLite file lands in tmp_path
    metrics = free_port()
    demo = subprocess.Popen(
        [sys.executable, "dashboard_demo.py", "--port", "0", "--metrics-port", str(metrics),
         "--duration", "12"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "dashboard: http://" in line:
                break
        found = re.findall(r"dashboard: (http://\S+)", "".join(lines))
        assert found, "".join(lines)
        url = found[0]

        def finished() -> int:
            with urllib.request.urlopen(url + "api/overview", timeout=10) as response:
                return int(json.load(response)["charts"]["finished"])

        assert wait_for(lambda: finished() >= 5, 30, 0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as r:
            assert (
                'huey_task_events_total{huey="demo",status="finished",task="add"}'
                in r.read().decode()
            )
        rest, _ = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, "".join(lines) + rest
    assert "dashboard exit code 0, consumer exit code 0" in rest
