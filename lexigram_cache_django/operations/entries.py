"""``inspect_key``: one entry as stored (value, TTL, size, tags, codec header)."""

from __future__ import annotations

import time
from typing import Any

from ..backends.base import LexigramCache
from ..backends.memory_store import COPIED, HEAD_COPIED, PICKLED, unpack
from ..backends.tiered.core import TieredCore
from ..exceptions import CacheDecodeError, CacheServerError
from ..failfast import one_operation
from .common import cache_of

#: Characters of a value's ``repr`` shown by :func:`inspect_key`.
PREVIEW_CHARS = 200

_SERIALIZERS = {0: "custom", 1: "pickle", 2: "orjson", 3: "msgpack", 6: "bytes", 7: "str"}
_COMPRESSORS = {0: None, 1: "zlib", 2: "zstd", 3: "lz4"}


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
    cache = cache_of(alias)
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
    value = unpack(entry)
    data.update(
        found=True,
        value_preview=_preview(value),
        type=type(value).__name__,
        ttl_known=True,
        ttl_seconds=None if entry.expires is None else round(entry.expires - now, 3),
        size_bytes=len(entry.value) if entry.form == PICKLED else None,
        encoding={
            "format": "in process",
            # How the memory backend isolates it (memory_store): pickled, copied or as is.
            "serializer": {PICKLED: "pickle", COPIED: "copy", HEAD_COPIED: "copy"}.get(entry.form),
        },
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
