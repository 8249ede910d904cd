"""SemanticCache: answers to prompts, found again by exact text or by meaning.

::

    lookup(prompt, scope)
      |- exact:  normalise -> blake2b(scope, text) -> one get()     -> hit (similarity 1.0)
      |- vector: embed -> this scope's FAISS index (cosine) -> best candidates
      |          -> one get_many() of their entries -> still there, same id, same scope
      |          -> similarity >= threshold (or the cost-aware rule) -> hit
      '- miss

Entries, vectors and the log live in the cache alias (``caches[alias]``, only through
Django's public cache API), so every process sharing a Redis alias sees them; see
``index.py`` for how a process's index catches up and how ``clear`` reaches every process.

An entry is stored as the tuple its exact hit is, ``(response, 1.0, True, prompt, model,
cost, scope, created, id)``: the exact tier hands it to ``SemanticHit`` as it decodes, and
a tuple decodes in under half the time of a dict and 10 % faster than a list (the exact
tier's cost on an in-process alias). Every serializer stores it (JSON and msgpack hand
back a list, which is read too).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.signals import setting_changed

from ..exceptions import CacheConfigurationError
from .decision import CostAwareCacheDecision
from .embeddings import Embedder, as_matrix, resolve_embedder
from .entries import (
    ENTRY_FIELDS,
    ID,
    PROMPT,
    SCOPE,
    SemanticHit,
    as_entry,
    entry_digest,
    new_hit,
    normalize_prompt,
    numbers_in,
)
from .index import INDEX_KINDS, NamespaceIndex, encode_vector, namespace_index
from .options import semantic_settings
from .registry import register

if TYPE_CHECKING:
    from .embeddings import Matrix

VECTOR_MEMO = 256
#: Entry keys remembered per (scope, prompt): a repeated prompt skips normalising and hashing.
KEY_MEMO = 4096


class SemanticCache:
    """An LLM answer cache over one Django cache alias (see the module docstring)."""

    def __init__(
        self,
        alias: str | None = None,
        embedder: Embedder | str | None = None,
        threshold: float | None = None,
        namespace: str | None = None,
        *,
        timeout: float | object | None = DEFAULT_TIMEOUT,
        max_entries: int | None = None,
        decision: CostAwareCacheDecision | None = None,
        sync_interval: float | None = None,
        top_k: int | None = None,
        index_kind: str | None = None,
        numbers_must_match: bool | None = None,
    ) -> None:
        conf = semantic_settings()
        self.alias: str = alias or conf["ALIAS"]
        self.namespace: str = namespace or conf["NAMESPACE"]
        if not self.namespace.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise CacheConfigurationError(
                f"namespace {self.namespace!r}: use letters, digits, '-', '_' or '.' only."
            )
        self.threshold: float = float(conf["THRESHOLD"] if threshold is None else threshold)
        if not 0.0 < self.threshold <= 1.0:
            raise CacheConfigurationError(f"threshold must be in (0, 1], not {self.threshold}")
        self.embedder: Embedder = resolve_embedder(embedder or conf["EMBEDDER"])
        self.timeout = (
            conf["TIMEOUT"] if timeout is DEFAULT_TIMEOUT and conf["TIMEOUT"] else timeout
        )
        self.max_entries: int = int(max_entries or conf["MAX_ENTRIES"])
        self.decision = (
            decision or CostAwareCacheDecision(conf["ACCURACY_WEIGHT"])
        ).with_threshold(self.threshold)
        self.sync_interval = float(
            conf["SYNC_INTERVAL"] if sync_interval is None else sync_interval
        )
        self.top_k: int = int(top_k or conf["TOP_K"])
        self.index_kind: str = index_kind or conf["INDEX"]
        if self.index_kind not in INDEX_KINDS:
            raise CacheConfigurationError(
                f"index kind must be one of {INDEX_KINDS}, not {self.index_kind!r}"
            )
        self.numbers_must_match: bool = bool(
            conf["NUMBERS_MUST_MATCH"] if numbers_must_match is None else numbers_must_match
        )
        self._stats_lock = threading.Lock()
        self._semantic_hits = self._misses = 0
        #: Exact hits are the hot path: ``next()`` on a count is atomic and 8x cheaper than
        #: taking the lock (the other counters are bumped once per embedding, ~10 ms).
        self._exact_hits = itertools.count()
        self._similarity_sum = 0.0
        self._memo: OrderedDict[str, Matrix] = OrderedDict()
        self._memo_lock = threading.Lock()
        self._index_memo: tuple[Any, NamespaceIndex] | None = None
        self._keys: dict[tuple[str, str], str] = {}
        self._local = threading.local()
        register(self)

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def cache(self) -> Any:
        """This thread's backend object for the alias (Django keeps one per thread)."""
        return caches[self.alias]

    @property
    def index(self) -> NamespaceIndex:
        """The process's index for this alias's current configuration (memoised by identity)."""
        config = caches.settings.get(self.alias)
        memo = self._index_memo
        if memo is not None and memo[0] is config:
            return memo[1]
        fingerprint = json.dumps(config or {}, sort_keys=True, default=repr)
        index = namespace_index(
            self.alias,
            fingerprint,
            self.namespace,
            self.embedder.dimension,
            self.sync_interval,
            self.index_kind,
        )
        self._index_memo = (config, index)
        return index

    def _hot(self) -> tuple[int, Any, NamespaceIndex, dict[tuple[str, str], str], Any]:
        """(settings generation, read, index, read keys, key maker): the exact tier's
        per-thread memo, rebuilt after a ``CACHES`` change (see :func:`_caches_changed`).

        On an in-process alias (the memory backend) the read is its lock-free ``get_made``
        of the made key, as the tiered backend's L1 reads: a third cheaper than ``get``
        (which takes the store's lock), on a path that costs ~1 µs in all. Elsewhere it
        is the backend's ``get`` (and the key maker None). The read keys (``(scope,
        prompt)`` to the key the read takes) are filled by :meth:`_read_key`.
        """
        cache: Any = caches[self.alias]  # this thread's backend (~1.3 µs: kept here)
        made = getattr(cache, "get_made", None)
        read, make = (cache.get, None) if made is None else (made, cache.make_and_validate_key)
        keys: dict[tuple[str, str], str] = {}
        hot = (_generation, read, self.index, keys, make)
        self._local.hot = hot
        return hot

    def _read_key(self, hot: tuple[Any, ...], prompt: str, scope: str) -> str:
        """The key the exact tier's read takes for ``prompt`` in ``scope``, remembered in
        this thread's memo (making a key is ~7 % of an exact hit)."""
        key = self.entry_key(prompt, scope, hot[2])
        if hot[4] is not None:
            key = hot[4](key)
        keys = hot[3]
        if len(keys) >= KEY_MEMO:
            keys.clear()
        keys[(scope, prompt)] = key
        return key

    def entry_key(self, prompt: str, scope: str, index: NamespaceIndex) -> str:
        """The exact tier's key for ``prompt`` in ``scope`` (memoised per process)."""
        memo = self._keys
        key = memo.get((scope, prompt))
        if key is None:
            key = index.entry_key(entry_digest(scope, normalize_prompt(prompt)))
            if len(memo) >= KEY_MEMO:
                memo.clear()
            memo[(scope, prompt)] = key
        return key

    def _expires(self, timeout: Any) -> float | None:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.cache.default_timeout
        if timeout is None:
            return None
        return time.time() + float(timeout)

    def embed(self, prompt: str) -> Matrix:
        """One normalised row for ``prompt`` (memoised: a miss's vector is reused by store)."""
        with self._memo_lock:
            row = self._memo.get(prompt)
            if row is not None:
                self._memo.move_to_end(prompt)
                return row
        row = as_matrix(self.embedder([prompt]), self.embedder.dimension, 1)
        with self._memo_lock:
            self._memo[prompt] = row
            if len(self._memo) > VECTOR_MEMO:
                self._memo.popitem(last=False)
        return row

    def _count(self, kind: str, similarity: float = 0.0) -> None:
        with self._stats_lock:
            if kind == "semantic":
                self._semantic_hits += 1
                self._similarity_sum += similarity
            else:
                self._misses += 1

    # -- lookup ------------------------------------------------------------------------------
    def _exact(self, index: NamespaceIndex, scope: str, value: Any) -> SemanticHit | None:
        entry = as_entry(value, scope)
        if entry is None or index.cleared(scope, entry[ID]):
            return None
        index.touch(entry[ID])
        next(self._exact_hits)
        return self._hit(entry, 1.0, exact=True)

    @staticmethod
    def _hit(entry: Sequence[Any], similarity: float, *, exact: bool) -> SemanticHit:
        hit: SemanticHit = new_hit(SemanticHit, entry)
        return hit._replace(similarity=similarity, exact=exact)

    def _required(self, threshold: float | None, costs: tuple[float, float] | None) -> float:
        decision = self.decision if threshold is None else self.decision.with_threshold(threshold)
        if costs is None:
            return decision.threshold
        return decision.required_similarity(*costs)

    def _vector(
        self, prompt: str, scope: str, threshold: float | None, costs: tuple[float, float] | None
    ) -> SemanticHit | None:
        index, cache = self.index, self.cache
        index.sync(cache)
        required = self._required(threshold, costs)
        candidates = [c for c in index.search(scope, self.embed(prompt), self.top_k)]
        candidates = [c for c in candidates if c[0] >= required]
        if not candidates:
            return None
        keys = {digest: index.entry_key(digest) for _, _, digest in candidates}
        found = cache.get_many(list(keys.values()))
        gone = []
        numbers = numbers_in(prompt) if self.numbers_must_match else None
        for similarity, id_, digest in candidates:
            entry = as_entry(found.get(keys[digest]), scope)
            if entry is None or entry[ID] != id_ or index.cleared(scope, id_):
                gone.append(id_)  # expired, invalidated, evicted, replaced or cleared
                continue
            if numbers is not None and numbers_in(str(entry[PROMPT])) != numbers:
                continue  # "rose 3 %" is not "rose 4 %", however close the vectors are
            index.discard(gone)
            index.touch(id_)
            self._count("semantic", similarity)
            return self._hit(entry, similarity, exact=False)
        index.discard(gone)
        return None

    def lookup(
        self,
        prompt: str,
        scope: str = "",
        *,
        threshold: float | None = None,
        api_cost_per_1k_tokens: float | None = None,
        expected_tokens: float | None = None,
    ) -> SemanticHit | None:
        """The cached answer for ``prompt`` in ``scope``, or None (see the module docstring).

        With both costs given, the cost-aware rule replaces the plain threshold. The exact
        tier is written out inline: on an in-process alias each call level is ~5 % of it.
        """
        hot = getattr(self._local, "hot", None)
        if hot is None or hot[0] != _generation:
            hot = self._hot()
        index = hot[2]
        entry = hot[1](hot[3].get((scope, prompt)) or self._read_key(hot, prompt, scope))
        if type(entry) is tuple and len(entry) == ENTRY_FIELDS and entry[SCOPE] == scope:
            id_ = entry[ID]
            if type(id_) is int and not (index.floors and index.cleared(scope, id_)):
                try:
                    index.recent.move_to_end(id_)  # eviction's order; see index.touch
                except KeyError:
                    pass
                next(self._exact_hits)
                return new_hit(SemanticHit, entry)
        hit = None if entry is None else self._exact(index, scope, entry)
        if hit is None:
            costs = _costs(api_cost_per_1k_tokens, expected_tokens)
            hit = self._vector(prompt, scope, threshold, costs)
            if hit is None:
                self._count("miss")
        return hit

    async def alookup(
        self,
        prompt: str,
        scope: str = "",
        *,
        threshold: float | None = None,
        api_cost_per_1k_tokens: float | None = None,
        expected_tokens: float | None = None,
    ) -> SemanticHit | None:
        """``lookup`` for async code: the exact tier on the loop, embedding in a thread."""
        index = self.index
        key = self.entry_key(prompt, scope, index)
        hit = self._exact(index, scope, await self.cache.aget(key))
        if hit is None:
            costs = _costs(api_cost_per_1k_tokens, expected_tokens)
            hit = await asyncio.to_thread(self._vector, prompt, scope, threshold, costs)
            if hit is None:
                self._count("miss")
        return hit

    # -- writes ------------------------------------------------------------------------------
    def store(
        self,
        prompt: str,
        response: Any,
        scope: str = "",
        *,
        model: str | None = None,
        cost: float | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
    ) -> None:
        """Cache ``response`` for ``prompt`` in ``scope`` (both tiers, every process)."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.timeout
        index, cache = self.index, self.cache
        normalized = normalize_prompt(prompt)
        digest = entry_digest(scope, normalized)
        vector = self.embed(prompt)
        id_ = index.next_id(cache)
        expires = self._expires(timeout)
        entry = (response, 1.0, True, prompt, model, cost, scope, time.time(), id_)
        cache.set(index.entry_key(digest), entry, timeout)
        record: dict[str, Any] = {"op": "add", "scope": scope, "key": digest, "exp": expires}
        record["vec"] = encode_vector(vector)
        cache.set(index.log_key(id_), record, timeout)
        index.add(id_, scope, digest, vector, expires)
        self._evict(index, cache)

    def _evict(self, index: NamespaceIndex, cache: Any) -> None:
        """Past ``max_entries``: drop the least recently hit entries (as this process saw)."""
        excess = len(index) - self.max_entries
        if excess <= 0:
            return
        index.sync(cache, force=True)
        excess = len(index) - self.max_entries
        if excess <= 0:
            return
        victims = index.least_recently_hit(excess)
        self._delete(index, cache, [id_ for id_, _ in victims], [d for _, d in victims])

    def _delete(
        self, index: NamespaceIndex, cache: Any, ids: Sequence[int], digests: Sequence[str]
    ) -> None:
        cache.delete_many([index.entry_key(d) for d in digests])
        index.discard(ids)
        if ids:
            n = index.next_id(cache)
            cache.set(index.log_key(n), {"op": "del", "ids": list(ids)}, None)

    def invalidate(self, prompt: str, scope: str = "") -> None:
        """Forget ``prompt``'s answer in ``scope``: gone from both tiers in every process."""
        index, cache = self.index, self.cache
        digest = entry_digest(scope, normalize_prompt(prompt))
        entry = as_entry(cache.get(index.entry_key(digest)), scope)
        ids = [i for i in (index.id_of(digest),) if i is not None]
        if entry is not None:
            ids.append(entry[ID])
        self._delete(index, cache, sorted(set(ids)), [digest])

    def clear(self, scope: str | None = None) -> None:
        """Forget every answer of ``scope`` (None: of the whole namespace), in every process.

        A ``clear`` record numbered n in the log makes every process treat entries of the
        scope with ids below n as gone (both tiers), and the entries this process knows of
        are deleted from the alias at once (see ``index.py``).
        """
        index, cache = self.index, self.cache
        index.sync(cache, force=True)
        n = index.next_id(cache)
        cache.set(index.log_key(n), {"op": "clear", "scope": scope}, None)
        keys = index.apply(n, {"op": "clear", "scope": scope})
        for start in range(0, len(keys), 500):
            cache.delete_many([index.entry_key(d) for d in keys[start : start + 500]])
        with self._memo_lock:
            self._memo.clear()

    async def astore(self, prompt: str, response: Any, scope: str = "", **kwargs: Any) -> None:
        await asyncio.to_thread(self.store, prompt, response, scope, **kwargs)

    async def ainvalidate(self, prompt: str, scope: str = "") -> None:
        await asyncio.to_thread(self.invalidate, prompt, scope)

    async def aclear(self, scope: str | None = None) -> None:
        await asyncio.to_thread(self.clear, scope)

    # -- numbers -----------------------------------------------------------------------------
    def counters(self) -> tuple[int, int, int, float]:
        """(exact hits, semantic hits, misses, sum of vector-hit similarities), consistent."""
        with self._stats_lock:
            exact = int(repr(self._exact_hits)[6:-1])  # "count(N)": read without advancing
            return exact, self._semantic_hits, self._misses, self._similarity_sum

    def stats(self) -> dict[str, Any]:
        """Hits per tier, misses and the mean similarity of vector hits (this instance)."""
        exact, semantic, misses, similarity = self.counters()
        mean = similarity / semantic if semantic else None
        lookups = exact + semantic + misses
        return {
            "alias": self.alias,
            "namespace": self.namespace,
            "threshold": self.threshold,
            "exact_hits": exact,
            "semantic_hits": semantic,
            "misses": misses,
            "lookups": lookups,
            "hit_rate": (exact + semantic) / lookups if lookups else None,
            "mean_similarity": mean,
            "indexed_entries": len(self.index),
        }

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._exact_hits = itertools.count()
            self._semantic_hits = self._misses = 0
            self._similarity_sum = 0.0


#: Bumped when ``CACHES`` changes (``override_settings``): the exact tier's per-thread memo
#: compares one module global instead of reaching ``caches.settings`` on every call.
_generation = 0


def _caches_changed(*, setting: str, **kwargs: Any) -> None:
    global _generation
    if setting == "CACHES":
        _generation += 1


setting_changed.connect(_caches_changed, dispatch_uid="lexigram-semantic-caches")


def _costs(per_1k: float | None, tokens: float | None) -> tuple[float, float] | None:
    if per_1k is None or tokens is None:
        return None
    return (float(per_1k), float(tokens))
