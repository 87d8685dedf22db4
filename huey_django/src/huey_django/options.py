"""`huey consume`'s options as arguments of `manage.py run_huey`.

They are read from the click command itself (huey_core.cli.consume), names, help, types and
checks alike, so the two commands never drift apart. Values from the command line and from
settings.HUEY["consumer"] both go through click's own conversion and checks.

Django's `-v/--verbosity` owns `-v`: huey's `-v/--verbose` is `--verbose` here, and
`-v 2`/`-v 3` mean --verbose, `-v 0` means --quiet.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

import click
from django.core.exceptions import ImproperlyConfigured

from huey_core.cli.consume import consume

__all__ = ["SETTINGS_ALIASES", "add_consumer_arguments", "consumer_options", "consumer_params"]

# settings.HUEY["consumer"] names huey's djhuey uses for the same option
SETTINGS_ALIASES = {"initial_delay": "delay"}
# Chosen at the top of settings.HUEY ("url", "backend", "database"), not among consumer options
NOT_IN_SETTINGS = frozenset({"backend", "url"})


def consumer_params() -> list[click.Option]:
    """Every option of `huey consume`."""
    return [p for p in consume.params if isinstance(p, click.Option)]


def _context() -> click.Context:
    return click.Context(consume, info_name="run_huey")


def _help(param: click.Option, ctx: click.Context) -> str:
    record = param.get_help_record(ctx)
    return (record[1] if record else "").replace("%", "%%")  # argparse %-formats help


def _metavar(param: click.Option) -> str:
    if param.metavar:
        return param.metavar
    if isinstance(param.type, click.Choice):
        return "{" + ",".join(str(c) for c in param.type.choices) + "}"
    return param.type.name.split()[0].upper()  # "float range" -> FLOAT


def _converter(param: click.Option, ctx: click.Context) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return param.process_value(ctx, text)
        except click.BadParameter as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return convert


def add_consumer_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every `huey consume` option to `parser`, minus option strings it already has.

    Each defaults to None, meaning "not given", so settings.HUEY["consumer"] can fill it in.
    """
    ctx = _context()
    taken = set(parser._option_string_actions)
    for param in consumer_params():
        names = [o for o in param.opts if o not in taken]
        text = _help(param, ctx)
        if param.is_flag:
            target: Any = parser
            if param.secondary_opts:  # --periodic/--no-periodic: one or the other
                target = parser.add_mutually_exclusive_group()
            target.add_argument(*names, dest=param.name, action="store_const", const=True,
                                default=None, help=text)  # fmt: skip
            off = [o for o in param.secondary_opts if o not in taken]
            if off:
                target.add_argument(*off, dest=param.name, action="store_const", const=False,
                                    default=None, help=f"The opposite of {names[-1]}.")  # fmt: skip
        else:
            parser.add_argument(*names, dest=param.name, metavar=_metavar(param),
                                type=_converter(param, ctx), default=None, help=text)  # fmt: skip


def consumer_options(
    given: Mapping[str, Any], configured: Mapping[str, Any], verbosity: int = 1
) -> dict[str, Any]:
    """The keyword arguments of huey_core.cli.run_consumer (without import_path).

    Each option comes from the command line (`given`, None when absent), else from
    settings.HUEY["consumer"] (`configured`), else `huey consume`'s default. ImproperlyConfigured
    names a misspelt or invalid setting.
    """
    ctx = _context()
    params = {str(p.name): p for p in consumer_params()}
    values = dict(consume.make_context("run_huey", ["huey_django.HUEY"]).params)
    values.pop("import_path", None)
    for key, value in configured.items():
        name = SETTINGS_ALIASES.get(key, key)
        param = params.get(name)
        if param is None or name in NOT_IN_SETTINGS:
            known = sorted(set(params) - NOT_IN_SETTINGS)
            raise ImproperlyConfigured(
                f"settings.HUEY['consumer'] has an unknown option {key!r}; known: {', '.join(known)}"
            )
        try:
            values[name] = param.process_value(ctx, value)
        except click.BadParameter as exc:
            raise ImproperlyConfigured(
                f"settings.HUEY['consumer'][{key!r}]: {exc.message}"
            ) from None
    for name in params:
        if given.get(name) is not None:
            values[name] = given[name]
    chosen = {"verbose", "quiet"} & (
        {k for k, v in given.items() if v is not None} | set(configured)
    )
    if not chosen:
        values["verbose"] = verbosity >= 2
        values["quiet"] = verbosity == 0
    return values
