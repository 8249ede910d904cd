"""System checks: bad cache settings are reported by ``manage.py check``, not at 3 a.m.

Every alias whose backend is a lexigram backend is checked against :mod:`.conf` (this
module has no table of options of its own): UPPER_CASE options (unknown, wrong type,
out of range, django-redis names), lower-case options against the client library's real
signature, the shape of ``LOCATION``, and ``LEXIGRAM_CACHE``. Ids are listed in
``docs/checks.md``. A check never raises and never shows a password: whatever goes wrong
while checking an entry is reported as an Error about that entry, with secrets masked.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from . import conf
from .codec import Codec
from .exceptions import CacheConfigurationError
from .tiered_checks import check_tiered
from .warming import check_warming

E = "lexigram_cache.{}".format
_CODEC_OPTIONS = frozenset({"SERIALIZER", "COMPRESSOR", "COMPRESS_MIN_BYTES", "COMPRESS_LEVEL"})
_CODEC_OPTIONS |= {"PICKLE_VERSION", "SIGNING_KEY", "SIGNING_KEY_FALLBACKS", "ORJSON_OPTIONS"}
_CODEC_OPTIONS |= {"ENCRYPTION_KEY", "ENCRYPTION_KEY_FALLBACKS"}
_REDIS_SCHEMES = ("redis", "rediss", "unix", "fakeredis")  # fakeredis: users' tests


class _Report:
    """The messages about one CACHES alias, with its secrets scrubbed from every line."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.secrets: list[str] = []
        self.messages: list[CheckMessage] = []

    def hide(self, secrets: Iterable[str]) -> None:
        """Replace these in every line (longest first; shorter ones are left to the mask)."""
        self.secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def add(self, code: str, msg: str, hint: str, level: type[Error | Warning] = Error) -> None:
        self.messages.append(
            level(
                self._clean(f"CACHES[{self.alias!r}]: {msg}"),
                hint=self._clean(hint),
                obj="settings.CACHES",
                id=E(code),
            )
        )

    def has(self, *codes: str) -> bool:
        return any(m.id in {E(c) for c in codes} for m in self.messages)


def _suggest(name: str, choices: Iterable[str], otherwise: str) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"Did you mean {close[0]!r}?" if close else otherwise


def _secrets(config: Mapping[str, Any]) -> list[str]:
    """Every password-like value of an entry, to scrub from the messages about it."""
    found: list[str] = []
    location = config.get("LOCATION")
    for item in [*conf.split_location(location), str(location)]:
        at = item.rfind("@")
        if at >= 0:
            scheme = re.search(r"[A-Za-z][A-Za-z0-9+.\-]*:/+", item[:at])
            userinfo = item[scheme.end() if scheme else 0 : at]
            found += [userinfo, userinfo.partition(":")[2]]
        found += re.findall(r"(?i)(?:password|passwd|pwd|secret|token)[\w\-]*=([^&#\s;,]*)", item)
    options = config.get("OPTIONS")
    if isinstance(options, dict):
        for key, raw in options.items():
            if isinstance(key, str) and "password" in key.lower() and isinstance(raw, str):
                found.append(raw)
            if isinstance(raw, dict):  # SENTINEL_KWARGS: the sentinels' password
                found += [v for k, v in raw.items() if "password" in str(k).lower()]
    return found


# -- client libraries' real signatures --------------------------------------------------------


def _parameters(*callables: Callable[..., Any]) -> frozenset[str]:
    names: set[str] = set()
    for func in callables:
        for p in inspect.signature(func).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
    return frozenset(names - {"connection_kwargs"})


def _init_chain(cls: type) -> list[Callable[..., Any]]:
    """``__init__`` of ``cls`` and of its bases (redis-py passes ``**kwargs`` up the MRO)."""
    return [vars(klass)["__init__"] for klass in cls.__mro__[:-1] if "__init__" in vars(klass)]


@functools.cache
def redis_client_options(scheme: str) -> tuple[frozenset[str], frozenset[str]]:
    """Lower-case OPTIONS redis-py takes for ``scheme``: (sync pool, ``redis.asyncio`` pool).

    The backend passes them to ``BlockingConnectionPool.from_url`` and to
    ``redis.asyncio.ConnectionPool.from_url``, which hand the rest to the connection class.
    """
    import redis.asyncio.connection as aconn
    import redis.connection as conn

    kind = {"rediss": "SSLConnection", "unix": "UnixDomainSocketConnection"}.get(scheme)
    kind = kind or "Connection"
    sync = _parameters(*_init_chain(conn.BlockingConnectionPool), *_init_chain(getattr(conn, kind)))
    asyn = _parameters(*_init_chain(aconn.ConnectionPool), *_init_chain(getattr(aconn, kind)))
    return sync, asyn | {"timeout"}  # our AsyncPool takes timeout (the pool wait) itself


@functools.cache
def memcached_client_options() -> frozenset[str]:
    """Lower-case OPTIONS pymemcache takes (``Client``, or ``HashClient`` for several servers)."""
    from pymemcache.client.base import Client
    from pymemcache.client.hash import HashClient

    return _parameters(Client.__init__, HashClient.__init__) - {"server", "servers"}


def _check_client_option(report: _Report, backend: str, key: str, location: Any) -> None:
    refused = conf.REFUSED_CLIENT_OPTIONS.get(backend, {})
    if key in refused:
        report.add("E007", f"OPTIONS[{key!r}] is not supported by this backend.", refused[key])
        return
    if backend == "memory":
        hint = "The memory backend has no client library; remove it."
        report.add("W002", f"OPTIONS[{key!r}] is ignored.", hint, Warning)
        return
    if backend == "memcached":
        accepted = memcached_client_options()
        if key not in accepted:
            hint = _suggest(key, accepted, "See pymemcache's Client and HashClient arguments.")
            report.add("E006", f"pymemcache's client takes no argument {key!r}.", hint)
        return
    if backend != "redis":
        return
    schemes = {u.partition("://")[0].lower() for u in conf.split_location(location)}
    schemes = (schemes & set(_REDIS_SCHEMES)) or {"redis"}
    for scheme in sorted(schemes):
        sync, asyn = redis_client_options(scheme)
        if key not in sync and key not in asyn:
            hint = _suggest(key, sync, "See redis-py's ConnectionPool and Connection arguments.")
            report.add(
                "E006", f"redis-py's {scheme}:// connections take no argument {key!r}.", hint
            )
            return
        if key not in sync or key not in asyn:
            side = "redis.asyncio" if key in sync else "the sync redis-py pool"
            hint = "Every call would raise TypeError on that side; remove it."
            report.add("E006", f"{key!r} is not accepted by {side} ({scheme}://).", hint)
            return


# -- OPTIONS ----------------------------------------------------------------------------------


def _check_options(
    report: _Report, backend: str, options: Mapping[Any, Any], location: Any
) -> None:
    known = (
        conf.option_names(backend)
        if backend in conf.BACKENDS
        else frozenset(n for n, o in conf.CACHE_OPTIONS.items() if o.backends == conf.ALL)
    )
    for key, raw in options.items():
        if not isinstance(key, str):
            report.add("E002", f"option name {key!r} is not a string.", "OPTIONS keys are str.")
            continue
        if key != key.upper():
            _check_client_option(report, backend, key, location)
            continue
        if key not in known:
            if key in conf.DJANGO_REDIS_OPTIONS:
                report.add(
                    "E008", f"{key} is a django-redis option.", conf.DJANGO_REDIS_OPTIONS[key]
                )
            elif key in conf.CACHE_OPTIONS:
                others = ", ".join(sorted(conf.CACHE_OPTIONS[key].backends))
                report.add("E002", f"{key} is not an option of the {backend} backend.",
                           f"It applies to: {others}. See docs/settings.md.")  # fmt: skip
            else:
                hint = _suggest(key, known, "See docs/settings.md for this backend's options.")
                report.add("E002", f"unknown option {key!r} for the {backend} backend.", hint)
            continue
        if key in ("SERIALIZER", "COMPRESSOR") and str(raw).startswith("django_redis."):
            ours = conf.DJANGO_REDIS_CODECS.get(str(raw))
            hint = f"Use {key}={ours!r}." if ours else f"Use one of our {key.lower()}s (docs)."
            report.add("E008", f"{key} {raw!r} is a django-redis class.", hint)
            continue
        problem = conf.CACHE_OPTIONS[key].problem(raw)
        if problem is not None:
            report.add("E003" if problem.kind == "type" else "E004", problem.message, problem.hint)
    if not report.has("E003", "E004", "E008") and _CODEC_OPTIONS & set(options):
        try:
            Codec.from_options(options)  # what the backend will build: serializer, compressor, key
        except Exception as exc:
            report.add("E005", str(exc), "See docs/serializers.md; install the needed extra.")


# -- LOCATION ---------------------------------------------------------------------------------


def _port_problem(text: str) -> str | None:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        return f"port {text!r} is not an integer between 1 and 65535"
    return None


def _redis_url_problem(url: str) -> tuple[str, str] | None:
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in _REDIS_SCHEMES:
        hint = (
            "Write redis://host:6379/0, rediss://host:6380/0, unix:///path/redis.sock, "
            "redis+sentinel://host:26379/<service>/<db> or redis+cluster://host:7000/0."
        )
        if re.match(r"(?i)rediss?:/[^/]", url):
            hint = "Two slashes after the scheme: redis://..."
        return "is not a redis://, rediss:// or unix:// URL", hint
    try:
        parts = urlsplit(url)
        host_port = parts.netloc.rpartition("@")[2]
        if scheme.lower() == "unix":
            if not parts.path:
                return "has no socket path", "Write unix:///path/to/redis.sock?db=0."
            return None
        if ":" in host_port.rpartition("]")[2]:
            problem = _port_problem(host_port.rpartition(":")[2])
            if problem:
                return problem, "Write redis://host:6379/0."
        parts.port  # noqa: B018  (raises ValueError on what the above missed)
    except ValueError as exc:
        return f"cannot be parsed ({exc})", "Write redis://host:6379/0."
    db = parts.path.strip("/")
    if db and not db.isdigit():
        return f"has database {db!r}, not a number", "The path is the database: redis://host/0."
    return None


def _memcached_server_problem(server: str) -> tuple[str, str] | None:
    hint = "Write host:11211, [::1]:11211 or unix:/path/memcached.sock."
    if "://" in server:
        return "is a URL; memcached LOCATIONs are host:port", hint
    if server.startswith(("unix:", "/")):
        return None if server.removeprefix("unix:") else ("has no socket path", hint)
    if server.endswith("]") or ":" not in server.rpartition("]")[2]:
        host = server
    else:
        host, _, port = server.rpartition(":")
        problem = _port_problem(port)
        if problem:
            return problem, hint
    if not host.strip("[]"):
        return "has no host", hint
    if ":" in host and not host.startswith("["):
        return "has an IPv6 address without brackets", hint
    return None


def _check_topology(report: _Report, location: Any, options: Any) -> bool:
    """A Sentinel or Cluster LOCATION (or SENTINELS): E009 if it cannot be used.

    Returns False when LOCATION is not one, for the per-server checks.
    """
    from .backends.redis import locations

    sentinel = locations.scheme_of(location) in locations.SENTINEL_SCHEMES
    if isinstance(options, dict) and options.get("SENTINELS") is None and not sentinel:
        for key in ("READ_FROM_REPLICAS", "SENTINEL_KWARGS"):
            if options.get(key):
                hint = "It applies to Sentinel LOCATIONs only; remove it, or name the service."
                report.add("W003", f"OPTIONS[{key!r}] is ignored without Sentinel.", hint, Warning)
    if not locations.is_topology(location, options):
        return False
    sentinels = options.get("SENTINELS") if isinstance(options, dict) else None
    hint = (
        "Write redis+sentinel://host1:26379,host2:26379/<service>/<db>, "
        "redis+cluster://host1:7000,host2:7001/0, or redis://<service>/<db> with "
        "OPTIONS['SENTINELS'] = [(host, port), ...]. See docs/backends/redis.md."
    )
    if not isinstance(location, str):
        report.add("E009", "a Sentinel or Cluster LOCATION must be one string.", hint)
        return True
    try:
        locations.parse(location, sentinels)
    except CacheConfigurationError as exc:
        report.add("E009", str(exc).removeprefix("RedisCache ") + ".", hint)
    return True


def _check_location(report: _Report, backend: str, location: Any, options: Any = None) -> None:
    if backend not in conf.NETWORKED:
        return
    if backend == "redis" and _check_topology(report, location, options):
        return
    if not isinstance(location, str | list | tuple):
        report.add("E009", f"LOCATION must be a string or a list, not {type(location).__name__}.",
                   "See docs/settings.md.")  # fmt: skip
        return
    servers = conf.split_location(location)
    if not servers:
        example = "redis://127.0.0.1:6379/0" if backend == "redis" else "127.0.0.1:11211"
        report.add("E009", "LOCATION is empty.", f"Give the server, e.g. {example!r}.")
    check = _redis_url_problem if backend == "redis" else _memcached_server_problem
    for server in servers:
        found = check(server)
        if found is not None:
            report.add("E009", f"LOCATION {conf.mask_location(server)!r} {found[0]}.", found[1])


# -- one alias, and the whole setting ---------------------------------------------------------


def _lexigram_backend(config: Mapping[str, Any]) -> type | None:
    from .backends.base import LexigramCache

    try:
        backend = import_string(config.get("BACKEND", ""))
    except Exception:
        return None  # Django reports unloadable backends itself, on first use
    if isinstance(backend, type) and issubclass(backend, LexigramCache):
        return backend
    return None


def check_alias(alias: str, config: Any) -> list[CheckMessage]:
    """The problems of one CACHES entry (empty if it is not a lexigram backend); never raises."""
    report = _Report(str(alias))
    try:
        if not isinstance(config, dict):
            return []  # not ours to judge: Django refuses it
        report.hide(_secrets(config))
        name = ""
        backend = _lexigram_backend(config)
        if backend is None:
            return []
        name = str(getattr(backend, "backend_name", ""))
        options = config.get("OPTIONS")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            hint = 'Write OPTIONS as a dict: {"SOCKET_TIMEOUT": 1.0}.'
            report.add("E001", f"OPTIONS must be a dict, not {type(options).__name__}.", hint)
            options = {}
        else:
            _check_options(report, name, options, config.get("LOCATION"))
        _check_location(report, name, config.get("LOCATION"), config.get("OPTIONS"))
        if not any(isinstance(m, Error) for m in report.messages):
            params = dict(config)  # built as Django's caches[alias] builds it
            del params["BACKEND"]
            backend(params.pop("LOCATION", ""), params)  # what the constructor refuses
    except Exception as exc:
        text = conf.mask_location(f"{type(exc).__name__}: {exc}")
        report.add(
            "E014", f"this entry cannot be used ({text}).", "Fix the entry; see docs/settings.md."
        )
    if name == "tiered":
        return [*report.messages, *check_tiered(str(alias), config)]
    return report.messages


def _app_error(code: str, msg: str, hint: str) -> Error:
    return Error(f"LEXIGRAM_CACHE: {msg}", hint=hint, obj="settings.LEXIGRAM_CACHE", id=E(code))


def check_app_settings() -> list[CheckMessage]:
    """``LEXIGRAM_CACHE``: known keys of the right type, aliases in CACHES, real models."""
    configured = getattr(settings, "LEXIGRAM_CACHE", None) or {}
    if not isinstance(configured, dict):
        return [_app_error("E010", f"must be a dict, not {type(configured).__name__}.",
                           'Write LEXIGRAM_CACHE = {"INVALIDATE_MODELS": [...]}.')]  # fmt: skip
    found: list[CheckMessage] = []
    for key in configured:
        if key not in conf.APP_SETTINGS:
            hint = _suggest(str(key), conf.APP_SETTINGS, "See docs/settings.md.")
            found.append(_app_error("E011", f"unknown key {key!r}.", hint))
    codes = {
        "INVALIDATE_CACHES": "E012",
        "INVALIDATE_MODELS": "E013",
        "HEALTH_CACHES": "E020",
        "PROMETHEUS_INTERVAL": "E021",
    }
    for key, code in codes.items():
        problem = conf.APP_SETTINGS[key].problem(configured.get(key))
        if key in configured and problem is not None:
            found.append(_app_error(code, problem.message, problem.hint))
    if not any(m.id == E("E012") for m in found):
        found += _check_invalidate_caches(configured.get("INVALIDATE_CACHES"))
    if not any(m.id == E("E013") for m in found):
        found += _check_invalidate_models(configured.get("INVALIDATE_MODELS") or ())
    if not any(m.id == E("E020") for m in found):
        defined = getattr(settings, "CACHES", {})
        for alias in configured.get("HEALTH_CACHES") or ():
            if alias not in defined:
                hint = _suggest(str(alias), [str(a) for a in defined], "List aliases of CACHES.")
                msg = f"HEALTH_CACHES names {alias!r}, which is not in CACHES."
                found.append(_app_error("E020", msg, hint))
    return found + _check_metrics(configured)


def _check_metrics(configured: Mapping[str, Any]) -> list[CheckMessage]:
    """METRICS_*: types and ranges (E030); METRICS_ALIAS a Redis/Memcached alias (E031)."""
    found: list[CheckMessage] = []
    for key in ("METRICS_ENABLED", "METRICS_INTERVAL", "METRICS_ALIAS"):
        problem = conf.APP_SETTINGS[key].problem(configured.get(key))
        if key in configured and problem is not None:
            found.append(_app_error("E030", problem.message, problem.hint))
    alias = configured.get("METRICS_ALIAS")
    if found or alias is None:
        return found
    defined = getattr(settings, "CACHES", {})
    if alias not in defined:
        hint = _suggest(str(alias), [str(a) for a in defined], "Name an alias of CACHES.")
        found.append(_app_error("E031", f"METRICS_ALIAS {alias!r} is not in CACHES.", hint))
    else:
        backend = _lexigram_backend(defined[alias])
        if getattr(backend, "backend_name", None) not in ("redis", "memcached"):
            msg = f"METRICS_ALIAS {alias!r} is not a lexigram Redis or Memcached cache."
            hint = "Site-wide metrics need a shared server; name a RedisCache or MemcachedCache."
            found.append(_app_error("E031", msg, hint))
    return found


def _check_invalidate_caches(aliases: Iterable[Any] | None) -> list[CheckMessage]:
    found: list[CheckMessage] = []
    defined = getattr(settings, "CACHES", {})
    for alias in aliases or ():
        if alias not in defined:
            hint = _suggest(str(alias), [str(a) for a in defined], "List aliases of CACHES.")
            msg = f"INVALIDATE_CACHES names {alias!r}, which is not in CACHES."
            found.append(_app_error("E012", msg, hint))
        elif _lexigram_backend(defined[alias]) is None:
            msg = f"INVALIDATE_CACHES names {alias!r}, whose backend has no tags."
            found.append(_app_error("E012", msg, "List only aliases of lexigram backends."))
    return found


def _check_invalidate_models(labels: Iterable[Any]) -> list[CheckMessage]:
    found: list[CheckMessage] = []
    known = [m._meta.label for m in apps.get_models()] if apps.ready else []
    for label in labels:
        try:
            apps.get_model(label)
        except Exception as exc:
            hint = _suggest(str(label), known, 'Write "app_label.ModelName" of an installed app.')
            msg = f"INVALIDATE_MODELS: {label!r} is not an installed model ({exc})."
            found.append(_app_error("E013", msg, hint))
    return found


@register(Tags.caches)
def check_caches(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every lexigram alias in CACHES, and the LEXIGRAM_CACHE setting; never raises."""
    problems: list[CheckMessage] = []
    try:
        entries = list(getattr(settings, "CACHES", {}).items())
    except Exception as exc:
        hint = "CACHES must be a dict of aliases."
        return [Error(f"CACHES cannot be read ({type(exc).__name__}).", hint=hint, id=E("E014"))]
    for alias, config in entries:
        problems.extend(check_alias(alias, config))
    try:
        problems.extend(check_app_settings())
        problems.extend(check_warming())
    except Exception as exc:
        msg = f"cannot be checked ({type(exc).__name__}: {conf.mask_location(exc)})."
        problems.append(_app_error("E014", msg, "Fix LEXIGRAM_CACHE; see docs/settings.md."))
    return problems
