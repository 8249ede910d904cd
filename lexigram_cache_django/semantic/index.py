"""The per-process FAISS index, kept in step with every process through a log in the alias.

Vectors live in the cache alias, so a Redis alias shares them; each process searches its
own in-memory copy (FAISS ``IndexIDMap2`` over ``IndexFlatIP``, one per scope, so a search
can only ever return the scope's own entries) and catches up from the alias::

    sem:<ns>:seq      int, no expiry: number of the newest log record (incr)
    sem:<ns>:log:<n>  {"op": "add"|"del"|"clear", ...}: expires with the entry it names
    sem:<ns>:e:<h>    the entry (response, model, ...): the exact tier's one ``get``

A writer takes ``n = incr(seq)`` and then writes record ``n``; a reader reads ``seq`` at most
every ``sync_interval`` seconds and applies records ``applied+1 .. seq`` in order, waiting up
to ``GAP_WAIT`` for a record that is numbered but not written yet. The record number is the
entry's FAISS id. Entries that expired, were invalidated or replaced are dropped from the
index when their expiry passes or when a search finds them gone from the alias.

``clear(scope)`` writes a ``clear`` record numbered n: every process that applies it drops
the scope's vectors and from then on treats the scope's entries with ids below n as gone in
both tiers (``cleared``), and the clearing process deletes the entries it knows of from the
alias at once. No cache tags are involved: a tagged ``get`` costs a memory alias twice a
plain one, and the exact tier is meant to cost about one ``get``.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .embeddings import EXTRA_HINT, SemanticDependencyError, require_numpy

if TYPE_CHECKING:
    from .embeddings import Matrix

#: How long a numbered but unwritten (or lost) log record holds back the reader.
GAP_WAIT = 5.0
#: Log records read per ``get_many`` while catching up.
CHUNK = 500
#: ``flat``: IndexFlatIP, float32 as given. ``fp16``: the same exhaustive search over vectors
#: stored as float16 (IndexScalarQuantizer): half the memory and ~2.5x faster at 100k entries,
#: where a flat search is bound by memory bandwidth; similarities move by ~1e-4.
INDEX_KINDS = ("flat", "fp16")


def require_faiss() -> Any:
    """faiss with one OpenMP thread (two were slower on 2 cores), or a clear error."""
    try:
        import faiss
    except ImportError as exc:
        raise SemanticDependencyError(f"The semantic cache needs faiss-cpu. {EXTRA_HINT}") from exc
    if faiss.omp_get_max_threads() != 1:
        faiss.omp_set_num_threads(1)
    return faiss


def encode_vector(vector: Matrix) -> str:
    """A row as base64 text: every serializer (JSON included) can store it."""
    return base64.b64encode(vector.tobytes()).decode("ascii")


def decode_vector(text: str, dimension: int) -> Matrix | None:
    np = require_numpy()
    raw = base64.b64decode(text)
    if len(raw) != 4 * dimension:
        return None  # written by an embedder of another dimension: not ours to index
    row: Matrix = np.frombuffer(raw, dtype=np.float32).reshape(1, dimension).copy()
    return row


@dataclass(slots=True)
class Slot:
    """What the process knows about one indexed entry."""

    scope: str
    key: str
    expires: float | None


class NamespaceIndex:
    """The FAISS indexes of one (alias, namespace) in this process, and its log cursor."""

    def __init__(
        self, namespace: str, dimension: int, sync_interval: float, kind: str = "flat"
    ) -> None:
        if kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {INDEX_KINDS}, not {kind!r}")
        self.namespace = namespace
        self.dimension = dimension
        self.kind = kind
        self.sync_interval = sync_interval
        self.seq_key = f"sem:{namespace}:seq"
        self._faiss = require_faiss()
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._scopes: dict[str, Any] = {}
        self.slots: dict[int, Slot] = {}
        self._by_key: dict[str, int] = {}
        self._expiry: list[tuple[float, int]] = []
        #: The indexed ids, least recently hit first (added counts as hit): eviction's
        #: order. A hit is one ``move_to_end`` (C, no clock read), the exact tier's cost.
        #: Changed in place only: the exact tier keeps its bound ``move_to_end``.
        self.recent: OrderedDict[int, None] = OrderedDict()
        self.applied = 0
        #: scope (None: all of them) -> the number of its newest ``clear`` record.
        self.floors: dict[str | None, int] = {}
        self._gap_since: float | None = None
        self._next_sync = 0.0

    # -- keys --------------------------------------------------------------------------------
    def log_key(self, n: int) -> str:
        return f"sem:{self.namespace}:log:{n}"

    def entry_key(self, digest: str) -> str:
        return f"sem:{self.namespace}:e:{digest}"

    # -- reads -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.slots)

    def search(self, scope: str, query: Matrix, k: int) -> list[tuple[float, int, str]]:
        """Up to ``k`` (similarity, id, entry digest) of ``scope``, best first."""
        with self._lock:
            index = self._scopes.get(scope)
            if index is None or index.ntotal == 0:
                return []
            sims, ids = index.search(query, min(k, index.ntotal))
            found = []
            for sim, id_ in zip(sims[0].tolist(), ids[0].tolist()):
                slot = self.slots.get(id_)
                if id_ >= 0 and slot is not None:
                    found.append((float(sim), id_, slot.key))
            return found

    def touch(self, id_: int) -> None:
        try:
            self.recent.move_to_end(id_)
        except KeyError:  # not indexed here (yet): nothing to order
            pass

    def cleared(self, scope: str, id_: int) -> bool:
        """Whether a ``clear`` of ``scope`` (or of everything) came after entry ``id_``."""
        floors = self.floors
        if not floors:
            return False
        return id_ < floors.get(scope, 0) or id_ < floors.get(None, 0)

    def id_of(self, digest: str) -> int | None:
        return self._by_key.get(digest)

    def least_recently_hit(self, count: int) -> list[tuple[int, str]]:
        with self._lock:
            # list() drives islice in C, so the exact tier's lock-free move_to_end
            # cannot run in between (it would make the iteration raise).
            ids = list(itertools.islice(self.recent, count))
            return [(id_, self.slots[id_].key) for id_ in ids]

    # -- changes -----------------------------------------------------------------------------
    def add(self, id_: int, scope: str, digest: str, vector: Matrix, expires: float | None) -> None:
        """Index ``vector`` as ``id_``; an older id of the same entry is dropped first."""
        np = require_numpy()
        with self._lock:
            if id_ in self.slots:
                return
            old = self._by_key.get(digest)
            if old is not None:
                self._remove(old)
            index = self._scopes.get(scope)
            if index is None:
                index = self._faiss.IndexIDMap2(self._new_storage())
                self._scopes[scope] = index
            index.add_with_ids(vector, np.array([id_], dtype=np.int64))
            self.slots[id_] = Slot(scope, digest, expires)
            self.recent[id_] = None
            self._by_key[digest] = id_
            if expires is not None:
                heapq.heappush(self._expiry, (expires, id_))

    def _new_storage(self) -> Any:
        faiss = self._faiss
        if self.kind == "fp16":
            return faiss.IndexScalarQuantizer(
                self.dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
        return faiss.IndexFlatIP(self.dimension)

    def discard(self, ids: Iterable[int]) -> None:
        with self._lock:
            for id_ in ids:
                self._remove(id_)

    def _remove(self, id_: int) -> None:
        slot = self.slots.pop(id_, None)
        self.recent.pop(id_, None)
        if slot is None:
            return
        if self._by_key.get(slot.key) == id_:
            del self._by_key[slot.key]
        index = self._scopes.get(slot.scope)
        if index is not None:
            np = require_numpy()
            index.remove_ids(np.array([id_], dtype=np.int64))
            if index.ntotal == 0:
                del self._scopes[slot.scope]

    def drop_scope(self, scope: str | None) -> list[str]:
        """Forget one scope (or all of them) after a ``clear``; the entry digests it held."""
        with self._lock:
            if scope is None:
                digests = [slot.key for slot in self.slots.values()]
                self._scopes.clear()
                self.slots.clear()
                self.recent.clear()
                self._by_key.clear()
                self._expiry.clear()
                return digests
            self._scopes.pop(scope, None)
            digests = []
            for id_ in [i for i, s in self.slots.items() if s.scope == scope]:
                slot = self.slots.pop(id_)
                self.recent.pop(id_, None)
                digests.append(slot.key)
                if self._by_key.get(slot.key) == id_:
                    del self._by_key[slot.key]
            return digests

    def sweep_expired(self, now: float) -> None:
        with self._lock:
            while self._expiry and self._expiry[0][0] <= now:
                _, id_ = heapq.heappop(self._expiry)
                self._remove(id_)

    # -- the log -----------------------------------------------------------------------------
    def next_id(self, cache: Any) -> int:
        """A new record number (and entry id), unique across processes sharing the alias."""
        cache.add(self.seq_key, 0, timeout=None)
        try:
            n: int = cache.incr(self.seq_key)
        except ValueError:  # evicted between add and incr
            cache.add(self.seq_key, 0, timeout=None)
            n = cache.incr(self.seq_key)
        return n

    def sync(self, cache: Any, *, force: bool = False) -> None:
        """Apply the records other processes wrote since the last call (rate-limited)."""
        now = time.monotonic()
        if not force and now < self._next_sync:
            return
        if not self._sync_lock.acquire(blocking=force):
            return  # another thread is catching up; searching the current state is fine
        try:
            self._next_sync = now + self.sync_interval
            self.sweep_expired(time.time())
            head = cache.get(self.seq_key) or 0
            if not isinstance(head, int):
                return
            if head < self.applied:  # the alias was cleared or the counter evicted
                self.drop_scope(None)
                self.floors = {}
                self.applied = 0
                self._gap_since = None
            start = self.applied + 1
            while start <= head:
                stop = min(head, start + CHUNK - 1)
                numbers = list(range(start, stop + 1))
                records = cache.get_many([self.log_key(n) for n in numbers])
                for n in numbers:
                    record = records.get(self.log_key(n))
                    if record is None and not self._gap_expired(now):
                        return  # numbered, not written yet: retry on the next sync
                    self._gap_since = None
                    if record is not None:
                        self.apply(n, record)
                    self.applied = n
                start = stop + 1
        finally:
            self._sync_lock.release()

    def _gap_expired(self, now: float) -> bool:
        if self._gap_since is None:
            self._gap_since = now
        return now - self._gap_since >= GAP_WAIT

    def apply(self, n: int, record: Any) -> list[str]:
        """Apply one log record (ours or another process's; applying twice is harmless).

        Returns the digests of the entries a ``clear`` record dropped from this index.
        """
        if not isinstance(record, dict):
            return []
        op = record.get("op")
        if op == "add":
            expires = record.get("exp")
            if expires is not None and expires <= time.time():
                return []
            vector = decode_vector(record.get("vec", ""), self.dimension)
            if vector is not None:
                self.add(n, record["scope"], record["key"], vector, expires)
        elif op == "del":
            self.discard(record.get("ids", ()))
        elif op == "clear":
            scope = record.get("scope")
            if scope is None or isinstance(scope, str):
                with self._lock:
                    self.floors = {**self.floors, scope: max(n, self.floors.get(scope, 0))}
                    return self.drop_scope(scope)
        return []


_registry_lock = threading.Lock()
_registry: dict[tuple[str, str, str, str], NamespaceIndex] = {}


def namespace_index(
    alias: str,
    fingerprint: str,
    namespace: str,
    dimension: int,
    sync_interval: float,
    kind: str = "flat",
) -> NamespaceIndex:
    """The process's one index for (alias, namespace): shared by every SemanticCache on it."""
    key = (alias, fingerprint, namespace, kind)
    index = _registry.get(key)
    if index is None:
        with _registry_lock:
            index = _registry.get(key)
            if index is None:
                index = NamespaceIndex(namespace, dimension, sync_interval, kind)
                _registry[key] = index
    if index.dimension != dimension:
        from .embeddings import EmbeddingError

        raise EmbeddingError(
            f"Namespace {namespace!r} on alias {alias!r} holds {index.dimension}-dimensional "
            f"vectors; this embedder makes {dimension}. Use another namespace for it."
        )
    return index
