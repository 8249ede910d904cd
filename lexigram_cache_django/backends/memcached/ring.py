"""Which nodes of a memcached node set are failing or dead: one record per process.

pymemcache's ``HashClient`` keeps this bookkeeping in the client object, and we keep one
client per thread, so each thread decided on its own when a node was dead. Two threads
then hashed the same key to different nodes: a ``set`` in one thread (the dead node's
keys moved to a survivor) and a ``get`` in another (still asking the dead node) did not
meet. :class:`NodeRing` holds the record for every thread's client of one node set, under
a lock, with pymemcache's rules and options unchanged::

    a command to node N  --->  ring.may_try(N)?   no: skipped (a miss, or a failed key)
                                   | yes
                                   v
                            the command
                         ok |          | OSError (refused, reset, timed out, breaker open)
                            v          v
               ring.succeeded(N)    ring.failed(N): counted; after retry_attempts
                                    failures N is dead for dead_timeout seconds

Each thread's client compares the ring's ``generation`` with the one its hash ring was
built for, and rebuilds it when a node died or came back.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Hashable


class NodeRing:
    """Failing and dead nodes of one node set, shared by every thread's HashClient."""

    def __init__(self, retry_attempts: int, retry_timeout: float, dead_timeout: float) -> None:
        self.retry_attempts = retry_attempts
        self.retry_timeout = retry_timeout
        self.dead_timeout = dead_timeout
        self.lock = threading.Lock()
        #: node -> [failures since it last answered, time of the last one]
        self.failing: dict[str, list[float]] = {}
        #: node -> when it was marked dead
        self.dead: dict[str, float] = {}
        #: Bumped whenever a node dies or comes back, so each thread's hash ring follows.
        self.generation = 0

    def may_try(self, node: str) -> bool:
        """Whether to send a command to ``node`` now (pymemcache's retry rule)."""
        if node not in self.failing:
            return True  # the common case, without the lock
        with self.lock:
            record = self.failing.get(node)
            if record is None:
                return True
            if record[0] < self.retry_attempts:
                return time.time() - record[1] > self.retry_timeout
            self._mark_dead(node)
            return False

    def succeeded(self, node: str) -> None:
        if node in self.failing:
            with self.lock:
                self.failing.pop(node, None)

    def failed(self, node: str) -> None:
        """Count a failure of ``node``; with no retries allowed it is dead at once."""
        with self.lock:
            record = self.failing.get(node)
            if record is None:
                self.failing[node] = [0, time.time()]
                if self.retry_attempts <= 0:
                    self._mark_dead(node)
            else:
                record[0] += 1
                record[1] = time.time()

    def revive_due(self) -> None:
        """Bring back the nodes dead for longer than ``dead_timeout``."""
        now = time.time()
        with self.lock:
            due = [node for node, since in self.dead.items() if now - since > self.dead_timeout]
            for node in due:
                del self.dead[node]
            if due:
                self.generation += 1

    def _mark_dead(self, node: str) -> None:
        self.failing.pop(node, None)
        if node not in self.dead:
            self.dead[node] = time.time()
            self.generation += 1


_rings: dict[Hashable, NodeRing] = {}
_rings_lock = threading.Lock()


def ring_for(
    client_id: Hashable, retry_attempts: int, retry_timeout: float, dead_timeout: float
) -> NodeRing:
    """The process's record for one node set and options (``client_id``)."""
    ring = _rings.get(client_id)
    if ring is None:
        with _rings_lock:
            ring = _rings.setdefault(
                client_id, NodeRing(retry_attempts, retry_timeout, dead_timeout)
            )
    return ring


def _after_fork_in_child() -> None:
    """A lock another thread held at fork() would stay held in the child forever."""
    global _rings_lock
    _rings_lock = threading.Lock()
    for ring in list(_rings.values()):
        ring.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
