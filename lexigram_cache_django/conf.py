"""Every option declared once: its name, type, default, range, backends and one-line doc.

The backends read their ``OPTIONS`` through :func:`value`, the system checks loop over
:data:`CACHE_OPTIONS` and :data:`APP_SETTINGS`, and ``tests/test_conf.py`` holds the tables
of ``docs/settings.md`` to them, so an option cannot be known in one place and not another.

Layer 0: imports nothing of the package but :mod:`.exceptions`.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings

from .exceptions import CacheConfigurationError

logger = logging.getLogger("lexigram_cache_django")

#: Backend names (``LexigramCache.backend_name``) an option can apply to.
BACKENDS = frozenset({"memory", "redis", "memcached", "tiered"})
ALL = BACKENDS
NETWORKED = frozenset({"redis", "memcached"})
#: The app label checked against ``INSTALLED_APPS``.
APP_NAME = "lexigram_cache_django"

_SECONDS = (int, float)


class Problem(NamedTuple):
    """Why a value is refused: ``kind`` is ``"type"`` or ``"range"``; never holds secrets."""

    kind: str
    message: str
    hint: str


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: what it accepts and what it defaults to."""

    #: The key, UPPER_CASE as in ``OPTIONS`` or ``LEXIGRAM_CACHE``.
    name: str
    #: Accepted types; ``bool`` is never taken for a number, an ``int`` is taken for a float.
    types: tuple[type, ...]
    #: Value when the key is absent (``backend_defaults`` may override it per backend).
    default: Any
    #: One line for ``docs/settings.md``'s meaning column.
    doc: str
    #: Backend names that accept it (a subset of :data:`BACKENDS`).
    backends: frozenset[str] = ALL
    #: Lowest allowed value (numbers only), inclusive.
    minimum: float | None = None
    #: Highest allowed value (numbers only), inclusive.
    maximum: float | None = None
    #: The only values allowed, if not empty.
    choices: tuple[Any, ...] = ()
    #: Whether an explicit ``None`` is accepted.
    nullable: bool = False
    #: ``(backend, default)`` pairs where a backend's default differs from ``default``.
    backend_defaults: tuple[tuple[str, Any], ...] = ()
    #: How the default reads in the docs when it is not a literal (``SECRET_KEY``).
    default_doc: str | None = None

    def default_for(self, backend: str | None = None) -> Any:
        """The default on ``backend`` (the common default if ``backend`` is None)."""
        for name, default in self.backend_defaults:
            if name == backend:
                return default
        return self.default

    def documented_default(self, backend: str | None = None) -> str:
        """The default as ``docs/settings.md`` shows it (compared by ``tests/test_conf.py``)."""
        if self.default_doc is not None and not any(b == backend for b, _ in self.backend_defaults):
            return self.default_doc
        default = self.default_for(backend)
        return f'`"{default}"`' if isinstance(default, str) else f"`{default!r}`"

    def problem(self, raw: Any) -> Problem | None:
        """What is wrong with ``raw`` as this option's value, or None."""
        if raw is None:
            if self.nullable:
                return None
            return Problem("type", f"{self.name} must not be None.", self._type_hint())
        numeric = any(t in (int, float) for t in self.types)
        if (isinstance(raw, bool) and bool not in self.types) or not isinstance(raw, self.types):
            return Problem(
                "type",
                f"{self.name} must be {self.kinds()}, not {type(raw).__name__}.",
                self._type_hint(raw),
            )
        if self.choices and raw not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            return Problem(
                "range", f"{self.name} must be one of {allowed}, not {raw!r}.", self._range_hint()
            )
        if numeric and isinstance(raw, int | float) and not isinstance(raw, bool):
            low = float("-inf") if self.minimum is None else self.minimum
            high = float("inf") if self.maximum is None else self.maximum
            if not low <= raw <= high:  # NaN fails too
                return Problem(
                    "range",
                    f"{self.name} must be {self.bounds()}, not {raw!r}.",
                    self._range_hint(),
                )
        return None

    def coerce(self, raw: Any) -> Any:
        """A valid ``raw`` in its declared type (an ``int`` given for seconds is a float)."""
        if float in self.types and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        return raw

    def kinds(self) -> str:
        names = {
            "int": "an integer",
            "float": "a number",
            "bool": "True or False",
            "str": "a string",
            "bytes": "bytes",
            "list": "a list",
            "tuple": "a tuple",
            "type": "a class",
        }
        kinds = [
            names.get(t.__name__, t.__name__)
            for t in self.types
            if t is not int or float not in self.types
        ]
        if self.nullable:
            kinds.append("None")
        return " or ".join(kinds)

    def bounds(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"between {self.minimum} and {self.maximum}"
        if self.minimum is not None:
            return f">= {self.minimum}"
        return f"<= {self.maximum}"

    def _type_hint(self, raw: Any = None) -> str:
        if isinstance(raw, str) and any(t in (int, float) for t in self.types):
            try:
                float(raw)
            except ValueError:
                pass
            else:
                return f"Write the number without quotes: {self.name}: {raw.strip()}, not {raw!r}."
        return f"Default: {self.documented_default()}. See docs/settings.md."

    def _range_hint(self) -> str:
        return f"Default: {self.documented_default()}. See docs/settings.md."


def _options(*options: Option) -> dict[str, Option]:
    return {option.name: option for option in options}


#: ``CACHES[alias]["OPTIONS"]`` keys (UPPER_CASE; lower-case keys go to the client library).
CACHE_OPTIONS: Mapping[str, Option] = _options(
    Option("FAIL_SILENTLY", (bool,), True, "fail open: a server error is logged and counted and "
           "the call returns its default; `False` raises `CacheBackendError` (password masked)"),
    Option("SERIALIZER", (str, type), "pickle", '`"pickle"` (HMAC-signed), `"orjson"`/`"json"`, '
           '`"msgpack"`, or a dotted path to a `Serializer` subclass '
           "([serializers](serializers.md))"),
    Option("PICKLE_VERSION", (int,), pickle.HIGHEST_PROTOCOL, "pickle protocol of the signed "
           "pickle serializer (negative: highest)", maximum=pickle.HIGHEST_PROTOCOL,
           default_doc="highest"),
    Option("SIGNING_KEY", (str, bytes), None, "key the pickle HMAC is derived from",
           nullable=True, default_doc="`SECRET_KEY`"),
    Option("SIGNING_KEY_FALLBACKS", (list, tuple), None, "older keys still accepted on read",
           nullable=True, default_doc="`SECRET_KEY_FALLBACKS`"),
    Option("ORJSON_OPTIONS", (int,), 0, "`orjson.OPT_*` flags of the orjson serializer",
           minimum=0),
    Option("COMPRESS_MIN_BYTES", (int,), None, "compress serialized values of at least this "
           "many bytes", minimum=0, nullable=True, default_doc="`None` (off)"),
    Option("COMPRESSOR", (str,), "zlib", '`"zlib"`, `"zstd"`, `"lz4"` or a dotted path to a '
           "`Compressor`"),
    Option("COMPRESS_LEVEL", (int,), None, "compression level", nullable=True,
           default_doc="compressor's default"),
    Option("ENCRYPTION_KEY", (str, bytes), None, "encrypt every value except raw integers "
           "(AES-256-GCM-SIV, after serializing and compressing; at least 32 bytes; the "
           "`encryption` extra) ([serializers](serializers.md#encryption-at-rest))",
           nullable=True, default_doc="`None` (off)"),
    Option("ENCRYPTION_KEY_FALLBACKS", (list, tuple), None, "older encryption keys still "
           "accepted on read (rotation)", nullable=True, default_doc="`[]`"),
    Option("STAMPEDE_LOCK_TIMEOUT", _SECONDS, 10.0, "seconds the cross-process compute lock of "
           "`get_or_set` lives ([stampede](stampede.md))", minimum=0.001),
    Option("STAMPEDE_WAIT_TIMEOUT", _SECONDS, 10.0, "seconds a `get_or_set` caller waits for "
           "another's computation before computing itself", minimum=0.0),
    Option("XFETCH_BETA", _SECONDS, 1.0, "XFetch early-refresh eagerness for entries written "
           "by `get_or_set`; `0` disables", minimum=0.0),
    Option("TTL_JITTER", _SECONDS, 0.0, "spread expiries of `get_or_set` writes by +- this "
           "fraction (e.g. `0.1`); plain `set` is never jittered", minimum=0.0, maximum=0.99),
    Option("TAG_TIMEOUT", _SECONDS, 30 * 24 * 3600.0, "seconds tag version records live "
           "([tags](tags.md))", minimum=1.0, default_doc="`2592000.0` (30 days)"),
    Option("MAX_ENTRIES", (int,), 300, "entries kept before culling (Django's meaning; Django "
           "reads it for every backend, only memory uses it)", minimum=1),
    Option("CULL_FREQUENCY", (int,), 3, "cull `1/CULL_FREQUENCY` of the entries when full; `0` "
           "empties the store (Django's meaning, used by memory)", minimum=0),
    Option("CONNECT_TIMEOUT", _SECONDS, 1.0, "seconds to open a connection", backends=NETWORKED,
           minimum=0.001, backend_defaults=(("redis", 0.5),)),
    Option("SOCKET_TIMEOUT", _SECONDS, 1.0, "seconds to wait for a reply", backends=NETWORKED,
           minimum=0.001),
    Option("MAX_CONNECTIONS", (int,), 100, "connections per server per process (and per event "
           "loop for the async API)", backends=frozenset({"redis"}), minimum=1),
    Option("POOL_TIMEOUT", _SECONDS, None, "seconds a caller waits for a free connection when all "
           "`MAX_CONNECTIONS` are busy, then fails open",
           backends=frozenset({"redis"}), minimum=0.0, default_doc="`SOCKET_TIMEOUT`"),
    Option("NO_DELAY", (bool,), True, "`TCP_NODELAY` on the sockets",
           backends=frozenset({"memcached"})),
    Option("POOL_SIZE", (int,), 4, "asyncio connections per server per event loop (async path)",
           backends=frozenset({"memcached"}), minimum=1),
    Option("MAX_ITEM_BYTES", (int,), 1024 * 1024 - 512, "largest encoded value sent; larger "
           "values are compressed first, then refused", backends=frozenset({"memcached"}),
           minimum=1024, default_doc="`1048064` (1 MiB - 512)"),
    Option("ASYNC_CLIENT", (str,), None, "how the `a*` methods run: our asyncio client "
           "(one server) or pymemcache on worker threads", nullable=True,
           backends=frozenset({"memcached"}), choices=("asyncio", "thread"),
           default_doc='`"asyncio"` (one server), else `"thread"`'),
    Option("L1", (str, dict), None, "the in-process tier: a `CACHES` alias of a memory "
           "backend, or an inline `CACHES`-style dict ([tiered](backends/tiered.md))",
           nullable=True, backends=frozenset({"tiered"}), default_doc="required"),
    Option("L2", (str, dict), None, "the shared tier: a Redis or Memcached alias, or an inline "
           "dict", nullable=True, backends=frozenset({"tiered"}), default_doc="required"),
    Option("L1_TIMEOUT", _SECONDS, 30.0, "longest an entry lives in L1 (its L2 lifetime caps "
           "it too)", backends=frozenset({"tiered"}), minimum=0.0),
    Option("BUS", (bool,), None, "publish writes on Redis so every process drops its stale "
           "L1 entries", nullable=True, backends=frozenset({"tiered"}),
           default_doc="`True` with a Redis L2, else `False`"),
    Option("INVALIDATION_CHANNEL", (str,), "lexigram-cache:tiered", "the Redis pub/sub "
           "channel of the bus", backends=frozenset({"tiered"})),
    Option("CIRCUIT_FAILURES", (int,), 5, "consecutive failures (refused, reset, timed out) "
           "that open a server's circuit breaker ([resilience](resilience.md))",
           backends=NETWORKED, minimum=1),
    Option("CIRCUIT_OPEN_ON_TIMEOUT", (bool,), True, "a reply timeout (a stalled server) "
           "opens the breaker at once instead of counting as one of `CIRCUIT_FAILURES`",
           backends=NETWORKED),
    Option("CIRCUIT_RESET_TIMEOUT", _SECONDS, 1.0, "seconds a breaker stays open before one "
           "trial call probes the server", backends=NETWORKED, minimum=0.0),
)  # fmt: skip

#: ``settings.LEXIGRAM_CACHE`` keys.
APP_SETTINGS: Mapping[str, Option] = _options(
    Option("INVALIDATE_MODELS", (list, tuple), (), '`"app_label.Model"` strings whose saves, '
           "deletes and m2m changes invalidate their model and row tags on commit "
           "([invalidation](invalidation.md))", default_doc="`[]`"),
    Option("INVALIDATE_CACHES", (list, tuple), None, "aliases model-signal invalidation "
           "invalidates tags in", nullable=True, default_doc="`None` (every lexigram alias)"),
    Option("SEMANTIC", (dict,), None, "the semantic cache's settings (`THRESHOLD`, `ALIAS`, "
           "`EMBEDDER`, ...; [semantic](semantic.md))", nullable=True, default_doc="`{}`"),
    Option("WARMERS_AUTODISCOVER", (bool,), True, "import `warmers.py` of every installed app "
           "at start-up ([warming](warming.md))"),
    Option("CELERY_QUEUE", (str,), None, "queue of the warm and refresh tasks", nullable=True,
           default_doc="Celery's default"),
    Option("SWR_REFRESH", (str,), "thread", "how stale-while-revalidate refreshes run when a "
           "decorator does not say", choices=("thread", "celery")),
    Option("SWR_THREADS", (int,), 4, "background threads for `refresh=\"thread\"`", minimum=1),
    Option("SWR_CLAIM_TIMEOUT", _SECONDS, 60.0, "longest a refresh claim is held (capped by the "
           "stale window)", minimum=1.0),
    Option("METRICS_ENABLED", (bool,), True, "add each process's counters up site-wide in "
           "per-minute buckets ([metrics](metrics.md#site-wide-metrics))"),
    Option("METRICS_INTERVAL", _SECONDS, 10.0, "seconds between two flushes of a process's "
           "counter deltas", minimum=0.05, maximum=3600.0),
    Option("METRICS_ALIAS", (str,), None, "the Redis or Memcached alias every alias's "
           "site-wide metrics are added up on", nullable=True,
           default_doc="`None` (each alias's own server)"),
)  # fmt: skip

#: Lower-case OPTIONS a backend refuses, with why (they mean something else, or nothing, here).
REFUSED_CLIENT_OPTIONS: Mapping[str, Mapping[str, str]] = {
    "redis": {
        "serializer": "use SERIALIZER (a lexigram serializer name or dotted path)",
        "pool_class": "this backend manages its own pools; pass connection options instead",
        "cache_config": "redis-py's client-side caching lives in redis-py's pools, which this "
        "backend's commands do not use; put a MemoryCache in front (two aliases) instead",
        "cache": "redis-py's client-side caching is not supported (see cache_config)",
        "cache_factory": "redis-py's client-side caching is not supported (see cache_config)",
    },
    "memcached": {
        name: "values are encoded by the alias's codec; use OPTIONS['SERIALIZER'] instead"
        for name in ("serde", "serializer", "deserializer")
    },
}

#: django-redis ``OPTIONS`` names, and what to write here instead.
DJANGO_REDIS_OPTIONS: Mapping[str, str] = {
    "IGNORE_EXCEPTIONS": "Use FAIL_SILENTLY (True by default: errors are logged and counted).",
    "LOG_IGNORED_EXCEPTIONS": "Failures are always logged, on the 'lexigram_cache_django' logger.",
    "CLIENT_CLASS": "Remove it: the backend is the client; replicas go in LOCATION (a list) and "
    "stampede protection (HerdClient) is built into get_or_set.",
    "CLIENT_KWARGS": "Remove it; connection options are lower-case OPTIONS.",
    "CONNECTION_POOL_KWARGS": "Give its keys as lower-case OPTIONS (passed to redis-py), or use "
    "MAX_CONNECTIONS / POOL_TIMEOUT.",
    "CONNECTION_POOL_CLASS": "Remove it: the backend manages its own pools (MAX_CONNECTIONS, "
    "POOL_TIMEOUT).",
    "CONNECTION_POOL_CLASS_KWARGS": "Use MAX_CONNECTIONS / POOL_TIMEOUT or lower-case OPTIONS.",
    "CONNECTION_FACTORY": "Remove it: the backend manages its own pools.",
    "SOCKET_CONNECT_TIMEOUT": "Use CONNECT_TIMEOUT.",
    "PASSWORD": "Put it in LOCATION (redis://:password@host) or the lower-case 'password' option.",
    "USERNAME": "Put it in LOCATION (redis://user:password@host) or the lower-case 'username'.",
    "PARSER_CLASS": "Remove it: hiredis is used when installed (lower-case 'parser_class' "
    "reaches redis-py).",
    "REDIS_CLIENT_CLASS": "Remove it: commands go to pooled connections, not a redis.Redis.",
    "REDIS_CLIENT_KWARGS": "Give connection options as lower-case OPTIONS.",
    "CLOSE_CONNECTION": "Remove it: connections are pooled and kept open.",
    "SENTINELS": "Sentinel LOCATIONs are not supported yet (docs/design.md).",
    "SENTINEL_KWARGS": "Sentinel LOCATIONs are not supported yet (docs/design.md).",
    "REPLICA_READ_ONLY": "Remove it: replicas (LOCATION after the first URL) only serve reads.",
    "REVERSE_KEY_FUNCTION": "Remove it: keys() and iter_keys() return keys as given.",
}
#: django-redis serializer/compressor classes, and our names for the same format.
DJANGO_REDIS_CODECS: Mapping[str, str] = {
    "django_redis.serializers.pickle.PickleSerializer": "pickle",
    "django_redis.serializers.json.JSONSerializer": "json",
    "django_redis.serializers.msgpack.MSGPackSerializer": "msgpack",
    "django_redis.compressors.zlib.ZlibCompressor": "zlib",
    "django_redis.compressors.zstd.ZStdCompressor": "zstd",
    "django_redis.compressors.lz4.Lz4Compressor": "lz4",
}


def option_names(backend: str) -> frozenset[str]:
    """The UPPER_CASE OPTIONS ``backend`` accepts (its ``known_options``)."""
    if backend not in BACKENDS:
        raise CacheConfigurationError(
            f"unknown backend name {backend!r}; use one of {sorted(BACKENDS)}"
        )
    return frozenset(name for name, option in CACHE_OPTIONS.items() if backend in option.backends)


def value(options: Mapping[str, Any], name: str, backend: str | None = None) -> Any:
    """``options[name]`` checked and in its declared type, or the default on ``backend``.

    Raises :class:`CacheConfigurationError` (which the system check reports in advance)
    for a value of the wrong type or out of range.
    """
    option = CACHE_OPTIONS.get(name)
    if option is None:
        raise CacheConfigurationError(f"{name!r} is not a lexigram cache option")
    if backend is not None and backend not in option.backends:
        raise CacheConfigurationError(f"{name} is not an option of the {backend} backend")
    if name not in options:
        return option.default_for(backend)
    raw = options[name]
    found = option.problem(raw)
    if found is not None:
        raise CacheConfigurationError(f"OPTIONS[{name!r}]: {found.message} {found.hint}")
    return option.coerce(raw)


def app_settings() -> Mapping[str, Any]:
    """``settings.LEXIGRAM_CACHE`` (empty if unset), refused if it is not a dict."""
    configured = getattr(settings, "LEXIGRAM_CACHE", None) or {}
    if not isinstance(configured, dict):
        raise CacheConfigurationError("LEXIGRAM_CACHE must be a dict.")
    return configured


def app_setting(name: str) -> Any:
    """``LEXIGRAM_CACHE[name]`` checked against :data:`APP_SETTINGS`, or its default."""
    option = APP_SETTINGS[name]
    configured = app_settings()
    if name not in configured:
        return option.default
    raw = configured[name]
    found = option.problem(raw)
    if found is not None:
        raise CacheConfigurationError(f"LEXIGRAM_CACHE[{name!r}]: {found.message} {found.hint}")
    return raw


# -- LOCATION -----------------------------------------------------------------------------

#: ``scheme:`` followed by one slash or more (``redis:/`` too, a common typo).
_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*:/+"
#: A new item of a ``,``/``;``/space-separated LOCATION: a separator, then a scheme.
_ITEM_START = re.compile(rf"(?<=[;,\s])(?={_SCHEME})")
#: ``password=...`` (and ``ssl_password``, ``token``, ...) in a query string, up to the
#: next parameter, fragment, blank or the next item.
_SECRET_PARAM = re.compile(
    rf"(?i)([\w\-]*(?:password|passwd|pwd|secret|token)[\w\-]*=)(.*?)(?=[&#\s]|[;,]{_SCHEME}|$)"
)


def split_location(location: Any) -> list[str]:
    """LOCATION's servers, as the backends read it: a list, or a ``,``/``;``-separated string."""
    if isinstance(location, str):
        items: Iterable[Any] = re.split("[;,]", location)
    elif isinstance(location, list | tuple):
        items = location
    else:
        items = [location] if location else []
    return [text for text in (str(item).strip() for item in items) if text]


def _mask_item(item: str) -> str:
    """Hide what precedes the last ``@``: the userinfo, whatever the URL's shape."""
    at = item.rfind("@")
    if at < 0:
        return item
    scheme = re.search(_SCHEME, item[:at])
    start = scheme.end() if scheme else 0
    user, colon, _ = item[start:at].partition(":")
    kept = f"{user}:***" if colon and not re.search(r"[/?#\s]", user) else "***"
    return f"{item[:start]}{kept}{item[at:]}"


def mask_location(location: Any) -> str:
    """LOCATION fit to show (repr, logs, errors, checks): every password replaced by ``***``.

    Works on any shape, malformed ones included: a URL with ``user:password@`` or
    ``:password@`` (``redis:/:pw@h`` too), ``?password=``, several URLs in a list or a
    ``,``/``;``-separated string, Sentinel's ``redis+sentinel://:pw@h1,h2/...``, or
    ``:pw@host`` with no scheme. When in doubt it hides too much, never too little.
    """
    if isinstance(location, list | tuple):
        return ",".join(mask_location(item) for item in location)
    text = _SECRET_PARAM.sub(r"\1***", str(location))
    return "".join(_mask_item(item) for item in _ITEM_START.split(text))


# -- the app itself ---------------------------------------------------------------------------


def features_configured() -> bool:
    """Whether settings ask for what only the installed app does (model invalidation)."""
    return bool(getattr(settings, "LEXIGRAM_CACHE", None))


def app_missing_warning() -> str | None:
    """Why invalidation is silently off, or None: the app is installed, or nothing needs it."""
    from django.apps import apps

    if not apps.ready or apps.is_installed(APP_NAME) or not features_configured():
        return None
    return (
        f"LEXIGRAM_CACHE is set but {APP_NAME!r} is not in INSTALLED_APPS: model-signal "
        "invalidation (INVALIDATE_MODELS, register_model) is silently disabled."
    )


def check_app_installed(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """``lexigram_cache.W001``: registered here, not by the app, so it runs without the app.

    It runs in every process that imported this module before the checks ran: a backend,
    a model using ``register_model``, or a settings module importing from the package.
    """
    from django.core.checks import Warning

    try:
        message = app_missing_warning()
    except Exception:  # a check must never raise; the app's own checks say more
        return []
    if message is None:
        return []
    hint = f"Add {APP_NAME!r} to INSTALLED_APPS, or remove LEXIGRAM_CACHE."
    return [Warning(message, hint=hint, obj="settings.INSTALLED_APPS", id="lexigram_cache.W001")]


def _register_app_check() -> None:
    """Register W001, and say it at once if the checks may already have run."""
    from django.core.checks import Tags, register

    register(check_app_installed, Tags.caches)
    try:
        message = app_missing_warning()
    except Exception:
        return
    if message is not None:  # imported late (first request, or mid-check): log it once
        logger.warning("%s", message)


_register_app_check()
