"""Plugin discovery and backend selection.

Every backend, built-in or third-party, arrives the same way: a distribution declares an entry
point in the `huey` group whose module holds `@hookimpl`s, and `huey_register_backends` names the
backend, its URL schemes and the import path of its factory (imported only when used).
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from huey_core import hookspecs
from huey_core.exceptions import ConfigurationError, UnknownBackend

DEFAULT_BACKEND = "sql"
DEFAULT_URL = "sqlite:///huey.db"

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_backends: dict[str, BackendInfo] | None = None


@dataclass(frozen=True)
class BackendInfo:
    name: str
    schemes: tuple[str, ...]
    factory: str  # "module:callable", imported lazily
    description: str = ""
    distribution: str = "?"
    version: str = "?"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def load(self) -> Any:
        module_name, _, attr = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(
                f"backend {self.name!r} cannot load its driver ({exc}); "
                f"install it with: pip install \"huey-core[{self.name}]\""
            ) from exc
        return getattr(module, attr)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every `huey` entry point loaded and checked."""
    global _manager
    with _lock:
        if _manager is None:
            pm = pluggy.PluginManager("huey")
            pm.add_hookspecs(hookspecs)
            pm.load_setuptools_entrypoints("huey")
            pm.check_pending()  # a misspelled hook name fails here, at start-up
            _manager = pm
        return _manager


def reset_plugins() -> None:
    """Forget loaded plugins (tests register extra ones and start again)."""
    global _manager, _backends
    with _lock:
        _manager = None
        _backends = None


def _distribution_of(pm: pluggy.PluginManager) -> dict[int, tuple[str, str]]:
    dists: dict[int, tuple[str, str]] = {}
    for plugin, dist in pm.list_plugin_distinfo():
        dists[id(plugin)] = (dist.metadata["name"], dist.version)
    return dists


def backends() -> dict[str, BackendInfo]:
    """Every registered backend by name, with the distribution that provides it."""
    global _backends
    if _backends is not None:
        return _backends
    pm = get_plugin_manager()
    dists = _distribution_of(pm)
    found: dict[str, BackendInfo] = {}
    for impl in pm.hook.huey_register_backends.get_hookimpls():
        dist, version = dists.get(id(impl.plugin), (impl.plugin_name, "?"))

        def register(
            name: str,
            schemes: Iterable[str],
            factory: str,
            description: str = "",
            _dist: str = dist,
            _version: str = version,
        ) -> None:
            if name in found:
                raise ConfigurationError(
                    f"backend {name!r} is registered twice ({found[name].distribution} and {_dist})"
                )
            found[name] = BackendInfo(
                name, tuple(s.lower() for s in schemes), factory, description, _dist, _version
            )

        impl.function(register=register)
    _backends = found
    return found


def add_commands(cli: Any) -> None:
    """Let every plugin add its click commands to the `huey` group."""
    get_plugin_manager().hook.huey_add_commands(cli=cli)


_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:)(?P<pw>[^@/]*)(?P<at>@)")


def mask_url(url: str | None) -> str:
    """The URL with any password replaced by ***, fit for logs, events and error messages."""
    if not url:
        return ""
    return _PASSWORD.sub(r"\g<head>***\g<at>", url)


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _unknown(name: str, known: dict[str, BackendInfo]) -> UnknownBackend:
    names = ", ".join(sorted(known)) or "none"
    hint = difflib.get_close_matches(name, list(known), n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    return UnknownBackend(f"unknown backend {name!r}; installed backends: {names}.{suggestion}")


def resolve(backend: str | None = None, url: str | None = None) -> tuple[BackendInfo, str | None]:
    """Pick the backend: explicit name/url, then HUEY_BACKEND/HUEY_URL, then sqlite default.

    A URL alone picks its backend by scheme. Errors name the installed backends.
    """
    known = backends()
    if not backend and not url:
        backend = os.environ.get("HUEY_BACKEND") or None
        url = os.environ.get("HUEY_URL") or None
    elif backend and not url and backend in known:
        env_url = os.environ.get("HUEY_URL") or ""
        if scheme_of(env_url) in known[backend].schemes:
            url = env_url  # HUEY_URL still says where, when only the backend was chosen
    if backend:
        if backend not in known:
            raise _unknown(backend, known)
        return known[backend], url
    if url:
        scheme = scheme_of(url)
        for info in known.values():
            if scheme in info.schemes:
                return info, url
        schemes = ", ".join(sorted(s for i in known.values() for s in i.schemes)) or "none"
        raise UnknownBackend(
            f"no installed backend handles URL {mask_url(url)!r} (scheme {scheme!r}); "
            f"known schemes: {schemes}"
        )
    if DEFAULT_BACKEND not in known:
        names = ", ".join(sorted(known)) or "none"
        raise UnknownBackend(
            f"no backend given and the default {DEFAULT_BACKEND!r} backend is not installed; "
            f"installed backends: {names}. Pass backend=/url=, set HUEY_BACKEND, "
            f"or pip install \"huey-core[sql]\""
        )
    return known[DEFAULT_BACKEND], DEFAULT_URL


def create_backend(
    name: str, backend: str | None = None, url: str | None = None, **options: Any
) -> Any:
    """Build the Backend for huey instance `name` from the selection rules above."""
    info, url = resolve(backend, url)
    factory = info.load()
    return factory(name, url, **options)
