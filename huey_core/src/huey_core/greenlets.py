"""Greenlet workers (`huey consume -k greenlet`): gevent, monkey-patched before anything else.

gevent makes blocking calls cooperative by replacing socket, threading, select and time.sleep
with its own ("monkey-patching"). That has to happen before the app, its drivers (redis, psycopg)
and anything that creates a lock or opens a socket are imported: a lock or a socket made before
the patch blocks every greenlet at once. By the time the `huey` and `huey_consumer` commands read
their options they have imported huey_core, so a command line that asks for greenlet workers
starts itself again (os.execv: same process id, arguments and environment) in an interpreter
whose first act is `gevent.monkey.patch_all()`. There the consumer runs its workers, scheduler
and heartbeat as threads, and every thread is a greenlet.

huey 3.5's `huey_consumer` leaves the patching to the user and only warns when it is missing.
Embedding a consumer (`huey.create_consumer(worker_type="greenlet")`) is the same here: patch at
the very top of the program; unpatched, the workers run as OS threads and a warning says so.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from huey_core.exceptions import ConfigurationError

__all__ = [
    "INSTALL_HINT",
    "check_ready",
    "patched",
    "relaunch_patched",
    "requested",
    "start_timeout",
]

logger = logging.getLogger("huey.consumer")

INSTALL_HINT = 'greenlet workers need gevent: pip install "huey-core[gevent]"'

# Run by `python -c` with argv [-c, entry, program, *args]: patch first, then the command.
# Starting twice takes a moment: a SIGTERM before the consumer installs its own handler finds
# nothing running yet, so it ends the process cleanly (exit 0) instead of killing it.
_BOOT = """\
import signal
import sys
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
from gevent import monkey
monkey.patch_all()
entry = sys.argv[1]
sys.argv = sys.argv[2:]
import huey_core.cli
getattr(huey_core.cli, entry)()
"""


def requested(args: Sequence[str]) -> bool:
    """True when command-line arguments (program name excluded) ask for greenlet workers."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-k", "--worker-type") and args[i + 1 : i + 2] == ["greenlet"]:
            return True
        if arg in ("-kgreenlet", "--worker-type=greenlet"):
            return True
    return False


def available() -> bool:
    """True when gevent imports (importing it patches nothing)."""
    try:
        import gevent.monkey  # noqa: F401
    except ImportError:
        return False
    return True


def patched() -> bool:
    """True when gevent has patched this interpreter's socket and threading modules."""
    if "gevent.monkey" not in sys.modules:
        return False
    from gevent import monkey

    return bool(monkey.is_module_patched("socket") and monkey.is_module_patched("threading"))


def start_timeout(seconds: float, exc: BaseException) -> Any:
    """A started gevent.Timeout that raises `exc` in the calling greenlet; `.close()` it."""
    import gevent

    timeout = gevent.Timeout(seconds, exc)
    timeout.start()
    return timeout


def relaunch_patched(entry: str, argv: Sequence[str] | None = None) -> None:
    """Start the command again under gevent when it asks for greenlet workers.

    `entry` names the function of huey_core.cli to run (main or consumer_main). Returns (does
    nothing) when greenlets were not asked for, when this interpreter is patched already, or
    when gevent is missing (the consumer then refuses -k greenlet in one line).
    """
    argv = list(sys.argv if argv is None else argv)
    args = argv[1:]
    if entry == "main":  # `huey ...`: only `huey consume` runs workers
        args = args[args.index("consume") + 1 :] if "consume" in args else []
    if not requested(args) or patched() or not available():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-c", _BOOT, entry, *argv])


def check_ready() -> None:
    """Before a greenlet consumer starts: gevent installed (else refuse), patched (else warn)."""
    if not available():
        raise ConfigurationError(INSTALL_HINT)
    if not patched():
        logger.warning(
            "greenlet workers without gevent's monkey-patching run as OS threads; call "
            "gevent.monkey.patch_all() before importing anything else (huey consume -k "
            "greenlet does it for you)"
        )
