"""Backends arrive through pluggy entry points; the built-ins take exactly the third-party path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from importlib.metadata import version
from pathlib import Path

import click
import pluggy
import pytest
from click.testing import CliRunner

from huey_core import hookimpl, plugins
from huey_core.exceptions import ConfigurationError, UnknownBackend


def test_built_in_backends_come_from_their_distributions_entry_points() -> None:
    found = plugins.backends()
    expected = {"memory": "huey-memory", "redis": "huey-redis", "sql": "huey-sql"}
    for name, dist in expected.items():
        assert found[name].distribution == dist
        assert found[name].version == version(dist)
    names = {n for n, _ in plugins.get_plugin_manager().list_name_plugin()}
    assert {"memory", "redis", "sql"} <= names  # registered under their entry-point names


def test_built_in_factories_are_named_not_imported() -> None:
    found = plugins.backends()
    assert found["memory"].factory == "huey_memory.backend:MemoryBackend"
    assert found["redis"].factory == "huey_redis.backend:RedisBackend"
    assert found["sql"].factory == "huey_sql.backend:SQLBackend"


def test_discovery_stays_import_light() -> None:
    # Listing backends must not import a driver: `huey backends` works without redis/SQLAlchemy.
    code = (
        "import sys; from huey_core import plugins; plugins.backends();"
        "print(sorted(m for m in ('redis', 'sqlalchemy', 'huey_redis.backend',"
        " 'huey_sql.backend', 'huey_memory.backend') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _write_distribution(root: Path, dist: str, ver: str, package: str, plugin_source: str) -> None:
    """A minimal installed distribution (dist-info + package) with a `huey` entry point."""
    pkg = root / package
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text(textwrap.dedent(plugin_source))
    info = root / f"{dist.replace('-', '_')}-{ver}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {ver}\n")
    (info / "entry_points.txt").write_text(f"[huey]\n{package} = {package}.plugin\n")


THIRD_PARTY_PLUGIN = """
    from huey_core import hookimpl

    @hookimpl
    def huey_register_backends(register):
        register("demo", ["demo", "demo+tls"], "huey_demo_backend.backend:make", "a demo")
"""
THIRD_PARTY_BACKEND = """
    from huey_memory.backend import MemoryBackend

    def make(name, url, **options):
        backend = MemoryBackend(name)
        backend.url = url
        return backend
"""


@pytest.fixture
def demo_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _write_distribution(
        tmp_path, "huey-demo-backend", "1.2.3", "huey_demo_backend", THIRD_PARTY_PLUGIN
    )
    (tmp_path / "huey_demo_backend" / "backend.py").write_text(textwrap.dedent(THIRD_PARTY_BACKEND))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in [m for m in sys.modules if m.startswith("huey_demo_backend")]:
        del sys.modules[module]


def test_third_party_distribution_registers_like_the_built_ins(demo_distribution: Path) -> None:
    found = plugins.backends()
    demo = found["demo"]
    assert (demo.distribution, demo.version) == ("huey-demo-backend", "1.2.3")
    assert demo.schemes == ("demo", "demo+tls")
    assert {"memory", "redis", "sql"} <= set(found)  # nobody displaced
    assert "huey_demo_backend.backend" not in sys.modules  # named, not imported, until used

    info, url = plugins.resolve(url="demo+tls://host/x")
    assert info.name == "demo" and url == "demo+tls://host/x"
    backend = plugins.create_backend("app", url="demo://host")
    assert backend.name == "app" and backend.url == "demo://host"
    with pytest.raises(UnknownBackend, match="Did you mean 'demo'"):
        plugins.resolve(backend="dem0")


def test_third_party_backend_is_listed_by_huey_backends(demo_distribution: Path) -> None:
    from huey_core.cli import cli

    result = CliRunner().invoke(cli, ["backends"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("demo"))
    assert "huey-demo-backend 1.2.3" in line and "demo://" in line
    assert "huey-redis" in result.output and "huey-sql" in result.output


def test_misspelled_hook_in_an_installed_plugin_fails_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_distribution(
        tmp_path,
        "huey-typo",
        "0.0.1",
        "huey_typo_plugin",
        """
        from huey_core import hookimpl

        @hookimpl
        def huey_register_backend(register):  # singular: not a hook
            register("typo", ["typo"], "x:y")
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(pluggy.PluginValidationError, match="huey_register_backend"):
        plugins.get_plugin_manager()
    monkeypatch.delitem(sys.modules, "huey_typo_plugin.plugin", raising=False)
    monkeypatch.delitem(sys.modules, "huey_typo_plugin", raising=False)


def test_misspelled_hook_in_a_registered_object_is_refused_and_dropped() -> None:
    class Typo:
        @hookimpl
        def huey_add_command(self, cli):  # singular: not a hook
            pass

    typo = Typo()
    with pytest.raises(pluggy.PluginValidationError, match="huey_add_command"):
        plugins.register_plugin(typo, name="typo")
    assert not plugins.get_plugin_manager().is_registered(typo)
    plugins.get_plugin_manager().check_pending()  # the manager stays healthy


def test_plugin_object_registers_a_backend_in_code() -> None:
    class InCode:
        @hookimpl
        def huey_register_backends(self, register):
            register("incode", ["incode"], "huey_memory.backend:MemoryBackend", "defined in code")

    plugins.backends()  # cached before the registration: must be rebuilt
    plugins.register_plugin(InCode(), name="in-code")
    info = plugins.backends()["incode"]
    assert info.distribution == "in-code" and info.version == "?"
    assert plugins.create_backend("app", url="incode://").name == "app"


def test_a_name_registered_twice_is_an_error() -> None:
    class Clash:
        @hookimpl
        def huey_register_backends(self, register):
            register("redis", ["redis2"], "huey_memory.backend:MemoryBackend")

    plugins.register_plugin(Clash(), name="clash")
    with pytest.raises(ConfigurationError, match="registered twice"):
        plugins.backends()


def test_missing_driver_says_what_to_install() -> None:
    class Broken:
        @hookimpl
        def huey_register_backends(self, register):
            register("broken", ["broken"], "huey_no_such_module.backend:Factory")
            register("noattr", ["noattr"], "huey_memory.backend:NoSuchFactory")

    plugins.register_plugin(Broken(), name="huey-broken")
    with pytest.raises(ConfigurationError, match='pip install "huey-broken"'):
        plugins.create_backend("app", backend="broken")
    with pytest.raises(ConfigurationError, match="has no 'NoSuchFactory'"):
        plugins.create_backend("app", backend="noattr")


def test_built_in_driver_hint_names_the_huey_core_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    info = plugins.backends()["redis"]
    monkeypatch.setitem(sys.modules, "huey_redis.backend", None)  # as if redis were missing
    with pytest.raises(ConfigurationError, match=r'pip install "huey-core\[redis\]"'):
        info.load()


def test_plugins_add_click_commands_through_huey_add_commands() -> None:
    class Commands:
        @hookimpl
        def huey_add_commands(self, cli: click.Group) -> None:
            @cli.command()
            def hello() -> None:
                """Say hello."""
                click.echo("hello from a plugin")

    group = click.Group("huey")
    plugins.register_plugin(Commands(), name="commands")
    plugins.add_commands(group)
    assert "hello" in group.commands
    result = CliRunner().invoke(group, ["hello"])
    assert result.output == "hello from a plugin\n"


def test_hookimpl_is_the_only_marker_exported() -> None:
    import huey_core

    assert huey_core.hookimpl is plugins.hookspecs.hookimpl
    assert isinstance(huey_core.hookimpl, pluggy.HookimplMarker)
    assert not hasattr(huey_core, "hookspec")
    assert isinstance(plugins.hookspecs, types.ModuleType)
