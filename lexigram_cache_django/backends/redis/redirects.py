"""Following Redis Cluster's redirections at the choke point: ``MOVED`` and ``ASK``.

A ``MOVED`` reply names the slot's new owner for good: the command is sent there and the
slot map corrected (and marked stale, so the next command reloads it whole). An ``ASK``
reply means the slot is migrating and this key already left: the command is sent once to
the named node behind ``ASKING``, and the map is left as it is. Replies inside a pipeline
are followed one by one. At most ``MAX_REDIRECTS`` hops per command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import AskError, MovedError, ResponseError

from ...exceptions import CacheServerError
from .client import RedisClient
from .pools import AsyncPool, SyncPool
from .slots import SlotMap

#: Redirections followed for one command before giving up (a resharding in progress).
MAX_REDIRECTS = 5


def redirect_of(exc: AskError) -> str:
    """``host:port`` of the node a redirection names."""
    return f"{exc.host}:{exc.port}"


class RedirectingClient(RedisClient):
    """The choke point of :class:`~.client.RedisClient`, plus redirections followed."""

    map: SlotMap

    def node(self, name: str) -> SyncPool:
        raise NotImplementedError

    def anode(self, name: str) -> AsyncPool:
        raise NotImplementedError

    # -- the choke point, with redirections followed ----------------------------------

    def send(self, pool: SyncPool, *args: Any) -> Any:
        try:
            return RedisClient.send(self, pool, *args)
        except AskError as exc:
            return self._follow(exc, args)

    def _follow(self, exc: AskError, args: tuple[Any, ...]) -> Any:
        for _ in range(MAX_REDIRECTS):
            target = self.node(redirect_of(exc))
            try:
                if isinstance(exc, MovedError):
                    self.map.moved(exc.slot_id, redirect_of(exc))
                    return RedisClient.send(self, target, *args)
                reply = RedisClient.send_pipeline(self, target, [("ASKING",), args])[1]
                if isinstance(reply, Exception):
                    raise reply
                return reply
            except AskError as again:
                exc = again
        raise CacheServerError(f"Redis Cluster: too many redirections ({exc})", answered=True)

    async def asend(self, ap: AsyncPool, *args: Any) -> Any:
        try:
            return await RedisClient.asend(self, ap, *args)
        except AskError as exc:
            return await self._afollow(exc, args)

    async def _afollow(self, exc: AskError, args: tuple[Any, ...]) -> Any:
        for _ in range(MAX_REDIRECTS):
            target = self.anode(redirect_of(exc))
            try:
                if isinstance(exc, MovedError):
                    self.map.moved(exc.slot_id, redirect_of(exc))
                    return await RedisClient.asend(self, target, *args)
                replies = await RedisClient.asend_pipeline(self, target, [("ASKING",), args])
                if isinstance(replies[1], Exception):
                    raise replies[1]
                return replies[1]
            except AskError as again:
                exc = again
        raise CacheServerError(f"Redis Cluster: too many redirections ({exc})", answered=True)

    def _resolve(self, commands: Sequence[tuple[Any, ...]], replies: list[Any]) -> list[Any]:
        """Replace each redirection reply of a pipeline by the redirected command's reply."""
        for i, reply in enumerate(replies):
            if isinstance(reply, AskError):
                try:
                    replies[i] = self._follow(reply, commands[i])
                except (ResponseError, CacheServerError) as exc:
                    replies[i] = exc
        return replies

    async def _aresolve(self, commands: Sequence[tuple[Any, ...]], replies: list[Any]) -> list[Any]:
        for i, reply in enumerate(replies):
            if isinstance(reply, AskError):
                try:
                    replies[i] = await self._afollow(reply, commands[i])
                except (ResponseError, CacheServerError) as exc:
                    replies[i] = exc
        return replies

    def send_pipeline(self, pool: SyncPool, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        return self._resolve(commands, RedisClient.send_pipeline(self, pool, commands))

    async def asend_pipeline(self, ap: AsyncPool, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        replies = await RedisClient.asend_pipeline(self, ap, commands)
        return await self._aresolve(commands, replies)
