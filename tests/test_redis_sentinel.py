"""Redis Sentinel LOCATIONs: parsing, masking, replica reads, and a failover under load.

Real servers only (tests/topology_servers.py): a primary, a replica and one sentinel on
free loopback ports, started per test that kills something.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from lexigram_cache_django.backends.redis import RedisCache
from lexigram_cache_django.backends.redis.locations import parse
from lexigram_cache_django.checks import check_alias
from lexigram_cache_django.exceptions import CacheConfigurationError
from tests.topology_servers import SERVICE, Topology, sentinel_primary_port, start_sentinel_set

REDIS = "lexigram_cache_django.backends.redis.RedisCache"


@pytest.fixture
def sentinel_set() -> Iterator[Topology]:
    topology = start_sentinel_set()
    yield topology
    topology.stop()


def test_location_forms_parse_and_mask() -> None:
    topo = parse("redis+sentinel://:s3cret@h1:26379,h2/svc/3")
    assert topo.hosts == (("h1", 26379), ("h2", 26379))
    assert (topo.service, topo.db, topo.password) == ("svc", 3, "s3cret")
    assert "s3cret" not in topo.display and "***" in topo.display
    django_redis = parse("redis://:pw@svc/2", sentinels=[("h1", 26380), "h2:26381"])
    assert django_redis.hosts == (("h1", 26380), ("h2", 26381))
    assert (django_redis.service, django_redis.db) == ("svc", 2)
    with pytest.raises(CacheConfigurationError, match="names no service"):
        parse("redis+sentinel://h1:26379")
    with pytest.raises(CacheConfigurationError, match="not a number"):
        parse("redis+sentinel://h1/svc/x")


@pytest.mark.parametrize(
    ("location", "options", "fragment"),
    [
        ("redis+sentinel://h1:26379", {}, "names no service"),
        ("redis+sentinel://:pw@h1:99999/svc/0", {}, "bad host"),
        ("redis+sentinel://h1/svc/zero", {}, "not a number"),
        ("redis+cluster://h1:7000/3", {}, "database other than 0"),
        ("redis+sentinal://h1/svc", {}, "not a redis"),
        ("redis://svc/0", {"SENTINELS": [("h1", "port")]}, "SENTINELS"),
    ],
)
def test_bad_topology_locations_are_check_errors(
    location: str, options: dict[str, Any], fragment: str
) -> None:
    messages = check_alias("x", {"BACKEND": REDIS, "LOCATION": location, "OPTIONS": options})
    assert messages, location
    assert all(str(m.id).startswith("lexigram_cache.E") and m.hint for m in messages)
    assert any(fragment in m.msg for m in messages), [m.msg for m in messages]
    assert not any("pw" in m.msg.replace("password", "") for m in messages)


def test_sentinel_options_without_sentinel_are_a_warning() -> None:
    config = {"BACKEND": REDIS, "LOCATION": "redis://h:6379/0"}
    messages = check_alias("x", {**config, "OPTIONS": {"READ_FROM_REPLICAS": True}})
    assert [m.id for m in messages] == ["lexigram_cache.W003"]
    assert messages[0].hint


def test_good_topology_locations_pass_the_checks() -> None:
    for location, options in [
        ("redis+sentinel://h1:26379,h2:26379/mymaster/0", {"READ_FROM_REPLICAS": True}),
        ("redis://mymaster/1", {"SENTINELS": [("h1", 26379)], "SENTINEL_KWARGS": {}}),
        ("redis+cluster://h1:7000,h2:7001/0", {}),
    ]:
        config = {"BACKEND": REDIS, "LOCATION": location, "OPTIONS": options}
        assert check_alias("x", config) == [], location


def test_replica_reads_and_both_location_forms(sentinel_set: Topology) -> None:
    cache = RedisCache(
        sentinel_set.location,
        {"KEY_PREFIX": "rr", "OPTIONS": {"READ_FROM_REPLICAS": True, "FAIL_SILENTLY": False}},
    )
    assert cache.set("k", "v")
    primary = redis.Redis(port=sentinel_set.servers[0].port)  # the write reached the primary
    assert primary.get(cache.make_key("k")) is not None
    assert asyncio.run(cache.aset("ak", "v"))
    assert primary.get(cache.make_key("ak")) is not None  # and so did the async one
    deadline = time.monotonic() + 5
    while cache.get("k") != "v" and time.monotonic() < deadline:
        time.sleep(0.01)  # replication is asynchronous
    assert cache.get("k") == "v"
    replica = cache._client.replicas[0].redis_pool.get_connection()
    try:
        replica.send_command("ROLE")
        assert replica.read_response()[0] == b"slave"  # the read pool reaches the replica
    finally:
        cache._client.replicas[0].redis_pool.release(replica)
    django_redis = RedisCache(
        f"redis://{SERVICE}/0",
        {"KEY_PREFIX": "rr", "OPTIONS": {"SENTINELS": [("127.0.0.1", sentinel_set.port)]}},
    )
    assert django_redis.get("k") == "v"
    assert asyncio.run(django_redis.aget("k")) == "v"


def test_failover_under_load(sentinel_set: Topology) -> None:
    """16 threads and 200 tasks write while the primary is killed: no caller sees an
    exception, writes work again within 5 s, and none acknowledged after the kill is lost."""
    dead_first = "127.0.0.1:1"  # a sentinel that refuses: the next one in the list is asked
    location = f"redis+sentinel://{dead_first},127.0.0.1:{sentinel_set.port}/{SERVICE}/0"
    cache = RedisCache(location, {"KEY_PREFIX": "fo", "TIMEOUT": None})
    assert cache.set("warm", 1) and cache.get("warm") == 1
    primary = sentinel_set.servers[0]  # started first: the primary
    stop = threading.Event()
    errors: list[BaseException] = []
    acked: list[tuple[float, str, int]] = []  # (call started, key, value) of stored writes
    lock = threading.Lock()

    def thread_worker(tid: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            key, started = f"t{tid}:{n}", time.monotonic()
            try:
                stored = cache.set(key, n)
                cache.get(key)
            except BaseException as exc:
                errors.append(exc)
                return
            if stored:
                with lock:
                    acked.append((started, key, n))
            time.sleep(0.001)

    async def task_worker(tid: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            key, started = f"a{tid}:{n}", time.monotonic()
            try:
                stored = await cache.aset(key, n)
                await cache.aget(key)
            except BaseException as exc:
                errors.append(exc)
                return
            if stored:
                with lock:
                    acked.append((started, key, n))
            await asyncio.sleep(0.005)

    async def tasks_main() -> None:
        await asyncio.gather(*(task_worker(i) for i in range(200)))
        await cache.aclose()

    workers = [threading.Thread(target=thread_worker, args=(i,)) for i in range(16)]
    workers.append(threading.Thread(target=asyncio.run, args=(tasks_main(),)))
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        primary.kill()  # SIGKILL, and waits until it is gone
        killed_at = time.monotonic()
        old_port = primary.port
        promoted_at = None
        deadline = killed_at + 15  # a bound on the test, not the property
        while time.monotonic() < deadline:
            now = time.monotonic()
            if promoted_at is None and sentinel_primary_port(sentinel_set.port) != old_port:
                promoted_at = now
            if promoted_at is not None and now - promoted_at > 3.0:
                break  # writes on the new primary for a while (the breaker's trial: <= 1 s)
            time.sleep(0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
    assert errors == []
    after = [(s, k, v) for s, k, v in acked if s > killed_at]
    assert after, "no write succeeded after the kill"
    first_ok = min(s for s, _, _ in after) - killed_at
    print(
        f"\nfailover: promoted {(promoted_at or 0) - killed_at:.2f} s, writes again "
        f"{first_ok:.2f} s after the kill; {len(after)} stored since"
    )
    assert first_ok < 5.0
    assert sentinel_primary_port(sentinel_set.port) != old_port
    # The primary's breaker opened during the outage (calls short-circuited, no socket
    # touched) and closed again on the new primary.
    assert cache.stats()["short_circuited"] > 0
    assert cache.health()["servers"][0]["state"] == "closed"
    checker = RedisCache(location, {"KEY_PREFIX": "fo", "OPTIONS": {"FAIL_SILENTLY": False}})
    keys = [k for _, k, _ in after]
    found: dict[str, Any] = {}
    for start in range(0, len(keys), 500):
        found.update(checker.get_many(keys[start : start + 500]))
    lost = [k for _, k, v in after if found.get(k) != v]
    assert lost == []
