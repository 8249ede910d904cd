"""Throw-away Redis Sentinel sets and Redis Clusters on free loopback ports, for the tests.

Sentinel: a primary, one replica (linked before the sentinel starts, so the sentinel
sees it at once) and ONE sentinel with quorum 1. One is enough for what is under test,
the client following a failover: a failover needs a majority of the sentinels to elect
a leader, and with one that is itself, so it starts as soon as the primary is seen down
(``down-after-milliseconds 500``) instead of after an election among three; three would
also triple the processes on a loaded 2-core machine. ``failover-timeout 1000`` keeps a
failed attempt from blocking the next for the default 3 minutes.

Cluster: three primaries without replicas, joined by ``redis-cli --cluster create``
(which assigns the 16384 slots evenly), ready when every node reports ``cluster_state:ok``.

Everything is stopped by PID (what we started only); work directories are removed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from tests.servers import Server, _require, free_port, owns_port, start_redis

SERVICE = "mymaster"


def command(port: int, *args: str, timeout: float = 2.0) -> str:
    """One command in RESP over a raw socket; the reply as text (for set-up polling)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload.encode())
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.endswith(b"\r\n") and _complete(data):
                break
        return data.decode(errors="replace")


def _complete(data: bytes) -> bool:
    if data[:1] != b"$":
        return True
    size = int(data[1 : data.index(b"\r\n")])
    return size < 0 or len(data) >= data.index(b"\r\n") + 2 + size + 2


def wait_for(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


@dataclass
class Topology:
    """Servers we started; ``port`` is the one a LOCATION names first."""

    kind: str
    servers: list[Server]
    entry: list[int]  # the ports a LOCATION lists
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.entry[0]

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def address(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.entry)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.servers[0].process

    @property
    def location(self) -> str:
        if self.kind == "sentinel":
            return f"redis+sentinel://{self.address}/{SERVICE}/0"
        return f"redis+cluster://{self.address}/0"

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


# -- Sentinel ---------------------------------------------------------------------------


def _sentinel_conf(port: int, primary: int, workdir: str) -> str:
    path = os.path.join(workdir, "sentinel.conf")  # sentinel rewrites it: must be writable
    with open(path, "w") as f:
        f.write(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {workdir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 500\n"
            f"sentinel failover-timeout {SERVICE} 1000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
    return path


def start_sentinel_set() -> Topology:
    """Primary + replica + one sentinel (quorum 1); see the module docstring."""
    fast = ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]
    primary = start_redis(extra_args=fast)
    started = [primary]
    try:
        replica = start_redis(extra_args=[*fast, "--replicaof", "127.0.0.1", str(primary.port)])
        started.append(replica)
        wait_for(
            lambda: "master_link_status:up" in command(replica.port, "INFO", "replication"),
            "the replica's link",
        )
        exe = _require("redis-server")

        def cmd(port: int, workdir: str) -> list[str]:
            return [exe, _sentinel_conf(port, primary.port, workdir), "--sentinel"]

        from tests.servers import _start

        sentinel = _start("sentinel", cmd, (b"PING\r\n", b"+PONG"))
        started.append(sentinel)
        wait_for(
            lambda: (
                f"{replica.port}" in command(sentinel.port, "SENTINEL", "REPLICAS", SERVICE)
                and "master_link_down"
                not in command(sentinel.port, "SENTINEL", "REPLICAS", SERVICE)
            ),
            "the sentinel to see the replica",
        )
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    return Topology("sentinel", started, [sentinel.port])


def sentinel_primary_port(sentinel_port: int) -> int:
    """The port the sentinel names as the service's primary now."""
    reply = command(sentinel_port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
    return int(reply.split("\r\n")[-2])


# -- Cluster ----------------------------------------------------------------------------


def _cluster_ports() -> list[int]:
    """Three free ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < 3:
        port = free_port()
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _start_node(port: int) -> Server:
    exe = _require("redis-server")
    workdir = tempfile.mkdtemp(prefix="lexigram-cluster-")
    cmd = [
        exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--daemonize", "no", "--dir", workdir, "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
        "--cluster-require-full-coverage", "no",
    ]  # fmt: skip
    log = open(os.path.join(workdir, "server.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server("redis", port, proc, workdir, cmd=cmd, probe=(b"PING\r\n", b"+PONG"))
    try:
        wait_for(lambda: "PONG" in command(port, "PING"), f"cluster node {port}", 15)
        if not owns_port(server):
            raise RuntimeError(f"port {port} is another process's server")
    except BaseException:
        server.stop()
        raise
    return server


def start_cluster() -> Topology:
    """Three primaries joined into one cluster (all slots covered)."""
    cli = _require("redis-cli")
    for _attempt in range(3):
        ports = _cluster_ports()
        nodes: list[Server] = []
        try:
            for port in ports:
                nodes.append(_start_node(port))
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            for port in ports:
                wait_for(
                    lambda port=port: "cluster_state:ok" in command(port, "CLUSTER", "INFO"),
                    "cluster_state:ok",
                )
        except (RuntimeError, subprocess.SubprocessError, OSError):
            for node in reversed(nodes):
                node.stop()
            continue
        return Topology("cluster", nodes, ports)
    raise RuntimeError("could not start a Redis Cluster")


def slot_owner(port: int, slot: int) -> int:
    """The port of the node serving ``slot`` (from ``CLUSTER SLOTS`` of any node)."""
    import redis

    reply = redis.Redis(port=port).execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
    for start, end, primary, *_ in reply:
        if start <= slot <= end:
            return int(primary[1])
    raise LookupError(slot)
