"""Django's key making and validation, memoized: a hot key is made once, not per call.

``make_and_validate_key`` remembers up to 4096 made keys per backend object (cleared
wholesale when full, and whenever ``key_prefix``, ``version`` or ``key_func`` change).
Only keys that raised no warning are remembered, so Django's ``CacheKeyWarning`` (or
memcached's ``InvalidCacheKey``) still fires on every call with a bad key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.core.cache.backends.base import MEMCACHE_MAX_KEY_LENGTH, BaseCache

#: Keys Django would warn about (too long for memcached, or control characters/space).
_UNPORTABLE_KEY = re.compile(r"[\x00-\x20\x7f]")
#: Bound on the per-object memo of made keys; cleared wholesale when full.
_KEY_MEMO_SIZE = 4096


class MemoizedKeys(BaseCache):
    """The key half of every lexigram backend (see the module docstring)."""

    _key_memo: dict[tuple[Any, Any], str]
    _default_key_memo: dict[Any, str]  # version=None: no tuple per lookup

    # Changing these after construction must drop memoized keys.
    @property
    def key_prefix(self) -> str:
        return self._key_prefix

    @key_prefix.setter
    def key_prefix(self, value: str) -> None:
        self._key_prefix = value
        self._key_memo = {}
        self._default_key_memo = {}

    @property
    def version(self) -> int:
        return self._version

    @version.setter
    def version(self, value: int) -> None:
        self._version = value
        self._key_memo = {}
        self._default_key_memo = {}

    @property
    def key_func(self) -> Any:
        return self._key_func

    @key_func.setter
    def key_func(self, value: Any) -> None:
        self._key_func = value
        self._key_memo = {}
        self._default_key_memo = {}

    def make_and_validate_key(self, key: Any, version: int | None = None) -> str:
        """Django's key making and validation, memoized for keys that pass cleanly."""
        memo: dict[Any, str] = self._default_key_memo if version is None else self._key_memo
        slot = key if version is None else (key, version)
        try:
            return memo[slot]
        except KeyError:
            pass
        except TypeError:  # an unhashable key: Django formats it anyway
            return self._make_and_validate_uncached(key, version)
        final = self._make_and_validate_uncached(key, version)
        if len(final) <= MEMCACHE_MAX_KEY_LENGTH and not _UNPORTABLE_KEY.search(final):
            if len(memo) >= _KEY_MEMO_SIZE:
                memo.clear()
            memo[slot] = final
        return final

    def make_key_list(self, keys: Sequence[Any], version: int | None = None) -> list[str]:
        """The final keys of a batch, in order; memoized keys cost one C-level lookup each.

        ``all()`` tells that every key was memoized (a final key is never empty) at a
        fraction of the cost of looking for ``None`` among them.
        """
        if version is None:
            try:
                finals: list[str | None] = list(map(self._default_key_memo.get, keys))
            except TypeError:  # an unhashable key among them
                finals = []
            if finals and all(finals):
                return finals  # type: ignore[return-value]  # no None left
        make = self.make_and_validate_key
        return [make(key, version) for key in keys]

    def _make_and_validate_uncached(self, key: Any, version: int | None) -> str:
        final: str = self.make_key(key, version=version)
        self.validate_key(final)
        return final
