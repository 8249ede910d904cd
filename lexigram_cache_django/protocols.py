"""What the features need from a backend, as small protocols.

Stampede protection and locks are written against these, never against a backend
class: they see made keys, entries and a few add-if-absent / compare-and-delete
primitives, and nothing private. Every lexigram backend satisfies them (memory directly
on its store, the networked ones through their client's single choke point).

A primitive that could not reach the server says so in its return value (``None`` from
:meth:`LockStore.lock_add`), after the backend's fail-open policy has logged and counted
it, so a caller decides on its own call's outcome and not on a counter shared by every
thread of the alias.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .codec import EntryMeta
from .metrics import CacheStats

#: A live entry: its value and its metadata (None for entries written without any).
Entry = tuple[Any, EntryMeta | None]


class KeyMaker(Protocol):
    """Django's key rules, as the backend applies them."""

    @property
    def identity(self) -> str:
        """What makes two backend objects the same cache (for in-process single flight)."""
        ...

    @property
    def counters(self) -> CacheStats:
        """The alias's counters (shared by every backend object of the alias)."""
        ...

    def make_and_validate_key(self, key: Any, version: int | None = None) -> str: ...

    def ttl_seconds(self, timeout: Any = ...) -> float | None: ...


class EntryStore(KeyMaker, Protocol):
    """Entries on made keys, with their metadata; what ``get_or_set`` is built on."""

    def get_entry(self, key: str) -> Entry | None:
        """The live entry (fresh by its tags), counted as a hit or a miss; None on a miss
        or when the server failed (fail open)."""
        ...

    def set_entry(self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None) -> None:
        """Store ``value`` for ``ttl`` seconds (None: no expiry) with its metadata."""
        ...

    def tag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        """Current versions of tag records (missing ones created when ``create``)."""
        ...

    def tagged_meta(self, tag_keys: Sequence[str], versions: Sequence[int | None]) -> EntryMeta:
        """Metadata recording the tag versions read before a value was computed."""
        ...

    async def aget_entry(self, key: str) -> Entry | None: ...

    async def aset_entry(
        self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None
    ) -> None: ...

    async def atag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]: ...


class LockStore(KeyMaker, Protocol):
    """Owner-token locks on made keys."""

    def lock_add(self, key: str, token: str, ttl: float | None) -> bool | None:
        """Store ``token`` only if ``key`` is absent: True if taken, False if held by
        someone else, None if the server could not be asked (already logged)."""
        ...

    def lock_release(self, key: str, token: str) -> bool:
        """Delete ``key`` only while it holds ``token``; True if it did."""
        ...

    def lock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        """Reset ``key``'s lifetime only while it holds ``token``."""
        ...

    def lock_owner(self, key: str) -> str | None:
        """The token under ``key``, or None."""
        ...

    async def alock_add(self, key: str, token: str, ttl: float | None) -> bool | None: ...

    async def alock_release(self, key: str, token: str) -> bool: ...

    async def alock_extend(self, key: str, token: str, ttl: float | None) -> bool: ...

    async def alock_owner(self, key: str) -> str | None: ...


class StampedeStore(EntryStore, LockStore, Protocol):
    """Everything single-flight ``get_or_set`` uses: entries plus the cross-process lock."""
