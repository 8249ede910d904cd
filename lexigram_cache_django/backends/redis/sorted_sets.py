"""django-redis's sorted-set commands on RedisCache (``zadd``, ``zrange``, ...), sync and async.

Members go through the alias's codec (see :mod:`.structures`); scores stay numbers.
Bounds take what Redis takes: numbers, ``"-inf"``/``"+inf"``, ``"(1.5"`` for exclusive.
Ranges come back as members, or ``(member, score)`` pairs with ``withscores``; scores are
``score_cast_func(reply)`` (float by default), as in redis-py and django-redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .structures import UNREADABLE, RedisCommands

Bound = float | int | str


def _pairs(reply: Any) -> list[tuple[bytes, bytes]]:
    """A WITHSCORES reply as (member, score) pairs, RESP2 (flat) or RESP3 (nested)."""
    if reply and isinstance(reply[0], list):
        return [(m, s) for m, s in reply]
    return list(zip(reply[::2], reply[1::2]))


def _paging(start: int | None, num: int | None) -> list[Any]:
    if (start is None) != (num is None):
        raise ValueError("``start`` and ``num`` must both be given, or neither")
    return [] if start is None else ["LIMIT", int(start), int(num)]  # type: ignore[arg-type]


def _score(reply: Any) -> float | None:
    return None if reply is None else float(reply)


class SortedSetCommands(RedisCommands):
    """Sorted sets, with django-redis 7's names, arguments and return values."""

    def _range(
        self, reply: Any, withscores: bool, cast: Callable[[Any], Any], key: str
    ) -> list[Any]:
        if withscores:
            decoded = [(self._decoded(m, key), cast(score)) for m, score in _pairs(reply)]
            return [pair for pair in decoded if pair[0] is not UNREADABLE]
        return self._decode_all(reply, key)

    def _popped(self, reply: Any, count: int | None, key: str) -> Any:
        decoded = [(self._decoded(m, key), float(s)) for m, s in _pairs(reply or [])]
        pairs = [pair for pair in decoded if pair[0] is not UNREADABLE]
        if count is None:
            return pairs[0] if pairs else None
        return pairs

    def _zadd_args(
        self,
        made: str,
        mapping: Mapping[Any, float],
        nx: bool,
        xx: bool,
        ch: bool,
        incr: bool,
        gt: bool,
        lt: bool,
    ) -> list[Any]:
        if nx and xx:
            raise ValueError("ZADD allows either nx or xx, not both")
        if gt and lt:
            raise ValueError("ZADD allows either gt or lt, not both")
        if incr and len(mapping) != 1:
            raise ValueError("ZADD with incr takes exactly one member and score")
        if nx and (gt or lt):
            raise ValueError("ZADD allows nx or gt/lt, not both")
        flags = [
            name for name, on in (("NX", nx), ("XX", xx), ("GT", gt), ("LT", lt), ("CH", ch)) if on
        ]
        if incr:
            flags.append("INCR")
        args: list[Any] = ["ZADD", made, *flags]
        for member, score in mapping.items():
            args += [float(score), self._member(member)]
        return args

    def zadd(
        self,
        name: Any,
        mapping: Mapping[Any, float],
        nx: bool = False,
        xx: bool = False,
        ch: bool = False,
        incr: bool = False,
        gt: bool = False,
        lt: bool = False,
        version: int | None = None,
    ) -> Any:
        """Add members with scores; how many were added (changed, with ``ch``). With
        ``incr``: the member's new score, or None if ``nx``/``xx``/``gt``/``lt`` stopped it."""
        made = self.make_and_validate_key(name, version)
        args = self._zadd_args(made, mapping, nx, xx, ch, incr, gt, lt)
        reply = self._write("zadd", None if incr else 0, *args)
        return _score(reply) if incr else int(reply)

    async def azadd(
        self,
        name: Any,
        mapping: Mapping[Any, float],
        nx: bool = False,
        xx: bool = False,
        ch: bool = False,
        incr: bool = False,
        gt: bool = False,
        lt: bool = False,
        version: int | None = None,
    ) -> Any:
        made = self.make_and_validate_key(name, version)
        args = self._zadd_args(made, mapping, nx, xx, ch, incr, gt, lt)
        reply = await self._awrite("zadd", None if incr else 0, *args)
        return _score(reply) if incr else int(reply)

    def zcard(self, name: Any, version: int | None = None) -> int:
        return int(self._read("zcard", 0, "ZCARD", self.make_and_validate_key(name, version)))

    async def azcard(self, name: Any, version: int | None = None) -> int:
        made = self.make_and_validate_key(name, version)
        return int(await self._aread("zcard", 0, "ZCARD", made))

    def zcount(self, name: Any, min: Bound, max: Bound, version: int | None = None) -> int:
        made = self.make_and_validate_key(name, version)
        return int(self._read("zcount", 0, "ZCOUNT", made, min, max))

    async def azcount(self, name: Any, min: Bound, max: Bound, version: int | None = None) -> int:
        made = self.make_and_validate_key(name, version)
        return int(await self._aread("zcount", 0, "ZCOUNT", made, min, max))

    def zincrby(self, name: Any, amount: float, value: Any, version: int | None = None) -> Any:
        """Add ``amount`` to a member's score (absent: 0); the new score (None: failed open)."""
        made = self.make_and_validate_key(name, version)
        member = self._member(value)
        return _score(self._write("zincrby", None, "ZINCRBY", made, float(amount), member))

    async def azincrby(
        self, name: Any, amount: float, value: Any, version: int | None = None
    ) -> Any:
        made = self.make_and_validate_key(name, version)
        member = self._member(value)
        reply = await self._awrite("zincrby", None, "ZINCRBY", made, float(amount), member)
        return _score(reply)

    def zpopmax(self, name: Any, count: int | None = None, version: int | None = None) -> Any:
        """Remove the highest: ``(member, score)`` (None if empty), or a list of ``count``."""
        made = self.make_and_validate_key(name, version)
        args = (made,) if count is None else (made, int(count))
        return self._popped(self._write("zpopmax", [], "ZPOPMAX", *args), count, made)

    async def azpopmax(
        self, name: Any, count: int | None = None, version: int | None = None
    ) -> Any:
        made = self.make_and_validate_key(name, version)
        args = (made,) if count is None else (made, int(count))
        return self._popped(await self._awrite("zpopmax", [], "ZPOPMAX", *args), count, made)

    def zpopmin(self, name: Any, count: int | None = None, version: int | None = None) -> Any:
        """Remove the lowest: ``(member, score)`` (None if empty), or a list of ``count``."""
        made = self.make_and_validate_key(name, version)
        args = (made,) if count is None else (made, int(count))
        return self._popped(self._write("zpopmin", [], "ZPOPMIN", *args), count, made)

    async def azpopmin(
        self, name: Any, count: int | None = None, version: int | None = None
    ) -> Any:
        made = self.make_and_validate_key(name, version)
        args = (made,) if count is None else (made, int(count))
        return self._popped(await self._awrite("zpopmin", [], "ZPOPMIN", *args), count, made)

    # -- ranges -----------------------------------------------------------------------

    def zrange(
        self,
        name: Any,
        start: int,
        end: int,
        desc: bool = False,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
    ) -> list[Any]:
        """Members by rank from ``start`` to ``end`` inclusive (``-1``: the last)."""
        made = self.make_and_validate_key(name, version)
        args = ["ZREVRANGE" if desc else "ZRANGE", made, int(start), int(end)]
        if withscores:
            args.append("WITHSCORES")
        return self._range(self._read("zrange", [], *args), withscores, score_cast_func, made)

    async def azrange(
        self,
        name: Any,
        start: int,
        end: int,
        desc: bool = False,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
    ) -> list[Any]:
        made = self.make_and_validate_key(name, version)
        args = ["ZREVRANGE" if desc else "ZRANGE", made, int(start), int(end)]
        if withscores:
            args.append("WITHSCORES")
        return self._range(
            await self._aread("zrange", [], *args), withscores, score_cast_func, made
        )

    def zrevrange(
        self,
        name: Any,
        start: int,
        end: int,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
    ) -> list[Any]:
        """Members by rank, highest score first."""
        return self.zrange(name, start, end, True, withscores, score_cast_func, version)

    async def azrevrange(
        self,
        name: Any,
        start: int,
        end: int,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
    ) -> list[Any]:
        return await self.azrange(name, start, end, True, withscores, score_cast_func, version)

    def _by_score(
        self, command: str, made: str, low: Bound, high: Bound, start: Any, num: Any, ws: bool
    ) -> list[Any]:
        return [command, made, low, high, *(["WITHSCORES"] if ws else []), *_paging(start, num)]

    def zrangebyscore(
        self,
        name: Any,
        min: Bound,
        max: Bound,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
    ) -> list[Any]:
        """Members with ``min <= score <= max``, lowest first; ``start``/``num`` page."""
        made = self.make_and_validate_key(name, version)
        args = self._by_score("ZRANGEBYSCORE", made, min, max, start, num, withscores)
        return self._range(
            self._read("zrangebyscore", [], *args), withscores, score_cast_func, made
        )

    async def azrangebyscore(
        self,
        name: Any,
        min: Bound,
        max: Bound,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
    ) -> list[Any]:
        made = self.make_and_validate_key(name, version)
        args = self._by_score("ZRANGEBYSCORE", made, min, max, start, num, withscores)
        reply = await self._aread("zrangebyscore", [], *args)
        return self._range(reply, withscores, score_cast_func, made)

    def zrevrangebyscore(
        self,
        name: Any,
        max: Bound,
        min: Bound,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
    ) -> list[Any]:
        """Members with ``min <= score <= max``, highest first (``max`` comes first)."""
        made = self.make_and_validate_key(name, version)
        args = self._by_score("ZREVRANGEBYSCORE", made, max, min, start, num, withscores)
        reply = self._read("zrevrangebyscore", [], *args)
        return self._range(reply, withscores, score_cast_func, made)

    async def azrevrangebyscore(
        self,
        name: Any,
        max: Bound,
        min: Bound,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: Callable[[Any], Any] = float,
        version: int | None = None,
    ) -> list[Any]:
        made = self.make_and_validate_key(name, version)
        args = self._by_score("ZREVRANGEBYSCORE", made, max, min, start, num, withscores)
        reply = await self._aread("zrevrangebyscore", [], *args)
        return self._range(reply, withscores, score_cast_func, made)

    # -- one member -------------------------------------------------------------------

    def zrank(self, name: Any, value: Any, version: int | None = None) -> int | None:
        """A member's rank, lowest score first (None if absent)."""
        made = self.make_and_validate_key(name, version)
        rank = self._read("zrank", None, "ZRANK", made, self._member(value))
        return None if rank is None else int(rank)

    async def azrank(self, name: Any, value: Any, version: int | None = None) -> int | None:
        made = self.make_and_validate_key(name, version)
        rank = await self._aread("zrank", None, "ZRANK", made, self._member(value))
        return None if rank is None else int(rank)

    def zrevrank(self, name: Any, value: Any, version: int | None = None) -> int | None:
        """A member's rank, highest score first (None if absent)."""
        made = self.make_and_validate_key(name, version)
        rank = self._read("zrevrank", None, "ZREVRANK", made, self._member(value))
        return None if rank is None else int(rank)

    async def azrevrank(self, name: Any, value: Any, version: int | None = None) -> int | None:
        made = self.make_and_validate_key(name, version)
        rank = await self._aread("zrevrank", None, "ZREVRANK", made, self._member(value))
        return None if rank is None else int(rank)

    def zscore(self, name: Any, value: Any, version: int | None = None) -> float | None:
        made = self.make_and_validate_key(name, version)
        return _score(self._read("zscore", None, "ZSCORE", made, self._member(value)))

    async def azscore(self, name: Any, value: Any, version: int | None = None) -> float | None:
        made = self.make_and_validate_key(name, version)
        return _score(await self._aread("zscore", None, "ZSCORE", made, self._member(value)))

    def zmscore(
        self, name: Any, members: Iterable[Any], version: int | None = None
    ) -> list[float | None]:
        """Each member's score, in order (None for an absent one); redis-py's arguments."""
        made = self.make_and_validate_key(name, version)
        encoded = self._members(members)
        replies = self._read("zmscore", [None] * len(encoded), "ZMSCORE", made, *encoded)
        return [_score(reply) for reply in replies]

    async def azmscore(
        self, name: Any, members: Iterable[Any], version: int | None = None
    ) -> list[float | None]:
        made = self.make_and_validate_key(name, version)
        encoded = self._members(members)
        replies = await self._aread("zmscore", [None] * len(encoded), "ZMSCORE", made, *encoded)
        return [_score(reply) for reply in replies]

    # -- removal ----------------------------------------------------------------------

    def zrem(self, name: Any, *values: Any, version: int | None = None) -> int:
        made = self.make_and_validate_key(name, version)
        return int(self._write("zrem", 0, "ZREM", made, *self._members(values)))

    async def azrem(self, name: Any, *values: Any, version: int | None = None) -> int:
        made = self.make_and_validate_key(name, version)
        return int(await self._awrite("zrem", 0, "ZREM", made, *self._members(values)))

    def zremrangebyscore(
        self, name: Any, min: Bound, max: Bound, version: int | None = None
    ) -> int:
        made = self.make_and_validate_key(name, version)
        return int(self._write("zremrangebyscore", 0, "ZREMRANGEBYSCORE", made, min, max))

    async def azremrangebyscore(
        self, name: Any, min: Bound, max: Bound, version: int | None = None
    ) -> int:
        made = self.make_and_validate_key(name, version)
        return int(await self._awrite("zremrangebyscore", 0, "ZREMRANGEBYSCORE", made, min, max))

    def zremrangebyrank(self, name: Any, min: int, max: int, version: int | None = None) -> int:
        """Remove members ranked ``min`` to ``max`` inclusive; how many (redis-py's names)."""
        made = self.make_and_validate_key(name, version)
        return int(self._write("zremrangebyrank", 0, "ZREMRANGEBYRANK", made, int(min), int(max)))

    async def azremrangebyrank(
        self, name: Any, min: int, max: int, version: int | None = None
    ) -> int:
        made = self.make_and_validate_key(name, version)
        args = ("ZREMRANGEBYRANK", made, int(min), int(max))
        return int(await self._awrite("zremrangebyrank", 0, *args))
