"""The `huey` command line: `huey consume`, `huey backends`, and commands plugins add.

`huey_consumer IMPORT_PATH` is the same as `huey consume IMPORT_PATH`, for huey users.

Every error a user can cause (a bad option, an import path that does not resolve, an unknown
backend) prints one line on stderr and exits with code 2: no usage block, no traceback.
"""

from __future__ import annotations

import datetime
import importlib
import json
import logging
import logging.handlers
import os
import sys
from typing import Any

import click

from huey_core import plugins
from huey_core.consumer import MODES, WORKER_TYPES, Consumer
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(import_path: str, backend: str | None, url: str | None, as_json: bool) -> None:
    """Show queue, schedule, lease, result and dead-letter counts of an instance."""
    huey = _app(import_path, backend, url)
    storage = huey.storage
    leases = storage.queue.leases()
    data = {
        "name": huey.name,
        "backend": plugins.mask_url(storage.describe()),
        "queued": storage.queue.size(),
        "leased": len(leases),
        "scheduled": storage.schedule.size(),
        "stored_keys": storage.store.size(),
        "dead_letters": len(storage.store.items("dead-letter:")),
        "leases": [
            {"owner": lease.owner, "deadline": lease.deadline, "deliveries": lease.deliveries}
            for lease in leases
        ],
        "periodic_tasks": _periodic_names(huey),
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    for key in ("name", "backend", "queued", "leased", "scheduled", "stored_keys", "dead_letters"):
        click.echo(f"{key.replace('_', ' ')}: {data[key]}")
    for lease in data["leases"]:
        left = lease["deadline"] - datetime.datetime.now().timestamp()
        click.echo(f"  leased by {lease['owner']} (deliveries {lease['deliveries']}, "
                   f"expires in {left:.0f} s)")
    if data["periodic_tasks"]:
        click.echo(f"periodic tasks: {', '.join(data['periodic_tasks'])}")


def _periodic_names(huey: Any) -> list[str]:
    from huey_core.consumer import _periodic_task_names

    return _periodic_task_names(huey)


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


@cli.command()
@_import_path_arg
@_backend_options
def events(import_path: str, backend: str | None, url: str | None) -> None:
    """Print the instance's live events as JSON lines until interrupted."""
    huey = _app(import_path, backend, url)
    subscription = huey.storage.events.listen()
    try:
        for event in subscription:
            click.echo(event.decode("utf-8", "replace"))
    except KeyboardInterrupt:
        pass
    finally:
        subscription.close()


@cli.command()
@_import_path_arg
@click.argument("task_name", metavar="TASK")
@click.argument("args", nargs=-1, metavar="[JSON_ARG]...")
@_backend_options
@click.option("--delay", type=float, default=None, help="Run after this many seconds.")
def enqueue(
    import_path: str,
    task_name: str,
    args: tuple[str, ...],
    backend: str | None,
    url: str | None,
    delay: float | None,
) -> None:
    """Enqueue TASK with arguments given as JSON values, e.g.: huey enqueue app.huey add 1 2"""
    huey = _app(import_path, backend, url)
    task = _find_task(huey, task_name)
    values = []
    for raw in args:
        try:
            values.append(json.loads(raw))
        except ValueError:
            values.append(raw)  # a bare word is a string
    if delay is not None:
        result = task.schedule(args=tuple(values), delay=delay)
    else:
        result = task(*values)
    click.echo(getattr(result, "id", None) or getattr(getattr(result, "task", None), "id", ""))


def _find_task(huey: Any, name: str) -> Any:
    """The TaskWrapper-like callable for `name` ("module.task" or just "task")."""
    registry = getattr(getattr(huey, "_registry", None), "_registry", None) or {}
    matches = [
        cls for key, cls in registry.items() if name == key or key.rsplit(".", 1)[-1] == name
    ]
    if len(matches) == 1:
        return _TaskCaller(huey, matches[0])
    if matches:
        raise UserError(f"task name {name!r} is ambiguous; use the full name (module.task)")
    known = ", ".join(sorted(registry)) or "none"
    raise UserError(f"no task named {name!r} in {huey.name!r}; known tasks: {known}")


class _TaskCaller:
    """Enqueue a registered task class by name, like calling its decorated function."""

    def __init__(self, huey: Any, task_class: Any) -> None:
        self.huey = huey
        self.task_class = task_class

    def __call__(self, *args: Any) -> Any:
        return self.huey.enqueue(self.task_class(args, {}))

    def schedule(self, args: tuple[Any, ...], delay: float) -> Any:
        from huey_core.api import normalize_time

        eta = normalize_time(delay=delay, utc=self.huey.utc)
        return self.huey.enqueue(self.task_class(args, {}, eta=eta))


@cli.command()
@_import_path_arg
@_backend_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def flush(import_path: str, backend: str | None, url: str | None, yes: bool) -> None:
    """Delete every queued, scheduled and stored item of the instance."""
    huey = _app(import_path, backend, url)
    if not yes:
        click.confirm(
            f"Delete everything stored for {huey.name!r} on "
            f"{plugins.mask_url(huey.storage.describe())}?",
            abort=True,
        )
    huey.flush()
    click.echo(f"flushed {huey.name!r}")


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
