"""Redis Cluster LOCATIONs on a real 3-primary cluster (tests/topology_servers.py).

Batches across slots and nodes, tags whose records live on other nodes than their
entries, SCAN over every primary, MOVED and ASK followed after a slot migration, and a
breaker per node. The node-killing test runs last and restarts what it killed.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
import redis

from lexigram_cache_django.backends.redis import RedisCache
from lexigram_cache_django.backends.redis.cluster import ClusterClient
from lexigram_cache_django.backends.redis.slots import slot_of
from lexigram_cache_django.tags import tag_record_key
from tests.topology_servers import Topology, command, slot_owner, wait_for

_prefixes = itertools.count()


def make(cluster: Topology, **options: Any) -> RedisCache:
    params = {"KEY_PREFIX": f"c{next(_prefixes)}", "OPTIONS": {"FAIL_SILENTLY": False, **options}}
    return RedisCache(cluster.location, params)


def cluster_client(cache: RedisCache) -> ClusterClient:
    client = cache._client
    assert isinstance(client, ClusterClient)
    return client


def owner(cache: RedisCache, made_key: str) -> str:
    client = cluster_client(cache)
    client._slots()
    name = client.map.slots[slot_of(made_key)]
    assert name is not None
    return name


def test_batches_span_every_node(redis_cluster: Topology) -> None:
    cache = make(redis_cluster)
    data = {f"k{i}": i for i in range(200)}
    assert {owner(cache, cache.make_key(k)) for k in data} == set(
        cluster_client(cache).map.primaries
    )
    assert len(cluster_client(cache).map.primaries) == 3
    assert cache.set_many(data) == []
    assert cache.get_many(list(data)) == data
    assert cache.get_many([*data, "absent"]) == data
    cache.delete_many(list(data)[:100])
    assert cache.get_many(list(data)) == dict(list(data.items())[100:])
    assert cache.set_many(data, timeout=0) == []  # Django: nothing stored, old values gone
    assert cache.get_many(list(data)) == {}

    async def main() -> None:
        assert await cache.aset_many(data) == []
        assert await cache.aget_many(list(data)) == data
        await cache.adelete_many(list(data))
        assert await cache.aget_many(list(data)) == {}
        await cache.aclose()

    asyncio.run(main())


def test_single_key_commands_route_by_slot(redis_cluster: Topology) -> None:
    cache = make(redis_cluster)
    for i in range(30):  # keys on every node
        assert cache.add(f"n{i}", i)
        assert not cache.add(f"n{i}", -1)
        assert cache.incr(f"n{i}", 10) == i + 10
        assert cache.touch(f"n{i}", None)
        assert cache.ttl(f"n{i}") is None
        assert cache.expire(f"n{i}", 100) and 0 < (cache.ttl(f"n{i}") or 0) <= 100
        with cache.lock(f"lock{i}", timeout=5):
            assert cache.get_or_set(f"gos{i}", lambda i=i: i * 2) == i * 2
    client = cluster_client(cache)  # code written for one server: MOVED is followed
    for i in range(10):
        assert client.send(client.primary, "SET", f"{{x{i}}}plain", b"1") is not None
        assert client.send(client.primary, "GET", f"{{x{i}}}plain") == b"1"
    raw = cache.get_client()
    assert isinstance(raw, redis.cluster.RedisCluster)
    assert raw.get(cache.make_key("n3")) == b"13"


def test_data_structure_commands_route_to_each_keys_node(redis_cluster: Topology) -> None:
    """django-redis's hash/set/sorted-set commands go to their key's node, sync and async;
    a multi-key set command needs its keys in one slot, as on Redis itself."""
    cache = make(redis_cluster)
    names = [f"h{i}" for i in range(30)]
    assert {owner(cache, cache.make_key(n)) for n in names} == set(
        cluster_client(cache).map.primaries
    )
    for i, name in enumerate(names):
        assert cache.hset(name, "f", i) == 1
        assert cache.hget(name, "f") == i
        assert cache.sadd(f"s{i}", "a", "b") == 2
        assert cache.smembers(f"s{i}") == {"a", "b"}
        assert cache.zadd(f"z{i}", {"x": 1.0, "y": 2.0}) == 2
        assert cache.zrange(f"z{i}", 0, -1) == ["x", "y"]
    assert set(cache.sscan("s7")) == {"a", "b"}
    assert cache.sadd("{g}one", 1, 2) == 2 and cache.sadd("{g}two", 2, 3) == 2
    assert cache.sinter("{g}one", "{g}two") == {2}

    async def main() -> None:
        for i, name in enumerate(names):
            assert await cache.ahget(name, "f") == i
            assert await cache.asismember(f"s{i}", "a")
            assert await cache.azscore(f"z{i}", "y") == 2.0
        assert {m async for m in cache.asscan_iter("s3")} == {"a", "b"}
        await cache.aclose()

    asyncio.run(main())


def test_tagged_entry_and_invalidation_across_nodes(redis_cluster: Topology) -> None:
    cache = make(redis_cluster)
    entry = cache.make_key("entry")
    tags = [
        name
        for name in (f"tag{i}" for i in range(100))
        if owner(cache, cache.make_key(tag_record_key(name))) != owner(cache, entry)
    ][:2]
    assert len(tags) == 2
    assert cache.set("entry", "v", tags=tags)
    assert cache.get("entry") == "v"
    fresh = make(redis_cluster)  # another process: no tag hints yet
    fresh.key_prefix = cache.key_prefix
    assert fresh.get("entry") == "v" and fresh.get_many(["entry"]) == {"entry": "v"}
    cache.invalidate_tags(tags[1])
    assert cache.get("entry") is None
    assert fresh.get("entry") is None and fresh.get_many(["entry"]) == {}

    async def main() -> None:
        assert await cache.aset("entry", "w", tags=tags)
        assert await cache.aget("entry") == "w"
        await cache.ainvalidate_tags(tags[0])
        assert await cache.aget("entry") is None
        await cache.aclose()

    asyncio.run(main())


def test_keys_and_clear_cover_every_primary(redis_cluster: Topology) -> None:
    cache = make(redis_cluster)
    other = make(redis_cluster)
    data = {f"s{i}": i for i in range(120)}
    cache.set_many(data)
    other.set("s0", "other alias")
    assert sorted(cache.keys("s*")) == sorted(data)
    assert sorted(cache.iter_keys("s1*")) == sorted(k for k in data if k.startswith("s1"))
    assert cache.delete_pattern("s1*") == sum(1 for k in data if k.startswith("s1"))
    cache.clear()
    assert cache.keys("*") == []
    assert other.get("s0") == "other alias"  # clear() removes this prefix only

    async def main() -> None:
        await cache.aset_many(data)
        assert sorted(await cache.akeys("s*")) == sorted(data)
        await cache.aclear()
        assert await cache.akeys("*") == []
        await cache.aclose()

    asyncio.run(main())


def _node_ids(port: int) -> dict[int, str]:
    lines = redis.Redis(port=port).execute_command("CLUSTER", "NODES").decode().splitlines()  # type: ignore[no-untyped-call]
    return {int(line.split()[1].split("@")[0].rsplit(":", 1)[1]): line.split()[0] for line in lines}


@pytest.mark.parametrize("finish", [True, False], ids=["moved", "ask"])
def test_migrated_slot_is_followed(redis_cluster: Topology, finish: bool) -> None:
    """A slot moved to another node after the client loaded its map: MOVED once the
    migration is finished, ASK while it is in progress; both are followed."""
    cache = make(redis_cluster)
    assert cache.set("mig", "value") and cache.get("mig") == "value"  # map loaded
    made = cache.make_key("mig")
    slot = slot_of(made)
    source = slot_owner(redis_cluster.port, slot)
    target = next(p for p in redis_cluster.entry if p != source)
    ids = _node_ids(source)
    src, dst = redis.Redis(port=source), redis.Redis(port=target)
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])  # type: ignore[no-untyped-call]
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])  # type: ignore[no-untyped-call]
    src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", made)  # type: ignore[no-untyped-call]
    try:
        if finish:
            for port in redis_cluster.entry:
                redis.Redis(port=port).execute_command(  # type: ignore[no-untyped-call]
                    "CLUSTER", "SETSLOT", slot, "NODE", ids[target]
                )
        assert cache.get("mig") == "value"  # asked of the old owner, redirected
        assert cache.set("mig", "again") and cache.get("mig") == "again"
        assert asyncio.run(cache.aget("mig")) == "again"
        if finish:
            assert cluster_client(cache).map.slots[slot] == f"127.0.0.1:{target}"
    finally:
        for port in redis_cluster.entry:  # finish (or complete) the migration either way
            redis.Redis(port=port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])  # type: ignore[no-untyped-call]


def test_breaker_per_node(redis_cluster: Topology) -> None:
    """One node killed: its keys fail open, the other nodes' keys are still served."""
    cache = make(redis_cluster, FAIL_SILENTLY=True)
    data = {f"b{i}": i for i in range(60)}
    assert cache.set_many(data) == []
    dead_port = redis_cluster.entry[1]
    dead = f"127.0.0.1:{dead_port}"
    on_dead = [k for k in data if owner(cache, cache.make_key(k)) == dead]
    alive = [k for k in data if k not in on_dead]
    assert on_dead and alive
    node = next(s for s in redis_cluster.servers if s.port == dead_port)
    node.kill()
    try:
        for _ in range(10):
            assert [cache.get(k) for k in alive] == [data[k] for k in alive]
            assert all(cache.get(k) is None for k in on_dead)
        assert cache.get_many(list(data)) == {k: data[k] for k in alive}
        assert sorted(cache.set_many(data)) == sorted(on_dead)  # the keys not stored
        health = cache.health()
        assert health["status"] == "degraded"
        states = {s["server"]: s["state"] for s in health["servers"]}
        assert states[f"redis://{dead}/0"] == "open"
        assert [v for k, v in states.items() if dead not in k] == ["closed", "closed"]
    finally:
        node.restart()
        for port in redis_cluster.entry:
            wait_for(
                lambda port=port: "cluster_state:ok" in command(port, "CLUSTER", "INFO"),
                "the cluster to recover",
                30,
            )
