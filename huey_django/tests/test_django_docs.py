"""docs/django.md says what the code does: its code blocks quote the example project as it is,
its commands parse, and its settings table lists exactly the keys settings.HUEY accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from huey_django.config import HUEY_KEYS
from huey_django.management.commands.run_huey import Command
from huey_django.options import NOT_IN_SETTINGS, SETTINGS_ALIASES, consumer_params

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "django.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", DOC, flags=re.S)


def test_every_python_block_quotes_a_file_of_the_example_line_for_line() -> None:
    python = [body for lang, body in BLOCKS if lang == "python"]
    assert len(python) >= 4
    for body in python:
        first, _, rest = body.partition("\n")
        assert first.startswith("# from "), f"a python block that quotes no file:\n{body}"
        path = first[len("# from ") :].strip()
        source = [s.strip() for s in (ROOT / path).read_text(encoding="utf-8").splitlines()]
        position = 0
        for line in (s.strip() for s in rest.splitlines() if s.strip()):
            try:  # every quoted line is in the file, in the same order
                position = source.index(line, position) + 1
            except ValueError:
                raise AssertionError(f"docs/django.md quotes {path} wrongly: {line!r}") from None


def shell_commands() -> list[list[str]]:
    commands = []
    for lang, body in BLOCKS:
        if lang == "bash":
            for line in body.splitlines():
                if line.strip():
                    commands.append(shlex.split(line, comments=True))
    return commands


def test_every_shell_command_exists_as_written() -> None:
    pyproject = (ROOT / "huey_core" / "pyproject.toml").read_text()
    extras_section = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^(\w+) = \[", extras_section, flags=re.M))
    assert "django" in extras
    makefile = (ROOT / "Makefile").read_text()
    commands = shell_commands()
    assert commands
    for command in commands:
        if command[:2] == ["pip", "install"]:
            for requirement in command[2:]:
                wanted = set(re.findall(r"\[(.*)\]", requirement)[0].split(","))
                assert wanted <= extras, f"huey-core has no extra {wanted - extras}"
        elif command[0] == "make":
            assert re.search(rf"^{command[1]}:", makefile, re.M), f"no make target {command[1]}"
        elif command[:3] == ["python", "manage.py", "run_huey"]:
            Command().create_parser("manage.py", "run_huey").parse_args(command[3:])
        else:
            pytest.fail(f"docs/django.md runs a command this test does not know: {command}")


def test_the_settings_table_lists_exactly_the_keys_settings_huey_takes() -> None:
    section = DOC.split("## Set up", 1)[1].split("###", 1)[0]
    keys = {
        name
        for cell in re.findall(r"^\| ([^|]+) \|", section, flags=re.M)
        for name in re.findall(r"`(\w+)`", cell)
    }
    assert keys - {"key"} == HUEY_KEYS


def test_the_consumer_row_names_every_run_huey_option() -> None:
    row = next(line for line in DOC.splitlines() if line.startswith("| `consumer` |"))
    named = set(re.findall(r"`(\w+)`", row)) - {"consumer"}
    options = {str(p.name) for p in consumer_params()} - NOT_IN_SETTINGS
    assert named == options | set(SETTINGS_ALIASES)
