"""Redis Cluster: every command to its key's primary, batches as one pipeline per node.

Each primary gets one of our lean pools and its own breaker (a dead node fails its own
keys open; the others are still served). Commands pass :class:`~.client.RedisClient`'s
choke point; on top of it, ``MOVED`` and ``ASK`` replies are followed here (up to
``MAX_REDIRECTS`` hops), a ``MOVED`` also correcting the shared slot map (:mod:`.slots`).

Multi-key commands never cross a slot: ``get_many`` sends one ``MGET`` per slot (``GET``
for a slot with one key), grouped into one pipeline per node; ``set_many`` and
``delete_many`` likewise; every Lua script names one key except the tag-record one, which
runs once per slot. A batch whose node fails returns what the other nodes answered
(reads: the failed node's keys are misses; ``set_many``: they are the keys not stored).
Async batches ask their nodes concurrently (``asyncio.gather``).

A tagged read is the entry's key plus its tag records in one such batch: one round trip
per node that holds one of them (at most 1 + the number of tags, at most the number of
primaries), concurrent on the async API. Invalidating a tag is still one ``SET`` of its
record, whatever the number of entries. Reads go to primaries only.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import AskError, NoScriptError

from ...circuit import CircuitBreaker
from ...exceptions import CacheServerError
from ...failfast import breaker_for
from ...metrics import histogram_for
from ...tags import new_version, record_version
from . import scripts
from .client import RedisClient, _pools_for_loop
from .commands import (
    SCAN_COUNT,
    _existed,
    _persist_if_exists,
    _set_args,
)
from .locations import Topology
from .pools import AsyncPool, SyncPool
from .redirects import RedirectingClient, redirect_of
from .scripts import Script
from .slots import (
    SlotMap,
    del_command,
    deleted,
    flat,
    gather,
    group,
    mget_command,
    node_url,
    per_key,
    set_command,
    slot_of,
    unstored,
)

_maps: dict[str, SlotMap] = {}
_nodes: dict[str, dict[str, SyncPool]] = {}
_raw: dict[str, redis.cluster.RedisCluster] = {}
_shared_lock = threading.Lock()


def _no_node(slot: int) -> CacheServerError:
    return CacheServerError(f"Redis Cluster: no node serves slot {slot}", answered=True)


class ClusterClient(RedirectingClient):
    """A Redis Cluster named by some of its nodes; see the module docstring."""

    def __init__(
        self,
        topology: Topology,
        sync_kwargs: dict[str, Any],
        async_kwargs: dict[str, Any],
        circuit: Mapping[str, Any] | None = None,
    ) -> None:
        self.topology = topology
        self._sync_kwargs = {**sync_kwargs, **topology.server_kwargs()}
        self._async_kwargs = {**async_kwargs, **topology.server_kwargs()}
        self._circuit = dict(circuit or {})
        self.pools_id = f"cluster|{topology!r}|{sorted(sync_kwargs.items())!r}"
        with _shared_lock:
            self.map = _maps.setdefault(self.pools_id, SlotMap())
            self._nodes = _nodes.setdefault(self.pools_id, {})
        self.startup = [f"{host}:{port}" for host, port in topology.hosts]
        self.replicas = []

    # -- nodes ------------------------------------------------------------------------

    @property
    def servers(self) -> list[str]:  # type: ignore[override]
        return [node_url(name, self.topology.ssl) for name in self.map.primaries or self.startup]

    @property
    def names(self) -> list[str]:  # type: ignore[override]
        return self.servers

    def breaker(self, name: str) -> CircuitBreaker:
        return breaker_for(node_url(name, self.topology.ssl), **self._circuit)

    def node(self, name: str) -> SyncPool:
        pool = self._nodes.get(name)
        if pool is None:
            with _shared_lock:
                pool = self._nodes.get(name)
                if pool is None:
                    pool = SyncPool(node_url(name, self.topology.ssl), **self._sync_kwargs)
                    pool.breaker = self.breaker(name)
                    pool.latency = histogram_for(pool.breaker.server)
                    self._nodes[name] = pool
        return pool

    def anode(self, name: str) -> AsyncPool:
        pools = _pools_for_loop(asyncio.get_running_loop()).setdefault(self.pools_id, [])
        for ap in pools:
            if ap.name == name:  # type: ignore[attr-defined]
                return ap
        kwargs = dict(self._async_kwargs)
        ap = AsyncPool(
            node_url(name, self.topology.ssl), timeout=self._sync_kwargs["timeout"], **kwargs
        )
        ap.name = name  # type: ignore[attr-defined]
        ap.breaker = self.breaker(name)
        ap.latency = histogram_for(ap.breaker.server)
        pools.append(ap)
        return ap

    def _candidates(self) -> list[str]:
        return list(dict.fromkeys([*self.map.primaries, *self.startup]))

    def refresh(self) -> None:
        """Reload the slot map from the first node that answers ``CLUSTER SLOTS``."""
        failure: CacheServerError | None = None
        for name in self._candidates():
            try:
                reply = RedisClient.send(self, self.node(name), "CLUSTER", "SLOTS")
            except CacheServerError as exc:
                failure = exc
                continue
            self.map.load(reply, name)
            return
        raise failure or CacheServerError("Redis Cluster: no node answered", answered=False)

    async def arefresh(self) -> None:
        failure: CacheServerError | None = None
        for name in self._candidates():
            try:
                reply = await RedisClient.asend(self, self.anode(name), "CLUSTER", "SLOTS")
            except CacheServerError as exc:
                failure = exc
                continue
            self.map.load(reply, name)
            return
        raise failure or CacheServerError("Redis Cluster: no node answered", answered=False)

    def _slots(self) -> list[str | None]:
        if self.map.stale:
            try:
                self.refresh()
            except CacheServerError:
                if not self.map.primaries:
                    raise  # nothing known yet; else keep the map we have
        return self.map.slots

    async def _aslots(self) -> list[str | None]:
        if self.map.stale:
            try:
                await self.arefresh()
            except CacheServerError:
                if not self.map.primaries:
                    raise
        return self.map.slots

    def _name_of(self, key: str, slots: list[str | None]) -> str:
        slot = slot_of(key)
        name = slots[slot]
        if name is None:
            raise _no_node(slot)
        return name

    def key_pool(self, key: str, write: bool = True) -> SyncPool:
        return self.node(self._name_of(key, self._slots()))

    async def akey_pool(self, key: str, write: bool = True) -> AsyncPool:
        return self.anode(self._name_of(key, await self._aslots()))

    def primaries(self) -> list[SyncPool]:
        self._slots()
        return [self.node(name) for name in self.map.primaries]

    async def aprimaries(self) -> list[AsyncPool]:
        await self._aslots()
        return [self.anode(name) for name in self.map.primaries]

    def scan_pools(self) -> list[SyncPool]:
        return self.primaries()

    async def ascan_pools(self) -> list[AsyncPool]:
        return await self.aprimaries()

    @property
    def primary(self) -> SyncPool:  # type: ignore[override]
        """The first primary: for code written for one server. A one-key command sent
        there still reaches its key's node (``MOVED`` is followed); use ``key_pool``."""
        return self.primaries()[0]

    def read_pool(self) -> SyncPool:
        return self.primaries()[0]

    def aprimary(self) -> AsyncPool:
        """The first primary of the loaded map (for ``aget_client``-style callers)."""
        return self.anode((self.map.primaries or self.startup)[0])

    def aread_pool(self) -> AsyncPool:
        return self.aprimary()

    def apools(self) -> list[AsyncPool]:
        return list(_pools_for_loop(asyncio.get_running_loop()).get(self.pools_id, []))

    def pings(self) -> list[tuple[CircuitBreaker, Callable[[], Any]]]:
        try:
            pools = self.primaries()
        except CacheServerError:
            pools = [self.node(name) for name in self.startup]
        return [(p.breaker, functools.partial(RedisClient.send, self, p, "PING")) for p in pools]

    # -- batches: one pipeline per node -----------------------------------------------

    def _plan(
        self, keys: Sequence[str], slots: list[str | None], build: Callable[[list[str]], Any]
    ) -> dict[str, tuple[list[tuple[Any, ...]], list[list[int]]]]:
        """Per node: its commands (``build(keys of one slot)``) and each one's key indices."""
        by_node, unknown = group(slots, keys)
        if unknown:
            raise _no_node(slot_of(keys[unknown[0]]))
        plan = {}
        for name, by_slot in by_node.items():
            indices = list(by_slot.values())
            plan[name] = ([build([keys[i] for i in idx]) for idx in indices], indices)
        return plan

    def _fan_out(self, plan: dict[str, Any]) -> dict[str, list[Any] | CacheServerError]:
        out: dict[str, list[Any] | CacheServerError] = {}
        for name, (commands, _) in plan.items():
            try:
                out[name] = self.send_pipeline(self.node(name), commands)
            except CacheServerError as exc:
                out[name] = exc
        return out

    async def _afan_out(self, plan: dict[str, Any]) -> dict[str, list[Any] | CacheServerError]:
        async def one(name: str, commands: list[tuple[Any, ...]]) -> Any:
            try:
                return await self.asend_pipeline(self.anode(name), commands)
            except CacheServerError as exc:
                return exc

        names = list(plan)
        if len(names) == 1:
            return {names[0]: await one(names[0], plan[names[0]][0])}
        replies = await asyncio.gather(*(one(name, plan[name][0]) for name in names))
        return dict(zip(names, replies))

    # -- the commands of remote.ServerClient -----------------------------------------

    def get(self, key: str, primary: bool = False) -> bytes | None:
        data: bytes | None = self.send(self.key_pool(key), "GET", key)
        return data

    async def aget(self, key: str, primary: bool = False) -> bytes | None:
        data: bytes | None = await self.asend(await self.akey_pool(key), "GET", key)
        return data

    def get_many(self, keys: Sequence[str], primary: bool = False) -> list[bytes | None]:
        plan = self._plan(keys, self._slots(), mget_command)
        return gather(len(keys), plan, self._fan_out(plan), False)

    async def aget_many(self, keys: Sequence[str], primary: bool = False) -> list[bytes | None]:
        plan = self._plan(keys, await self._aslots(), mget_command)
        return gather(len(keys), plan, await self._afan_out(plan), False)

    def set(self, key: str, data: bytes, exp: int | None, xx: bool = False) -> bool:
        pool = self.key_pool(key)
        if exp == 0:
            return xx and bool(self.send(pool, "DEL", key))
        return self.send(pool, *_set_args(key, data, exp, xx)) is not None

    async def aset(self, key: str, data: bytes, exp: int | None, xx: bool = False) -> bool:
        ap = await self.akey_pool(key)
        if exp == 0:
            return xx and bool(await self.asend(ap, "DEL", key))
        return await self.asend(ap, *_set_args(key, data, exp, xx)) is not None

    def _set_plan(self, items: Sequence[tuple[str, bytes]], exp: int | None, slots: Any) -> Any:
        values = dict(items)
        if exp == 0:
            return self._plan([k for k, _ in items], slots, del_command)
        px = () if exp is None else ("PX", exp)
        return per_key(self._plan([k for k, _ in items], slots, set_command), values, px)

    def set_many(self, items: Sequence[tuple[str, bytes]], exp: int | None) -> list[str]:
        plan = self._set_plan(items, exp, self._slots())
        return unstored(items, plan, self._fan_out(plan))

    async def aset_many(self, items: Sequence[tuple[str, bytes]], exp: int | None) -> list[str]:
        plan = self._set_plan(items, exp, await self._aslots())
        return unstored(items, plan, await self._afan_out(plan))

    def add(self, key: str, data: bytes, exp: int | None) -> bool:
        pool = self.key_pool(key)
        if exp == 0:
            return not self.send(pool, "EXISTS", key)
        return self.send(pool, *_set_args(key, data, exp), "NX") is not None

    async def aadd(self, key: str, data: bytes, exp: int | None) -> bool:
        ap = await self.akey_pool(key)
        if exp == 0:
            return not await self.asend(ap, "EXISTS", key)
        return await self.asend(ap, *_set_args(key, data, exp), "NX") is not None

    def gets(self, key: str) -> tuple[bytes | None, Any]:
        data = self.get(key)
        return data, data

    async def agets(self, key: str) -> tuple[bytes | None, Any]:
        data = await self.aget(key)
        return data, data

    def touch(self, key: str, exp: int | None) -> bool:
        pool = self.key_pool(key)
        if exp is None:
            return _existed(self._transaction(pool, key))
        if exp == 0:
            return bool(self.send(pool, "DEL", key))
        return bool(self.send(pool, "PEXPIRE", key, exp))

    def _transaction(self, pool: SyncPool, key: str) -> list[Any]:
        replies = RedisClient.send_pipeline(self, pool, _persist_if_exists(key))
        moved = [r for r in replies[1:3] if isinstance(r, AskError)]
        if moved:  # the slot moved: the whole transaction goes to its owner
            self.map.moved(moved[0].slot_id, redirect_of(moved[0]))
            replies = RedisClient.send_pipeline(
                self, self.node(redirect_of(moved[0])), _persist_if_exists(key)
            )
        return replies

    async def atouch(self, key: str, exp: int | None) -> bool:
        ap = await self.akey_pool(key)
        if exp is None:
            replies = await RedisClient.asend_pipeline(self, ap, _persist_if_exists(key))
            moved = [r for r in replies[1:3] if isinstance(r, AskError)]
            if moved:
                self.map.moved(moved[0].slot_id, redirect_of(moved[0]))
                target = self.anode(redirect_of(moved[0]))
                replies = await RedisClient.asend_pipeline(self, target, _persist_if_exists(key))
            return _existed(replies)
        if exp == 0:
            return bool(await self.asend(ap, "DEL", key))
        return bool(await self.asend(ap, "PEXPIRE", key, exp))

    def delete(self, key: str) -> bool:
        return bool(self.send(self.key_pool(key), "DEL", key))

    async def adelete(self, key: str) -> bool:
        return bool(await self.asend(await self.akey_pool(key), "DEL", key))

    def delete_many(self, keys: Sequence[str]) -> int:
        plan = self._plan(keys, self._slots(), del_command)
        return deleted(plan, self._fan_out(plan))

    async def adelete_many(self, keys: Sequence[str]) -> int:
        plan = self._plan(keys, await self._aslots(), del_command)
        return deleted(plan, await self._afan_out(plan))

    def eval(self, script: Script, keys: Sequence[str], *args: Any) -> Any:
        pool = self.key_pool(keys[0])
        try:
            return self.send(pool, "EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self.send(pool, "EVAL", script.source, len(keys), *keys, *args)

    async def aeval(self, script: Script, keys: Sequence[str], *args: Any) -> Any:
        ap = await self.akey_pool(keys[0])
        try:
            return await self.asend(ap, "EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.asend(ap, "EVAL", script.source, len(keys), *keys, *args)

    def _tag_plan(self, keys: Sequence[str], exp: int | None, slots: Any) -> Any:
        """TAG_VERSIONS once per slot (EVAL: the source travels, no NOSCRIPT round)."""
        source = scripts.TAG_VERSIONS.source
        fresh = {key: new_version() for key in keys}
        return self._plan(
            keys, slots, lambda ks: ("EVAL", source, len(ks), *ks, exp, *(fresh[k] for k in ks))
        )

    def tag_versions(self, keys: Sequence[str], create: bool, exp: int | None) -> list[int | None]:
        if not create:
            return [record_version(r) for r in self.get_many(keys, True)]
        plan = self._tag_plan(keys, exp, self._slots())
        return [record_version(r) for r in flat(len(keys), plan, self._fan_out(plan))]

    async def atag_versions(
        self, keys: Sequence[str], create: bool, exp: int | None
    ) -> list[int | None]:
        if not create:
            return [record_version(r) for r in await self.aget_many(keys, True)]
        plan = self._tag_plan(keys, exp, await self._aslots())
        return [record_version(r) for r in flat(len(keys), plan, await self._afan_out(plan))]

    # -- SCAN over every primary; UNLINK by slot --------------------------------------

    def unlink_matching(self, pattern: str, count: int = SCAN_COUNT) -> int:
        deleted = 0
        for pool in self.primaries():
            batch = [key.decode() for key in self.scan(pool, pattern, count)]
            for start in range(0, len(batch), count):
                deleted += self.delete_many(batch[start : start + count])
        return deleted

    async def aunlink_matching(self, pattern: str, count: int = SCAN_COUNT) -> int:
        deleted = 0
        for ap in await self.aprimaries():
            batch = [key.decode() async for key in self.ascan(ap, pattern, count)]
            for start in range(0, len(batch), count):
                deleted += await self.adelete_many(batch[start : start + count])
        return deleted

    def _raw_kwargs(self) -> dict[str, Any]:
        keep = ("username", "password", "socket_timeout", "socket_connect_timeout")
        kwargs = {k: v for k, v in self._sync_kwargs.items() if k in keep}
        return {**kwargs, "ssl": True} if self.topology.ssl else kwargs

    def raw_client(self) -> redis.cluster.RedisCluster:
        """redis-py's own ``RedisCluster`` for raw commands (``get_client()``), made once."""
        client = _raw.get(self.pools_id)
        if client is None:
            nodes = [redis.cluster.ClusterNode(h, p) for h, p in self.topology.hosts]  # type: ignore[no-untyped-call]
            client = _raw[self.pools_id] = redis.cluster.RedisCluster(
                startup_nodes=nodes, **self._raw_kwargs()
            )
        return client

    def araw_client(self) -> redis.asyncio.cluster.RedisCluster:
        nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in self.topology.hosts]
        return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **self._raw_kwargs())

    async def aclose(self) -> None:
        mine = _pools_for_loop(asyncio.get_running_loop()).pop(self.pools_id, None)
        for ap in mine or ():
            await ap.aclose()
