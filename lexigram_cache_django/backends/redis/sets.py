"""django-redis's set commands on RedisCache (``sadd``, ``smembers``, ...), sync and async.

Members go through the alias's codec, so any value the alias can cache can be a member
(equal values must encode to equal bytes: true of str, bytes, int and pickled/JSON
builtins; see :mod:`.structures` for why ENCRYPTION_KEY is refused). ``sdiff``, ``sinter``,
``sunion``, their ``*store`` forms and ``smove`` name several keys: on Cluster those keys
must share a hash slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from .structures import RedisCommands


class SetCommands(RedisCommands):
    """Sets, with django-redis 7's names, arguments and return values."""

    def sadd(self, key: Any, *values: Any, version: int | None = None) -> int:
        """Add members; how many were new."""
        made = self.make_and_validate_key(key, version)
        return int(self._write("sadd", 0, "SADD", made, *self._members(values)))

    async def asadd(self, key: Any, *values: Any, version: int | None = None) -> int:
        made = self.make_and_validate_key(key, version)
        return int(await self._awrite("sadd", 0, "SADD", made, *self._members(values)))

    def srem(self, key: Any, *members: Any, version: int | None = None) -> int:
        """Remove members; how many were there."""
        made = self.make_and_validate_key(key, version)
        return int(self._write("srem", 0, "SREM", made, *self._members(members)))

    async def asrem(self, key: Any, *members: Any, version: int | None = None) -> int:
        made = self.make_and_validate_key(key, version)
        return int(await self._awrite("srem", 0, "SREM", made, *self._members(members)))

    def smembers(self, key: Any, version: int | None = None) -> set[Any]:
        made = self.make_and_validate_key(key, version)
        return self._set(self._read("smembers", [], "SMEMBERS", made), made)

    async def asmembers(self, key: Any, version: int | None = None) -> set[Any]:
        made = self.make_and_validate_key(key, version)
        return self._set(await self._aread("smembers", [], "SMEMBERS", made), made)

    def _set(self, replies: Any, key: str = "") -> set[Any]:
        return set(self._decode_all(replies, key))

    def sismember(self, key: Any, member: Any, version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version)
        return bool(self._read("sismember", False, "SISMEMBER", made, self._member(member)))

    async def asismember(self, key: Any, member: Any, version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version)
        reply = await self._aread("sismember", False, "SISMEMBER", made, self._member(member))
        return bool(reply)

    def smismember(self, key: Any, *members: Any, version: int | None = None) -> list[bool]:
        """Whether each member is in the set, in order."""
        made = self.make_and_validate_key(key, version)
        encoded = self._members(members)
        replies = self._read("smismember", [0] * len(encoded), "SMISMEMBER", made, *encoded)
        return [bool(reply) for reply in replies]

    async def asmismember(self, key: Any, *members: Any, version: int | None = None) -> list[bool]:
        made = self.make_and_validate_key(key, version)
        encoded = self._members(members)
        replies = await self._aread("smismember", [0] * len(encoded), "SMISMEMBER", made, *encoded)
        return [bool(reply) for reply in replies]

    def scard(self, key: Any, version: int | None = None) -> int:
        return int(self._read("scard", 0, "SCARD", self.make_and_validate_key(key, version)))

    async def ascard(self, key: Any, version: int | None = None) -> int:
        made = self.make_and_validate_key(key, version)
        return int(await self._aread("scard", 0, "SCARD", made))

    def spop(self, key: Any, count: int | None = None, version: int | None = None) -> Any:
        """Remove and return a random member (None if empty), or a set of ``count``."""
        made = self.make_and_validate_key(key, version)
        args = (made,) if count is None else (made, int(count))
        return self._some(self._write("spop", None, "SPOP", *args), count, made, as_set=True)

    async def aspop(self, key: Any, count: int | None = None, version: int | None = None) -> Any:
        made = self.make_and_validate_key(key, version)
        args = (made,) if count is None else (made, int(count))
        return self._some(await self._awrite("spop", None, "SPOP", *args), count, made, as_set=True)

    def srandmember(self, key: Any, count: int | None = None, version: int | None = None) -> Any:
        """A random member (None if empty), or a list of ``count`` (negative: may repeat)."""
        made = self.make_and_validate_key(key, version)
        args = (made,) if count is None else (made, int(count))
        return self._some(self._read("srandmember", None, "SRANDMEMBER", *args), count, made)

    async def asrandmember(
        self, key: Any, count: int | None = None, version: int | None = None
    ) -> Any:
        made = self.make_and_validate_key(key, version)
        args = (made,) if count is None else (made, int(count))
        return self._some(await self._aread("srandmember", None, "SRANDMEMBER", *args), count, made)

    def _some(self, reply: Any, count: int | None, key: str, as_set: bool = False) -> Any:
        """django-redis's shapes: one value without ``count``, else a set (spop) or list."""
        if reply is None:
            return None if count is None else (set() if as_set else [])
        if isinstance(reply, list):
            decoded = self._decode_all(reply, key)
            return set(decoded) if as_set else decoded
        return self._decode(reply, key)

    def smove(self, source: Any, destination: Any, member: Any, version: int | None = None) -> bool:
        """Move a member between two sets (both under ``version``); True if it moved."""
        src, dst = self._keys((source, destination), version)
        return bool(self._write("smove", False, "SMOVE", src, dst, self._member(member)))

    async def asmove(
        self, source: Any, destination: Any, member: Any, version: int | None = None
    ) -> bool:
        src, dst = self._keys((source, destination), version)
        return bool(await self._awrite("smove", False, "SMOVE", src, dst, self._member(member)))

    # -- several sets -----------------------------------------------------------------

    def sdiff(self, *keys: Any, version: int | None = None) -> set[Any]:
        return self._set(self._read("sdiff", [], "SDIFF", *self._keys(keys, version)))

    async def asdiff(self, *keys: Any, version: int | None = None) -> set[Any]:
        return self._set(await self._aread("sdiff", [], "SDIFF", *self._keys(keys, version)))

    def sinter(self, *keys: Any, version: int | None = None) -> set[Any]:
        return self._set(self._read("sinter", [], "SINTER", *self._keys(keys, version)))

    async def asinter(self, *keys: Any, version: int | None = None) -> set[Any]:
        return self._set(await self._aread("sinter", [], "SINTER", *self._keys(keys, version)))

    def sunion(self, *keys: Any, version: int | None = None) -> set[Any]:
        return self._set(self._read("sunion", [], "SUNION", *self._keys(keys, version)))

    async def asunion(self, *keys: Any, version: int | None = None) -> set[Any]:
        return self._set(await self._aread("sunion", [], "SUNION", *self._keys(keys, version)))

    def sdiffstore(
        self,
        dest: Any,
        *keys: Any,
        version_dest: int | None = None,
        version_keys: int | None = None,
    ) -> int:
        """Store ``keys[0] - keys[1:]`` in ``dest``; its size (django-redis's two versions)."""
        made = self.make_and_validate_key(dest, version_dest)
        sources = self._keys(keys, version_keys)
        return int(self._write("sdiffstore", 0, "SDIFFSTORE", made, *sources))

    async def asdiffstore(
        self,
        dest: Any,
        *keys: Any,
        version_dest: int | None = None,
        version_keys: int | None = None,
    ) -> int:
        made = self.make_and_validate_key(dest, version_dest)
        sources = self._keys(keys, version_keys)
        return int(await self._awrite("sdiffstore", 0, "SDIFFSTORE", made, *sources))

    def sinterstore(self, dest: Any, *keys: Any, version: int | None = None) -> int:
        made = self._keys((dest, *keys), version)
        return int(self._write("sinterstore", 0, "SINTERSTORE", *made))

    async def asinterstore(self, dest: Any, *keys: Any, version: int | None = None) -> int:
        made = self._keys((dest, *keys), version)
        return int(await self._awrite("sinterstore", 0, "SINTERSTORE", *made))

    def sunionstore(self, destination: Any, *keys: Any, version: int | None = None) -> int:
        made = self._keys((destination, *keys), version)
        return int(self._write("sunionstore", 0, "SUNIONSTORE", *made))

    async def asunionstore(self, destination: Any, *keys: Any, version: int | None = None) -> int:
        made = self._keys((destination, *keys), version)
        return int(await self._awrite("sunionstore", 0, "SUNIONSTORE", *made))

    # -- SSCAN --------------------------------------------------------------------------

    def _scan_args(self, made: str, match: str | None, count: int | None) -> list[Any]:
        args: list[Any] = []
        if match:
            if self.codec.compress_min_bytes is not None:
                # as django-redis: a compressed member's bytes do not contain the pattern
                raise ValueError("Using match with compression is not supported.")
            args += ["MATCH", self._member(match)]
        if count is not None:
            args += ["COUNT", int(count)]
        return args

    def sscan(
        self, key: Any, match: str | None = None, count: int | None = 10, version: int | None = None
    ) -> set[Any]:
        """Every member (matching the glob ``match``, for str members), by SSCAN."""
        return set(self.sscan_iter(key, match, count, version))

    async def asscan(
        self, key: Any, match: str | None = None, count: int | None = 10, version: int | None = None
    ) -> set[Any]:
        return {member async for member in self.asscan_iter(key, match, count, version)}

    def sscan_iter(
        self, key: Any, match: str | None = None, count: int | None = 10, version: int | None = None
    ) -> Iterator[Any]:
        made = self.make_and_validate_key(key, version)
        args = self._scan_args(made, match, count)
        pool = self._client.key_pool(made, write=False)  # a cursor belongs to one server
        cursor: Any = 0
        while True:
            cursor, found = self._on(pool, "sscan", (0, []), "SSCAN", made, cursor, *args)
            yield from self._decode_all(found, made)
            if int(cursor) == 0:
                return

    async def asscan_iter(
        self, key: Any, match: str | None = None, count: int | None = 10, version: int | None = None
    ) -> AsyncIterator[Any]:
        made = self.make_and_validate_key(key, version)
        args = self._scan_args(made, match, count)
        ap = await self._client.akey_pool(made, write=False)
        cursor: Any = 0
        while True:
            cursor, found = await self._aon(ap, "sscan", (0, []), "SSCAN", made, cursor, *args)
            for member in self._decode_all(found, made):
                yield member
            if int(cursor) == 0:
                return
