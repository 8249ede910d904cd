"""Tag operations every lexigram backend shares: tag record keys, tagged metadata,
O(1) invalidation (one version bump per tag), and the tag hints a write leaves.

A mixin of :class:`~.base.LexigramCache`; each backend implements the two primitives it
stands on, ``invalidate_tag_keys`` and ``tag_versions`` (see ``base.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.dispatch import Signal

from ..codec import EntryMeta
from ..signals import tags_invalidated
from ..tags import UNKNOWN_TAG_VERSION, TagHints, TagLike, tag_names, tag_record_key

if TYPE_CHECKING:
    from ..metrics import CacheStats

    class _CacheHost(Protocol):
        _tag_hints: TagHints
        _stats: CacheStats

        def option(self, name: str) -> Any: ...

        def make_key(self, key: Any, version: int | None = None) -> str: ...

        def send_signal(self, signal: Signal, **kwargs: Any) -> None: ...

        def invalidate_tag_keys(self, keys: Sequence[str]) -> None: ...

        async def ainvalidate_tag_keys(self, keys: Sequence[str]) -> None: ...

        def set(
            self,
            key: Any,
            value: Any,
            timeout: Any = DEFAULT_TIMEOUT,
            version: int | None = None,
            *,
            tags: Any = None,
        ) -> Any: ...

    _Host = _CacheHost
else:
    _Host = object


class TagOperations(_Host):
    """``invalidate_tags`` and the tag helpers the backends and features use."""

    @cached_property
    def tag_timeout(self) -> float:
        """Lifetime of tag records (OPTIONS["TAG_TIMEOUT"], default 30 days)."""
        return float(self.option("TAG_TIMEOUT"))

    def tag_keys(self, tags: Iterable[TagLike] | TagLike | None) -> tuple[str, ...]:
        """Final keys of the tags' version records (under this alias's prefix and VERSION)."""
        return tuple(self.make_key(tag_record_key(name)) for name in tag_names(tags))

    def tagged_meta(self, tag_keys: Sequence[str], versions: Sequence[int | None]) -> EntryMeta:
        """Metadata recording the tag versions seen before the value was computed.

        A version that could not be read (None: the server failed) is recorded as -1,
        which no tag record ever holds: the entry reads as stale, never as untagged.
        """
        return EntryMeta(
            tags=tuple(
                (k, UNKNOWN_TAG_VERSION if v is None else int(v))
                for k, v in zip(tag_keys, versions)
            )
        )

    def _learn_tags(self, keys: Iterable[str], meta: EntryMeta | None) -> None:
        """Remember the tag records written with ``keys`` (see :class:`~..tags.TagHints`)."""
        names = tuple(name for name, _ in meta.tags) if meta is not None else ()
        if not names and not self._tag_hints:
            return  # nothing to forget: the untagged write path stays free
        learn = self._tag_hints.learn
        for key in keys:
            learn(key, names)

    def invalidate_tags(self, *tags: TagLike | Iterable[TagLike]) -> None:
        """Make every entry written under any of ``tags`` read as a miss, in O(1) per tag."""
        names = tag_names(_flatten(tags))
        keys = self.tag_keys(names)
        if keys:
            self.invalidate_tag_keys(keys)
            self._stats.tag_invalidations += len(keys)
            if tags_invalidated.receivers:
                self.send_signal(tags_invalidated, tags=tuple(names))

    async def ainvalidate_tags(self, *tags: TagLike | Iterable[TagLike]) -> None:
        names = tag_names(_flatten(tags))
        keys = self.tag_keys(names)
        if keys:
            await self.ainvalidate_tag_keys(keys)
            self._stats.tag_invalidations += len(keys)
            if tags_invalidated.receivers:
                self.send_signal(tags_invalidated, tags=tuple(names))

    def invalidate_by_tag(self, tag: TagLike) -> None:
        """Alias of ``invalidate_tags(tag)`` (the name lexigram-cache used)."""
        self.invalidate_tags(tag)

    def set_with_tags(
        self,
        key: Any,
        value: Any,
        tags: Iterable[TagLike] | TagLike,
        ttl: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:
        """Alias of ``set(key, value, ttl, version, tags=tags)``."""
        return self.set(key, value, ttl, version, tags=tags)


def _flatten(tags: tuple[Any, ...]) -> list[Any]:
    """``invalidate_tags("a", Pet)`` and ``invalidate_tags(["a", Pet])`` mean the same."""
    flat: list[Any] = []
    for tag in tags:
        if isinstance(tag, list | set | frozenset) or (
            isinstance(tag, tuple) and not (len(tag) == 2 and isinstance(tag[0], type))
        ):
            flat.extend(tag)
        else:
            flat.append(tag)
    return flat
