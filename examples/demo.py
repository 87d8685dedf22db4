"""The README's first command (`make demo`): a real consumer process drains some example tasks.

1. Enqueue a batch of tasks of demoapp.py on the embedded SQLite default (./huey.db).
2. Start `huey consume demoapp.huey -w 2` as a separate process.
3. Wait for every result and print them.
4. Stop the consumer with SIGTERM (it finishes what it runs and exits 0) and exit 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def consumer_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "huey")
    if os.path.exists(script):
        return [script]
    found = shutil.which("huey")
    return [found] if found else [sys.executable, "-m", "huey_core.cli"]


def main() -> int:
    os.chdir(HERE)
    sys.path.insert(0, HERE)
    from demoapp import add, flaky, huey, slow_square

    from huey_core import TaskException

    huey.flush()  # a fresh start: nothing left over from an earlier run
    print(f"storage: {huey.storage.describe()}")
    t0 = time.monotonic()
    adds = [add(i, i * 10) for i in range(10)]
    squares = [slow_square(i, 1.0) for i in range(4)]
    retried = flaky("demo-job")
    later = add.schedule((100, 200), delay=2)
    print(
        f"enqueued {len(adds) + len(squares) + 1} tasks and scheduled 1 for 2 s from now; "
        f"queue size {huey.pending_count()}"
    )

    command = consumer_command() + ["consume", "demoapp.huey", "-w", "2"]
    print("starting the consumer:", " ".join(["huey"] + command[-4:]), flush=True)
    consumer = subprocess.Popen(command, cwd=HERE)
    try:
        print("add:          ", [r.get(blocking=True, timeout=60) for r in adds])
        print(
            "slow_square:  ",
            [r.get(blocking=True, timeout=60) for r in squares],
            "(4 x 1 s on 2 workers)",
        )
        try:
            print("flaky:        ", retried.get(blocking=True, timeout=60))
        except TaskException as exc:  # the first attempt's error is stored, as in huey
            print("flaky:         first attempt failed:", exc)
            retried.reset()  # forget the cached error and wait for the retry
            print("flaky:        ", retried.get(blocking=True, timeout=60), "(after the retry)")
        print("scheduled add:", later.get(blocking=True, timeout=60))
        deadline = time.monotonic() + 30
        while (huey.pending_count() or huey.storage.queue.leases()) and time.monotonic() < deadline:
            time.sleep(0.1)
        print(
            f"queue drained in {time.monotonic() - t0:.1f} s "
            f"(queue {huey.pending_count()}, schedule {huey.scheduled_count()})",
            flush=True,
        )
    finally:
        consumer.send_signal(signal.SIGTERM)
        try:
            code = consumer.wait(timeout=60)
        except subprocess.TimeoutExpired:
            consumer.kill()
            code = consumer.wait()
    print(f"consumer stopped with SIGTERM, exit code {code}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
