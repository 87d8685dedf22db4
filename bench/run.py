"""Benchmark: the toolkit against huey 3.5.4 on the same backend, as users run them.

    .venv/bin/python bench/run.py                       # everything, writes bench/RESULTS.md
    .venv/bin/python bench/run.py --backends redis --runs 3 --tasks 5000 --quick

Processes are laid out as users run them: the producer is a process of its own
(`benchapp.py produce`), the consumer is `huey consume benchapp.huey` for the toolkit and
`huey_consumer benchapp.huey` (python -m huey.bin.huey_consumer) for huey, with their default
options (polling backends poll as users' consumers do). Each figure is the median of `--runs`
runs, the two implementations alternating (ours first in even runs, huey first in odd ones), in
one invocation, so both see the same machine. Completions are counted from the tasks' own logs
(see benchapp.py), never from the storage under test.

Figures, per backend:
- drain: tasks/s from the first completion to the last of a full queue (start-up excluded), for
  1 and 4 worker threads and 2 worker processes, with a no-op task and with a task that does one
  Redis INCR of its own;
- start-up: seconds from spawning the consumer to its first completion (queue already full);
- enqueue: tasks/s of single calls from one producer, and of the bulk path (`task.map`);
- latency: enqueue-to-start milliseconds to an idle consumer, median and p99 over `--samples`;
- rss: the consumer's resident memory (MiB, workers included) after 1,000 and after
  `--rss-tasks` tasks.
The memory backend keeps its data inside one process, so its producer and consumer share one
(benchapp.py inproc): drain and enqueue only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PY = sys.executable
IMPLS = ("ours", "huey")
WORKERS = {
    "1 thread": ["-w", "1"],
    "4 threads": ["-w", "4"],
    "2 processes": ["-w", "2", "-k", "process"],
}
WORKLOADS = ("noop", "incr")


class Bench:
    """One implementation on one backend: a fresh instance name and directory per run."""

    def __init__(self, impl: str, backend: str) -> None:
        self.impl = impl
        self.backend = backend
        self.dir = Path(tempfile.mkdtemp(prefix=f"huey-bench-{impl}-"))
        self.name = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = dict(
            os.environ,
            BENCH_IMPL=impl,
            BENCH_BACKEND=backend,
            BENCH_NAME=self.name,
            BENCH_DIR=str(self.dir),
            PYTHONPATH=str(HERE),
            PYTHONUNBUFFERED="1",
        )
        # Users run from compiled modules (pip compiles site-packages); a machine that sets
        # PYTHONDONTWRITEBYTECODE would recompile the editable toolkit at every start while
        # huey loads its compiled files. main() compiles both before the first run.
        for key in ("HUEY_URL", "HUEY_BACKEND", "PYTHONDONTWRITEBYTECODE"):
            self.env.pop(key, None)

    def app(self, *args: str, timeout: float = 900) -> dict[str, Any]:
        proc = subprocess.run(
            # Imported, not run as __main__: task names must match what the consumer registers.
            [PY, "-c", "from benchapp import main; main()", *args],
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{self.impl}/{self.backend} {args[0]} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1]) if args[0] != "flush" else {}

    def produce(self, task: str, count: int, mode: str = "single", **extra: Any) -> float:
        """Enqueue `count` tasks from a producer process; tasks per second of its calls."""
        args = ["produce", "--task", task, "--count", str(count), "--mode", mode]
        for key, value in extra.items():
            args += [f"--{key}", str(value)]
        out = self.app(*args)
        return count / out["elapsed"]

    def start_consumer(self, workers: list[str]) -> subprocess.Popen[bytes]:
        if self.impl == "ours":
            command = [PY, "-m", "huey_core.cli", "consume", "benchapp.huey", *workers, "-n"]
        else:
            command = [PY, "-m", "huey.bin.huey_consumer", "benchapp.huey", *workers, "-n"]
        log = open(self.dir / "consumer.log", "ab")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(command, env=self.env, cwd=self.dir, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        proc.log = log  # type: ignore[attr-defined]
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        proc.log.close()  # type: ignore[attr-defined]

    def completions(self) -> list[tuple[float, int, float]]:
        rows = []
        for path in self.dir.glob("done-*.log"):
            for line in path.read_text().splitlines():
                started, i, enqueued = line.split()
                rows.append((float(started), int(i), float(enqueued)))
        return rows

    def count(self) -> int:
        return sum(p.read_bytes().count(b"\n") for p in self.dir.glob("done-*.log"))

    def wait_for(self, total: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < total:
            if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
                log = (self.dir / "consumer.log").read_text(errors="replace")[-2000:]
                raise SystemExit(
                    f"{self.impl}/{self.backend}: {self.count()} of {total} done\n{log}"
                )
            time.sleep(0.02)

    def reset(self) -> None:
        # Truncate, not unlink: the consumer keeps its log open (O_APPEND writes land at the
        # new end).
        for path in self.dir.glob("done-*.log"):
            path.write_bytes(b"")

    def close(self) -> None:
        try:
            self.app("flush")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants (worker processes), in MiB."""
    total = 0
    for proc in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# -- one measurement each ----------------------------------------------------------------------


def drain(impl: str, backend: str, workers: str, workload: str, tasks: int) -> dict[str, float]:
    """Fill the queue from a producer process, then time a fresh consumer draining it."""
    bench = Bench(impl, backend)
    try:
        if backend == "memory":
            out = bench.app("inproc", "--task", workload, "--count", str(tasks), "--workers",
                            WORKERS[workers][1])  # fmt: skip
            spawned, enqueue = out["spawned"], tasks / out["enqueue_elapsed"]
        else:
            enqueue = bench.produce(workload, tasks)
            spawned = time.time()
            proc = bench.start_consumer(WORKERS[workers])
            try:
                bench.wait_for(tasks, proc, timeout=900)
            finally:
                bench.stop(proc)
        starts = sorted(started for started, _, _ in bench.completions())
        return {
            "drain": (len(starts) - 1) / (starts[-1] - starts[0]),
            "startup": starts[0] - spawned,
            "enqueue": enqueue,
        }
    finally:
        bench.close()


def bulk(impl: str, backend: str, tasks: int) -> dict[str, float]:
    bench = Bench(impl, backend)
    try:
        return {"bulk": bench.produce("noop", tasks, "bulk")}
    finally:
        bench.close()


def latency(impl: str, backend: str, samples: int) -> dict[str, float]:
    """Enqueue-to-start times to an idle consumer: one task every 20 ms from a producer."""
    bench = Bench(impl, backend)
    proc = bench.start_consumer(WORKERS["1 thread"])
    try:
        bench.produce("noop", 1)  # the consumer is up and has run a task
        bench.wait_for(1, proc, timeout=60)
        time.sleep(1.0)  # and is idle, waiting for work
        bench.reset()
        bench.produce("noop", samples, interval=0.02, start=1)
        bench.wait_for(samples, proc, timeout=300)
        waits = sorted((started - enqueued) * 1000 for started, _, enqueued in bench.completions())
        return {"p50": statistics.median(waits), "p99": waits[max(0, int(len(waits) * 0.99) - 1)]}
    finally:
        bench.stop(proc)
        bench.close()


def rss(impl: str, backend: str, total: int) -> dict[str, float]:
    """Consumer RSS after 1,000 tasks and after `total`: memory must not grow with work."""
    bench = Bench(impl, backend)
    proc = bench.start_consumer(WORKERS["1 thread"])
    try:
        bench.produce("noop", 1000)
        bench.wait_for(1000, proc, timeout=300)
        time.sleep(0.5)
        first = rss_mib(proc.pid)
        done = 1000
        while done < total:  # in chunks, so the queue (not the consumer) stays small
            chunk = min(20000, total - done)
            bench.produce("noop", chunk, start=done)
            done += chunk
            bench.wait_for(done, proc, timeout=1800)
        time.sleep(0.5)
        return {"rss_1k": first, "rss_total": rss_mib(proc.pid)}
    finally:
        bench.stop(proc)
        bench.close()


# -- the run -----------------------------------------------------------------------------------


def alternate(runs: int, measure: Callable[[str], dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median of each figure over `runs` runs per implementation, alternating which goes first."""
    samples: dict[str, list[dict[str, float]]] = {impl: [] for impl in IMPLS}
    for n in range(runs):
        for impl in IMPLS if n % 2 == 0 else tuple(reversed(IMPLS)):
            samples[impl].append(measure(impl))
    return {
        impl: {key: statistics.median(s[key] for s in runs_) for key in runs_[0]}
        for impl, runs_ in samples.items()
    }


def compile_sources() -> None:
    """Byte-compile the toolkit's packages and huey, as an installed package would be."""
    import compileall
    import importlib.util

    for name in ("huey_core", "huey_memory", "huey_redis", "huey_sql", "huey"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                compileall.compile_dir(location, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="redis,postgres,sqlite,memory")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rss-tasks", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true",
                        help="1 thread and 4 threads, no-op task only, no RSS run")  # fmt: skip
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    compile_sources()
    started = time.time()
    rows: list[tuple[str, str, str, float, float, bool]] = []

    def add(backend: str, metric: str, config: str, results: dict[str, dict[str, float]],
            key: str, higher_is_better: bool) -> None:  # fmt: skip
        row = (backend, metric, config, results["ours"][key], results["huey"][key],
               higher_is_better)  # fmt: skip
        rows.append(row)
        print(format_row(row), flush=True)

    for backend in args.backends.split(","):
        configs = ["1 thread", "4 threads"] if args.quick else list(WORKERS)
        workloads = ("noop",) if args.quick else WORKLOADS
        if backend == "memory":
            configs = ["1 thread", "4 threads"]  # worker processes would not share the data
        for workers in configs:
            for workload in workloads:
                res = alternate(args.runs, lambda impl, b=backend, w=workers, t=workload:
                                drain(impl, b, w, t, args.tasks))  # fmt: skip
                label = f"{workers}, {'no-op' if workload == 'noop' else 'Redis INCR'} task"
                add(backend, "drain (tasks/s)", label, res, "drain", True)
                if backend != "memory":
                    add(backend, "start-up (s)", label, res, "startup", False)
                if workers == "1 thread" and workload == "noop":
                    add(backend, "enqueue (tasks/s)", "single calls", res, "enqueue", True)
        if backend == "memory":
            continue
        res = alternate(args.runs, lambda impl, b=backend: bulk(impl, b, args.tasks))
        add(backend, "enqueue (tasks/s)", "bulk (map)", res, "bulk", True)
        res = alternate(args.runs, lambda impl, b=backend: latency(impl, b, args.samples))
        add(backend, "latency (ms)", f"median of {args.samples}", res, "p50", False)
        add(backend, "latency (ms)", f"p99 of {args.samples}", res, "p99", False)
        if not args.quick:
            res = alternate(1, lambda impl, b=backend: rss(impl, b, args.rss_tasks))
            add(backend, "consumer RSS (MiB)", "after 1,000 tasks", res, "rss_1k", False)
            add(backend, "consumer RSS (MiB)", f"after {args.rss_tasks:,} tasks", res,
                "rss_total", False)  # fmt: skip
    write(args, rows, time.time() - started)


def format_row(row: tuple[str, str, str, float, float, bool]) -> str:
    backend, metric, config, ours, theirs, higher = row
    ratio = ours / theirs if higher else theirs / ours
    return f"| {backend} | {metric} | {config} | {ours:,.2f} | {theirs:,.2f} | {ratio:.2f}x |"


def write(args: argparse.Namespace, rows: list[Any], seconds: float) -> None:
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Benchmark results ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
        f"{seconds / 60:.0f} min)",
        "",
        f"Command: `{command.strip()}` ({args.tasks} tasks per drain, median of {args.runs} runs "
        "per figure, implementations alternating).",
        "",
        "The toolkit against huey 3.5.4 on the same backend, in the same run: the producer in a "
        "process of its own, the consumer started as `huey consume` / `huey_consumer` with "
        "default options. The ratio is above 1.00x when the toolkit is better (faster rate, "
        "shorter start-up or latency, less memory). See the docstring of bench/run.py for how "
        "each figure is taken.",
        "",
        "| backend | metric | configuration | toolkit | huey | ratio |",
        "|---|---|---|---|---|---|",
        *[format_row(row) for row in rows],
        "",
    ]
    Path(args.output).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
