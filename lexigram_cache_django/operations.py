"""What an operator does to a cache alias: stats, health, clear, inspect, delete, list,
invalidate, doctor.

One set of functions shared by ``manage.py cache``, the admin page, the tasks and
``contrib/``, so each of them is a thin layer of presentation. Every function takes an alias
name from ``settings.CACHES``; an unknown one raises :class:`OperationError`. Results are
plain dicts of JSON types (the schema is in ``docs/operations.md``); passwords in LOCATION
are masked. Django's own backends are handled too, for what can be known about them.
"""

from __future__ import annotations

import fnmatch
import itertools
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from . import site_metrics
from .backends.base import LexigramCache
from .backends.tiered.core import TieredCore
from .conf import mask_location
from .exceptions import CacheDecodeError, CacheServerError
from .failfast import one_operation
from .invalidation import has_extra_tags, invalidate_now, rows_of
from .metrics import LatencyHistogram, histograms
from .tags import TagLike, tag_names, tag_record_key

#: Characters of a value's ``repr`` shown by :func:`inspect_key`.
PREVIEW_CHARS = 200
#: Keys deleted per UNLINK while clearing a Redis alias (progress is reported per batch).
CLEAR_BATCH = 500

_SERIALIZERS = {0: "custom", 1: "pickle", 2: "orjson", 3: "msgpack", 6: "bytes", 7: "str"}
_COMPRESSORS = {0: None, 1: "zlib", 2: "zstd", 3: "lz4"}
_STATUS_ORDER = ("up", "degraded", "breaker_open", "down")


class OperationError(Exception):
    """An operation that cannot be done as asked (unknown alias, model, bad input)."""


class CannotEnumerate(OperationError, NotImplementedError):
    """The backend cannot list its keys (memcached has no SCAN)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of :func:`doctor`: ``level`` is ``"error"``, ``"warning"`` or ``"info"``."""

    level: str
    code: str
    message: str
    alias: str | None = None
    hint: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- aliases -------------------------------------------------------------------------------


def aliases() -> list[str]:
    """Every alias in ``settings.CACHES``, in settings order."""
    return list(settings.CACHES)


def _cache(alias: str) -> BaseCache:
    if alias not in settings.CACHES:
        known = ", ".join(settings.CACHES) or "none"
        raise OperationError(f"unknown cache alias {alias!r} (configured: {known})")
    cache: BaseCache = caches[alias]
    return cache


def _backend_name(cache: BaseCache) -> str:
    if isinstance(cache, LexigramCache):
        return cache.backend_name
    cls = type(cache)
    return f"{cls.__module__}.{cls.__qualname__}"


def _location(alias: str) -> str:
    return mask_location(settings.CACHES[alias].get("LOCATION", ""))


# -- stats -----------------------------------------------------------------------------------


def _ratio(hits: int, misses: int) -> float | None:
    return hits / (hits + misses) if hits + misses else None


def server_names(cache: BaseCache) -> list[str]:
    """The servers whose latency histograms belong to ``cache`` (tiered: its L2's)."""
    if isinstance(cache, TieredCore):
        return server_names(cache._l2)
    client = getattr(cache, "_client", None)
    names = getattr(client, "names", None)
    if names is not None:
        return list(names)
    name = getattr(client, "name", None)
    return [name] if isinstance(name, str) else []


def latency_of(cache: BaseCache) -> LatencyHistogram:
    """This process's command latency to the alias's servers, merged."""
    merged = LatencyHistogram()
    known = histograms()
    for name in server_names(cache):
        if name in known:
            merged.merge(known[name])
    return merged


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _server_figures(cache: BaseCache, store: dict[str, Any]) -> dict[str, Any] | None:
    """What the server itself says, labelled by where it comes from."""
    if isinstance(cache, TieredCore):
        return None
    name = _backend_name(cache)
    if name == "redis":
        return {"source": "redis INFO", **store}
    if name == "memcached":
        return {"source": "memcached stats", **store}
    if name == "memory":
        return {"source": "memory store (this process)", **store}
    return _django_server_figures(cache)


def _django_server_figures(cache: BaseCache) -> dict[str, Any] | None:
    """Figures Django's own backends can give (entries of LocMem, INFO, memcached stats)."""
    try:
        inner: Any = getattr(cache, "_cache", None)
        if isinstance(inner, dict):
            return {"source": "locmem (this process)", "entries": len(inner)}
        if hasattr(inner, "get_client"):  # django.core.cache.backends.redis
            info = inner.get_client(write=False).info()
            keep = ("redis_version", "used_memory", "maxmemory", "maxmemory_policy")
            return {"source": "redis INFO", **{k: info.get(k) for k in keep}}
        if hasattr(inner, "get_stats"):  # pymemcache / pylibmc clients
            return {"source": "memcached stats", "servers": repr(inner.get_stats())[:500]}
    except Exception as exc:  # a stats page must not fail because a server is down
        return {"source": "server", "server_error": f"{type(exc).__name__}: {exc}"}
    return None


def alias_stats(alias: str) -> dict[str, Any]:
    """One alias's entry of ``cache stats --json`` (docs/operations.md has the schema)."""
    cache = _cache(alias)
    data: dict[str, Any] = {
        "alias": alias,
        "backend": _backend_name(cache),
        "location": _location(alias),
        "lexigram": isinstance(cache, LexigramCache),
        "process": None,
        "site": None,
        "site_scope": None,
        "hit_ratio": None,
        "latency": None,
        "server": None,
        "tiers": None,
    }
    if not isinstance(cache, LexigramCache):
        data["server"] = _django_server_figures(cache)
        return data
    counters = cache.counters.snapshot()
    data["process"] = {**counters, "hit_ratio": _ratio(counters["hits"], counters["misses"])}
    site = site_metrics.site_totals(alias)
    if site is not None:
        data["site"] = {**site, "hit_ratio": _ratio(site["hits"], site["misses"])}
        data["site_scope"] = "site"
        data["hit_ratio"] = data["site"]["hit_ratio"]
    else:
        data["site_scope"] = "process"
        data["hit_ratio"] = data["process"]["hit_ratio"]
    hist = latency_of(cache)
    data["latency"] = {
        "count": hist.total,
        "p50_ms": _ms(hist.percentile(0.5)),
        "p99_ms": _ms(hist.percentile(0.99)),
        "scope": "process",
    }
    store = cache.store_stats()
    if isinstance(cache, TieredCore):
        data["tiers"] = {key: value for key, value in store.items() if key not in ("l1", "l2")} | {
            "l1": _tier_brief(store.get("l1")),
            "l2": _tier_brief(store.get("l2")),
        }
    else:
        data["server"] = _server_figures(cache, store)
    return data


def _tier_brief(stats: Any) -> dict[str, Any] | None:
    if not isinstance(stats, dict):
        return None
    keep = ("backend", "location", "hits", "misses", "sets", "errors", "entries", "hit_rate")
    return {key: stats.get(key) for key in keep}


# -- health ----------------------------------------------------------------------------------


def alias_health(alias: str) -> dict[str, Any]:
    """``status`` (up / degraded / breaker_open / down), ping, breaker, version, memory."""
    cache = _cache(alias)
    data: dict[str, Any] = {
        "alias": alias,
        "backend": _backend_name(cache),
        "location": _location(alias),
        "status": "up",
        "ping_ms": None,
        "breaker": None,
        "version": None,
        "memory_used": None,
        "memory_limit": None,
        "eviction_policy": None,
        "servers": [],
        "error": None,
    }
    if not isinstance(cache, LexigramCache):
        return _django_health(cache, data)
    probe = cache._l2 if isinstance(cache, TieredCore) else cache
    with one_operation():
        health = probe.health()
    servers = health.get("servers", [])
    data["servers"] = servers
    status = health["status"]
    if servers:
        first = servers[0]
        data["ping_ms"] = first.get("ping_ms")
        data["breaker"] = first.get("state")
        data["error"] = first.get("error")
        broken = [s for s in servers if s.get("ping_ms") is None]
        if status == "down" and broken and all(s.get("state") == "open" for s in broken):
            status = "breaker_open"
    data["status"] = status
    if status in ("up", "degraded"):
        data.update(_memory_figures(probe))
    return data


def _memory_figures(cache: LexigramCache) -> dict[str, Any]:
    store = cache.store_stats()
    name = cache.backend_name
    if name == "redis":
        return {
            "version": store.get("redis_version"),
            "memory_used": store.get("used_memory"),
            "memory_limit": store.get("maxmemory") or None,
            "eviction_policy": store.get("maxmemory_policy"),
        }
    if name == "memcached":
        nodes = [n for n in store.get("servers", {}).values() if "error" not in n]
        versions = sorted({str(n.get("version")) for n in nodes})
        return {
            "version": ", ".join(versions) or None,
            "memory_used": sum(int(n.get("bytes") or 0) for n in nodes),
            "memory_limit": sum(int(n.get("limit_maxbytes") or 0) for n in nodes) or None,
            "eviction_policy": "lru",
        }
    if name == "memory":
        return {
            "memory_used": None,
            "memory_limit": None,
            "eviction_policy": f"lru (MAX_ENTRIES {store.get('max_entries')})",
        }
    return {}


def _django_health(cache: BaseCache, data: dict[str, Any]) -> dict[str, Any]:
    """Django's own backends: one read of a key nobody writes, timed."""
    start = time.perf_counter()
    try:
        cache.get("lexigram-cache:health-probe")
    except Exception as exc:
        data["status"] = "down"
        data["error"] = f"{type(exc).__name__}: {exc}"
    else:
        data["ping_ms"] = _ms(time.perf_counter() - start)
    return data


def worst_status(statuses: Sequence[str]) -> str:
    """The worst of several health statuses (``up`` if none)."""
    return max(statuses, key=_STATUS_ORDER.index, default="up")


# -- clear, delete, keys ---------------------------------------------------------------------


def clear_alias(alias: str, progress: Callable[[int], None] | None = None) -> int | None:
    """Remove the alias's entries (prefix-safe, as ``clear()``); the number removed where
    the backend can tell (Redis with a KEY_PREFIX, memory), else None. ``progress`` is
    called with the running count after each batch."""
    cache = _cache(alias)
    if isinstance(cache, LexigramCache) and cache.backend_name == "redis" and cache.key_prefix:
        client: Any = getattr(cache, "_client")  # noqa: B009  (RedisCache only)
        pattern = getattr(cache, "_alias_pattern")()  # noqa: B009
        removed = 0
        try:
            with one_operation():
                scan = client.scan(client.primary, pattern)
                for batch in _batches(scan, CLEAR_BATCH):
                    removed += int(client.send(client.primary, "UNLINK", *batch) or 0)
                    if progress is not None:
                        progress(removed)
        except CacheServerError as exc:
            raise OperationError(f"clearing {alias!r} failed: {exc}") from exc
        return removed
    count: int | None = None
    if isinstance(cache, LexigramCache) and cache.backend_name == "memory":
        count = int(cache.store_stats()["entries"])
    elif isinstance(cache, LexigramCache) and cache.backend_name == "redis":
        count = int(cache.store_stats().get("entries") or 0) or None
    cache.clear()
    if progress is not None and count is not None:
        progress(count)
    return count


def _batches(items: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def delete_keys(alias: str, keys: Sequence[str]) -> int:
    """Delete ``keys`` (as the application names them); how many existed."""
    cache = _cache(alias)
    return sum(1 for key in keys if cache.delete(key))


def list_keys(alias: str, pattern: str = "*", limit: int = 100) -> list[str]:
    """Up to ``limit`` keys of the alias matching the glob ``pattern``, as the application
    names them. Raises :class:`CannotEnumerate` where the backend cannot list keys."""
    if limit < 1:
        raise OperationError(f"limit must be at least 1, not {limit}")
    cache = _cache(alias)
    if isinstance(cache, LexigramCache) and cache.backend_name == "redis":
        return list(itertools.islice(cache.iter_keys(pattern), limit))  # type: ignore[attr-defined]
    if isinstance(cache, LexigramCache) and cache.backend_name == "memory":
        head, sep, tail = cache.make_key("\x00").partition("\x00")
        found: list[str] = []
        store: Any = cache._store  # type: ignore[attr-defined]
        with store.lock:
            made = list(store.data)
        for key in made:
            if sep and key.startswith(head) and key.endswith(tail):
                plain = key[len(head) : len(key) - len(tail)]
                if fnmatch.fnmatchcase(plain, pattern):
                    found.append(plain)
                    if len(found) >= limit:
                        break
        return found
    name = _backend_name(cache)
    if name == "memcached":
        raise CannotEnumerate(
            f"{alias!r} is a memcached cache: memcached cannot list its keys (it has no SCAN). "
            "Look one key up with `cache get ALIAS KEY`."
        )
    raise CannotEnumerate(f"{alias!r} ({name}) cannot list its keys here")


# -- inspect ---------------------------------------------------------------------------------


def describe_bytes(raw: bytes) -> dict[str, Any]:
    """What the codec header of stored bytes says: serializer, compression, encryption."""
    if not raw:
        return {"format": "empty"}
    header = raw[0]
    if header < 0x80:
        return {"format": "raw integer", "serializer": None, "compression": None}
    return {
        "format": "encoded entry",
        "serializer": _SERIALIZERS.get((header >> 4) & 0x7, f"id {(header >> 4) & 0x7}"),
        "compression": _COMPRESSORS[(header >> 2) & 0x3],
        "encrypted": bool(header & 0x01),
        "has_meta": bool(header & 0x02),
    }


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "\u2026"


def inspect_key(alias: str, key: str) -> dict[str, Any]:
    """One entry as stored: found, value preview, remaining TTL, size, tags and whether
    each is current, serializer/compression of the stored bytes."""
    cache = _cache(alias)
    data: dict[str, Any] = {
        "alias": alias,
        "key": key,
        "found": False,
        "value_preview": None,
        "type": None,
        "ttl_seconds": None,
        "ttl_known": False,
        "size_bytes": None,
        "encoding": None,
        "tags": [],
        "stale_by_tag": False,
        "error": None,
    }
    if not isinstance(cache, LexigramCache) or isinstance(cache, TieredCore):
        value = cache.get(key, _MISSING)
        if value is not _MISSING:
            data.update(found=True, value_preview=_preview(value), type=type(value).__name__)
        return data
    made = cache.make_and_validate_key(key)
    try:
        with one_operation():
            if cache.backend_name == "memory":
                return _inspect_memory(cache, made, data)
            return _inspect_remote(cache, made, data)
    except CacheServerError as exc:
        data["error"] = str(exc)
        return data


_MISSING = object()


def _inspect_memory(cache: LexigramCache, made: str, data: dict[str, Any]) -> dict[str, Any]:
    store: Any = cache._store  # type: ignore[attr-defined]
    with store.lock:
        entry = store.data.get(made)
    now = time.time()
    if entry is None or (entry.expires is not None and entry.expires <= now):
        return data
    value = pickle.loads(entry.value) if entry.pickled else entry.value
    data.update(
        found=True,
        value_preview=_preview(value),
        type=type(value).__name__,
        ttl_known=True,
        ttl_seconds=None if entry.expires is None else round(entry.expires - now, 3),
        size_bytes=len(entry.value) if entry.pickled else None,
        encoding={"format": "in process", "serializer": "pickle" if entry.pickled else None},
    )
    return _with_tags(cache, entry.meta, data)


def _inspect_remote(cache: LexigramCache, made: str, data: dict[str, Any]) -> dict[str, Any]:
    client: Any = cache._client  # type: ignore[attr-defined]
    raw = client.get(made, primary=True)
    if raw is None:
        return data
    raw = bytes(raw)
    data.update(found=True, size_bytes=len(raw), encoding=describe_bytes(raw))
    if cache.backend_name == "redis":
        pttl = int(client.send(client.primary, "PTTL", made))
        data["ttl_known"] = True
        data["ttl_seconds"] = None if pttl < 0 else pttl / 1000
    else:
        ttl = _memcached_ttl(client, made)
        if ttl is not None:
            data["ttl_known"] = True
            data["ttl_seconds"] = None if ttl < 0 else float(ttl)
    try:
        value, meta = cache.codec.decode_entry(raw)
    except CacheDecodeError as exc:
        data["error"] = f"cannot decode: {exc}"
        return data
    data.update(value_preview=_preview(value), type=type(value).__name__)
    if meta is not None and meta.expires and not data["ttl_known"]:
        data["ttl_known"] = True
        data["ttl_seconds"] = round(meta.expires - time.time(), 3)
    return _with_tags(cache, meta, data)


def _memcached_ttl(client: Any, made: str) -> int | None:
    """Seconds left of a memcached item (meta get ``mg KEY t``; -1: never), or None
    when the server cannot say (before memcached 1.6, or it failed)."""
    try:
        pm = client.pymemcache()
        node = pm._get_client(made) if hasattr(pm, "_get_client") else pm
        reply: bytes = node.raw_command(f"mg {made} t".encode())
    except Exception:
        return None
    for token in reply.split()[1:] if reply.startswith(b"HD") else ():
        if token.startswith(b"t"):
            return int(token[1:])
    return None


def _with_tags(cache: LexigramCache, meta: Any, data: dict[str, Any]) -> dict[str, Any]:
    if meta is None or not meta.tags:
        return data
    keys = [tag_key for tag_key, _ in meta.tags]
    current = cache.tag_versions(keys, False)
    tags = []
    for (tag_key, version), now in zip(meta.tags, current):
        tags.append(
            {
                "tag": tag_key.partition("tag:")[2] or tag_key,
                "tag_key": tag_key,
                "version": version,
                "current_version": now,
                "current": now == version,
            }
        )
    data["tags"] = tags
    data["stale_by_tag"] = any(not t["current"] for t in tags)
    return data


# -- invalidate ------------------------------------------------------------------------------


def invalidate(
    *,
    alias: str | None,
    tags: Sequence[str] = (),
    model: str | None = None,
    pks: Sequence[str] = (),
) -> list[str]:
    """Invalidate string ``tags`` and/or a model's tags (the model tag, or with ``pks`` the
    rows' tags plus their extra tags, as model invalidation does) in ``alias`` (default:
    the aliases model invalidation uses). Returns the tag names invalidated."""
    if pks and model is None:
        raise OperationError("--pk needs --model")
    wanted: list[TagLike] = [t for t in tags if t]
    if model is not None:
        try:
            cls = apps.get_model(model)
        except (LookupError, ValueError) as exc:
            raise OperationError(f"unknown model {model!r} (use app_label.ModelName)") from exc
        if pks:
            for pk in pks:
                wanted.append((cls, pk))
            if has_extra_tags(cls):
                from .invalidation import extra_tags

                try:
                    for row in rows_of(cls, DEFAULT_DB_ALIAS, list(pks)):
                        wanted.extend(extra_tags(row))
                except DatabaseError as exc:
                    raise OperationError(
                        f"cannot read {model} rows for their extra tags: {exc}"
                    ) from exc
        else:
            wanted.append(cls)
    if not wanted:
        raise OperationError("name at least one tag (--tag) or a model (--model)")
    names = list(tag_names(wanted))
    if alias is not None:
        _cache(alias)
    invalidate_now(names, aliases=None if alias is None else [alias])
    return names


def tag_key_of(name: str) -> str:
    """The key a tag's version record is stored under (before prefix and version)."""
    return tag_record_key(name)


# -- doctor ----------------------------------------------------------------------------------

#: Seconds of clock difference with a server above which doctor warns (expiry and XFetch
#: use absolute times written by one host and read by another).
CLOCK_SKEW_WARNING = 2.0
#: Entries sampled per Redis alias to see whether this process can read what is stored.
DOCTOR_SAMPLE = 50


def doctor() -> list[Finding]:
    """Every system check, then what only a live look shows, alias by alias."""
    findings: list[Finding] = []
    for message in checks.run_checks(include_deployment_checks=False):
        level = "error" if message.level >= checks.ERROR else "warning"
        if message.level < checks.WARNING:
            level = "info"
        findings.append(
            Finding(level, message.id or "check", message.msg, None, message.hint or "")
        )
    for alias in aliases():
        findings.extend(_live_findings(alias))
    return findings


def _live_findings(alias: str) -> list[Finding]:
    cache = _cache(alias)
    health = alias_health(alias)
    if health["status"] in ("down", "breaker_open"):
        return [
            Finding(
                "error",
                "lexigram_cache.D001",
                f"cache {alias!r} at {health['location']} is not reachable: {health['error']}",
                alias,
                "Start the server or fix LOCATION; reads fail open until it answers.",
            )
        ]
    found = [
        Finding("info", "lexigram_cache.D000", f"cache {alias!r} is {health['status']}", alias)
    ]
    if not isinstance(cache, LexigramCache) or isinstance(cache, TieredCore):
        return found
    if cache.backend_name == "redis":
        found += _redis_findings(alias, cache, health)
    elif cache.backend_name == "memcached":
        found += _memcached_findings(alias, cache)
    return found


def _redis_findings(alias: str, cache: Any, health: dict[str, Any]) -> list[Finding]:
    found: list[Finding] = []
    client: Any = cache._client
    if health.get("eviction_policy") == "noeviction":
        found.append(
            Finding(
                "warning",
                "lexigram_cache.D002",
                f"Redis of {alias!r} has maxmemory-policy noeviction: once full, writes fail.",
                alias,
                "Use allkeys-lru (or allkeys-lfu) for a server that holds a cache.",
            )
        )
    try:
        seconds, micros = client.send(client.primary, "TIME")
        found += _skew(alias, int(seconds) + int(micros) / 1e6)
        pattern = cache._alias_pattern()
        sample = list(itertools.islice(client.scan(client.primary, pattern), DOCTOR_SAMPLE))
        raws = client.get_many([k.decode(errors="replace") for k in sample], True) if sample else []
    except CacheServerError as exc:
        return [*found, Finding("error", "lexigram_cache.D001", f"{alias!r}: {exc}", alias)]
    found += _readability(alias, cache, [r for r in raws if r])
    return found


def _memcached_findings(alias: str, cache: LexigramCache) -> list[Finding]:
    found: list[Finding] = []
    client: Any = cache._client  # type: ignore[attr-defined]
    limit = cache.option("MAX_ITEM_BYTES")
    for name, node in client.nodes():
        try:
            settings_stats = node.stats("settings")
            general = node.stats()
        except Exception as exc:
            found.append(Finding("error", "lexigram_cache.D001", f"{alias!r} {name}: {exc}", alias))
            continue
        item_max = _stat(settings_stats, "item_size_max")
        if item_max is not None and limit is not None and int(limit) > int(item_max):
            found.append(
                Finding(
                    "warning",
                    "lexigram_cache.D003",
                    f"{alias!r}: MAX_ITEM_BYTES is {limit} but memcached {name} stores items "
                    f"of at most {item_max} bytes.",
                    alias,
                    f"Set OPTIONS['MAX_ITEM_BYTES'] <= {item_max} or start memcached with -I.",
                )
            )
        server_time = _stat(general, "time")
        if server_time is not None:
            found += _skew(alias, float(server_time), tolerance=1.0)
    return found


def _stat(stats: dict[Any, Any], name: str) -> Any:
    for key, value in stats.items():
        if (key.decode() if isinstance(key, bytes) else str(key)) == name:
            return value.decode() if isinstance(value, bytes) else value
    return None


def _skew(alias: str, server_time: float, tolerance: float = 0.0) -> list[Finding]:
    skew = time.time() - server_time
    if abs(skew) <= CLOCK_SKEW_WARNING + tolerance:
        return []
    return [
        Finding(
            "warning",
            "lexigram_cache.D004",
            f"{alias!r}: this host's clock is {skew:+.1f}s off the server's.",
            alias,
            "Run NTP on both; entry expiry and early refresh use absolute times.",
        )
    ]


def _readability(alias: str, cache: LexigramCache, raws: Sequence[bytes]) -> list[Finding]:
    encoded = [bytes(r) for r in raws if r and r[0] >= 0x80]
    failures: dict[str, int] = {}
    for raw in encoded:
        try:
            cache.codec.decode_entry(raw)
        except CacheDecodeError as exc:
            reason = type(exc).__name__
            failures[reason] = failures.get(reason, 0) + 1
        except Exception as exc:  # a serializer's own error on foreign bytes
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
    if not failures:
        return []
    total = sum(failures.values())
    reasons = ", ".join(f"{n} {name}" for name, n in sorted(failures.items()))
    return [
        Finding(
            "warning",
            "lexigram_cache.D005",
            f"{alias!r}: {total} of {len(encoded)} sampled entries cannot be read with this "
            f"alias's SERIALIZER / SECRET_KEY / ENCRYPTION_KEY ({reasons}).",
            alias,
            "They read as misses. Add the old key to SECRET_KEY_FALLBACKS, restore the "
            "serializer, or clear the alias.",
        )
    ]
