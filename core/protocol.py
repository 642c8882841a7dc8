"""The small protocol the framework adapters rely on, so other rerankers can plug in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from prism_core.results import PrismResult


@runtime_checkable
class Reranker(Protocol):
    """What an adapter needs from a reranker: scores, and ranked results with optional evidence.

    :class:`prism_core.PrismReranker` implements it; any object with these methods can stand in
    for it (a remote client, a fake in tests).
    """

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """Relevance scores in input order, without generation."""
        ...

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
    ) -> list[PrismResult]:
        """Results sorted by score, best first; ``score_threshold`` applies before ``top_n``."""
        ...

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
    ) -> list[PrismResult]:
        """The same as :meth:`rerank`, without blocking the event loop."""
        ...
