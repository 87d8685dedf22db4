"""The `huey` command line: `consume`, and for operators `info`, `events`, `enqueue`, `flush`,
`dead-letters`, `backends`, plus commands plugins add (docs/consumer.md, docs/events.md).

`huey_consumer IMPORT_PATH` is the same as `huey consume IMPORT_PATH`, for huey users.

Every error a user can cause (a bad option, an import path that does not resolve, an unknown
backend) prints one line on stderr and exits with code 2: no usage block, no traceback.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import click

from huey_core import plugins
from huey_core.consumer import INFLIGHT_PREFIX, MODES, WORKER_TYPES, Consumer
from huey_core.exceptions import ConfigurationError, HueyException

LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s %(processName)s:%(threadName)s %(message)s"
LOGFILE_BYTES = 1024 * 1024
LOGFILE_BACKUPS = 3


class _OneLineErrors:
    """Mixin for click commands: user errors print one line and exit 2, never a usage block."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        standalone = extra.pop("standalone_mode", True)
        try:
            rv = super().main(args, prog_name, standalone_mode=False, **extra)  # type: ignore[misc]
        except click.exceptions.Exit as exc:  # --help and ctx.exit()
            if standalone:
                sys.exit(exc.exit_code)
            return exc.exit_code
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            if standalone:
                sys.exit(0)
            return 0
        except click.ClickException as exc:
            message = " ".join(exc.format_message().split())
            name = (prog_name or getattr(self, "name", None) or "huey").strip()
            hint = ""
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                name = ctx.command_path
            if isinstance(exc, click.UsageError) and ctx is not None:
                hint = f" (see: {ctx.command_path} --help)"
            click.echo(f"{name}: error: {message}{hint}", err=True)
            sys.exit(2)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - e.g. the server is down during `huey info`
            if os.environ.get("HUEY_DEBUG"):
                raise
            name = (prog_name or getattr(self, "name", None) or "huey").strip()
            click.echo(f"{name}: error: {_one_line(exc)} (set HUEY_DEBUG=1 for a traceback)",
                       err=True)
            sys.exit(1)
        if standalone:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


class HueyGroup(_OneLineErrors, click.Group):
    pass


class HueyCommand(_OneLineErrors, click.Command):
    pass


class UserError(click.ClickException):
    """A configuration problem the user can fix; exit code 2 like a usage error."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.ctx = click.get_current_context(silent=True)


# -- loading the app ---------------------------------------------------------------------------


def load_huey(import_path: str) -> Any:
    """Import `module.attr` (or `module:attr`) with the working directory on sys.path.

    Raises UserError with one line that says what to fix.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    if ":" in import_path:
        module_name, _, attr = import_path.partition(":")
    else:
        module_name, _, attr = import_path.rpartition(".")
    if not module_name or not attr:
        raise UserError(
            f"import path {import_path!r} must name a module and the Huey instance in it, "
            "e.g. myapp.tasks.huey"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UserError(
                f"cannot import {module_name!r}: no such module under {cwd} or on PYTHONPATH "
                "(run from the directory that contains it, or set PYTHONPATH)"
            ) from None
        raise UserError(f"importing {module_name!r} failed: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - the app's own import error, shown in one line
        raise UserError(f"importing {module_name!r} failed: {_one_line(exc)}") from None
    try:
        huey = getattr(module, attr)
    except AttributeError:
        raise UserError(f"module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(huey, type) or not hasattr(huey, "process") or not hasattr(huey, "storage"):
        raise UserError(f"{import_path!r} is a {type(huey).__name__}, not a Huey instance")
    return huey


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {plugins.mask_url(text)}" if text else type(exc).__name__


def override_storage(huey: Any, backend: str | None, url: str | None) -> None:
    """Point the app at another backend (--backend/--url win over the app's own choice)."""
    if not backend and not url:
        return
    try:
        configure = getattr(huey, "configure_backend", None)
        if configure is not None:
            configure(backend=backend, url=url)
        else:
            options = dict(getattr(huey, "backend_options", None) or {})
            huey.storage = plugins.create_backend(huey.name, backend, url, **options)
    except HueyException as exc:
        raise UserError(_one_line_message(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a driver error while connecting, in one line
        raise UserError(f"cannot open the backend: {_one_line(exc)}") from None


def _one_line_message(exc: BaseException) -> str:
    return plugins.mask_url(" ".join(str(exc).split()))


def _app(import_path: str, backend: str | None = None, url: str | None = None) -> Any:
    huey = load_huey(import_path)
    override_storage(huey, backend, url)
    try:
        huey.storage  # noqa: B018 - build a lazily created backend now, so errors surface here
    except HueyException as exc:
        raise UserError(_one_line_message(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a driver error while opening it, in one line
        raise UserError(f"cannot open the backend: {_one_line(exc)}") from None
    return huey


def setup_logging(logfile: str | None, verbose: bool, quiet: bool) -> None:
    """Log to stderr, or to a rotating file (1 MB x 3); INFO, DEBUG with -v, ERROR with -q."""
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    handler: logging.Handler
    if logfile:
        handler = logging.handlers.RotatingFileHandler(
            logfile, maxBytes=LOGFILE_BYTES, backupCount=LOGFILE_BACKUPS
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger("huey")
    root.setLevel(level)
    root.addHandler(handler)
    root.propagate = False


# -- options -----------------------------------------------------------------------------------


def _backoff(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value is not None and value <= 1:
        raise click.BadParameter(f"must be greater than 1, got {value}")
    return value


def _import_path_arg(f: Any) -> Any:
    return click.argument("import_path", metavar="IMPORT_PATH")(f)


def _backend_options(f: Any) -> Any:
    f = click.option(
        "--url",
        metavar="URL",
        help="Storage URL, e.g. redis://localhost:6379/0; picks the backend by scheme. "
        "[default: the app's, else $HUEY_URL]",
    )(f)
    f = click.option(
        "--backend",
        metavar="NAME",
        help="Storage backend name; see: huey backends. [default: the app's, else "
        "$HUEY_BACKEND, else sql on sqlite:///huey.db]",
    )(f)
    return f


CONSUME_HELP = """Run the consumer for the Huey instance at IMPORT_PATH (e.g. myapp.tasks.huey).

The working directory is added to the Python path first. SIGTERM or SIGINT: stop taking work,
finish running tasks (up to --shutdown-timeout, then release them back to the queue), exit 0.
A second signal stops at once.
"""


def consume_options(f: Any) -> Any:
    options = [
        click.option("-l", "--logfile", metavar="PATH",
                     help="Log to this file (rotating: 1 MB x 3 backups). [default: stderr]"),
        click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level."),
        click.option("-q", "--quiet", is_flag=True, help="Log errors only."),
        click.option("-w", "--workers", type=click.IntRange(min=1), default=1,
                     show_default=True, help="Number of worker threads or processes."),
        click.option("-p/-n", "--periodic/--no-periodic", default=True,
                     help="Enqueue periodic (crontab) tasks from this consumer. "
                     "[default: periodic]"),
        click.option("-d", "--delay", type=click.FloatRange(min=0, min_open=True), default=0.1,
                     show_default=True,
                     help="Polling: first wait (seconds) after an empty poll."),
        click.option("-m", "--max-delay", type=click.FloatRange(min=0, min_open=True),
                     default=10.0, show_default=True,
                     help="Polling: longest wait (seconds) between polls."),
        click.option("-b", "--backoff", type=float, default=1.15, show_default=True,
                     callback=_backoff,
                     help="Polling: multiply the wait by this after each empty poll (> 1)."),
        click.option("-u", "--utc/--localtime", default=None,
                     help="Match periodic tasks against UTC or local time. "
                     "[default: utc, or the app's Huey(utc=...)]"),
        click.option("-k", "--worker-type", type=click.Choice(WORKER_TYPES), default="thread",
                     show_default=True, help="Run workers as threads or forked processes."),
        click.option("--mode", type=click.Choice(MODES), default="auto", show_default=True,
                     help="blocking: wait on the backend; polling: poll with backoff; "
                     "auto: blocking where the backend supports it."),
        click.option("-s", "--scheduler-interval", type=click.FloatRange(min=0, min_open=True),
                     default=1.0, show_default=True,
                     help="Seconds between moves of due scheduled tasks to the queue."),
        click.option("--shutdown-timeout", type=click.FloatRange(min=0), default=30.0,
                     show_default=True,
                     help="Seconds running tasks get to finish at shutdown before they are "
                     "released back to the queue."),
        click.option("--lease-timeout", type=click.FloatRange(min=0, min_open=True),
                     default=None,
                     help="Seconds a worker owns a message before another consumer may take it "
                     "(extended while the task runs). [default: the app's lease_timeout, 30]"),
    ]
    f = _backend_options(f)
    for option in reversed(options):
        f = option(f)
    return _import_path_arg(f)


def run_consumer(
    import_path: str,
    logfile: str | None,
    verbose: bool,
    quiet: bool,
    workers: int,
    periodic: bool,
    delay: float,
    max_delay: float,
    backoff: float,
    utc: bool | None,
    worker_type: str,
    mode: str,
    scheduler_interval: float,
    shutdown_timeout: float,
    lease_timeout: float | None,
    backend: str | None,
    url: str | None,
) -> None:
    if max_delay < delay:
        raise click.BadParameter(
            f"--max-delay ({max_delay}) must be at least --delay ({delay})",
            param_hint="'-m' / '--max-delay'",
        )
    huey = _app(import_path, backend, url)
    if getattr(huey, "immediate", False):
        raise UserError(
            f"{import_path} runs tasks immediately (immediate=True), so a consumer has nothing "
            "to do; set huey.immediate = False for production"
        )
    setup_logging(logfile, verbose, quiet)
    try:
        consumer = Consumer(
            huey,
            workers=workers,
            periodic=periodic,
            initial_delay=delay,
            backoff=backoff,
            max_delay=max_delay,
            scheduler_interval=scheduler_interval,
            worker_type=worker_type,
            mode=mode,
            shutdown_timeout=shutdown_timeout,
            utc=utc,
            lease_timeout=lease_timeout,
        )
    except ConfigurationError as exc:
        raise UserError(_one_line_message(exc)) from None
    code = consumer.run()
    if consumer.stopped_at_once:
        # Task threads may still be running user code; leave without waiting for them.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


# -- the `huey` group --------------------------------------------------------------------------


@click.group(cls=HueyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """huey toolkit: run consumers and inspect queues."""


@cli.command(help=CONSUME_HELP, context_settings={"show_default": False})
@consume_options
def consume(**options: Any) -> None:
    run_consumer(**options)


@cli.command()
def backends() -> None:
    """List every installed storage backend with its distribution, version and URL schemes."""
    found = plugins.backends()
    if not found:
        click.echo("no backends installed; try: pip install \"huey-core[sql]\"")
        return
    rows = [
        (
            info.name,
            f"{info.distribution} {info.version}",
            info.description,
            ", ".join(f"{s}://" for s in info.schemes),
        )
        for info in sorted(found.values(), key=lambda i: i.name)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for name, dist, desc, schemes in rows:
        click.echo(f"{name:<{widths[0]}}  {dist:<{widths[1]}}  {desc:<{widths[2]}}  {schemes}")


@cli.command()
@_import_path_arg
@_backend_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (one per refresh).")
@click.option("--watch", is_flag=True, help="Refresh until interrupted (Ctrl-C).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              metavar="SECONDS", help="Seconds between refreshes with --watch.")
def info(
    import_path: str,
    backend: str | None,
    url: str | None,
    as_json: bool,
    watch: bool,
    interval: float,
) -> None:
    """Show what an instance holds: queued, scheduled, in flight, dead letters, results, tasks.

    In-flight messages are listed with the consumer that leases them, their task, how often
    they were delivered and when the lease expires unless the consumer extends it.
    """
    huey = _app(import_path, backend, url)
    with _sigterm_as_interrupt():
        while True:
            data = collect_info(huey)
            if as_json:
                click.echo(json.dumps(data, default=str))
            else:
                if watch:
                    click.clear()
                click.echo(format_info(data))
            if not watch:
                return
            time.sleep(interval)


def collect_info(huey: Any) -> dict[str, Any]:
    """Everything `huey info` shows, as JSON-ready data (no passwords, no payload bytes)."""
    storage = huey.storage
    now = time.time()
    items = storage.store.items()
    started = _running_since(items)
    in_flight = []
    for lease in storage.queue.leases():
        task_id, task_name = _peek_message(huey, lease.data)
        since = started.get(lease.lease)
        in_flight.append({
            "task": task_name,
            "id": task_id,
            "owner": lease.owner,
            "deliveries": lease.deliveries,
            "started": since,
            # None until the consumer's next heartbeat (lease_timeout / 3) records the start.
            "age": None if since is None else round(max(now - since, 0.0), 3),
            "deadline": lease.deadline,
            "expires_in": round(lease.deadline - now, 3),
        })
    keys = _classify_keys(huey, items)
    return {
        "name": huey.name,
        "backend": plugins.mask_url(storage.describe()),
        "time": now,
        "queued": storage.queue.size(),
        "scheduled": storage.schedule.size(),
        "in_flight": len(in_flight),
        "dead_letters": len(keys["dead_letters"]),
        "results": len(keys["results"]),
        "revoked": len(keys["revoked"]),
        "locks": sorted(key.split(".lock.", 1)[1] for key in keys["locks"]),
        "stored_keys": sum(len(v) for v in keys.values()),
        "leases": in_flight,
        "tasks": _task_names(huey),
        "periodic_tasks": _periodic_schedules(huey),
    }


def format_info(data: dict[str, Any]) -> str:
    """The human-readable `huey info` text."""
    lines = [
        f"name: {data['name']}",
        f"backend: {data['backend']}",
        f"queued: {data['queued']}",
        f"scheduled: {data['scheduled']}",
        f"in flight: {data['in_flight']}",
    ]
    for lease in data["leases"]:
        age = "just started" if lease["age"] is None else f"running {_duration(lease['age'])}"
        lines.append(
            f"  {lease['task'] or '?'} {lease['id'] or '?'} leased by {lease['owner']} "
            f"({age}, delivery {lease['deliveries']}, "
            f"lease expires in {lease['expires_in']:.0f} s)"
        )
    lines += [
        f"dead letters: {data['dead_letters']}",
        f"results: {data['results']}",
        f"revoked: {data['revoked']}",
        f"locks: {', '.join(data['locks']) if data['locks'] else 0}",
        f"tasks: {', '.join(data['tasks']) or 'none'}",
    ]
    periodic = data["periodic_tasks"]
    lines.append(f"periodic tasks: {'' if periodic else 'none'}".rstrip())
    for entry in periodic:
        nxt = entry["next_run"]
        when = (
            datetime.datetime.fromtimestamp(nxt).isoformat(sep=" ", timespec="minutes")
            if nxt is not None else "not within a week"
        )
        lines.append(f"  {entry['task']}  {entry['schedule']}  next: {when}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _running_since(items: dict[str, bytes]) -> dict[str, float]:
    """lease -> unix time its task started, from the consumers' `inflight:` records."""
    since: dict[str, float] = {}
    for key, raw in items.items():
        if not key.startswith(INFLIGHT_PREFIX):
            continue
        try:
            for lease, entry in json.loads(raw).items():
                if isinstance(entry.get("since"), (int, float)):
                    since[lease] = float(entry["since"])
        except (ValueError, AttributeError, TypeError):
            continue  # a record from another version; the age is just unknown
    return since


def _peek_message(huey: Any, data: bytes) -> tuple[str | None, str | None]:
    """(task id, task name) of a queued message, or Nones when it cannot be decoded here."""
    try:
        task = huey.deserialize_task(data)
        return task.id, task.name
    except Exception:  # noqa: BLE001 - a poison message or a task this app does not know
        peek = getattr(huey, "_peek_names", None)
        if peek is not None:
            try:
                return peek(data)
            except Exception:  # noqa: BLE001
                pass
        return None, None


def _classify_keys(huey: Any, items: dict[str, bytes]) -> dict[str, list[str]]:
    """Split the data store's keys by what the core keeps in them (see huey_core.api)."""
    parts: dict[str, list[str]] = {
        "dead_letters": [], "revoked": [], "locks": [], "rate_limits": [], "internal": [],
        "results": [],
    }
    lock, rate = f"{huey.name}.lock.", f"{huey.name}.rl."
    for key in items:
        if key.startswith("dead-letter:"):
            parts["dead_letters"].append(key)
        elif key.startswith(("r:", "rt:")):
            parts["revoked"].append(key)
        elif key.startswith(lock):
            parts["locks"].append(key)
        elif key.startswith(rate):
            parts["rate_limits"].append(key)
        elif key.startswith(("periodic:", "chord:", INFLIGHT_PREFIX)):
            parts["internal"].append(key)
        else:
            parts["results"].append(key)
    return parts


def _registry(huey: Any) -> dict[str, Any]:
    return dict(getattr(getattr(huey, "_registry", None), "_registry", None) or {})


def _task_names(huey: Any) -> list[str]:
    return sorted(_registry(huey))


def _crontab_of(task_class: Any) -> Any:
    """The Crontab a periodic task was declared with (held by its validate_datetime closure)."""
    validate = getattr(task_class, "validate_datetime", None)
    func = getattr(validate, "__func__", validate)
    for cell in getattr(func, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if callable(value):
            return value
    return None


def _periodic_schedules(huey: Any, horizon_minutes: int = 7 * 24 * 60) -> list[dict[str, Any]]:
    """Each periodic task with its crontab and the next minute it runs (within a week)."""
    registry = getattr(huey, "_registry", None)
    classes = list(getattr(registry, "_periodic", None) or [])
    utc = bool(getattr(huey, "utc", True))
    if utc:
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    else:
        now = datetime.datetime.now()
    start = now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    out = []
    for cls in classes:
        check = _crontab_of(cls)
        next_run = None
        if check is not None:
            moment = start
            for _ in range(horizon_minutes):
                try:
                    due = bool(check(moment))
                except Exception:  # noqa: BLE001 - a custom validate function that fails
                    break
                if due:
                    aware = moment.replace(tzinfo=datetime.timezone.utc) if utc else moment
                    next_run = aware.timestamp()
                    break
                moment += datetime.timedelta(minutes=1)
        spec = getattr(check, "spec", None)
        schedule = " ".join(str(v) for v in spec.values()) if isinstance(spec, dict) else "custom"
        out.append({
            "task": getattr(cls, "name", str(cls)),
            "schedule": schedule,
            "next_run": next_run,
        })
    return sorted(out, key=lambda e: e["task"])


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Long-running inspection commands stop on SIGTERM or Ctrl-C alike: exit 0, no traceback.

    The previous SIGTERM handler comes back afterwards (CliRunner runs commands in-process).
    """
    previous = None
    if threading.current_thread() is threading.main_thread():

        def raise_interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@cli.command("dead-letters")
@_import_path_arg
@_backend_options
@click.option("--requeue", "requeue", metavar="ID", multiple=True,
              help="Put this dead letter back on the queue (repeatable; 'all' for every one).")
@click.option("--purge", is_flag=True, help="Delete every dead letter.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def dead_letters(
    import_path: str,
    backend: str | None,
    url: str | None,
    requeue: tuple[str, ...],
    purge: bool,
    as_json: bool,
) -> None:
    """List dead letters (messages that can never run), requeue or purge them."""
    huey = _app(import_path, backend, url)
    if requeue:
        ids = [str(d["id"]) for d in huey.dead_letters()] if "all" in requeue else list(requeue)
        missing = [i for i in ids if not huey.requeue_dead_letter(i)]
        click.echo(f"requeued {len(ids) - len(missing)} dead letter(s)")
        if missing:
            raise UserError(f"no dead letter with id {', '.join(missing)}")
        return
    if purge:
        click.echo(f"purged {huey.purge_dead_letters()} dead letter(s)")
        return
    letters = huey.dead_letters()
    for letter in letters:
        if as_json:
            row = {k: v for k, v in letter.items() if not isinstance(v, bytes)}
            click.echo(json.dumps(row, default=str))
        else:
            when = letter.get("time")
            stamp = (
                datetime.datetime.fromtimestamp(when).isoformat(timespec="seconds")
                if isinstance(when, (int, float))
                else when
            )
            click.echo(
                f"{letter.get('id')}  {stamp}  {letter.get('task') or '?'}  {letter.get('reason')}"
            )
    if not letters and not as_json:
        click.echo("no dead letters")


EVENT_STATUSES = (
    "enqueued", "scheduled", "revoked", "started", "finished", "error", "retrying", "expired",
    "locked", "interrupted", "canceled", "rate-limited", "dead-lettered", "recovered",
)


@cli.command()
@_import_path_arg
@_backend_options
@click.option("--status", "statuses", multiple=True, metavar="STATUS",
              type=click.Choice(EVENT_STATUSES, case_sensitive=False),
              help="Only events with this status (repeatable): "
              + ", ".join(EVENT_STATUSES) + ".")
@click.option("--task", "tasks", multiple=True, metavar="NAME",
              help="Only events of this task, by name or module.name (repeatable).")
@click.option("--pretty", is_flag=True, help="One human-readable line per event instead of JSON.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Exit after printing N events. [default: run until interrupted]")
def events(
    import_path: str,
    backend: str | None,
    url: str | None,
    statuses: tuple[str, ...],
    tasks: tuple[str, ...],
    pretty: bool,
    limit: int | None,
) -> None:
    """Print the instance's live events, one JSON object per line, until interrupted.

    Events of every producer and consumer using the same backend are shown, from the moment
    the subscription starts (Redis pub/sub and the SQL events table; the memory backend only
    sees its own process). Passwords in URLs inside events are masked.
    """
    huey = _app(import_path, backend, url)
    if getattr(huey.storage, "process_safe", True) is False:
        click.echo(
            f"huey events: note: {plugins.mask_url(huey.storage.describe())} keeps events in "
            "this process; consumers elsewhere are not shown",
            err=True,
        )
    wanted_status = {s.lower() for s in statuses}
    subscription = huey.storage.events.listen()
    printed = 0
    with _sigterm_as_interrupt():
        try:
            for raw in subscription:
                text = plugins.mask_url(bytes(raw).decode("utf-8", "replace"))
                event: dict[str, Any] | None
                try:
                    event = json.loads(text)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    if wanted_status or tasks:
                        continue  # cannot tell whether it matches
                    click.echo(text)
                elif not _event_matches(event, wanted_status, tasks):
                    continue
                else:
                    click.echo(format_event(event) if pretty else text)
                printed += 1
                if limit is not None and printed >= limit:
                    return
        except BrokenPipeError:  # `huey events ... | head`
            _silence_stdout()
        finally:
            subscription.close()


def _event_matches(event: dict[str, Any], statuses: set[str], tasks: tuple[str, ...]) -> bool:
    if statuses and str(event.get("status", "")).lower() not in statuses:
        return False
    if tasks:
        name = event.get("task")
        if not isinstance(name, str):
            return False
        short = name.rsplit(".", 1)[-1]
        return any(t == name or t == short or t.rsplit(".", 1)[-1] == name for t in tasks)
    return True


def format_event(event: dict[str, Any]) -> str:
    """One line: time, status, task, id, then what matters for that status."""
    stamp = event.get("timestamp")
    when = (
        datetime.datetime.fromtimestamp(stamp).strftime("%H:%M:%S.%f")[:-3]
        if isinstance(stamp, (int, float)) else "?"
    )
    parts = [when, f"{event.get('status', '?'):<13}", str(event.get("task") or "-"),
             str(event.get("id") or "-")]
    duration = event.get("duration")
    if isinstance(duration, (int, float)):
        parts.append(f"{duration:.3f}s")
    if event.get("status") in ("retrying", "error") and event.get("retries") is not None:
        parts.append(f"retries left {event['retries']}")
    execute_time = event.get("execute_time")
    if isinstance(execute_time, (int, float)) and event.get("status") in ("scheduled", "enqueued"):
        eta = datetime.datetime.fromtimestamp(execute_time).isoformat(sep=" ", timespec="seconds")
        parts.append(f"eta {eta}")
    for key in ("message", "reason", "count"):
        if event.get(key) not in (None, ""):
            parts.append(f"{key}={event[key]}")
    if event.get("error") and not event.get("message") and event.get("traceback"):
        last = str(event["traceback"]).strip().splitlines()[-1:]
        parts.extend(last)
    parts.append(f"[{event.get('worker') or event.get('consumer') or '?'}]")
    return "  ".join(parts)


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@cli.command()
@_import_path_arg
@click.argument("task_name", metavar="TASK")
@click.argument("args", nargs=-1, metavar="[JSON_ARG]...")
@_backend_options
@click.option("--kwargs", "kwargs_json", metavar="JSON",
              help='Keyword arguments as one JSON object, e.g. \'{"b": 2}\'.')
@click.option("--delay", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Run after this many seconds.")
@click.option("--priority", type=int, default=None, help="Priority (higher runs first).")
def enqueue(
    import_path: str,
    task_name: str,
    args: tuple[str, ...],
    backend: str | None,
    url: str | None,
    kwargs_json: str | None,
    delay: float | None,
    priority: int | None,
) -> None:
    """Enqueue TASK with arguments given as JSON values and print its id.

    e.g.: huey enqueue myapp.tasks.huey add 1 2 --kwargs '{"round": true}'

    An argument that is not valid JSON is taken as a string (so `hello` works unquoted).
    """
    huey = _app(import_path, backend, url)
    task_class = _find_task(huey, task_name)
    values = []
    for raw in args:
        try:
            values.append(json.loads(raw))
        except ValueError:
            values.append(raw)  # a bare word is a string
    kwargs: dict[str, Any] = {}
    if kwargs_json is not None:
        try:
            kwargs = json.loads(kwargs_json)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="'--kwargs'") from None
        if not isinstance(kwargs, dict):
            raise click.BadParameter("must be a JSON object", param_hint="'--kwargs'")
    eta = None
    if delay is not None:
        from huey_core.api import normalize_time

        eta = normalize_time(delay=delay, utc=huey.utc)
    task = task_class(tuple(values), kwargs, eta=eta, priority=priority)
    huey.enqueue(task)
    click.echo(task.id)


def _find_task(huey: Any, name: str) -> Any:
    """The registered task class for `name` ("module.task" or just "task")."""
    registry = _registry(huey)
    matches = [
        cls for key, cls in registry.items() if name == key or key.rsplit(".", 1)[-1] == name
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UserError(f"task name {name!r} is ambiguous; use the full name (module.task)")
    known = ", ".join(sorted(registry)) or "none"
    raise UserError(f"no task named {name!r} in {huey.name!r}; known tasks: {known}")


FLUSH_PARTS = ("queue", "schedule", "results", "dead_letters", "locks", "revoked")


@cli.command()
@_import_path_arg
@_backend_options
@click.option("--queue", is_flag=True, help="Queued messages, including those in flight.")
@click.option("--schedule", is_flag=True, help="Scheduled messages (delays, etas, retries).")
@click.option("--results", is_flag=True, help="Stored task results.")
@click.option("--dead-letters", is_flag=True, help="Dead letters.")
@click.option("--locks", is_flag=True, help="Task locks (lock_task) and rate-limit windows.")
@click.option("--revoked", is_flag=True, help="Revocations.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def flush(
    import_path: str,
    backend: str | None,
    url: str | None,
    yes: bool,
    **selected: bool,
) -> None:
    """Delete what an instance stores: everything, or only the parts named by flags.

    Without a part flag everything goes: queue, schedule and the whole data store. Asks for
    confirmation first unless --yes.
    """
    huey = _app(import_path, backend, url)
    storage = huey.storage
    parts = [p for p in FLUSH_PARTS if selected.get(p)]
    where = f"{huey.name!r} on {plugins.mask_url(storage.describe())}"
    if not parts:
        what = "everything stored (queue, schedule, results, dead letters, locks, revocations)"
    else:
        what = ", ".join(p.replace("_", " ") for p in parts)
    if not yes:
        click.confirm(f"Delete {what} of {where}?", abort=True)
    if not parts:
        huey.flush()
        click.echo(f"flushed {huey.name!r}")
        return
    counts: dict[str, int] = {}
    if "queue" in parts:
        counts["queue"] = storage.queue.size() + len(storage.queue.leases())
        storage.queue.flush()
    if "schedule" in parts:
        counts["schedule"] = storage.schedule.size()
        storage.schedule.flush()
    keys = _classify_keys(huey, storage.store.items())
    store_parts = {
        "results": keys["results"],
        "dead_letters": keys["dead_letters"],
        "locks": keys["locks"] + keys["rate_limits"],
        "revoked": keys["revoked"],
    }
    for part, part_keys in store_parts.items():
        if part in parts:
            counts[part] = sum(bool(storage.store.delete(key)) for key in part_keys)
    click.echo(", ".join(f"{p.replace('_', ' ')}: {n} deleted" for p, n in counts.items()))


plugins.add_commands(cli)


@click.command(
    "huey_consumer", cls=HueyCommand, help=CONSUME_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@consume_options
def consumer_command(**options: Any) -> None:
    run_consumer(**options)


def main() -> None:
    """Entry point of the `huey` command."""
    cli.main(prog_name="huey")


def consumer_main() -> None:
    """Entry point of `huey_consumer`, the same as `huey consume`."""
    consumer_command.main(prog_name="huey_consumer")


if __name__ == "__main__":
    main()
