"""Latency of async memcached clients on a healthy, a refused and a frozen server.

Run: ``PYTHONPATH=$PWD python -m benchmarks.memcached_async_faults [emcache] [ours]``
(add ``--pin`` to run under ``taskset -c 0``-style pinning of this process).

Why: issue 12 reports that emcache (a) holds each call ~3 s when the server is down instead of
failing within the connect timeout, and (b) on a healthy server under 200 tasks lets ~1 % of
calls wait the full 1 s timeout (a freed connection goes to the newest waiter). This script
measures those numbers for emcache and for our own client (``backends/memcached/aio.py``)
with the same settings: timeout 1 s, connect timeout 1 s, 4 connections per server.

Phases, each with 200 concurrent tasks on one memcached started on a free loopback port:

* ``healthy``: every task alternates get/set for ~2 s; per-call max, p99, calls > 100 ms and
  failures.
* ``refused``: a loopback port nobody listens on; 3 calls per task.
* ``frozen``: the server stopped with ``SIGSTOP`` (accepts nothing, answers nothing); 1 call per
  task, then ``SIGCONT``.

Only the memcached this script starts is signalled or stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.servers import free_port, start_memcached

logging.getLogger("emcache").setLevel(logging.CRITICAL)

TIMEOUT = 1.0
CONNECT_TIMEOUT = 1.0
POOL = 4
TASKS = 200
HEALTHY_S = 2.0

Factory = Callable[[str, int], Awaitable[Any]]


async def _emcache(host: str, port: int) -> Any:
    import emcache

    return await emcache.create_client(
        [emcache.MemcachedHostAddress(host, port)],
        timeout=TIMEOUT,
        connection_timeout=CONNECT_TIMEOUT,
        max_connections=POOL,
    )


async def _ours(host: str, port: int) -> Any:
    from lexigram_cache_django.backends.memcached.aio import AsyncMemcachedClient

    return AsyncMemcachedClient(
        host, port, timeout=TIMEOUT, connect_timeout=CONNECT_TIMEOUT, max_connections=POOL
    )


async def _close(client: Any) -> None:
    await (client.aclose() if hasattr(client, "aclose") else client.close())


CLIENTS: dict[str, Factory] = {"emcache": _emcache, "ours": _ours}


def _summary(name: str, lat: list[float], failures: int, wall: float) -> str:
    lat.sort()
    p99 = lat[int(len(lat) * 0.99) - 1] if lat else float("nan")
    slow = sum(1 for x in lat if x > 0.1)
    return (
        f"  {name:8s} calls {len(lat):6d}  failures {failures:5d}  >100ms {slow:5d}  "
        f"median {statistics.median(lat) * 1e3:8.2f} ms  p99 {p99 * 1e3:8.2f} ms  "
        f"max {lat[-1] * 1e3:8.2f} ms  ({len(lat) / wall:,.0f} calls/s)"
    )


async def _phase(
    client: Any, calls_per_task: int | None, duration: float
) -> tuple[list[float], int, float]:
    lat: list[float] = []
    failures = 0
    value = b"v" * 100
    stop_at = time.monotonic() + duration

    async def worker(i: int) -> None:
        nonlocal failures
        n = 0
        while True:
            if calls_per_task is not None and n >= calls_per_task:
                return
            if calls_per_task is None and time.monotonic() >= stop_at:
                return
            key = f"k{(i * 7 + n) % 500}".encode()
            t0 = time.perf_counter()
            try:
                if n % 2:
                    await client.set(key, value)
                else:
                    await client.get(key)
            except Exception:
                failures += 1
            lat.append(time.perf_counter() - t0)
            n += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(TASKS)))
    return lat, failures, time.perf_counter() - t0


async def measure(name: str) -> None:
    factory = CLIENTS[name]
    print(f"{name}: timeout {TIMEOUT} s, connect timeout {CONNECT_TIMEOUT} s, pool {POOL}")
    server = start_memcached()
    try:
        client = await factory("127.0.0.1", server.port)
        try:
            await client.get(b"warm-up")
            print(_summary("healthy", *await _phase(client, None, HEALTHY_S)))
            server.freeze()
            try:
                print(_summary("frozen", *await _phase(client, 1, 0)))
            finally:
                server.thaw()
        finally:
            await _close(client)
    finally:
        server.stop()
    try:
        client = await factory("127.0.0.1", free_port())
    except Exception as exc:  # emcache may refuse to build a client for a dead node
        print(f"  refused  create_client raised {type(exc).__name__}: {exc}")
        return
    try:
        print(_summary("refused", *await _phase(client, 3, 0)))
    finally:
        await _close(client)


def main(argv: list[str]) -> None:
    if "--pin" in argv:
        os.sched_setaffinity(0, {0})
    names = [a for a in argv if a in CLIENTS] or list(CLIENTS)
    for name in names:
        asyncio.run(measure(name))


if __name__ == "__main__":
    main(sys.argv[1:])
