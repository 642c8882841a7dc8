"""The backend protocol: what every reranker of the core implements and what adapters rely on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypedDict, runtime_checkable

from prism_core.results import PrismResult

if TYPE_CHECKING:
    from typing_extensions import Unpack


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do, for callers that adapt to it.

    Attributes:
        verdict: The model gives its own yes/no verdict (a generative reranker). Every backend sets
            ``relevant = logit > 0``; for a cross-encoder that is simply ``score > 0.5``.
        evidence: The backend can generate a contribution and an evidence passage.

    Example:
        >>> Capabilities(verdict=True, evidence=False).evidence
        False
    """

    verdict: bool
    evidence: bool


#: A reranker that only scores (Qwen3-Reranker, cross-encoders, most remote rerank APIs).
SCORE_ONLY = Capabilities(verdict=False, evidence=False)


class RerankOptions(TypedDict, total=False):
    """The options of every reranker's ``rerank``/``arerank``, declared once: keyword-only, each
    optional (the defaults: no ``top_n``, no threshold, ``evidence=True``, no time budget).

    Example:
        >>> options: RerankOptions = {"top_n": 3, "evidence": False}
    """

    top_n: int | None
    score_threshold: float | None
    evidence: bool
    time_budget: float | None


@runtime_checkable
class Reranker(Protocol):
    """What an adapter needs from a reranker: scores, and ranked results with optional evidence.

    Score is the primitive (input order, nothing generated); :meth:`rerank` ranks by it, applies
    ``score_threshold`` then ``top_n``, and, when the backend can (``capabilities.evidence``) and
    ``evidence`` is on, generates contribution and evidence for the relevant documents it returns.
    A score-only backend returns results with ``contribution``, ``evidence`` and ``raw_output`` left
    ``None``. Every built-in backend implements it, and so can any object (a remote client, a fake).
    """

    @property
    def capabilities(self) -> Capabilities:
        """What this reranker can do."""
        ...

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """Relevance scores in ``[0, 1]``, in input order, without generation."""
        ...

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        """:meth:`score` without blocking the event loop."""
        ...

    def rerank(
        self, query: str, documents: Sequence[str], **options: Unpack[RerankOptions]
    ) -> list[PrismResult]:
        """Results sorted by score, best first; ``score_threshold`` applies before ``top_n``.

        ``options`` are :class:`RerankOptions` (keyword-only, each optional). ``time_budget``
        (seconds, fail-open; see :mod:`prism_core.budgets`): the call returns by then with what is
        done. Adapters pass it only when the caller set one, so a reranker written before it
        existed keeps working without it.
        """
        ...

    async def arerank(
        self, query: str, documents: Sequence[str], **options: Unpack[RerankOptions]
    ) -> list[PrismResult]:
        """The same as :meth:`rerank`, without blocking the event loop."""
        ...
