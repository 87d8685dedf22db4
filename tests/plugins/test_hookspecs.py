"""Every hook is documented, typed, prefixed, exercised by a test and explained to plugin authors."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from huey_core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
SPECS = [
    (name, fn)
    for name, fn in vars(hookspecs).items()
    if inspect.isfunction(fn) and hasattr(fn, "huey_spec")
]


def test_there_are_hookspecs() -> None:
    assert {name for name, _ in SPECS} >= {"huey_register_backends", "huey_add_commands"}


@pytest.mark.parametrize("name,spec", SPECS, ids=[name for name, _ in SPECS])
def test_hookspec_is_documented_typed_and_prefixed(name: str, spec: object) -> None:
    assert name.startswith("huey_")
    assert (inspect.getdoc(spec) or "").strip(), f"{name} has no docstring"
    annotations = inspect.get_annotations(spec)  # type: ignore[arg-type]
    params = inspect.signature(spec).parameters  # type: ignore[arg-type]
    assert all(p in annotations for p in params), f"{name} has untyped parameters"
    assert "return" in annotations


@pytest.mark.parametrize("name,spec", SPECS, ids=[name for name, _ in SPECS])
def test_hookspec_is_exercised_by_a_test_and_documented(name: str, spec: object) -> None:
    this = Path(__file__).resolve()
    tests = [p for p in (ROOT / "tests").rglob("test_*.py") if p.resolve() != this]
    users = [p for p in tests if f"def {name}(" in p.read_text(encoding="utf-8")]
    assert users, f"no test implements the hook {name}"
    assert name in (ROOT / "docs" / "writing-backends.md").read_text(encoding="utf-8")
