"""The invalidation bus of the tiered cache: one per L2 server and channel per process.

Each process keeps an L1 copy of what it read from L2. When any process writes, deletes
or invalidates tags through a tiered alias, it publishes the made keys (or tag record
keys) on a Redis channel; every other process's listener thread drops those L1 entries
(tags: bumps its L1 tag versions, so the memory backend's own tag check drops them).

Two rules keep an L1 read from ever returning what an invalidation already replaced:

* **Sequence numbers.** Every change seen (own or received) bumps ``seq`` and stamps the
  keys and tags it names. A fill from L2 records ``seq`` before its L2 read and is kept
  only if nothing it names was stamped since (checked under ``lock``, which changes also
  hold), so a value read before a change can never land in L1 after it.
* **No bus, no L1.** Until the listener has confirmed its subscription, and from the
  moment its connection fails, ``up`` is False: reads bypass L1 and L1 is cleared. A
  reconnect clears it again before ``up`` turns True.

Without a bus (memcached L2, or ``BUS: False``) the same object runs without a thread:
``up`` is always True and only this process's own changes are stamped; L1 entries then
live at most ``L1_TIMEOUT``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

logger = logging.getLogger("lexigram_cache_django")

KEYS = "k"
TAGS = "t"
CLEAR = "c"
_SEP = "\0"
#: Stamped names kept before the table is reset (then every older fill is refused).
_MAX_STAMPS = 100_000
#: Seconds the listener waits for a message before it pings the server.
_PING_EVERY = 5.0


class Dropper(Protocol):
    """What the bus needs of an L1: drop made keys, bump tag records, clear."""

    @property
    def identity(self) -> str: ...

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None: ...

    def invalidate_tag_keys(self, keys: Sequence[str]) -> None: ...

    def clear(self) -> None: ...


class Bus:
    """Sequence stamps, the L1s to drop from, and (with Redis) the publisher and listener."""

    def __init__(
        self,
        channel: str,
        client: Callable[[], Any] | None = None,
        aclient: Callable[[], Any] | None = None,
    ) -> None:
        self.channel = channel
        self._client = client  # () -> redis.Redis; None: no bus
        self._aclient = aclient
        self.lock = threading.Lock()
        self.seq = 1
        self.floor = 0
        self._stamps: dict[str, int] = {}
        self._l1s: dict[str, Dropper] = {}
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.up = client is None
        self.state = "off" if client is None else "starting"
        self.sent = 0
        self.received = 0
        self.publish_errors = 0
        self.disconnects = 0
        self._thread: threading.Thread | None = None

    def after_fork(self) -> None:
        self.lock = threading.Lock()
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._thread = None
        self.seq += 1
        self.floor = self.seq
        self._stamps = {}
        if self._client is not None:
            self.up = False
            self.state = "starting"

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def attach(self, l1: Dropper) -> None:
        self._l1s.setdefault(l1.identity, l1)

    # -- stamps (call with ``lock`` held) ------------------------------------------

    def fresh(self, start: int, names: Iterable[str]) -> bool:
        """Whether a fill that read L2 at ``start`` may still go into L1."""
        if not self.up or start < self.floor:
            return False
        stamps = self._stamps
        return all(stamps.get(name, 0) <= start for name in names)

    def stamp(self, names: Iterable[str]) -> None:
        self.seq += 1
        stamps = self._stamps
        if len(stamps) > _MAX_STAMPS:
            stamps.clear()
            self.floor = self.seq
        seq = self.seq
        for name in names:
            stamps[name] = seq

    def reset(self) -> None:
        """Refuse every fill in flight and empty every L1 (clear, or the bus went away)."""
        self.seq += 1
        self.floor = self.seq
        self._stamps.clear()
        for l1 in list(self._l1s.values()):
            l1.clear()

    # -- publishing ------------------------------------------------------------------

    def _payload(self, kind: str, names: Sequence[str]) -> str:
        return _SEP.join((self.origin, kind, *names))

    def publish(
        self, kind: str, names: Sequence[str], send: Callable[[str, str], bool] | None = None
    ) -> None:
        """Tell the other processes. ``send(channel, payload)``: the L2's own choke point
        (breaker, fail policy), returning False when it failed open; without one, the
        listener's client (kept for callers that have no L2 at hand)."""
        if self._client is None:
            return
        payload = self._payload(kind, names)
        if send is not None:
            if send(self.channel, payload):
                self.sent += 1
            else:
                self.publish_errors += 1
            return
        try:
            self._client().publish(self.channel, payload)
            self.sent += 1
        except Exception as exc:  # the write itself already went through its own policy
            self.publish_errors += 1
            logger.warning("tiered bus: publish on %r failed: %s", self.channel, exc)

    async def apublish(
        self,
        kind: str,
        names: Sequence[str],
        send: Callable[[str, str], Awaitable[bool]] | None = None,
    ) -> None:
        if self._aclient is None:
            return
        payload = self._payload(kind, names)
        if send is not None:
            if await send(self.channel, payload):
                self.sent += 1
            else:
                self.publish_errors += 1
            return
        try:
            await self._aclient().publish(self.channel, payload)
            self.sent += 1
        except Exception as exc:
            self.publish_errors += 1
            logger.warning("tiered bus: publish on %r failed: %s", self.channel, exc)

    # -- receiving -------------------------------------------------------------------

    def ensure_listening(self) -> None:
        """Start the listener thread on first use (and in a forked child, its own)."""
        if self._client is None or self._thread is not None:
            return
        with self.lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._listen, name=f"lexigram-tiered-bus:{self.channel}", daemon=True
                )
                self._thread.start()

    def apply(self, payload: bytes | str) -> None:
        """One message from another process: stamp and drop what it names."""
        text = payload.decode() if isinstance(payload, bytes) else payload
        origin, kind, *names = text.split(_SEP)
        if origin == self.origin:
            return
        self.received += 1
        with self.lock:
            if kind == CLEAR:
                self.reset()
                return
            self.stamp(names)
            for l1 in self._l1s.values():
                if kind == TAGS:
                    l1.invalidate_tag_keys(names)
                else:
                    l1.delete_many(names)

    def _went(self, up: bool) -> None:
        with self.lock:
            self.up = False
            self.reset()
            self.up = up
        self.state = "up" if up else "down"

    def _listen(self) -> None:
        delay = 0.01
        while True:
            sock = None
            try:
                assert self._client is not None
                sock = _connect(self._client().connection_pool.connection_kwargs)
                reader = sock.makefile("rb")
                sock.sendall(_command("SUBSCRIBE", self.channel))
                reply = _read(reader)
                if not (isinstance(reply, list) and reply[:1] == [b"subscribe"]):
                    raise ConnectionError(f"unexpected SUBSCRIBE reply {reply!r}")
                self._went(up=True)
                logger.info("tiered bus: listening on %r", self.channel)
                delay = 0.01
                self._receive(sock, reader)
            except Exception as exc:
                if self.up or self.state == "starting":
                    logger.warning("tiered bus: lost %r (%s); L1 bypassed", self.channel, exc)
                self.disconnects += 1
            finally:
                self._went(up=False)
                if sock is not None:
                    sock.close()
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _receive(self, sock: socket.socket, reader: Any) -> None:
        """Apply messages until the connection fails; a silent one is pinged, twice."""
        sock.settimeout(_PING_EVERY)
        pinged = 0
        while True:
            try:
                reply = _read(reader)
            except TimeoutError:
                if pinged >= 2:
                    raise ConnectionError("no reply to PING") from None
                sock.sendall(_command("PING"))
                pinged += 1
                continue
            pinged = 0
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                self.apply(reply[2])

    def stats(self) -> dict[str, Any]:
        return {
            "bus": self.state,
            "bus_channel": self.channel if self.enabled else None,
            "invalidations_sent": self.sent,
            "invalidations_received": self.received,
            "bus_publish_errors": self.publish_errors,
            "bus_disconnects": self.disconnects,
        }


def _connect(kwargs: dict[str, Any]) -> socket.socket:
    """A socket of its own to the L2 server (not redis-py's, which reconnects silently
    and would hide the gap in which messages were lost), authenticated."""
    timeout = kwargs.get("socket_connect_timeout") or 5.0
    if kwargs.get("path"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(kwargs["path"])
    else:
        sock = socket.create_connection((kwargs["host"], kwargs["port"]), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    password, username = kwargs.get("password"), kwargs.get("username")
    if password:
        args = ("AUTH", username, password) if username else ("AUTH", password)
        sock.sendall(_command(*args))
        reply = _read(sock.makefile("rb"))
        if isinstance(reply, Exception):
            sock.close()
            raise reply
    return sock


def _command(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read(reader: Any) -> Any:
    """One RESP2 reply (what a subscribed connection receives: arrays of bulk strings)."""
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by the server")
    kind, rest = line[:1], line[1:-2]
    if kind == b"*":
        return [_read(reader) for _ in range(int(rest))]
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = reader.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("connection closed by the server")
        return data[:-2]
    if kind == b"-":
        return ConnectionError(rest.decode(errors="replace"))
    return rest if kind == b"+" else int(rest)


_buses: dict[tuple[str, str], Bus] = {}
_buses_lock = threading.Lock()


def bus_for(
    server: str,
    channel: str,
    client: Callable[[], Any] | None,
    aclient: Callable[[], Any] | None,
) -> Bus:
    """The process's bus for an L2 server and channel (created on first use)."""
    key = (server, channel)
    bus = _buses.get(key)
    if bus is None:
        with _buses_lock:
            bus = _buses.get(key)
            if bus is None:
                bus = _buses[key] = Bus(channel, client, aclient)
    return bus


def _restart_after_fork() -> None:
    """A forked child has none of its parent's listener threads: each bus starts afresh
    (bypassing L1 until its own listener has subscribed, which clears L1)."""
    global _buses_lock
    _buses_lock = threading.Lock()
    for bus in _buses.values():
        bus.after_fork()


os.register_at_fork(after_in_child=_restart_after_fork)
