"""Benchmark: huey toolkit against huey on the same backend, in one run, reported as ratios.

    .venv/bin/python bench/run.py                 # every backend, writes bench/RESULTS.md
    .venv/bin/python bench/run.py --backends redis --tasks 5000

Each (implementation, backend) pair runs in its own subprocess so peak RSS is its own. Measured:
- enqueue: tasks/s a producer thread enqueues (results on, as users run it);
- drain 1w / 4w: tasks/s an in-process consumer with 1 and 4 worker threads drains a full queue;
- latency: median and p95 ms from enqueue to task start with an idle consumer (1 worker);
- rss: peak resident memory of the subprocess in MiB.
Both connect to their storage before the clock starts (huey builds it in its constructor, the
toolkit on first use). Both consumers run with the same polling settings (initial delay 0.1 s,
backoff 1.15, max delay 1 s) so polling backends are compared like for like; blocking backends
don't poll.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# backend -> (ours description, huey class description)
PAIRS = {
    "sqlite": ("sql (SQLite file)", "SqliteHuey"),
    "postgres": ("sql (PostgreSQL)", "PostgresHuey"),
    "redis": ("redis", "RedisHuey"),
    "redis-priority": ("redis", "PriorityRedisHuey"),
}


class Probe:
    """Counts executions and records when each task started, across worker threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.started: dict[int, float] = {}
        self.done = threading.Event()
        self.target = 0

    def hit(self, n: int) -> None:
        now = time.perf_counter()
        with self.lock:
            self.count += 1
            self.started[n] = now
            if self.count >= self.target:
                self.done.set()

    def expect(self, target: int) -> None:
        with self.lock:
            self.count = 0
            self.started.clear()
            self.target = target
            self.done.clear()


PROBE = Probe()


def build(impl: str, backend: str, tmp: str):  # type: ignore[no-untyped-def]
    name = f"bench-{uuid.uuid4().hex[:8]}"
    if impl == "ours":
        from huey_core import Huey

        url = {
            "sqlite": f"sqlite:///{tmp}/ours.db",
            "postgres": PG_URL,
            "redis": REDIS_URL,
            "redis-priority": REDIS_URL,
        }[backend]
        huey = Huey(name, url=url)
    else:
        import huey as upstream

        if backend == "sqlite":
            huey = upstream.SqliteHuey(name, filename=f"{tmp}/huey.db")
        elif backend == "postgres":
            huey = upstream.PostgresHuey(name, dsn=PG_URL.replace("+psycopg", ""))
        elif backend == "redis":
            huey = upstream.RedisHuey(name, url=REDIS_URL)
        else:
            huey = upstream.PriorityRedisHuey(name, url=REDIS_URL)

    @huey.task()
    def work(n: int) -> None:
        PROBE.hit(n)

    return huey, work


def consumer_for(huey, workers: int):  # type: ignore[no-untyped-def]
    return huey.create_consumer(
        workers=workers, periodic=False, initial_delay=0.1, backoff=1.15, max_delay=1.0
    )


def run_one(impl: str, backend: str, tasks: int, samples: int) -> dict[str, float]:
    tmp = tempfile.mkdtemp(prefix="huey-bench-")
    huey, work = build(impl, backend, tmp)
    out: dict[str, float] = {}
    # Connect (and, for ours, import and build the backend, create tables) before timing, for
    # both: huey builds its storage in the constructor, the toolkit on first use.
    huey.pending_count()

    t0 = time.perf_counter()
    for i in range(tasks):
        work(i)
    out["enqueue"] = tasks / (time.perf_counter() - t0)

    for workers in (1, 4):
        if workers == 4:
            for i in range(tasks):
                work(i)
        PROBE.expect(tasks)
        consumer = consumer_for(huey, workers)
        t0 = time.perf_counter()
        consumer.start()
        finished = PROBE.done.wait(600)
        elapsed = time.perf_counter() - t0
        consumer.stop(graceful=True)
        if not finished:
            raise SystemExit(f"{impl}/{backend}: drain with {workers} workers did not finish")
        out[f"drain{workers}"] = tasks / elapsed

    consumer = consumer_for(huey, 1)
    consumer.start()
    time.sleep(1.0)  # let the worker reach its idle wait
    latencies = []
    for i in range(samples):
        PROBE.expect(1)
        t0 = time.perf_counter()
        work(i)
        if not PROBE.done.wait(30):
            raise SystemExit(f"{impl}/{backend}: latency sample {i} timed out")
        latencies.append((PROBE.started[i] - t0) * 1000)
        time.sleep(0.05)
    consumer.stop(graceful=True)
    out["latency_ms"] = statistics.median(latencies)
    out["latency_p95_ms"] = sorted(latencies)[int(len(latencies) * 0.95) - 1]
    huey.flush()
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def fmt_ratio(ours: float, theirs: float, higher_is_better: bool) -> str:
    ratio = ours / theirs if higher_is_better else theirs / ours
    return f"{ratio:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres,redis,redis-priority")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--one", nargs=2, metavar=("IMPL", "BACKEND"), help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()

    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.tasks, args.samples)))
        return

    rows = []
    for backend in args.backends.split(","):
        results = {}
        for impl in ("ours", "huey"):
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    impl,
                    backend,
                    "--tasks",
                    str(args.tasks),
                    "--samples",
                    str(args.samples),
                ],
                capture_output=True,
                text=True,
                cwd=HERE,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{impl}/{backend} failed:\n{proc.stderr[-3000:]}")
            results[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(backend, impl, results[impl], flush=True)
        rows.append((backend, results["ours"], results["huey"]))

    lines = [
        f"# Benchmark results ({time.strftime('%Y-%m-%d')}, {args.tasks} tasks, "
        f"{args.samples} latency samples, {os.cpu_count()} cores)",
        "",
        "Ratios are ours relative to huey 3.5 on the same backend in the same run: above 1.00x "
        "means the toolkit is better (faster rate, lower latency, less memory).",
        "",
        "| backend | huey class | metric | toolkit | huey | ratio |",
        "|---|---|---|---|---|---|",
    ]
    metrics = [
        ("enqueue", "tasks/s", True),
        ("drain1", "tasks/s", True),
        ("drain4", "tasks/s", True),
        ("latency_ms", "ms (median)", False),
        ("latency_p95_ms", "ms (p95)", False),
        ("rss_mib", "MiB peak RSS", False),
    ]
    for backend, ours, theirs in rows:
        for key, unit, higher in metrics:
            lines.append(
                f"| {backend} | {PAIRS[backend][1]} | {key} ({unit}) | {ours[key]:.1f} | "
                f"{theirs[key]:.1f} | {fmt_ratio(ours[key], theirs[key], higher)} |"
            )
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
