"""What docs/backends.md and docs/writing-backends.md tell backend authors matches the code."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import typing
from pathlib import Path

import pytest

from huey_core import protocols
from huey_core.testing import ConformanceBase

ROOT = Path(__file__).resolve().parents[2]
BACKENDS_MD = (ROOT / "docs" / "backends.md").read_text(encoding="utf-8")
WRITING_MD = (ROOT / "docs" / "writing-backends.md").read_text(encoding="utf-8")

BASES: dict[type, type] = {
    protocols.Queue: protocols.BaseQueue,
    protocols.Schedule: protocols.BaseSchedule,
    protocols.DataStore: protocols.BaseDataStore,
    protocols.EventEmitter: protocols.BaseEventEmitter,
    protocols.Subscription: protocols.BaseSubscription,
    protocols.Backend: protocols.BaseBackend,
}


def _members(protocol: type) -> set[str]:
    found = getattr(protocol, "__protocol_attrs__", None)  # Python 3.12+
    if found is None:
        found = typing._get_protocol_attrs(protocol)  # type: ignore[attr-defined]
    return set(found)


def _only_raises(function: object) -> bool:
    """True when the function's body (after any docstring) is a single `raise`."""
    (tree,) = ast.parse(textwrap.dedent(inspect.getsource(function))).body  # type: ignore[arg-type]
    body = [n for n in tree.body if not isinstance(n, ast.Expr)]  # type: ignore[attr-defined]
    return len(body) == 1 and isinstance(body[0], ast.Raise)


def _derived(base: type, name: str) -> bool:
    """Derived: the base class implements it (a method that does more than raise
    NotImplementedError, or an attribute with a value); required otherwise."""
    owner = next((k for k in base.__mro__ if k is not object and name in vars(k)), None)
    if owner is None:
        return False  # only annotated (Backend.queue): the subclass sets it
    member = vars(owner)[name]
    return not (inspect.isfunction(member) and _only_raises(member))


def _table() -> dict[tuple[str, str], str]:
    """(protocol, member) -> the "required or derived" cell of the one table in backends.md."""
    rows = re.findall(r"^\| `(\w+)\.(\w+)[^`]*` \| ([^|]+) \|", BACKENDS_MD, flags=re.M)
    table = {(protocol, member): status.strip() for protocol, member, status in rows}
    assert len(table) == len(rows), "a member is listed twice"
    return table


def test_backends_md_lists_exactly_the_protocol_members() -> None:
    expected = {(p.__name__, member) for p in BASES for member in _members(p)}
    listed = set(_table())
    assert listed - expected == set(), "listed but not in huey_core.protocols"
    assert expected - listed == set(), "in huey_core.protocols but missing from the table"


@pytest.mark.parametrize("protocol", list(BASES), ids=lambda p: p.__name__)
def test_required_or_derived_matches_the_base_class(protocol: type) -> None:
    table = _table()
    base = BASES[protocol]
    for member in sorted(_members(protocol)):
        status = table[(protocol.__name__, member)]
        if _derived(base, member):
            assert status.startswith("derived: "), f"{protocol.__name__}.{member}: {status}"
        else:
            assert status == "required", f"{protocol.__name__}.{member}: {status}"


def test_derived_flags_quote_the_base_class_default() -> None:
    table = _table()
    for protocol, base in BASES.items():
        for member in _members(protocol):
            value = getattr(base, member, None)
            if isinstance(value, bool):
                assert table[(protocol.__name__, member)] == f"derived: `{value}`"


# Numbers an author needs, quoted in writing-backends.md as "`NAME` = value", from the code.
QUOTED_NUMBERS = {
    "POLL_INTERVAL": protocols.POLL_INTERVAL,
    "SUBSCRIPTION_CLOSE_WITHIN": protocols.SUBSCRIPTION_CLOSE_WITHIN,
    "EVENT_RETENTION": protocols.EVENT_RETENTION,
    "short_ttl": ConformanceBase.short_ttl,
    "expiry_slack": ConformanceBase.expiry_slack,
    "wake_within": ConformanceBase.wake_within,
    "model_examples": ConformanceBase.model_examples,
}


@pytest.mark.parametrize("name", sorted(QUOTED_NUMBERS))
def test_docs_quote_the_numbers_the_code_uses(name: str) -> None:
    # "`NAME` = 0.05", "`NAME = 0.05`" or "`NAME` is 0.05": every spelling must be right.
    pattern = rf"`{name}`?\s*(?:=|is)\s*`?([0-9][0-9.]*)"
    assert re.search(pattern, WRITING_MD), f"writing-backends.md never quotes `{name}` = <value>"
    for doc in (BACKENDS_MD, WRITING_MD):
        for value in re.findall(pattern, doc):
            assert float(value) == QUOTED_NUMBERS[name], f"the docs say `{name}` = {value}"


def _quoted_blocks(doc: str) -> list[tuple[str, list[str]]]:
    """Code blocks whose first line is `# from <path>`: (path, remaining non-blank lines)."""
    found = []
    for body in re.findall(r"```[a-z]*\n(.*?)```", doc, flags=re.S):
        first, _, rest = body.partition("\n")
        if first.startswith("# from "):
            found.append(
                (
                    first[len("# from ") :].strip(),
                    [s.strip() for s in rest.splitlines() if s.strip()],
                )
            )
    return found


def test_code_quoted_in_writing_backends_matches_the_files() -> None:
    blocks = _quoted_blocks(WRITING_MD)
    assert len(blocks) >= 10
    for path, lines in blocks:
        source = [s.strip() for s in (ROOT / path).read_text(encoding="utf-8").splitlines()]
        position = 0
        for line in lines:  # every quoted line appears in the file, in the same order
            try:
                position = source.index(line, position) + 1
            except ValueError:
                raise AssertionError(
                    f"docs/writing-backends.md quotes {path} wrongly: {line!r}"
                ) from None
