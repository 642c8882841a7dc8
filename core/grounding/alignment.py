"""Aligning each evidence sentence to the window of document sentences that supports it."""

from __future__ import annotations

from prism_core.grounding.document import _Document
from prism_core.grounding.sentences import _sentence_units

# ---------------------------------------------------------------------------------- alignment

#: An evidence sentence is aligned only when at least this share of its units is found in one window.
MIN_ALIGNMENT = 0.3
#: The most consecutive document sentences one evidence sentence may be aligned to.
MAX_WINDOW = 3


def _align(
    doc: _Document, evidence: str, sentences: list[tuple[int, int]]
) -> tuple[tuple[int, int] | None, ...]:
    doc_sentences = doc.sentences
    doc_units = doc.sentence_units
    out: list[tuple[int, int] | None] = []
    for s, e in sentences:
        units = _sentence_units(evidence[s:e])
        if not units or not doc_units:
            out.append(None)
            continue
        hits = [units & u for u in doc_units]
        best: tuple[int, int, int] | None = None  # covered, start, width
        for i in range(len(doc_units)):
            if not hits[i]:
                continue
            covered: set[str] = set()
            for width in range(1, min(MAX_WINDOW, len(doc_units) - i) + 1):
                extra = hits[i + width - 1]
                if width > 1 and not (extra - covered):
                    break
                covered |= extra
                if best is None or len(covered) > best[0]:
                    best = (len(covered), i, width)
        if best is None or best[0] < MIN_ALIGNMENT * len(units):
            out.append(None)
            continue
        _, i, width = best
        out.append((doc_sentences[i][0], doc_sentences[i + width - 1][1]))
    return tuple(out)
