"""The application both implementations run in the benchmark, and its producer.

Consumers import it as `benchapp.huey` (`huey consume benchapp.huey` for the toolkit,
`huey_consumer benchapp.huey` for huey 3.5); the benchmark's producer imports it too (a script
run as __main__ would register its tasks under another name):

    python -c "from benchapp import main; main()" produce --task noop --count 5000

Configured by environment variables, so the consumer and the producer build the same instance:
BENCH_IMPL (ours | huey), BENCH_BACKEND (redis | postgres | sqlite | memory), BENCH_NAME,
BENCH_DIR (a directory for the SQLite file and the completion logs), BENCH_REDIS_URL,
BENCH_PG_URL.

Every task appends one line "<start time> <task number> <enqueue time>" to a log of its own
process (one O_APPEND write: lines of concurrent threads never interleave), so completions are
counted exactly, outside the storage under test, and the start of each task is known. The
`incr` task also does one Redis INCR through its own client, because real tasks do I/O; the
`sleep` task waits 2 ms (a call to a slow service), to show that worker threads overlap waits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

ENV = os.environ
IMPL = ENV.get("BENCH_IMPL", "ours")
BACKEND = ENV.get("BENCH_BACKEND", "redis")
NAME = ENV.get("BENCH_NAME", "bench")
DIRECTORY = ENV.get("BENCH_DIR", ".")
REDIS_URL = ENV.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = ENV.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def build() -> Any:
    if IMPL == "ours":
        from huey_core import Huey

        url = {
            "redis": REDIS_URL,
            "postgres": PG_URL,
            "sqlite": f"sqlite:///{DIRECTORY}/ours.db",
            "memory": "memory://",
        }[BACKEND]
        return Huey(NAME, url=url)
    import huey as upstream

    if BACKEND == "redis":
        return upstream.RedisHuey(NAME, url=REDIS_URL)
    if BACKEND == "postgres":
        return upstream.PostgresHuey(NAME, dsn=PG_URL.replace("+psycopg", ""))
    if BACKEND == "sqlite":
        return upstream.SqliteHuey(NAME, filename=f"{DIRECTORY}/huey.db")
    return upstream.MemoryHuey(NAME)


huey = build()

_local = threading.local()
_fd: tuple[int, int] | None = None  # (pid, file descriptor): reopened after a fork


def _record(i: int, enqueued: float) -> None:
    global _fd
    started = time.time()
    pid = os.getpid()
    if _fd is None or _fd[0] != pid:
        path = os.path.join(DIRECTORY, f"done-{pid}.log")
        _fd = (pid, os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    os.write(_fd[1], f"{started:.6f} {i} {enqueued:.6f}\n".encode())


@huey.task()
def noop(i: int, enqueued: float) -> None:
    _record(i, enqueued)


@huey.task()
def incr(i: int, enqueued: float) -> None:
    _record(i, enqueued)
    client = getattr(_local, "redis", None)
    if client is None:
        import redis

        client = _local.redis = redis.Redis.from_url(REDIS_URL)
    client.incr(f"bench:{NAME}:counter")


@huey.task()
def sleep(i: int, enqueued: float) -> None:
    _record(i, enqueued)
    time.sleep(0.002)  # a task that waits on a slow service: threads overlap the waits


def produce(task_name: str, count: int, mode: str, interval: float, start: int) -> dict[str, float]:
    """Enqueue `count` tasks; the producer's own time per call is what is measured."""
    task = {"noop": noop, "incr": incr, "sleep": sleep}[task_name]
    huey.pending_count()  # connect before the clock starts, for both implementations
    t0 = time.perf_counter()
    if mode == "bulk":
        task.map([(i, time.time()) for i in range(start, start + count)])
    else:
        for i in range(start, start + count):
            task(i, time.time())
            if interval:
                time.sleep(interval)
    return {"elapsed": time.perf_counter() - t0, "count": count}


def flush() -> None:
    huey.flush()


def inproc(task_name: str, count: int, workers: int) -> dict[str, float]:
    """The memory backend cannot cross processes: producer and consumer share this one."""
    produced = produce(task_name, count, "single", 0.0, 0)
    consumer = huey.create_consumer(workers=workers, periodic=False)
    t0 = time.time()
    consumer.start()
    deadline = time.monotonic() + 600
    while _count_done() < count and time.monotonic() < deadline:
        time.sleep(0.01)
    consumer.stop()
    return {"enqueue_elapsed": produced["elapsed"], "spawned": t0}


def _count_done() -> int:
    total = 0
    for name in os.listdir(DIRECTORY):
        if name.startswith("done-"):
            with open(os.path.join(DIRECTORY, name), "rb") as f:
                total += f.read().count(b"\n")
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--task", default="noop", choices=["noop", "incr", "sleep"])
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--mode", default="single", choices=["single", "bulk"])
    p.add_argument("--interval", type=float, default=0.0)
    p.add_argument("--start", type=int, default=0)
    sub.add_parser("flush")
    i = sub.add_parser("inproc")
    i.add_argument("--task", default="noop", choices=["noop", "incr"])
    i.add_argument("--count", type=int, default=5000)
    i.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.command == "produce":
        print(json.dumps(produce(args.task, args.count, args.mode, args.interval, args.start)))
    elif args.command == "inproc":
        print(json.dumps(inproc(args.task, args.count, args.workers)))
    else:
        flush()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
