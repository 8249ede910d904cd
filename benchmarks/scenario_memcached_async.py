"""memcached_async: our asyncio memcached client vs emcache, one task and 200 tasks.

One throw-away memcached on a free loopback port, pinned to the benchmark's CPU (run with
``--cpu 0`` to pin both to CPU 0). Candidates are divided by emcache round by round:

* ``emcache``: ``emcache.create_client`` with 4 connections and ``timeout=None`` -- with the
  backend's 1 s timeout, emcache's starved waiters fail after 1 s under 200 tasks, stalling a
  sample for a second; without it the comparison is of speed alone.
* ``ours``: ``AsyncMemcachedClient`` with 4 connections (the default) and a 1 s deadline per
  call (so its timer is included: the comparison is conservative).
* ``ours[8]``: the same with 8 connections, to see whether a larger default pool pays.

``x200`` ops run 200 concurrent calls (``asyncio.gather``) per op: ops/s x 200 = calls/s.
Run: ``PYTHONPATH=$PWD python -m benchmarks memcached_async --cpu 0``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Case, Context, Op, Result, cycle_of
from benchmarks.servers import start_memcached

DESCRIPTION = "AsyncMemcachedClient vs emcache: get/set/get_many(100), 1 task and 200 tasks"

EMCACHE = "emcache"
OURS = "ours"
OURS_8 = "ours[8]"
TASKS = 200
POOL = 1000
KEYS = [f"bench:async:{i:04d}".encode() for i in range(POOL)]
SET_KEYS = [f"bench:async-set:{i:04d}".encode() for i in range(POOL)]
VALUE = b"v" * 100
GROUPS = [KEYS[i : i + 100] for i in range(0, POOL, 100)]
TASK_GROUPS = [[KEYS[(i + j) % POOL] for j in range(TASKS)] for i in range(0, POOL, TASKS)]


def op_get(client: Any) -> Op:
    get, nxt = client.get, cycle_of(KEYS)
    return lambda: get(nxt())


def op_set(client: Any) -> Op:
    set_, nxt = client.set, cycle_of(SET_KEYS)
    return lambda: set_(nxt(), VALUE)


def op_get_many(client: Any) -> Op:
    get_many, nxt = client.get_many, cycle_of(GROUPS)
    return lambda: get_many(nxt())


def op_get_x200(client: Any) -> Op:
    get, nxt, gather = client.get, cycle_of(TASK_GROUPS), asyncio.gather
    return lambda: gather(*[get(k) for k in nxt()])


def op_set_x200(client: Any) -> Op:
    set_, nxt, gather = client.set, cycle_of(TASK_GROUPS), asyncio.gather
    return lambda: gather(*[set_(k, VALUE) for k in nxt()])


def op_get_many_x200(client: Any) -> Op:
    get_many, nxt, gather = client.get_many, cycle_of(GROUPS), asyncio.gather
    return lambda: gather(*[get_many(nxt()) for _ in range(TASKS)])


def run(ctx: Context) -> list[Result]:
    try:
        import emcache
    except ImportError:
        ctx.skip("emcache is not installed")
    from lexigram_cache_django.backends.memcached.aio import AsyncMemcachedClient

    location = start_memcached(ctx)
    host, port = location.rsplit(":", 1)
    em = ctx.run_async(
        emcache.create_client(
            [emcache.MemcachedHostAddress(host, int(port))], timeout=None, max_connections=4
        )
    )
    ctx.add_cleanup(lambda: ctx.run_async(em.close()))
    ours = AsyncMemcachedClient(host, int(port), timeout=1.0, max_connections=4)
    ours8 = AsyncMemcachedClient(host, int(port), timeout=1.0, max_connections=8)
    for client in (ours, ours8):
        ctx.add_cleanup(lambda c=client: ctx.run_async(c.aclose()))
    ctx.run_async(ours.set_many(dict.fromkeys(KEYS, VALUE)))
    for client in (em, ours, ours8):
        ctx.run_async(client.get(b"warm-up"))

    def case(name: str, factory: Callable[[Any], Op]) -> Case:
        return Case(
            name=name,
            candidates={EMCACHE: factory(em), OURS: factory(ours), OURS_8: factory(ours8)},
            baseline=EMCACHE,
        )

    return ctx.measure_all(
        [
            case("get hit (100B)", op_get),
            case("set 100B", op_set),
            case("get_many(100)", op_get_many),
            case(f"get hit x{TASKS} tasks", op_get_x200),
            case(f"set 100B x{TASKS} tasks", op_set_x200),
            case(f"get_many(100) x{TASKS} tasks", op_get_many_x200),
        ]
    )
