"""redis_cluster: RedisCache on a 3-primary Redis Cluster vs raw redis-py ``RedisCluster``.

Three cluster-enabled redis-servers on free loopback ports (pinned to the benchmark's CPU,
like the process), joined by ``redis-cli --cluster create``. The baseline is redis-py's own
``RedisCluster.mget_nonatomic`` (it splits the keys by slot and pipelines per node, as we
do) returning bytes; RedisCache's ``get_many`` also decodes every value and checks tags.
Keys are spread over all three nodes (100 keys: about a third on each).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from typing import Any

from benchmarks.harness import Case, Context, Op, Result, cycle_of, free_loopback_port

DESCRIPTION = (
    "RedisCache get_many(100) on a 3-node Cluster vs RedisCluster.mget_nonatomic (goal >= 0.9x)"
)

OURS = "RedisCache"
RAW = "RedisCluster.mget_nonatomic"
BATCH = 100
POOL = 1000
KEYS = [f"bench:hit:{i:04d}" for i in range(POOL)]
GROUPS = [KEYS[i : i + BATCH] for i in range(0, POOL, BATCH)]
GOAL = {OURS: (">=", 0.9)}


def _start_cluster(ctx: Context) -> list[int]:
    workdir = tempfile.mkdtemp(prefix="lexigram-bench-cluster-")
    ctx.add_cleanup(shutil.rmtree, workdir, ignore_errors=True)
    ports: list[int] = []
    while len(ports) < 3:
        port = free_loopback_port()
        if port + 10000 <= 65535 and port not in ports:
            ports.append(port)
    for port in ports:
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--cluster-enabled", "yes"]
        argv += ["--cluster-config-file", f"{workdir}/nodes-{port}.conf"]
        ctx.start_server(argv, port=port)
    cli = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
    made = subprocess.run([*cli, "--cluster-replicas", "0", "--cluster-yes"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    if made.returncode != 0:
        ctx.skip(f"redis-cli --cluster create failed: {made.stdout[-300:]} {made.stderr[-300:]}")
    import time

    import redis

    for port in ports:
        deadline = time.monotonic() + 20
        while b"cluster_state:ok" not in redis.Redis(port=port).execute_command("CLUSTER", "INFO"):  # type: ignore[no-untyped-call]
            if time.monotonic() > deadline:
                ctx.skip("the cluster did not reach cluster_state:ok")
            time.sleep(0.05)
    return ports


def run(ctx: Context) -> list[Result]:
    try:
        import redis.asyncio.cluster
        import redis.cluster
    except ImportError:
        ctx.skip("redis-py is not installed")
    ports = _start_cluster(ctx)
    location = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/0"
    ours = ctx.make_cache(
        "lexigram_cache_django.backends.redis.RedisCache", location, KEY_PREFIX="ours", TIMEOUT=300
    )
    ctx.add_cleanup(lambda: ctx.run_async(ours.aclose()))
    nodes = [redis.cluster.ClusterNode("127.0.0.1", p) for p in ports]  # type: ignore[no-untyped-call]
    raw = redis.cluster.RedisCluster(startup_nodes=nodes)
    ctx.add_cleanup(raw.close)
    anodes = [redis.asyncio.cluster.ClusterNode("127.0.0.1", p) for p in ports]
    araw = ctx.run_async(_connect(redis.asyncio.cluster.RedisCluster(startup_nodes=anodes)))
    ctx.add_cleanup(lambda: ctx.run_async(araw.aclose()))
    ours.set_many({k: f"value-{i:04d}" for i, k in enumerate(KEYS)})
    raw.mset_nonatomic({f"raw:{k}": f"value-{i:04d}".encode() for i, k in enumerate(KEYS)})
    ctx.log(f"cluster on ports {ports}")

    raw_groups = [[f"raw:{k}" for k in g] for g in GROUPS]
    mget, nxt_raw = raw.mget_nonatomic, cycle_of(raw_groups)
    get_many, nxt = ours.get_many, cycle_of(GROUPS)
    amget, anxt_raw = araw.mget_nonatomic, cycle_of(raw_groups)
    aget_many, anxt = ours.aget_many, cycle_of(GROUPS)
    assert len(get_many(GROUPS[0])) == BATCH and all(mget(raw_groups[0]))

    def raw_op() -> Op:
        return lambda: mget(nxt_raw())

    cases = [
        Case(f"get_many({BATCH}) over 3 nodes", {RAW: raw_op(), OURS: lambda: get_many(nxt())},
             baseline=RAW, goals=GOAL),
        Case(f"aget_many({BATCH}) over 3 nodes",
             {RAW: lambda: amget(anxt_raw()), OURS: lambda: aget_many(anxt())},
             baseline=RAW, goals=GOAL),
        Case("get hit (one key)", {"RedisCluster.get": _one(raw.get, "raw:"),
             OURS: _one(ours.get, "")}, baseline="RedisCluster.get", goals=GOAL),
    ]  # fmt: skip
    results: list[Result] = []
    for case in cases:
        results.extend(ctx.measure(case))
    return results


def _one(get: Any, prefix: str) -> Op:
    nxt = cycle_of([f"{prefix}{k}" for k in KEYS])
    return lambda: get(nxt())


async def _connect(client: Any) -> Any:
    await client.initialize()
    return client
