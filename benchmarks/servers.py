"""Start the benchmark's own redis-server / memcached on a free loopback port.

Servers are pinned to the benchmark's CPU and stopped when the scenario ends (both by
``Context.start_server``). The Redis on 127.0.0.1:6379 is never used.
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.harness import Context, free_loopback_port


def start_redis(ctx: Context) -> str:
    """A redis-server for this scenario; returns its ``redis://`` URL."""
    port = free_loopback_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no"]
    ctx.start_server(argv, port=port)
    return f"redis://127.0.0.1:{port}"


def start_memcached(ctx: Context, memory_mb: int = 256) -> str:
    """A memcached for this scenario; returns its ``host:port``."""
    port = free_loopback_port()
    argv = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", str(memory_mb)]
    if os.geteuid() == 0:
        argv += ["-u", "root"]  # memcached refuses to run as root otherwise
    ctx.start_server(argv, port=port)
    return f"127.0.0.1:{port}"


def wait_for_bus(tiered: Any, seconds: float = 10.0) -> str:
    """Wait (bounded) until a TieredCache's invalidation bus is up: it serves from L1 only
    then. Returns the bus state, for the log."""
    tiered.get("warm-up")
    deadline = time.monotonic() + seconds
    while tiered.stats()["bus"] != "up" and time.monotonic() < deadline:
        time.sleep(0.01)
    return str(tiered.stats()["bus"])
