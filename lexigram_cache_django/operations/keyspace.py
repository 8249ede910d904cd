"""Clearing, deleting, listing keys and invalidating tags of an alias."""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from ..backends.base import LexigramCache
from ..exceptions import CacheServerError
from ..failfast import one_operation
from ..invalidation import extra_tags, has_extra_tags, invalidate_now, rows_of
from ..tags import TagLike, tag_names
from .common import CannotEnumerate, OperationError, backend_name, cache_of

#: Keys deleted per UNLINK while clearing a Redis alias (progress is reported per batch).
CLEAR_BATCH = 500


def clear_alias(alias: str, progress: Callable[[int], None] | None = None) -> int | None:
    """Remove the alias's entries (prefix-safe, as ``clear()``); the number removed where
    the backend can tell (Redis with a KEY_PREFIX, memory), else None. ``progress`` is
    called with the running count after each batch."""
    cache = cache_of(alias)
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
    cache = cache_of(alias)
    return sum(1 for key in keys if cache.delete(key))


def list_keys(alias: str, pattern: str = "*", limit: int = 100) -> list[str]:
    """Up to ``limit`` keys of the alias matching the glob ``pattern``, as the application
    names them. Raises :class:`CannotEnumerate` where the backend cannot list keys."""
    if limit < 1:
        raise OperationError(f"limit must be at least 1, not {limit}")
    cache = cache_of(alias)
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
    name = backend_name(cache)
    if name == "memcached":
        raise CannotEnumerate(
            f"{alias!r} is a memcached cache: memcached cannot list its keys (it has no SCAN). "
            "Look one key up with `cache get ALIAS KEY`."
        )
    raise CannotEnumerate(f"{alias!r} ({name}) cannot list its keys here")


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
        cache_of(alias)
    invalidate_now(names, aliases=None if alias is None else [alias])
    return names
