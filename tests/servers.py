"""Throw-away redis-server and memcached processes for the tests.

Each server listens on 127.0.0.1 on a free port, keeps nothing on disk, and is stopped
by PID when the test session ends. The Redis on 127.0.0.1:6379 that these machines run
is never used or flushed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(port: int, payload: bytes, expect: bytes, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(payload)
            data = b""
            deadline = time.monotonic() + timeout
            while expect not in data and time.monotonic() < deadline:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return expect in data
    except OSError:
        return False


def _reported_pid(port: int, kind: str, password: str | None) -> int | None:
    """The pid the server answering on ``port`` reports (memcached ``stats``, redis and
    sentinel ``INFO server``), or None if it does not say."""
    if kind == "memcached":
        request, marker = b"stats\r\n", b"STAT pid "
    else:
        auth = b"AUTH %b\r\n" % password.encode() if password else b""
        request, marker = auth + b"INFO server\r\n", b"process_id:"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(request)
            data = b""
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                at = data.find(marker)
                if at >= 0 and data.find(b"\r\n", at) >= 0:
                    return int(data[at + len(marker) : data.find(b"\r\n", at)])
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except (OSError, ValueError):
        pass
    return None


def owns_port(server: Server) -> bool:
    """Whether the server answering on its port is the process we started: another
    process's server may hold the port (ours then fails to bind), and a probe alone
    cannot tell them apart."""
    return _reported_pid(server.port, server.kind, server.password) == server.process.pid


@dataclass
class Server:
    """A running server process we own."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: str
    password: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)  # how it was started (for restart)
    probe: tuple[bytes, bytes] = (b"", b"")  # a request and the start of its reply

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """redis:// URL (with the password if any) or host:port for memcached."""
        if self.kind == "redis":
            auth = f":{self.password}@" if self.password else ""
            return f"redis://{auth}127.0.0.1:{self.port}"
        return self.address

    def freeze(self, wait: float = 2.0) -> None:
        """SIGSTOP the server and wait until every thread of it is stopped.

        The signal is delivered asynchronously: a worker thread on another CPU could answer
        one more request if the caller did not wait.
        """
        os.kill(self.process.pid, signal.SIGSTOP)
        deadline = time.monotonic() + wait
        task_dir = f"/proc/{self.process.pid}/task"
        while time.monotonic() < deadline:
            try:
                states = []
                for tid in os.listdir(task_dir):
                    with open(f"{task_dir}/{tid}/stat") as f:
                        states.append(f.read().rsplit(")", 1)[1].split()[0])
            except OSError:
                return
            if all(state in ("T", "t") for state in states):
                return
            time.sleep(0.002)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash (its port then refuses)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, timeout: float = 15.0) -> None:
        """Start the same server again on the same port (after kill or stop)."""
        self.kill()
        os.makedirs(self.workdir, exist_ok=True)
        log = open(os.path.join(self.workdir, "server.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if _answers(self.port, *self.probe):
                return
            time.sleep(0.01)
        raise RuntimeError(f"could not restart {self.kind} on port {self.port}")


def _require(binary: str) -> str:
    path = shutil.which(binary) or f"/usr/bin/{binary}"
    if not os.path.exists(path):
        raise RuntimeError(
            f"{binary} not found: install the Debian package "
            f"({'redis-server' if 'redis' in binary else 'memcached'}); scripts/test.sh does"
        )
    return path


def _start(kind: str, build_cmd: object, probe: tuple[bytes, bytes], **kw: object) -> Server:
    for _attempt in range(5):
        port = free_port()
        workdir = tempfile.mkdtemp(prefix=f"lexigram-{kind}-")
        cmd = build_cmd(port, workdir)  # type: ignore[operator]
        log = open(os.path.join(workdir, "server.log"), "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = Server(kind, port, proc, workdir, cmd=cmd, probe=probe, **kw)  # type: ignore[arg-type]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers(port, *probe):
                if owns_port(server):
                    return server
                break  # another process's server on that port: try another port
            time.sleep(0.05)
        server.stop()
    raise RuntimeError(f"could not start {kind}")


def start_redis(password: str | None = None, extra_args: list[str] | None = None) -> Server:
    """A redis-server on a free loopback port; AUTH is required when password is given."""
    exe = _require("redis-server")

    def cmd(port: int, workdir: str) -> list[str]:
        args = [
            exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", workdir,
            "--protected-mode", "yes",
        ]  # fmt: skip
        if password:
            args += ["--requirepass", password]
        return args + list(extra_args or [])

    probe = (b"PING\r\n", b"+PONG" if not password else b"NOAUTH")
    return _start("redis", cmd, probe, password=password)


def start_memcached(memory_mb: int = 64, item_size: str | None = None) -> Server:
    """A memcached on a free loopback port (runs as root only with ``-u root``)."""
    exe = _require("memcached")

    def cmd(port: int, workdir: str) -> list[str]:
        args = [exe, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", str(memory_mb)]
        if item_size:
            args += ["-I", item_size]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        return args

    return _start("memcached", cmd, (b"version\r\n", b"VERSION"))
