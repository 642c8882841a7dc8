"""Prism-Reranker (and every prism_core backend) as a Haystack ranker component.

Shipped in the ``haystack_integrations`` namespace, like every Haystack integration, so that
Haystack loads saved pipelines holding it with its default deserialisation allowlist.

Example:
    >>> from haystack_integrations.components.rankers.prism import PrismRanker
    >>> ranker = PrismRanker(model="infgrad/Prism-Qwen3.5-Reranker-0.8B", top_k=3)  # loads nothing
"""

from haystack_integrations.components.rankers.prism.quality import QualityAnnotator
from haystack_integrations.components.rankers.prism.ranker import PrismRanker

__all__ = ["PrismRanker", "QualityAnnotator"]
