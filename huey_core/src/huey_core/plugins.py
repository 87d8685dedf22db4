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
from urllib.parse import quote, unquote

import pluggy

from huey_core import hookspecs
from huey_core.exceptions import ConfigurationError, UnknownBackend
from huey_core.protocols import Backend, DataStore, EventEmitter, Queue, Schedule

_PARTS: tuple[tuple[str, type], ...] = (
    ("queue", Queue),
    ("schedule", Schedule),
    ("store", DataStore),
    ("events", EventEmitter),
)

DEFAULT_BACKEND = "sql"
DEFAULT_URL = "sqlite:///huey.db"

# The huey-core extra that installs each built-in backend, by backend name and by URL scheme.
# Only consulted when nothing installed handles a name or scheme: an uninstalled plugin cannot
# say which schemes it would take, so the core names its own extras (a test checks this table
# against what the installed built-ins register).
BUILTIN_EXTRAS = {"memory": "memory", "blackhole": "memory", "redis": "redis", "sql": "sql"}
BUILTIN_SCHEME_EXTRAS = {
    "memory": "memory",
    "blackhole": "memory",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "sqlite": "sql",
    "postgresql": "postgres",
    "postgresql+psycopg": "postgres",
    "postgresql+psycopg2": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mysql+pymysql": "mysql",
    "mysql+mysqldb": "mysql",
    "mariadb": "mysql",
    "mariadb+pymysql": "mysql",
    "mariadb+mysqldb": "mysql",
}

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
        """Import the factory; a missing driver becomes a ConfigurationError saying what to install."""
        module_name, _, attr = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            # The built-ins are installed through huey-core's extras; others by their own name.
            builtin = self.distribution in {"huey-memory", "huey-redis", "huey-sql"}
            target = f"huey-core[{self.name}]" if builtin else self.distribution
            raise ConfigurationError(
                f"backend {self.name!r} cannot load its driver ({exc}); "
                f'install it with: pip install "{target}"'
            ) from exc
        try:
            return getattr(module, attr) if attr else module
        except AttributeError:
            raise ConfigurationError(
                f"backend {self.name!r} names factory {self.factory!r}, but {module_name} has no "
                f"{attr!r}; report this to the maintainers of {self.distribution}"
            ) from None


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


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin object (a module or class with `@hookimpl`s) without an entry point.

    For applications and tests that define a backend in code. It goes through the same hooks as
    the entry-point plugins; the backend list is rebuilt on next use.
    """
    global _backends
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    try:
        pm.check_pending()  # a misspelled hook fails here, as for entry-point plugins
    except Exception:
        pm.unregister(plugin)
        raise
    _backends = None


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


# scheme://user:password@host. The password runs to the LAST "@" before a "/" or whitespace,
# because redis-py and libpq split the netloc at its last "@" (so "p@ss" is one password).
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^/\s]*)(?P<at>@)")
# ?password=... (PyMySQL, redis-py and libpq all accept the password as a query parameter).
_QUERY_PASSWORD = re.compile(r"(?i)(?P<head>[?&](?:password|passwd|pwd)=)(?P<pw>[^&#\s]*)")
# Shorter fragments of a password are not scrubbed from free text: "a@b" must not turn every
# "a" of an error message into ***. (The whole password is, whatever its length, inside URLs.)
MIN_SCRUBBED = 4
_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def _forms(password: str) -> set[str]:
    """Every way a password may show up in text: as written, decoded, encoded, and the pieces a
    parser that ends the password at the FIRST "@" (SQLAlchemy) takes for password and host."""
    forms = {password, unquote(password), quote(unquote(password), safe="")}
    for form in list(forms):
        forms.update(form.split("@"))
    return {f for f in forms if len(f) >= MIN_SCRUBBED}


def remember_secrets(url: str | None) -> None:
    """Note the password of a backend URL, so that mask_url() also scrubs it from text that
    holds no URL: a driver's error message quoting a host it parsed out of the password, say.

    Backends call it with the URL they are given; mask_url() calls it for every URL it masks.
    """
    if not url or "://" not in url:
        return
    found = {m.group("pw") for m in _PASSWORD.finditer(url)}
    found |= {m.group("pw") for m in _QUERY_PASSWORD.finditer(url)}
    forms = set().union(*(_forms(pw) for pw in found if pw and pw != "***"))
    global _secrets
    if forms - set(_secrets):
        with _secrets_lock:
            _secrets = tuple(sorted(set(_secrets) | forms, key=len, reverse=True))


def mask_url(url: str | None) -> str:
    """The text with every password hidden (***), fit for logs, events and error messages.

    Works on a URL or on free text that contains URLs (an exception message, a log line): a URL's
    password is masked as the URL parsers read it (to the last "@" of the host part), and any
    password seen before (see remember_secrets) is scrubbed wherever it appears, in the forms a
    driver may quote it.
    """
    if not url:
        return ""
    remember_secrets(url)
    masked = _PASSWORD.sub(r"\g<head>***\g<at>", url)
    masked = _QUERY_PASSWORD.sub(r"\g<head>***", masked)
    for secret in _secrets:  # longest first, so a piece never leaves the rest of a longer form
        if secret in masked:
            masked = masked.replace(secret, "***")
    return masked


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _unknown(name: str, known: dict[str, BackendInfo]) -> UnknownBackend:
    names = ", ".join(sorted(known)) or "none"
    if name in BUILTIN_EXTRAS:
        return UnknownBackend(
            f"backend {name!r} is not installed (installed backends: {names}); "
            f'install it with: pip install "huey-core[{BUILTIN_EXTRAS[name]}]"'
        )
    hint = difflib.get_close_matches(name, list(known), n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    return UnknownBackend(f"unknown backend {name!r}; installed backends: {names}.{suggestion}")


def _check_scheme(info: BackendInfo, url: str, known: dict[str, BackendInfo]) -> None:
    """A backend is only handed URLs of the schemes it registered."""
    scheme = scheme_of(url)
    if scheme in info.schemes:
        return
    owner = next((i.name for i in known.values() if scheme and scheme in i.schemes), None)
    hint = f"; that is a {owner!r} URL" if owner else ""
    raise ConfigurationError(
        f"backend {info.name!r} takes URLs with schemes "
        f"{', '.join(f'{s}://' for s in info.schemes) or '(none)'}, not {mask_url(url)!r} "
        f"(scheme {scheme or 'none'!r}){hint}"
    )


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
        info = known[backend]
        if url:
            _check_scheme(info, url, known)
        return info, url
    if url:
        scheme = scheme_of(url)
        for info in known.values():
            if scheme in info.schemes:
                return info, url
        if scheme in BUILTIN_SCHEME_EXTRAS:
            raise UnknownBackend(
                f"no installed backend handles URL {mask_url(url)!r} (scheme {scheme!r}); "
                f'install it with: pip install "huey-core[{BUILTIN_SCHEME_EXTRAS[scheme]}]"'
            )
        all_schemes = sorted(s for i in known.values() for s in i.schemes)
        hint = difflib.get_close_matches(scheme, all_schemes, n=1)
        suggestion = f" Did you mean {hint[0] + '://'!r}?" if hint else ""
        raise UnknownBackend(
            f"no installed backend handles URL {mask_url(url)!r} (scheme {scheme!r}); "
            f"known schemes: {', '.join(all_schemes) or 'none'}.{suggestion}"
        )
    if DEFAULT_BACKEND not in known:
        names = ", ".join(sorted(known)) or "none"
        raise UnknownBackend(
            "the default storage, SQLite in ./huey.db, needs huey-sql, which is not installed: "
            'pip install "huey-core[sql]" (or choose a backend with url=, backend= or HUEY_URL; '
            f"installed backends: {names})"
        )
    return known[DEFAULT_BACKEND], DEFAULT_URL


def missing_backend(backend: str | None = None, url: str | None = None) -> str | None:
    """Why the backend these arguments select is not installed (one line), or None when it is.

    Cheap: it reads the registrations only, imports no driver and connects nowhere.
    """
    try:
        resolve(backend, url)
    except UnknownBackend as exc:
        return str(exc)
    except ConfigurationError:
        return None  # installed, but the URL is wrong: reported when the backend is built
    return None


def create_backend(
    name: str, backend: str | None = None, url: str | None = None, **options: Any
) -> Backend:
    """Build the Backend for huey instance `name` from the selection rules above."""
    info, url = resolve(backend, url)
    remember_secrets(url)
    factory = info.load()
    try:
        built = factory(name, url, **options)
    except (TypeError, ValueError) as exc:  # an unknown option, a value of the wrong kind
        text = mask_url(" ".join(str(exc).split()))
        raise ConfigurationError(f"backend {info.name!r} refused its options: {text}") from exc
    check_backend(built, info.name)
    return built  # type: ignore[no-any-return]


def check_backend(backend: object, name: str = "") -> None:
    """ConfigurationError naming what is missing when `backend` does not meet the protocols.

    Methods the base classes of huey_core.protocols derive count as missing too: a backend that
    does not subclass them must write them itself.
    """
    label = name or type(backend).__name__
    problems = [] if isinstance(backend, Backend) else [f"the backend ({type(backend).__name__})"]
    if not problems:
        for part, protocol in _PARTS:
            member = getattr(backend, part)
            if not isinstance(member, protocol):
                problems.append(f"{part} ({type(member).__name__}): {_missing(member, protocol)}")
    if problems:
        raise ConfigurationError(
            f"backend {label!r} does not implement the storage protocols: "
            f"{'; '.join(problems)}. Subclass the Base* classes of huey_core.protocols"
        )


def _missing(obj: object, protocol: type) -> str:
    members = sorted(getattr(protocol, "__protocol_attrs__", ()) or _protocol_members(protocol))
    absent = [m for m in members if not hasattr(obj, m)]
    return "lacks " + ", ".join(absent) if absent else "does not match"


def _protocol_members(protocol: type) -> set[str]:
    return {
        m
        for m in (*protocol.__dict__, *getattr(protocol, "__annotations__", {}))
        if not m.startswith("_")
    }
