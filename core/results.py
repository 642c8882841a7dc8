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
        chunk: The ``[start, end)`` character offsets, in the original document, of the window
            that gave the score when the document was read in windows (``long_documents="chunk"``);
            ``None`` when it was read whole (or cut: see ``truncated``).
        grounding: The evidence's support score in ``[0, 1]`` from
            :func:`prism_core.check_grounding` (the share of its content found in the document),
            when evidence was generated; else ``None``.
        unsupported: The evidence's verbatim items (numbers, dates, URLs, e-mail addresses, code,
            terms, names) that the document does not contain, as written in the evidence; ``()``
            when all are supported; ``None`` when no evidence was generated.
        evidence_spans: Per evidence sentence (in :func:`prism_core.grounding.split_sentences`
            order), the ``(start, end)`` character offsets of the supporting span in the original
            document, or ``None`` where alignment gave up; ``None`` when no evidence was generated.
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
    chunk: tuple[int, int] | None = None
    grounding: float | None = None
    unsupported: tuple[str, ...] | None = None
    evidence_spans: tuple[tuple[int, int] | None, ...] | None = None

    @property
    def grounded(self) -> bool | None:
        """``True`` when evidence was generated and none of its verbatim items is unsupported;
        ``None`` when there is no evidence or it was not checked."""
        return None if self.unsupported is None else not self.unsupported

    scored: bool = True
    evidence_skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-serialisable ``dict`` (field order as declared; tuples as lists,
        so the dict equals its own JSON round trip)."""
        out = asdict(self)
        if self.unsupported is not None:
            out["unsupported"] = list(self.unsupported)
        if self.evidence_spans is not None:
            out["evidence_spans"] = [None if s is None else list(s) for s in self.evidence_spans]
        return out
