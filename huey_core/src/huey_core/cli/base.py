"""What every `huey` command shares: one-line errors, loading the app, the common options."""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, TypeVar

import click

from huey_core import plugins
from huey_core.api import Huey
from huey_core.exceptions import HueyException

F = TypeVar("F", bound=Callable[..., Any])

# click 8.2 raises NoArgsIsHelpError for a bare group (`huey`); 8.1 prints the help itself and
# exits through click.exceptions.Exit. An empty tuple catches nothing on 8.1.
_NO_ARGS_IS_HELP: tuple[type[click.ClickException], ...] = tuple(
    getattr(click.exceptions, name)
    for name in ("NoArgsIsHelpError",)
    if hasattr(click.exceptions, name)
)


class _OneLineErrors:
    """Mixin for click commands: user errors print one line and exit 2, never a usage block."""

    name: str | None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(  # type: ignore[misc]
                args, prog_name, complete_var, standalone_mode=False, **extra
            )
        except click.exceptions.Exit as exc:  # --help and ctx.exit()
            rv = exc.exit_code
        except _NO_ARGS_IS_HELP as exc:
            ctx = getattr(exc, "ctx", None)
            click.echo(ctx.get_help() if ctx else exc.format_message())
            rv = 0
        except Exception as exc:  # noqa: BLE001 - every error ends as one line
            rv = self._report(exc, prog_name)
        except KeyboardInterrupt:
            rv = 130
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv

    def _report(self, exc: Exception, prog_name: str | None) -> int:
        """Print `exc` as one line on stderr; return the exit code."""
        name = (prog_name or self.name or "huey").strip()
        if isinstance(exc, click.Abort):
            click.echo("Aborted.", err=True)
            return 1
        if isinstance(exc, click.ClickException):
            message = " ".join(exc.format_message().split())
            ctx = getattr(exc, "ctx", None)  # only usage errors carry one
            hint = ""
            if ctx is not None:
                name = ctx.command_path
                if isinstance(exc, click.UsageError):
                    hint = f" (see: {ctx.command_path} --help)"
            click.echo(f"{name}: error: {message}{hint}", err=True)
            return 2
        if os.environ.get("HUEY_DEBUG"):
            raise exc
        # e.g. the server is down during `huey info`
        click.echo(f"{name}: error: {one_line(exc)} (set HUEY_DEBUG=1 for a traceback)", err=True)
        return 1


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


def load_huey(import_path: str) -> Huey:
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
        raise UserError(f"importing {module_name!r} failed: {one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - the app's own import error, shown in one line
        raise UserError(f"importing {module_name!r} failed: {one_line(exc)}") from None
    try:
        huey = getattr(module, attr)
    except AttributeError:
        raise UserError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(huey, Huey):
        raise UserError(f"{import_path!r} is a {type(huey).__name__}, not a Huey instance")
    return huey


def one_line(exc: BaseException) -> str:
    """An exception as one line, type first, with any URL password masked."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {plugins.mask_url(text)}" if text else type(exc).__name__


def override_storage(huey: Huey, backend: str | None, url: str | None) -> None:
    """Point the app at another backend (--backend/--url win over the app's own choice)."""
    if not backend and not url:
        return
    try:
        huey.configure_backend(backend=backend, url=url)
    except HueyException as exc:
        raise UserError(one_line_message(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a driver error while connecting, in one line
        raise UserError(f"cannot open the backend: {one_line(exc)}") from None


def one_line_message(exc: BaseException) -> str:
    """An exception's message as one line, with any URL password masked."""
    return plugins.mask_url(" ".join(str(exc).split()))


def split_storage(huey: Huey, backend: str | None, url: str | None) -> str | None:
    """One line when --backend/--url point this process away from the app's own storage.

    Producers import the app and use what it configures, so a consumer told to use something
    else waits on a queue nobody fills. None when the options pick what the app picks anyway.
    """
    if not backend and not url:
        return None
    own_backend, own_url, _ = huey.backend_spec
    if own_backend is not None and not isinstance(own_backend, str):
        own = f"a {type(own_backend).__name__} object"
    else:
        try:
            info, where = plugins.resolve(own_backend, own_url)
            own = f"{info.name} ({where or 'its default URL'})"
        except HueyException:
            own = "a backend that is not installed here"
    try:
        info, where = plugins.resolve(backend, url)
    except HueyException:
        return None  # the override itself is wrong: override_storage says why
    chosen = f"{info.name} ({where or 'its default URL'})"
    if chosen == own:
        return None
    return plugins.mask_url(
        f"--backend/--url point this process at {chosen}, but the app uses {own}: code that "
        "imports the app still sends tasks there; set HUEY_URL (or HUEY_BACKEND) for both sides "
        "instead"
    )


def app(
    import_path: str, backend: str | None = None, url: str | None = None, warn_split: bool = False
) -> Huey:
    """The app's Huey with its storage open, or one line (UserError) saying what is wrong.

    With `warn_split`, a --backend/--url that differs from the app's own storage is reported
    on stderr (the consumer: producers would enqueue elsewhere).
    """
    huey = load_huey(import_path)
    split = split_storage(huey, backend, url) if warn_split else None
    override_storage(huey, backend, url)
    if split:
        ctx = click.get_current_context(silent=True)
        click.echo(f"{ctx.command_path if ctx else 'huey'}: warning: {split}", err=True)
    try:
        huey.storage  # noqa: B018 - build a lazily created backend now, so errors surface here
    except HueyException as exc:
        raise UserError(one_line_message(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a driver error while opening it, in one line
        raise UserError(f"cannot open the backend: {one_line(exc)}") from None
    return huey


class Finite(click.FloatRange):
    """A float range that also refuses nan and inf (click's range checks let nan through)."""

    def __init__(
        self, minimum: float, open_min: bool = False, maximum: float | None = None
    ) -> None:
        super().__init__(min=minimum, min_open=open_min, max=maximum)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"must be a finite number, got {value!r}", param, ctx)
        if self.min is not None and (number <= self.min if self.min_open else number < self.min):
            bound = "greater than" if self.min_open else "at least"
            self.fail(f"must be {bound} {self.min:g}, got {value}", param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"must be at most {self.max:g}, got {value}", param, ctx)
        return number


def _not_empty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty; leave it out to use the app's URL")
    return value


def import_path_arg(f: F) -> F:
    return click.argument("import_path", metavar="IMPORT_PATH")(f)


def backend_options(f: F) -> F:
    f = click.option(
        "--url",
        metavar="URL",
        callback=_not_empty,
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


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Long-running inspection commands stop on SIGTERM or Ctrl-C alike: exit 0, no traceback.

    The previous SIGTERM handler comes back afterwards (CliRunner runs commands in-process).
    """
    previous = None
    if threading.current_thread() is threading.main_thread():

        def raise_interrupt(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
