"""A scripted reranker for tests where the model is beside the point.

It implements :class:`prism_core.Reranker` (and the extra ``ascore``/``load`` conveniences of
:class:`prism_core.PrismReranker`) deterministically: each document's outcome is looked up by a
marker in its text, so a test states in the document itself what the "model" will say.

Markers (first match wins):
    ``[yes:S]``        relevant, score S, complete evidence (``EVIDENCE(<doc>)``), reported grounded
                       (``grounding=1.0``, ``unsupported=()``, one span over the whole document)
    ``[fabricated:S]`` relevant, score S, complete evidence that adds a number the document does not
                       have (``<doc> It is 999 km long.``), grounding NOT filled in (a backend that
                       does not check: the adapters' shared mapping checks it)
    ``[partial:S]``    relevant, score S, evidence cut by the budget (``evidence_complete=False``),
                       reported grounded
    ``[notags:S]``     relevant, score S, output without any tags (evidence=None)
    ``[no:S]``         not relevant, score S
Documents without a marker are not relevant with score 0.01.

:class:`ScoreOnlyFakeReranker` reads the same markers but, like Qwen3-Reranker or a cross-encoder,
only scores: its capabilities say so and it never returns a contribution or evidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from prism_core.protocol import SCORE_ONLY, Capabilities
from prism_core.results import PrismResult

_MARK = re.compile(r"\[(yes|fabricated|partial|notags|no):([0-9.]+)\]")


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


class FakeReranker:
    """Deterministic stand-in for :class:`prism_core.PrismReranker` (a generating backend)."""

    capabilities = Capabilities(verdict=True, evidence=True)

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], dict[str, object]]] = []
        self.loaded = False

    def load(self) -> FakeReranker:
        self.loaded = True
        return self

    def _outcome(self, index: int, doc: str, evidence: bool) -> PrismResult:
        m = _MARK.search(doc)
        kind, score = (m.group(1), float(m.group(2))) if m else ("no", 0.01)
        relevant = kind != "no"
        base = PrismResult(index=index, score=score, logit=_logit(score), relevant=relevant)
        if not (relevant and evidence):
            return base
        contribution = f"CONTRIBUTION({index})"
        grounded = {"grounding": 1.0, "unsupported": (), "evidence_spans": ((0, len(doc)),)}
        if kind == "yes":
            raw = f"yes<contribution>{contribution}</contribution><evidence>EVIDENCE({doc})</evidence>"
            return PrismResult(
                index, score, base.logit, True, contribution, f"EVIDENCE({doc})", True, False, raw, **grounded
            )
        if kind == "fabricated":
            evidence = f"{doc} It is 999 km long."
            raw = f"yes<contribution>{contribution}</contribution><evidence>{evidence}</evidence>"
            return PrismResult(index, score, base.logit, True, contribution, evidence, True, False, raw)
        if kind == "partial":
            raw = f"yes<contribution>{contribution}</contribution><evidence>EVIDENCE(cut"
            return PrismResult(
                index, score, base.logit, True, contribution, "EVIDENCE(cut", False, False, raw, **grounded
            )
        return PrismResult(index, score, base.logit, True, None, None, False, False, "yes but no tags at all")

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        self.calls.append((query, list(documents), {"score": True}))
        return [self._outcome(i, d, False).score for i, d in enumerate(documents)]

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
    ) -> list[PrismResult]:
        self.calls.append(
            (
                query,
                list(documents),
                {"top_n": top_n, "score_threshold": score_threshold, "evidence": evidence},
            )
        )
        generate = evidence and self.capabilities.evidence
        results = [self._outcome(i, d, generate) for i, d in enumerate(documents)]
        results.sort(key=lambda r: (-r.score, r.index))
        if score_threshold is not None:
            results = [r for r in results if r.score >= score_threshold]
        if top_n is not None:
            results = results[:top_n]
        return results

    async def arerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
    ) -> list[PrismResult]:
        return self.rerank(query, documents, top_n=top_n, score_threshold=score_threshold, evidence=evidence)

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        return self.score(query, documents)


class ScoreOnlyFakeReranker(FakeReranker):
    """The same markers, scored only: ``evidence=True`` is a no-op, as on Qwen3-Reranker."""

    capabilities = SCORE_ONLY
