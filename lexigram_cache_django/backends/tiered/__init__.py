"""Tiered cache: an in-process L1 over a shared L2 (see :mod:`.core` for the flow)."""

from .cache import TieredCache

__all__ = ["TieredCache"]
