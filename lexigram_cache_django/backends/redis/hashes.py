"""django-redis's hash commands on RedisCache (``hset``, ``hget``, ...), sync and async.

The hash is a key of the alias (made with its prefix and version); fields are strings
stored as UTF-8, values go through the alias's codec (plain ints stay ``HINCRBY``-able).
Layout differs from django-redis, which leaves the hash name bare and makes each *field*
a cache key: here ``clear()``, ``delete_pattern`` and versions reach hashes like any key,
and ``hkeys`` returns the fields as given either way.
"""

from __future__ import annotations

from typing import Any

from .structures import UNREADABLE, RedisCommands


def _field(field: Any) -> bytes:
    return field if isinstance(field, bytes) else str(field).encode()


def _flat(fields: tuple[Any, ...]) -> list[Any]:
    """``hmget(name, ["a", "b"])`` as redis-py takes it, or ``hmget(name, "a", "b")``."""
    if len(fields) == 1 and isinstance(fields[0], list | tuple):
        return list(fields[0])
    return list(fields)


class HashCommands(RedisCommands):
    """Hashes: ``hset``, ``hsetnx``, ``hget``, ``hgetall``, ``hmget``, ``hdel``, ``hlen``,
    ``hkeys``, ``hexists``, ``hincrby`` (and ``a``-prefixed twins)."""

    def hset(self, name: Any, key: Any, value: Any, version: int | None = None) -> int:
        """Set field ``key`` of hash ``name``; 1 if the field is new, 0 if updated."""
        made = self.make_and_validate_key(name, version)
        return int(self._write("hset", 0, "HSET", made, _field(key), self._value(value)))

    async def ahset(self, name: Any, key: Any, value: Any, version: int | None = None) -> int:
        made = self.make_and_validate_key(name, version)
        return int(await self._awrite("hset", 0, "HSET", made, _field(key), self._value(value)))

    def hsetnx(self, name: Any, key: Any, value: Any, version: int | None = None) -> bool:
        """Set field ``key`` only if it is absent; True if it was set."""
        made = self.make_and_validate_key(name, version)
        return bool(self._write("hsetnx", False, "HSETNX", made, _field(key), self._value(value)))

    async def ahsetnx(self, name: Any, key: Any, value: Any, version: int | None = None) -> bool:
        made = self.make_and_validate_key(name, version)
        reply = await self._awrite("hsetnx", False, "HSETNX", made, _field(key), self._value(value))
        return bool(reply)

    def hget(self, name: Any, key: Any, version: int | None = None) -> Any:
        """The value of field ``key``, or None."""
        made = self.make_and_validate_key(name, version)
        return self._decode(self._read("hget", None, "HGET", made, _field(key)), made)

    async def ahget(self, name: Any, key: Any, version: int | None = None) -> Any:
        made = self.make_and_validate_key(name, version)
        return self._decode(await self._aread("hget", None, "HGET", made, _field(key)), made)

    def hgetall(self, name: Any, version: int | None = None) -> dict[str, Any]:
        """Every field and value of the hash ({} if it does not exist)."""
        made = self.make_and_validate_key(name, version)
        return self._fields(self._read("hgetall", [], "HGETALL", made), made)

    async def ahgetall(self, name: Any, version: int | None = None) -> dict[str, Any]:
        made = self.make_and_validate_key(name, version)
        return self._fields(await self._aread("hgetall", [], "HGETALL", made), made)

    def _fields(self, reply: Any, made: str) -> dict[str, Any]:
        if isinstance(reply, dict):  # RESP3
            pairs = list(reply.items())
        else:
            pairs = list(zip(reply[::2], reply[1::2]))
        decoded = {field.decode(): self._decoded(data, made) for field, data in pairs}
        return {field: value for field, value in decoded.items() if value is not UNREADABLE}

    def hmget(self, name: Any, *keys: Any, version: int | None = None) -> list[Any]:
        """The values of the fields, in order (None for each absent one)."""
        made = self.make_and_validate_key(name, version)
        fields = [_field(k) for k in _flat(keys)]
        replies = self._read("hmget", [None] * len(fields), "HMGET", made, *fields)
        return [self._decode(data, made) for data in replies]

    async def ahmget(self, name: Any, *keys: Any, version: int | None = None) -> list[Any]:
        made = self.make_and_validate_key(name, version)
        fields = [_field(k) for k in _flat(keys)]
        replies = await self._aread("hmget", [None] * len(fields), "HMGET", made, *fields)
        return [self._decode(data, made) for data in replies]

    def hdel(self, name: Any, *keys: Any, version: int | None = None) -> int:
        """Remove fields; how many existed."""
        made = self.make_and_validate_key(name, version)
        return int(self._write("hdel", 0, "HDEL", made, *map(_field, keys)))

    async def ahdel(self, name: Any, *keys: Any, version: int | None = None) -> int:
        made = self.make_and_validate_key(name, version)
        return int(await self._awrite("hdel", 0, "HDEL", made, *map(_field, keys)))

    def hlen(self, name: Any, version: int | None = None) -> int:
        """How many fields the hash has."""
        return int(self._read("hlen", 0, "HLEN", self.make_and_validate_key(name, version)))

    async def ahlen(self, name: Any, version: int | None = None) -> int:
        made = self.make_and_validate_key(name, version)
        return int(await self._aread("hlen", 0, "HLEN", made))

    def hkeys(self, name: Any, version: int | None = None) -> list[str]:
        """The hash's fields."""
        made = self.make_and_validate_key(name, version)
        return [field.decode() for field in self._read("hkeys", [], "HKEYS", made)]

    async def ahkeys(self, name: Any, version: int | None = None) -> list[str]:
        made = self.make_and_validate_key(name, version)
        return [field.decode() for field in await self._aread("hkeys", [], "HKEYS", made)]

    def hexists(self, name: Any, key: Any, version: int | None = None) -> bool:
        """Whether field ``key`` exists."""
        made = self.make_and_validate_key(name, version)
        return bool(self._read("hexists", False, "HEXISTS", made, _field(key)))

    async def ahexists(self, name: Any, key: Any, version: int | None = None) -> bool:
        made = self.make_and_validate_key(name, version)
        return bool(await self._aread("hexists", False, "HEXISTS", made, _field(key)))

    def hincrby(self, name: Any, key: Any, amount: int = 1, version: int | None = None) -> Any:
        """Add ``amount`` to an integer field (absent counts as 0); the new value, or None
        if the server failed open. A field holding a non-integer raises ResponseError."""
        made = self.make_and_validate_key(name, version)
        reply = self._write("hincrby", None, "HINCRBY", made, _field(key), int(amount))
        return None if reply is None else int(reply)

    async def ahincrby(
        self, name: Any, key: Any, amount: int = 1, version: int | None = None
    ) -> Any:
        made = self.make_and_validate_key(name, version)
        reply = await self._awrite("hincrby", None, "HINCRBY", made, _field(key), int(amount))
        return None if reply is None else int(reply)
