"""When a near match is worth serving: similarity weighed against what a fresh call costs.

A cached answer to a paraphrase saves one LLM call; a wrong one costs trust. With
``accuracy_weight`` w (0.7 by default) the similarity a hit needs moves with the money a
hit saves, ``saved = api_cost_per_1k_tokens * expected_tokens / 1000``::

    value    = saved / (saved + half_value_cost)          # 0 .. 1, 0.5 at half_value_cost
    required = threshold + (1 - w) * (0.5 - value) * span  # cheap calls need more
    use      = similarity >= max(required, floor)

so a free call asks ``span * (1 - w) / 2`` more similarity than the plain threshold, a very
expensive one as much less, and nothing below ``floor`` is ever served. The cache applies it
only when the caller passes both costs; otherwise the plain threshold decides.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CostAwareCacheDecision:
    """``should_use_cache(similarity, api_cost_per_1k_tokens, expected_tokens)``."""

    accuracy_weight: float = 0.7
    threshold: float = 0.95
    half_value_cost: float = 0.01
    span: float = 0.2
    floor: float = 0.85

    def __post_init__(self) -> None:
        if not 0.0 <= self.accuracy_weight <= 1.0:
            raise ValueError("accuracy_weight must be between 0 and 1")
        if self.half_value_cost <= 0:
            raise ValueError("half_value_cost must be positive")

    def with_threshold(self, threshold: float) -> CostAwareCacheDecision:
        return CostAwareCacheDecision(
            self.accuracy_weight, threshold, self.half_value_cost, self.span, self.floor
        )

    def required_similarity(self, api_cost_per_1k_tokens: float, expected_tokens: float) -> float:
        """The similarity a hit needs for a call of this cost."""
        saved = max(0.0, api_cost_per_1k_tokens) * max(0.0, expected_tokens) / 1000.0
        value = saved / (saved + self.half_value_cost)
        required = self.threshold + (1.0 - self.accuracy_weight) * (0.5 - value) * self.span
        return min(1.0, max(required, self.floor))

    def should_use_cache(
        self, similarity: float, api_cost_per_1k_tokens: float, expected_tokens: float
    ) -> bool:
        return similarity >= self.required_similarity(api_cost_per_1k_tokens, expected_tokens)
