"""Django's cache API, tags and locks for every networked backend, written once.

``RedisCache`` and ``MemcachedCache`` are this class over their own client (see
:mod:`.remote_entries` for the picture of where a call goes). Each sync method has its
async twin right below it, so drift between the two shows in review. Every method
catches one exception, :class:`~lexigram_cache_django.exceptions.CacheServerError`,
raised by the client's single choke point, and hands it to the one fail-open policy
(``_failed``) with the default Django's contract gives for that method.

Contract where the two servers used to differ (Django's, unless it says nothing):

* ``set()`` returns True/False (stored or not), as django-redis does; Django ignores it.
* ``has_key()`` counts neither a hit nor a miss: it is not a read of the value.
* a failed write whose server still answered deletes the old value (Django's memcached
  rule), on every server; ``set_many`` returns the keys not stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..codec import EntryMeta
from ..exceptions import CacheServerError
from ..protocols import Entry
from ..tags import UNKNOWN_TAG_VERSION, TagLike, new_version
from .remote_batches import EntryBatches

__all__ = ["RemoteCache"]


class RemoteCache(EntryBatches):
    """A cache on a server: Django's API, sync and async, over ``self._client``."""

    # -- get -------------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version)
        try:
            entry = self._read_entry(key)
        except CacheServerError as exc:
            return self._failed("get", exc, default)
        return default if entry is None else entry[0]

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version)
        try:
            entry = await self._aread_entry(key)
        except CacheServerError as exc:
            return self._failed("get", exc, default)
        return default if entry is None else entry[0]

    # -- set -------------------------------------------------------------------------

    def set(  # type: ignore[override]  # True/False, not None
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        """Store ``value``; True if stored. ``nx``: only if absent (as ``add``), ``xx``:
        only if present (django-redis's flags); ``tags``: see :mod:`~..tags`."""
        key = self.make_and_validate_key(key, version)
        try:
            meta = self._meta_for(tags)
            self._learn_tags((key,), meta)
            data = self._encode(value, meta)
            exp = self._expiry(timeout)
            if nx:
                stored = self._add_unless_live(key, data, exp)
            else:
                stored = self._client.set(key, data, exp, xx)
        except CacheServerError as exc:
            return self._failed_write("set", key, exc)
        return self._counted(stored)

    async def aset(  # type: ignore[override]
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            meta = await self._ameta_for(tags) if tags is not None else None
            self._learn_tags((key,), meta)
            data = self._encode(value, meta)
            exp = self._expiry(timeout)
            if nx:
                stored = await self._aadd_unless_live(key, data, exp)
            else:
                stored = await self._client.aset(key, data, exp, xx)
        except CacheServerError as exc:
            return await self._afailed_write("set", key, exc)
        return self._counted(stored)

    # -- add -------------------------------------------------------------------------

    def add(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            meta = self._meta_for(tags)
            self._learn_tags((key,), meta)
            added = self._add_unless_live(key, self._encode(value, meta), self._expiry(timeout))
        except CacheServerError as exc:
            return self._failed("add", exc, False)
        return self._counted(added)

    async def aadd(
        self,
        key: Any,
        value: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            meta = await self._ameta_for(tags) if tags is not None else None
            self._learn_tags((key,), meta)
            data = self._encode(value, meta)
            added = await self._aadd_unless_live(key, data, self._expiry(timeout))
        except CacheServerError as exc:
            return self._failed("add", exc, False)
        return self._counted(added)

    # -- touch, delete, has_key ------------------------------------------------------

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            return self._client.touch(key, self._expiry(timeout))
        except CacheServerError as exc:
            return self._failed("touch", exc, False)

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            return await self._client.atouch(key, self._expiry(timeout))
        except CacheServerError as exc:
            return self._failed("touch", exc, False)

    def delete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            deleted = self._client.delete(key)
        except CacheServerError as exc:
            return self._failed("delete", exc, False)
        if deleted:
            self._stats.deletes += 1
        return deleted

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            deleted = await self._client.adelete(key)
        except CacheServerError as exc:
            return self._failed("delete", exc, False)
        if deleted:
            self._stats.deletes += 1
        return deleted

    def has_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            return self._read_entry(key, count=False, primary=True) is not None
        except CacheServerError as exc:
            return self._failed("has_key", exc, False)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version)
        try:
            return await self._aread_entry(key, count=False, primary=True) is not None
        except CacheServerError as exc:
            return self._failed("has_key", exc, False)

    # -- incr / decr -----------------------------------------------------------------

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Atomic increment of a stored integer; ValueError if the key is missing.

        With the server unreachable and FAIL_SILENTLY on, returns None (as django-redis
        does with IGNORE_EXCEPTIONS): there is no meaningful default count.
        """
        key = self.make_and_validate_key(key, version)
        try:
            value = self._client.incr(key, delta)
        except CacheServerError as exc:
            return self._failed("incr", exc, None)
        if value is None:
            raise ValueError(f"Key '{key}' not found")
        return value

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version)
        try:
            value = await self._client.aincr(key, delta)
        except CacheServerError as exc:
            return self._failed("incr", exc, None)
        if value is None:
            raise ValueError(f"Key '{key}' not found")
        return value

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return self.incr(key, -delta, version)

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return await self.aincr(key, -delta, version)

    # -- batches ---------------------------------------------------------------------

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        if not keys:
            return {}
        made = self.make_key_list(keys, version)
        try:
            hinted = self._tag_hints.union(made)
            replies = self._client.get_many(made + hinted if hinted else made, bool(hinted))
            found, tagged = self._decode_batch(made, keys, replies)
            if tagged:
                records = self._split(made, hinted, replies)
                missing = self._batch_records(tagged, records)
                if missing:
                    records.update(self._records(missing))
                self._drop_stale(found, tagged, records)
        except CacheServerError as exc:
            return self._failed("get_many", exc, {})
        self.count_batch(made, len(found), keys, found)
        return found

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        if not keys:
            return {}
        made = self.make_key_list(keys, version)
        try:
            hinted = self._tag_hints.union(made)
            replies = await self._client.aget_many(made + hinted if hinted else made, bool(hinted))
            found, tagged = self._decode_batch(made, keys, replies)
            if tagged:
                records = self._split(made, hinted, replies)
                missing = self._batch_records(tagged, records)
                if missing:
                    records.update(await self._arecords(missing))
                self._drop_stale(found, tagged, records)
        except CacheServerError as exc:
            return self._failed("get_many", exc, {})
        self.count_batch(made, len(found), keys, found)
        return found

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> list[Any]:
        """One pipelined write; returns the keys that could not be stored (Django's API)."""
        if not data:
            return []
        originals = list(data)
        try:
            meta = self._meta_for(tags)
            made = self.make_key_list(originals, version)
            items, rejected = self._encode_batch(made, list(data.values()), meta)
            self._learn_tags(made, meta)
            failed = self._client.set_many(items, self._expiry(timeout)) if items else []
            if rejected:  # too large to store: never leave their old values behind
                self._client.delete_many(rejected)
        except CacheServerError as exc:
            return self._failed("set_many", exc, originals)
        return self._set_many_result(originals, made, failed + rejected, len(made))

    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
        *,
        tags: Iterable[TagLike] | TagLike | None = None,
    ) -> list[Any]:
        if not data:
            return []
        originals = list(data)
        try:
            meta = await self._ameta_for(tags) if tags is not None else None
            made = self.make_key_list(originals, version)
            items, rejected = self._encode_batch(made, list(data.values()), meta)
            self._learn_tags(made, meta)
            failed = await self._client.aset_many(items, self._expiry(timeout)) if items else []
            if rejected:
                await self._client.adelete_many(rejected)
        except CacheServerError as exc:
            return self._failed("set_many", exc, originals)
        return self._set_many_result(originals, made, failed + rejected, len(made))

    def delete_many(  # type: ignore[override]  # the count, not None
        self, keys: Iterable[Any], version: int | None = None
    ) -> int | None:
        """Delete keys; how many existed, as django-redis returns (None for no keys, as
        Django's suite wants; None too where the server does not say: memcached)."""
        made = [self.make_and_validate_key(k, version) for k in keys]
        if not made:
            return None
        try:
            deleted = self._client.delete_many(made)
        except CacheServerError as exc:
            return self._failed("delete_many", exc, 0)
        self._stats.deletes += deleted or 0
        return deleted

    async def adelete_many(  # type: ignore[override]
        self, keys: Iterable[Any], version: int | None = None
    ) -> int | None:
        made = [self.make_and_validate_key(k, version) for k in keys]
        if not made:
            return None
        try:
            deleted = await self._client.adelete_many(made)
        except CacheServerError as exc:
            return self._failed("delete_many", exc, 0)
        self._stats.deletes += deleted or 0
        return deleted

    def clear(self) -> None:
        try:
            self._clear_server()
        except CacheServerError as exc:
            self._failed("clear", exc, None)

    async def aclear(self) -> None:
        try:
            await self._aclear_server()
        except CacheServerError as exc:
            self._failed("clear", exc, None)

    # -- primitives for stampede protection, locks and tags (see protocols.py) -------

    def get_entry(self, key: str) -> Entry | None:
        try:
            return self._read_entry(key)
        except CacheServerError as exc:
            return self._failed("get", exc, None)

    async def aget_entry(self, key: str) -> Entry | None:
        try:
            return await self._aread_entry(key)
        except CacheServerError as exc:
            return self._failed("get", exc, None)

    def set_entry(self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None) -> None:
        self._learn_tags((key,), meta)
        try:
            stored = self._client.set(key, self._encode(value, meta), self._entry_expiry(ttl, meta))
        except CacheServerError as exc:
            self._failed_write("set", key, exc)
            return
        self._counted(stored)

    async def aset_entry(
        self, key: str, value: Any, ttl: float | None, meta: EntryMeta | None
    ) -> None:
        self._learn_tags((key,), meta)
        data = self._encode(value, meta)
        try:
            stored = await self._client.aset(key, data, self._entry_expiry(ttl, meta))
        except CacheServerError as exc:
            await self._afailed_write("set", key, exc)
            return
        self._counted(stored)

    def lock_add(self, key: str, token: str, ttl: float | None) -> bool | None:
        try:
            return self._client.add(key, token.encode(), self._lock_expiry(ttl))
        except CacheServerError as exc:
            return self._failed("lock", exc, None)

    async def alock_add(self, key: str, token: str, ttl: float | None) -> bool | None:
        try:
            return await self._client.aadd(key, token.encode(), self._lock_expiry(ttl))
        except CacheServerError as exc:
            return self._failed("lock", exc, None)

    def lock_release(self, key: str, token: str) -> bool:
        try:
            return self._client.release_if(key, token.encode())
        except CacheServerError as exc:
            return self._failed("lock release", exc, False)

    async def alock_release(self, key: str, token: str) -> bool:
        try:
            return await self._client.arelease_if(key, token.encode())
        except CacheServerError as exc:
            return self._failed("lock release", exc, False)

    def lock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        try:
            return self._client.extend_if(key, token.encode(), self._lock_expiry(ttl))
        except CacheServerError as exc:
            return self._failed("lock extend", exc, False)

    async def alock_extend(self, key: str, token: str, ttl: float | None) -> bool:
        try:
            return await self._client.aextend_if(key, token.encode(), self._lock_expiry(ttl))
        except CacheServerError as exc:
            return self._failed("lock extend", exc, False)

    def lock_owner(self, key: str) -> str | None:
        try:
            data = self._client.get(key, primary=True)
        except CacheServerError as exc:
            return self._failed("lock owner", exc, None)
        return None if data is None else bytes(data).decode(errors="replace")

    async def alock_owner(self, key: str) -> str | None:
        try:
            data = await self._client.aget(key, primary=True)
        except CacheServerError as exc:
            return self._failed("lock owner", exc, None)
        return None if data is None else bytes(data).decode(errors="replace")

    def tag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        try:
            return self._client.tag_versions(keys, create, self._tag_exp())
        except CacheServerError as exc:
            return self._failed("tag versions", exc, _unknown(keys, create))

    async def atag_versions(self, keys: Sequence[str], create: bool) -> list[int | None]:
        try:
            return await self._client.atag_versions(keys, create, self._tag_exp())
        except CacheServerError as exc:
            return self._failed("tag versions", exc, _unknown(keys, create))

    def invalidate_tag_keys(self, keys: Sequence[str]) -> None:
        try:
            failed = self._client.set_many(_fresh_records(keys), self._tag_exp())
        except CacheServerError as exc:
            self._failed("invalidate tags", exc, None)
            return
        if failed:
            self._failed("invalidate tags", _not_stored(failed), None)

    async def ainvalidate_tag_keys(self, keys: Sequence[str]) -> None:
        try:
            failed = await self._client.aset_many(_fresh_records(keys), self._tag_exp())
        except CacheServerError as exc:
            self._failed("invalidate tags", exc, None)
            return
        if failed:
            self._failed("invalidate tags", _not_stored(failed), None)


def _unknown(keys: Sequence[str], create: bool) -> list[int | None]:
    """Versions for tags that could not be read: -1 (stale) when writing, None when not."""
    return [UNKNOWN_TAG_VERSION if create else None] * len(keys)


def _fresh_records(keys: Sequence[str]) -> list[tuple[str, bytes]]:
    return [(key, b"%d" % new_version()) for key in keys]


def _not_stored(keys: Sequence[str]) -> CacheServerError:
    return CacheServerError(f"the server did not store {len(keys)} tag record(s)", answered=True)
