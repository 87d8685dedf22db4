"""`make dashboard-demo`: a real consumer, the dashboard, and a trickle of work to watch.

1. Start `huey consume demoapp.huey -w 2 --metrics-port 9808` on the embedded SQLite default.
2. Start `huey dashboard demoapp.huey` on http://127.0.0.1:8765/ and print its address.
3. Every couple of seconds enqueue some tasks: quick ones, slow ones, one that fails before its
   retry succeeds, now and then one scheduled for later and a message nobody can decode (it
   becomes a dead letter: requeue or purge it from the dashboard).
4. On Ctrl-C (or after --duration seconds) stop both with SIGTERM and exit 0.

Options: --port (dashboard, 0 for a free one), --metrics-port, --duration.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))


def huey_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "huey")
    if os.path.exists(script):
        return [script]
    found = shutil.which("huey")
    return [found] if found else [sys.executable, "-m", "huey_core.cli"]


def start_dashboard(port: int) -> tuple[subprocess.Popen[str], str]:
    """The dashboard process and the address it printed (its log goes on to our stderr)."""
    proc = subprocess.Popen(
        huey_command() + ["dashboard", "demoapp.huey", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    url = ""
    for line in proc.stderr:
        sys.stderr.write(line)
        match = re.search(r"(http://\S+/)", line)
        if match:
            url = match.group(1)
            break
    if not url:
        raise SystemExit(f"the dashboard did not start (exit code {proc.wait()})")
    threading.Thread(target=shutil.copyfileobj, args=(proc.stderr, sys.stderr), daemon=True).start()
    return proc, url


def feed(stop: threading.Event) -> None:
    """Enqueue a little of everything until `stop` is set."""
    from demoapp import add, flaky, huey, slow_square

    for n in itertools.count():
        for i in range(5):
            add(n, i)
        slow_square(n % 7, 1.5)
        if n % 3 == 0:
            flaky(f"job-{os.getpid()}-{n}")  # fails once, succeeds on its retry
        if n % 5 == 0:
            add.schedule((n, n), delay=45)
        if n % 10 == 4:
            huey.storage.queue.enqueue(b"a message nobody can decode", 0)
        if stop.wait(2.0):
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="dashboard port (0: a free one)")
    parser.add_argument("--metrics-port", type=int, default=9808, help="consumer metrics port")
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    options = parser.parse_args()
    os.chdir(os.path.dirname(os.path.abspath(sys.argv[0])) or HERE)
    sys.path.insert(0, os.getcwd())
    from demoapp import huey

    huey.flush()  # a fresh start: nothing left over from an earlier run
    consumer = subprocess.Popen(
        huey_command()
        + ["consume", "demoapp.huey", "-w", "2", "--metrics-port", str(options.metrics_port)]
    )
    dashboard, url = start_dashboard(options.port)
    if consumer.poll() is not None:
        dashboard.terminate()
        raise SystemExit(f"the consumer exited with code {consumer.returncode}; see above")
    print(f"\n  dashboard: {url}\n  metrics:   http://127.0.0.1:{options.metrics_port}/metrics"
          "\n  Ctrl-C stops the demo.\n", flush=True)  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    feeder = threading.Thread(target=feed, args=(stop,), daemon=True)
    feeder.start()
    try:
        stop.wait(options.duration)
    except KeyboardInterrupt:
        pass
    stop.set()
    feeder.join(10)
    codes = []
    for proc in (dashboard, consumer):
        proc.send_signal(signal.SIGTERM)
        try:
            codes.append(proc.wait(timeout=60))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    print(f"stopped: dashboard exit code {codes[0]}, consumer exit code {codes[1]}", flush=True)
    return 0 if codes == [0, 0] else 1


if __name__ == "__main__":
    sys.exit(main())
