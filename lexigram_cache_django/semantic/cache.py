"""SemanticCache: answers to prompts, found again by exact text or by meaning.

::

    lookup(prompt, scope)
      |- exact:  normalise -> sha256(scope, text) -> one get()      -> hit (similarity 1.0)
      |- vector: embed -> this scope's FAISS index (cosine) -> best candidates
      |          -> one get_many() of their entries -> still there, same id, same scope
      |          -> similarity >= threshold (or the cost-aware rule) -> hit
      '- miss

Entries, vectors and the log live in the cache alias (``caches[alias]``, only through
Django's public API plus ``tags=``/``invalidate_tags``), so every process sharing a Redis
alias sees them; see ``index.py`` for how a process's index catches up.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..exceptions import CacheConfigurationError
from .decision import CostAwareCacheDecision
from .embeddings import Embedder, as_matrix, resolve_embedder
from .index import INDEX_KINDS, NamespaceIndex, encode_vector, namespace_index
from .options import semantic_settings

if TYPE_CHECKING:
    from .embeddings import Matrix

VECTOR_MEMO = 256


@dataclass(slots=True)
class SemanticHit:
    """A cached answer and how it was found."""

    response: Any
    similarity: float
    exact: bool
    prompt: str
    model: str | None = None
    cost: float | None = None
    scope: str = ""
    created: float = 0.0


def normalize_prompt(prompt: str) -> str:
    """What the exact tier compares: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


def entry_digest(scope: str, normalized: str) -> str:
    return hashlib.sha256(f"{scope}\x00{normalized}".encode()).hexdigest()[:40]


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
        self._stats_lock = threading.Lock()
        self._exact_hits = self._semantic_hits = self._misses = 0
        self._similarity_sum = 0.0
        self._memo: OrderedDict[str, Matrix] = OrderedDict()
        self._memo_lock = threading.Lock()
        self._tag_all = f"semantic:{self.namespace}"
        self._index_memo: tuple[Any, NamespaceIndex] | None = None

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def cache(self) -> Any:
        """This thread's backend object for the alias (Django keeps one per thread)."""
        return caches[self.alias]

    @property
    def index(self) -> NamespaceIndex:
        """The process's index for this alias's current configuration (memoised by identity)."""
        config = settings.CACHES.get(self.alias)
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

    def _scope_tag(self, scope: str) -> str:
        return f"semantic:{self.namespace}:{hashlib.sha256(scope.encode()).hexdigest()[:16]}"

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
            if kind == "exact":
                self._exact_hits += 1
            elif kind == "semantic":
                self._semantic_hits += 1
                self._similarity_sum += similarity
            else:
                self._misses += 1

    # -- lookup ------------------------------------------------------------------------------
    def _exact(
        self, index: NamespaceIndex, digest: str, scope: str, normalized: str, entry: Any
    ) -> SemanticHit | None:
        if not isinstance(entry, dict) or entry.get("scope") != scope:
            return None
        if entry.get("norm") != normalized:
            return None
        index.touch_key(digest)
        self._count("exact")
        return self._hit(entry, 1.0, exact=True)

    @staticmethod
    def _hit(entry: dict[str, Any], similarity: float, *, exact: bool) -> SemanticHit:
        return SemanticHit(
            response=entry["response"],
            similarity=similarity,
            exact=exact,
            prompt=entry.get("prompt", ""),
            model=entry.get("model"),
            cost=entry.get("cost"),
            scope=entry.get("scope", ""),
            created=entry.get("created", 0.0),
        )

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
        for similarity, id_, digest in candidates:
            entry = found.get(keys[digest])
            if not isinstance(entry, dict) or entry.get("id") != id_ or entry.get("scope") != scope:
                gone.append(id_)  # expired, invalidated, evicted or replaced
                continue
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

        With both costs given, the cost-aware rule replaces the plain threshold.
        """
        normalized = normalize_prompt(prompt)
        digest = entry_digest(scope, normalized)
        index = self.index
        entry = self.cache.get(index.entry_key(digest))
        hit = self._exact(index, digest, scope, normalized, entry)
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
        normalized = normalize_prompt(prompt)
        digest = entry_digest(scope, normalized)
        index = self.index
        entry = await self.cache.aget(index.entry_key(digest))
        hit = self._exact(index, digest, scope, normalized, entry)
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
        entry = {
            "id": id_,
            "scope": scope,
            "prompt": prompt,
            "norm": normalized,
            "response": response,
            "model": model,
            "cost": cost,
            "created": time.time(),
        }
        tags = [self._tag_all, self._scope_tag(scope)]
        cache.set(index.entry_key(digest), entry, timeout, tags=tags)
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
        entry = cache.get(index.entry_key(digest))
        ids = [i for i in (index.id_of(digest),) if i is not None]
        if isinstance(entry, dict) and isinstance(entry.get("id"), int):
            ids.append(entry["id"])
        self._delete(index, cache, sorted(set(ids)), [digest])

    def clear(self, scope: str | None = None) -> None:
        """Forget every answer of ``scope`` (None: of the whole namespace), in O(1)."""
        index, cache = self.index, self.cache
        cache.invalidate_tags(self._tag_all if scope is None else self._scope_tag(scope))
        n = index.next_id(cache)
        cache.set(index.log_key(n), {"op": "clear", "scope": scope}, None)
        index.drop_scope(scope)
        with self._memo_lock:
            self._memo.clear()

    async def astore(self, prompt: str, response: Any, scope: str = "", **kwargs: Any) -> None:
        await asyncio.to_thread(self.store, prompt, response, scope, **kwargs)

    async def ainvalidate(self, prompt: str, scope: str = "") -> None:
        await asyncio.to_thread(self.invalidate, prompt, scope)

    async def aclear(self, scope: str | None = None) -> None:
        await asyncio.to_thread(self.clear, scope)

    # -- numbers -----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Hits per tier, misses and the mean similarity of vector hits (this instance)."""
        with self._stats_lock:
            exact, semantic, misses = self._exact_hits, self._semantic_hits, self._misses
            mean = self._similarity_sum / semantic if semantic else None
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
            self._exact_hits = self._semantic_hits = self._misses = 0
            self._similarity_sum = 0.0


def _costs(per_1k: float | None, tokens: float | None) -> tuple[float, float] | None:
    if per_1k is None or tokens is None:
        return None
    return (float(per_1k), float(tokens))
