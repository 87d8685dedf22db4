"""Users install from wheels with extras: each extra must bring exactly its backends and a working CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from importlib.metadata import version as dist_version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = [
    "huey_core",
    "huey_memory",
    "huey_redis",
    "huey_sql",
    "huey_dashboard",
    "huey_django",
]


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out)]
        + [str(ROOT / d) for d in DISTRIBUTIONS],
        check=True,
    )
    return out


def make_venv(tmp: Path, wheelhouse: Path, requirement: str) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "--find-links", str(wheelhouse), requirement],
        check=True,
    )
    return venv


def listed_backends(venv: Path) -> set[str]:
    out = subprocess.run(
        [str(venv / "bin/huey"), "backends"], check=True, capture_output=True, text=True
    ).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()} & {
        "memory",
        "redis",
        "sql",
    }


@pytest.mark.parametrize(
    ("extra", "expected", "driver"),
    [
        ("redis", {"memory", "redis"}, "redis"),
        ("sql", {"memory", "sql"}, "sqlalchemy"),
        ("postgres", {"memory", "sql"}, "psycopg"),
        ("mysql", {"memory", "sql"}, "pymysql"),
        ("all", {"memory", "redis", "sql"}, "hiredis"),
    ],
)
def test_extra_installs_its_backends(
    extra: str, expected: set[str], driver: str, wheelhouse: Path, tmp_path: Path
) -> None:
    venv = make_venv(tmp_path, wheelhouse, f"huey-core[{extra}]")
    assert listed_backends(venv) == expected
    subprocess.run([str(venv / "bin/python"), "-c", f"import {driver}"], check=True)


BARE_SCRIPT = """
from huey_core import Huey

tests = Huey("tests", immediate=True)


@tests.task()
def add(a, b):
    return a + b


print("immediate:", add(1, 2)())
app = Huey("my-app")  # the SQLite default, which needs huey-sql


@app.task()
def mul(a, b):
    return a * b


mul(6, 7)
"""


def test_bare_core_runs_immediate_mode_and_names_the_missing_extra(
    wheelhouse: Path, tmp_path: Path
) -> None:
    """`pip install huey-core` alone: the memory backend comes with it, immediate mode works,
    and the missing default store is one line at Huey(...) naming the extra, then raised once
    at the first enqueue (no second report through a failed event)."""
    venv = make_venv(tmp_path, wheelhouse, "huey-core")
    assert listed_backends(venv) == {"memory"}
    (tmp_path / "bare.py").write_text(BARE_SCRIPT)
    out = subprocess.run(
        [str(venv / "bin/python"), "bare.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.stdout == "immediate: 3\n"
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    hint = 'pip install "huey-core[sql]"'
    assert lines[0].startswith("Huey('my-app'): the default storage") and hint in lines[0]
    assert lines[-1].startswith("huey_core.exceptions.UnknownBackend: ") and hint in lines[-1]
    assert out.stderr.count(hint) == 2 and "could not emit" not in out.stderr
    version = subprocess.run(
        [str(venv / "bin/huey"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert f"huey-core {dist_version('huey-core')} (Python" in version
    assert f"memory (huey-memory {dist_version('huey-memory')})" in version


def test_redis_extra_runs_a_consumer(wheelhouse: Path, tmp_path: Path, redis_url: str) -> None:
    venv = make_venv(tmp_path, wheelhouse, "huey-core[redis]")
    name = f"wheel-{uuid.uuid4().hex[:8]}"
    (tmp_path / "wheelapp.py").write_text(
        textwrap.dedent(
            f"""
            from huey_core import Huey
            huey = Huey({name!r}, backend="redis", url={redis_url!r})

            @huey.task()
            def mul(a, b):
                return a * b
            """
        )
    )
    python = str(venv / "bin/python")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    consumer = subprocess.Popen(
        [
            str(venv / "bin/huey"),
            "consume",
            "wheelapp.huey",
            "--backend",
            "redis",
            "--url",
            redis_url,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        script = "import wheelapp; print(wheelapp.mul(6, 7).get(blocking=True, timeout=30))"
        out = subprocess.run(
            [python, "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "42"
    finally:
        consumer.terminate()
        try:
            code = consumer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            consumer.kill()
            raise
        time.sleep(0)
    assert code == 0, consumer.stderr.read().decode() if consumer.stderr else ""


def test_dashboard_extra_adds_the_command_with_its_templates(
    wheelhouse: Path, tmp_path: Path
) -> None:
    venv = make_venv(tmp_path, wheelhouse, "huey-core[sql,dashboard]")
    (tmp_path / "wheelapp.py").write_text("from huey_core import Huey\nhuey = Huey('wheel')\n")
    script = textwrap.dedent(
        """
        import wheelapp
        from starlette.testclient import TestClient
        from huey_dashboard import Settings, create_app

        with TestClient(create_app(wheelapp.huey, Settings()), base_url="http://127.0.0.1") as c:
            page, css = c.get("/"), c.get("/static/dashboard.js")
            print(page.status_code, "queued" in page.text, css.status_code)
        """
    )
    help_text = subprocess.run([str(venv / "bin/huey"), "dashboard", "--help"], cwd=tmp_path,
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "--read-only" in help_text
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "httpx2"], check=True)
    out = subprocess.run([str(venv / "bin/python"), "-c", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["200", "True", "200"]  # templates and static files shipped


def test_django_extra_gives_a_project_run_huey(wheelhouse: Path, tmp_path: Path) -> None:
    venv = make_venv(tmp_path, wheelhouse, "huey-core[django,sql]")
    (tmp_path / "wheelsite.py").write_text(
        'SECRET_KEY = "x"\nINSTALLED_APPS = ["huey_django"]\nHUEY = {"name": "wheel"}\n'
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "DJANGO_SETTINGS_MODULE": "wheelsite"}
    out = subprocess.run(
        [str(venv / "bin/django-admin"), "run_huey", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "--worker-type" in out.stdout and "--scheduler-interval" in out.stdout
