"""Start the benchmark's own redis-server / memcached on a free loopback port.

Servers are pinned to the benchmark's CPU and stopped when the scenario ends (both by
``Context.start_server``). The Redis on 127.0.0.1:6379 is never used.
"""

from __future__ import annotations

import os

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
