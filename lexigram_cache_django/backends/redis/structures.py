"""What django-redis's data-structure commands need from RedisCache, and their one error policy.

The hash, set and sorted-set mixins (:mod:`.hashes`, :mod:`.sets`, :mod:`.sorted_sets`)
are typed against :class:`RedisHost`, a small protocol of what ``RedisCache`` has: its
client, its codec, its key maker and its fail-open policy. Every command goes out through
:meth:`RedisCommands._read` / ``_write`` (and their async twins), which send it through the
client's choke point (``RedisClient.send``: breaker, error mapping) and hand a failure to
``_failed`` once, with the default of that command group:

* reads answer "nothing there": ``None`` for one value, ``0`` for a count, ``False`` for a
  membership, an empty ``set``/``list``/``dict`` for a collection;
* writes answer "nothing changed": ``0`` for a count, ``False`` for a flag, ``None`` for a
  new value (``hincrby``, ``zincrby``, ``spop``/``zpop*`` without a count), as ``incr``.

(django-redis with ``IGNORE_EXCEPTIONS`` returns ``None`` from every failed call; ours are
the empty value of the type the call returns, so ``len()`` and ``+`` keep working.)

Keys are made with the alias's ``KEY_PREFIX``, ``VERSION`` and ``KEY_FUNCTION``
(``make_and_validate_key``), so ``clear()``, ``delete_pattern`` and versions reach them.
Values and members go through the alias's codec (serializer, compression); one that
cannot be decoded (written by another program or serializer) is logged, counted in
``errors`` and left out (None for a single value), as ``get`` treats such an entry. Set and
sorted-set members must encode the same way every time to be found again, so they refuse
an alias with ``ENCRYPTION_KEY`` (its ciphertexts are randomized); hash values are values,
not members, and may be encrypted.

Every command here is single-key, except ``sdiff``/``sinter``/``sunion``, their ``*store``
forms and ``smove``: on Redis Cluster their keys must share a hash slot (``{tag}`` in the
key), as Redis itself requires.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ...codec import Codec
from ...exceptions import CacheConfigurationError, CacheDecodeError, CacheServerError
from .client import RedisClient
from .pools import AsyncPool, SyncPool

_T = TypeVar("_T")
#: What a member or value that cannot be decoded becomes before it is left out.
UNREADABLE: Any = object()


class RedisHost(Protocol):
    """What the data-structure mixins use of RedisCache."""

    _client: RedisClient

    @property
    def codec(self) -> Codec: ...

    def make_and_validate_key(self, key: Any, version: int | None = None) -> str: ...

    def _failed(self, operation: str, exc: CacheServerError, default: _T) -> _T: ...

    def _expiry(self, timeout: Any) -> int | None: ...

    def discard_undecodable(self, key: str, exc: CacheDecodeError) -> None: ...


if TYPE_CHECKING:
    _Host = RedisHost
else:
    _Host = object


def _when(when: int | float | datetime.datetime, scale: int) -> int:
    """An absolute expiry (UNIX time or datetime) as whole seconds or milliseconds."""
    if isinstance(when, datetime.datetime):
        when = when.timestamp()
    elif isinstance(when, bool) or not isinstance(when, int | float):
        raise TypeError(f"expire_at needs a UNIX time or a datetime, not {when!r}")
    return int(when * scale) if scale > 1 and isinstance(when, float) else int(when)


class RedisCommands(_Host):
    """The one place the mixins' commands go out, and the absolute/ms expiry commands."""

    # -- the error policy -------------------------------------------------------------

    def _on(self, pool: SyncPool, operation: str, default: _T, *args: Any) -> Any:
        """One command to ``pool`` through the client's choke point; ``default`` if it
        failed open (or the error, with FAIL_SILENTLY off)."""
        try:
            return self._client.send(pool, *args)
        except CacheServerError as exc:
            return self._failed(operation, exc, default)

    async def _aon(self, ap: AsyncPool, operation: str, default: _T, *args: Any) -> Any:
        try:
            return await self._client.asend(ap, *args)
        except CacheServerError as exc:
            return self._failed(operation, exc, default)

    # ``args`` is the command: its name, then its (first) key, which picks the server: a
    # replica or the primary (Sentinel, replicas), or the key's node (Cluster).

    def _read(self, operation: str, default: _T, *args: Any) -> Any:
        """A read command on a replica (or the primary; Cluster: the key's node)."""
        return self._on(self._client.key_pool(args[1], write=False), operation, default, *args)

    async def _aread(self, operation: str, default: _T, *args: Any) -> Any:
        ap = await self._client.akey_pool(args[1], write=False)
        return await self._aon(ap, operation, default, *args)

    def _write(self, operation: str, default: _T, *args: Any) -> Any:
        """A write command on the primary (Cluster: the key's node)."""
        return self._on(self._client.key_pool(args[1]), operation, default, *args)

    async def _awrite(self, operation: str, default: _T, *args: Any) -> Any:
        return await self._aon(await self._client.akey_pool(args[1]), operation, default, *args)

    # -- values and members through the codec -----------------------------------------

    def _value(self, value: Any) -> bytes:
        return self.codec.encode(value)

    def _member(self, value: Any) -> bytes:
        """A set/sorted-set member: the codec's bytes, which must not be randomized."""
        codec = self.codec
        if codec.encryptor is not None:
            raise CacheConfigurationError(
                "set and sorted-set members cannot be encrypted (ENCRYPTION_KEY makes every "
                "encoding different, so a member would never be found again); use an alias "
                "without ENCRYPTION_KEY for them"
            )
        return codec.encode(value)

    def _members(self, values: Iterable[Any]) -> list[bytes]:
        return [self._member(value) for value in values]

    def _decoded(self, data: bytes, key: str) -> Any:
        """A stored value or member, or UNREADABLE (logged and counted, as ``get`` treats
        an unreadable entry: written by another serializer or program, or corrupt)."""
        try:
            return self.codec.decode(data)
        except CacheDecodeError as exc:
            self.discard_undecodable(key, exc)
            return UNREADABLE

    def _decode(self, data: bytes | None, key: str) -> Any:
        """One value; None if absent or unreadable."""
        if data is None:
            return None
        value = self._decoded(data, key)
        return None if value is UNREADABLE else value

    def _decode_all(self, items: Iterable[bytes], key: str) -> list[Any]:
        """Values or members, leaving out the unreadable ones."""
        decoded = (self._decoded(data, key) for data in items)
        return [value for value in decoded if value is not UNREADABLE]

    def _keys(self, keys: Iterable[Any], version: int | None) -> list[str]:
        return [self.make_and_validate_key(key, version) for key in keys]

    # -- absolute and millisecond expiry (django-redis's names) -----------------------

    def expire_at(
        self, key: Any, when: int | float | datetime.datetime, version: int | None = None
    ) -> bool:
        """Expire ``key`` at ``when`` (UNIX seconds or a datetime); False if it is absent."""
        made = self.make_and_validate_key(key, version)
        return bool(self._write("expire_at", False, "EXPIREAT", made, _when(when, 1)))

    async def aexpire_at(
        self, key: Any, when: int | float | datetime.datetime, version: int | None = None
    ) -> bool:
        made = self.make_and_validate_key(key, version)
        return bool(await self._awrite("expire_at", False, "EXPIREAT", made, _when(when, 1)))

    def pexpire_at(
        self, key: Any, when: int | float | datetime.datetime, version: int | None = None
    ) -> bool:
        """Expire ``key`` at ``when``: UNIX milliseconds (an int, as Redis ``PEXPIREAT``)
        or a datetime."""
        made = self.make_and_validate_key(key, version)
        at = _when(when, 1000) if isinstance(when, datetime.datetime) else int(when)
        return bool(self._write("pexpire_at", False, "PEXPIREAT", made, at))

    async def apexpire_at(
        self, key: Any, when: int | float | datetime.datetime, version: int | None = None
    ) -> bool:
        made = self.make_and_validate_key(key, version)
        at = _when(when, 1000) if isinstance(when, datetime.datetime) else int(when)
        return bool(await self._awrite("pexpire_at", False, "PEXPIREAT", made, at))

    def pexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        """Set a key's timeout in milliseconds; ``DEFAULT_TIMEOUT`` is the alias's TIMEOUT
        (None: never expires, as ``persist``)."""
        made = self.make_and_validate_key(key, version)
        if timeout is DEFAULT_TIMEOUT:
            px = self._expiry(DEFAULT_TIMEOUT)
            if px is None:
                return bool(self._write("pexpire", False, "PERSIST", made))
            timeout = px
        return bool(self._write("pexpire", False, "PEXPIRE", made, int(timeout)))

    async def apexpire(self, key: Any, timeout: Any, version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version)
        if timeout is DEFAULT_TIMEOUT:
            px = self._expiry(DEFAULT_TIMEOUT)
            if px is None:
                return bool(await self._awrite("pexpire", False, "PERSIST", made))
            timeout = px
        return bool(await self._awrite("pexpire", False, "PEXPIRE", made, int(timeout)))
