"""pymemcache's clients behind a circuit breaker per memcached node, and the error rules.

Every command pymemcache sends goes through one of ``Client``'s three command paths
(``_fetch_cmd``, ``_store_cmd``, ``_misc_cmd``); :class:`GuardedClient` wraps each so the
node's breaker is asked first and told the outcome after. A refused, reset or timed-out
connection counts against the node; a reply, even an error reply, does not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache.backends.base import MEMCACHE_MAX_KEY_LENGTH
from pymemcache.client.base import Client, check_key_helper, normalize_server_spec
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import (
    MemcacheClientError,
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownError,
)

from ...circuit import CircuitBreaker
from ...exceptions import CacheIncrError, CacheServerError
from ...failfast import breaker_for, failed_in_operation, server_failed
from .ring import NodeRing
from .wire import MemcachedServerFailure

#: pymemcache arguments that only HashClient takes (dropped for a single server).
HASH_CLIENT_ONLY = frozenset(
    {
        "hasher",
        "retry_attempts",
        "retry_timeout",
        "dead_timeout",
        "use_pooling",
        "max_pool_size",
        "pool_idle_timeout",
        "lock_generator",
    }
)


class MemcachedUnavailableError(MemcacheError):
    """The server did not do what was asked (HashClient skipping a failing node, NOT_STORED)."""


class MemcachedIncrError(CacheIncrError, MemcacheClientError):
    """incr/decr of a value memcached cannot count: not an integer, negative, or >= 2**64.

    Also a pymemcache ``MemcacheClientError``, which is what Django's PyMemcacheCache raises.
    """


class NodeShortCircuited(MemcacheError, ConnectionError):
    """A command not sent: the node's breaker is open or it failed in this operation.

    An ``OSError`` too, so pymemcache's HashClient treats the node as failing (skips it,
    then removes it from the ring after its retries) exactly as it would a refused one.
    """


#: Errors of a failing server or connection: fail-open territory.
SERVER_ERRORS: tuple[type[Exception], ...] = (MemcacheError, OSError)
#: Of those, what says the node is down or stalled (counted by its breaker).
NODE_FAILURES: tuple[type[Exception], ...] = (
    OSError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownError,
    MemcachedServerFailure,
)
#: Of those, the ones where the server did answer (so it is worth asking again).
_ANSWERED = (MemcacheServerError, MemcachedUnavailableError)


def node_name(spec: Any) -> str:
    """``host:port`` (or the socket path) of a memcached node, as breakers name it."""
    spec = normalize_server_spec(spec) if isinstance(spec, str) else spec
    return spec if isinstance(spec, str) else f"{spec[0]}:{spec[1]}"


def unavailable(server: str, exc: Exception) -> CacheServerError:
    return CacheServerError(
        f"{type(exc).__name__}: {exc}",
        server=server,
        answered=isinstance(exc, _ANSWERED),
        short_circuited=isinstance(exc, NodeShortCircuited),
    )


def guard(breaker: CircuitBreaker) -> None:
    """Raise NodeShortCircuited unless the node may be asked now."""
    if failed_in_operation(breaker.server) or not breaker.allow():
        raise NodeShortCircuited(f"not sent: {breaker.server} is failing")


def report(breaker: CircuitBreaker, exc: BaseException) -> None:
    """Tell the node's breaker how a call that raised ``exc`` went."""
    if isinstance(exc, NODE_FAILURES):
        server_failed(breaker, exc, isinstance(exc, TimeoutError))
    elif isinstance(exc, MemcacheError):
        breaker.success()  # the server answered (an error reply)
    else:
        breaker.abandon()  # no outcome: interrupted


def incr_error(key: str, exc: Exception) -> MemcachedIncrError:
    return MemcachedIncrError(
        f"cannot incr/decr {key!r}: memcached counts only integers from 0 to 2**64-1 ({exc})"
    )


def _guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` (one of pymemcache's three command paths) behind the node's breaker:
    asked first, told the outcome after. One wrapper level: this is every command."""

    def run(self: GuardedClient, *args: Any, **kwargs: Any) -> Any:
        breaker = self.breaker
        if failed_in_operation(breaker.server) or not breaker.allow():
            raise NodeShortCircuited(f"not sent: {breaker.server} is failing")
        try:
            result = command(self, *args, **kwargs)
        except BaseException as exc:
            report(breaker, exc)
            raise
        breaker.success()
        return result

    run.__name__ = command.__name__
    return run


class GuardedClient(Client):
    """pymemcache's Client behind its node's circuit breaker, with a cheaper key check.

    Every command pymemcache sends goes through ``_fetch_cmd``, ``_store_cmd`` or
    ``_misc_cmd``; each asks the breaker first and reports the outcome (see the module
    docstring). The breaker is the process's one for this node (:func:`breaker_for`).

    pymemcache checks every key of every command in Python (encode, split on whitespace,
    length and NUL tests): about 0.5 us a key, a sixth of a 100-key ``get_many``. A
    ``str`` key with no space whose characters are all printable holds no whitespace,
    NUL or control character, so encoding it and checking its length is the whole check.
    Any other key gets pymemcache's own.
    """

    def __init__(self, server: Any, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self.breaker = breaker_for(node_name(server))

    _fetch_cmd = _guarded(Client._fetch_cmd)
    _store_cmd = _guarded(Client._store_cmd)
    _misc_cmd = _guarded(Client._misc_cmd)

    def check_key(self, key: Any, key_prefix: bytes) -> bytes:
        if (
            type(key) is str
            and not key_prefix
            and " " not in key
            and key.isprintable()
            and (self.allow_unicode_keys or key.isascii())
        ):
            data = key.encode()
            if len(data) <= MEMCACHE_MAX_KEY_LENGTH:
                return data
        checked: bytes = super().check_key(key, key_prefix)
        return checked


class BatchHashClient(HashClient):
    """HashClient whose batches go per server and fail per server, and whose record of
    failing and dead nodes is the process's (:class:`~.ring.NodeRing`), not its own.

    pymemcache's HashClient.delete_many makes one round trip per key (ours: one pipelined
    batch per server), and its get_many raises as soon as one server fails, so a single
    dead node emptied every batch until each thread's client had dropped it (up to 13
    calls in a row on Python 3.12). Here a failing or short-circuited node's keys read
    as misses and the other nodes' keys are served; only when every node fails does the
    batch raise (the caller's fail-open policy, counted once). The failing node's breaker
    sees each failure, as on a Redis Cluster.

    The retry and dead-node rules are pymemcache's (``retry_attempts``, ``retry_timeout``,
    ``dead_timeout``), applied to one record for every thread's client of the node set,
    so all threads hash a key to the same node.
    """

    client_class = GuardedClient

    def __init__(self, servers: Iterable[Any], ring: NodeRing, **kwargs: Any) -> None:
        super().__init__(servers, **kwargs)
        self.ring = ring
        self._in_ring = set(self.clients)
        self._generation = -1  # rebuilt on the first command: the ring may know dead nodes

    def _get_client(self, key: Any) -> Any:
        check_key_helper(key, self.allow_unicode_keys, self.key_prefix)
        ring = self.ring
        if ring.dead:
            ring.revive_due()
        if self._generation != ring.generation:
            self._follow(ring)
        node = self.hasher.get_node(key)
        if node is None:
            raise MemcacheError("All servers seem to be down right now")
        return self.clients[node]

    def _follow(self, ring: NodeRing) -> None:
        """Make this client's hash ring the process's: the live nodes only."""
        with ring.lock:
            generation, dead = ring.generation, set(ring.dead)
        for node in self.clients:
            if node in dead and node in self._in_ring:
                self.hasher.remove_node(node)
                self._in_ring.discard(node)
            elif node not in dead and node not in self._in_ring:
                self.hasher.add_node(node)
                self._in_ring.add(node)
        self._generation = generation

    def _safely_run_func(
        self, client: Any, func: Callable[..., Any], default_val: Any, *args: Any, **kwargs: Any
    ) -> Any:
        node = self._make_client_key(client.server)
        if not self.ring.may_try(node):
            return default_val
        try:
            result = func(*args, **kwargs)
        except OSError:
            self.ring.failed(node)
            raise
        self.ring.succeeded(node)
        return result

    def _safely_run_set_many(
        self, client: Any, values: dict[Any, Any], *args: Any, **kwargs: Any
    ) -> Any:
        node = self._make_client_key(client.server)
        if not self.ring.may_try(node):
            return list(values)
        try:
            failed = client.set_many(values, *args, **kwargs)
        except OSError:
            self.ring.failed(node)
            raise
        self.ring.succeeded(node)
        return failed

    def get_many(self, keys: Iterable[str], gets: bool = False, *args: Any, **kwargs: Any) -> Any:
        batches: dict[Any, list[str]] = defaultdict(list)
        for key in keys:
            client = self._get_client(key)
            if client is not None:
                batches[client.server].append(key)
        found: dict[Any, Any] = {}
        failed: list[BaseException] = []
        for server, batch in batches.items():
            client = self.clients[self._make_client_key(server)]
            read = client.gets_many if gets else client.get_many
            try:
                found.update(self._safely_run_func(client, read, {}, batch, *args, **kwargs))
            except MemcacheClientError:
                raise  # our request was bad, not the server
            except (MemcacheError, OSError) as exc:
                failed.append(exc)
        if failed and len(failed) == len(batches):
            raise failed[0]
        return found

    get_multi = get_many

    def delete_many(self, keys: Iterable[str], *args: Any, **kwargs: Any) -> bool:
        batches: dict[Any, list[str]] = defaultdict(list)
        for key in keys:
            client = self._get_client(key)
            if client is not None:
                batches[client.server].append(key)
        for server, batch in batches.items():
            client = self.clients[self._make_client_key(server)]
            self._safely_run_func(client, client.delete_many, False, batch, *args, **kwargs)
        return True

    delete_multi = delete_many
