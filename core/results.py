"""The result type every reranker in this package returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PrismResult:
    """One reranked document: its verdict, score and, when generated, contribution and evidence.

    Instances are immutable and hold plain Python values only, so :meth:`to_dict` is JSON-safe.

    Attributes:
        index: Position of the document in the caller's input list.
        score: ``sigmoid(logit_yes - logit_no)`` at the first generated position, in ``[0, 1]``.
        logit: ``logit_yes - logit_no``.
        relevant: The model's verdict: ``logit_yes > logit_no``.
        contribution: The one-sentence contribution, or ``None`` when absent or not generated.
        evidence: The self-contained evidence rewrite, or ``None`` when absent or not generated.
        evidence_complete: ``True`` when both ``<contribution>`` and ``<evidence>`` were opened and
            closed within the generation budget.
        truncated: The document was cut (by tokens) to fit ``max_length``.
        raw_output: The generated text, verdict included, decoded as the model card decodes it;
            ``None`` when nothing was generated for this document.
        document_tokens: The document's tokens as the model saw them (after truncation); for a
            causal-LM backend, the prompt's tokens beyond its fixed part and the query. ``None``
            when the backend does not say (a remote server that does not report it).
        evidence_tokens: The evidence passage's tokens (same tokenizer), when evidence was
            generated; else ``None``. ``document_tokens - evidence_tokens`` is what the body swap
            saves in an LLM's context.
        scored: ``False`` only when the call's ``time_budget`` ran out before this document was
            scored: ``score``, ``logit`` are then placeholders (``0.0``), ``relevant`` is ``False``,
            and such results come after the ranked ones, in input order (never ranked by nothing).
        evidence_skipped: Why evidence this document would have had was not generated:
            ``"time_budget"`` when the call's deadline came first (the body stays the original;
            ``evidence_complete`` is ``False``); ``None`` otherwise.

    Example:
        >>> r = PrismResult(index=0, score=0.9, logit=2.2, relevant=True)
        >>> r.to_dict()["index"], r.evidence is None
        (0, True)
    """

    index: int
    score: float
    logit: float
    relevant: bool
    contribution: str | None = None
    evidence: str | None = None
    evidence_complete: bool = False
    truncated: bool = False
    raw_output: str | None = None
    document_tokens: int | None = None
    evidence_tokens: int | None = None
    scored: bool = True
    evidence_skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-serialisable ``dict`` (field order as declared)."""
        return asdict(self)
