"""Scripted rerankers and small data files for the evaluation tests (imported by the tests)."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prism_core.protocol import Capabilities
from prism_core.results import PrismResult


@dataclass(frozen=True)
class Outcome:
    """What the scripted model says about one document."""

    score: float
    relevant: bool
    document_tokens: int | None
    evidence: str | None = None
    evidence_complete: bool = False
    evidence_tokens: int | None = None


def hashed_outcome(text: str) -> Outcome:
    """A deterministic outcome for any text: score from its CRC, tokens = its word count."""
    score = (zlib.crc32(text.encode()) % 1000) / 1000.0
    relevant = score > 0.5
    words = len(text.split())
    if relevant and score > 0.75:
        evidence = " ".join(text.split()[: max(1, words // 3)])
        return Outcome(score, True, words, evidence, True, len(evidence.split()))
    if relevant:
        return Outcome(score, True, words, "cut", False, 1)
    return Outcome(score, False, words)


class ScriptedReranker:
    """A :class:`prism_core.Reranker` whose verdicts and token counts a test decides.

    Args:
        script: Document text → outcome; texts not in it go through ``fallback``.
        evidence: The ``capabilities.evidence`` flag.
        fallback: Outcome for unscripted texts (default: :func:`hashed_outcome`).
        fail_on: Queries for which ``rerank`` raises.
        counter: When set, exposed as ``prompt_tokenizer.count_tokens`` (a tokenizer).
    """

    def __init__(
        self,
        script: dict[str, Outcome] | None = None,
        *,
        evidence: bool = True,
        fallback: Callable[[str], Outcome] = hashed_outcome,
        fail_on: Sequence[str] = (),
        counter: Callable[[str], int] | None = None,
    ) -> None:
        self.script = script or {}
        self._capabilities = Capabilities(verdict=True, evidence=evidence)
        self.fallback = fallback
        self.fail_on = set(fail_on)
        self.calls: list[tuple[str, list[str], bool]] = []
        self.loaded = False
        if counter is not None:
            self.prompt_tokenizer = type("Counter", (), {"count_tokens": staticmethod(counter)})()

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def load(self) -> ScriptedReranker:
        self.loaded = True
        return self

    def _outcome(self, text: str) -> Outcome:
        return self.script.get(text) or self.fallback(text)

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        return [self._outcome(d).score for d in documents]

    async def ascore(self, query: str, documents: Sequence[str]) -> list[float]:
        return self.score(query, documents)

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        evidence: bool = True,
    ) -> list[PrismResult]:
        self.calls.append((query, list(documents), evidence))
        if query in self.fail_on:
            raise RuntimeError(f"scripted failure for {query!r}")
        out = []
        for i, doc in enumerate(documents):
            o = self._outcome(doc)
            logit = math.log(max(o.score, 1e-6) / max(1 - o.score, 1e-6))
            generate = evidence and self._capabilities.evidence and o.relevant
            out.append(
                PrismResult(
                    index=i,
                    score=o.score,
                    logit=logit,
                    relevant=o.relevant,
                    evidence=o.evidence if generate else None,
                    evidence_complete=o.evidence_complete if generate else False,
                    document_tokens=o.document_tokens,
                    evidence_tokens=o.evidence_tokens if generate else None,
                )
            )
        out.sort(key=lambda r: (-r.logit, r.index))
        return out[:top_n] if top_n is not None else out

    async def arerank(self, query: str, documents: Sequence[str], **kwargs: Any) -> list[PrismResult]:
        return self.rerank(query, documents, **kwargs)


def write_jsonl(path: Path, rows: list[dict[str, Any]] | list[str]) -> Path:
    """Write JSONL rows (dicts are dumped; strings written as they are)."""
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def write_beir(
    root: Path, corpus: list[dict[str, Any]], queries: list[dict[str, Any]], qrels: list[str]
) -> Path:
    """Write a BEIR-layout directory (``qrels`` lines are written under a header)."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "corpus.jsonl", corpus)
    write_jsonl(root / "queries.jsonl", queries)
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(q + "\n" for q in qrels)
    )
    return root
